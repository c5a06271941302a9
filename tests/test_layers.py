"""bertjax.layers: the custom backward of `project` and the erf GELU, against JAX's own rules."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertjax import layers


def _plain(x, kernel, num_in_dims):
    contract = tuple(range(x.ndim - num_in_dims, x.ndim))
    return jax.lax.dot_general(x, kernel, ((contract, tuple(range(num_in_dims))), ((), ())))


@pytest.mark.parametrize("x_shape, kernel_shape, num_in_dims", [
    ((3, 5, 8), (8, 32), 1),       # x smaller than dy: x is transposed
    ((3, 5, 32), (32, 8), 1),      # dy smaller: dy is transposed, the result moved back
    ((3, 5, 8), (8, 4, 2), 1),     # q/k/v: [B, S, H] x [H, N, D]
    ((3, 5, 4, 2), (4, 2, 8), 2),  # attention output: [B, S, N, D] x [N, D, H]
])
def test_project_values_and_gradients_match_dot_general(x_shape, kernel_shape, num_in_dims):
    rng = np.random.RandomState(0)
    x = jnp.asarray(rng.randn(*x_shape), jnp.float32)
    kernel = jnp.asarray(rng.randn(*kernel_shape), jnp.float32)
    out_shape = x_shape[:len(x_shape) - num_in_dims] + kernel_shape[num_in_dims:]
    cotangent = jnp.asarray(rng.randn(*out_shape), jnp.float32)

    def loss(fn):
        return lambda a, b: jnp.sum(fn(a, b, num_in_dims) * cotangent)

    np.testing.assert_allclose(layers.project(x, kernel, num_in_dims),
                               _plain(x, kernel, num_in_dims), rtol=1e-6)
    ours = jax.jit(jax.grad(loss(layers.project), argnums=(0, 1)))(x, kernel)
    theirs = jax.grad(loss(_plain), argnums=(0, 1))(x, kernel)
    for a, b in zip(ours, theirs):
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_project_keeps_bf16_gradients_bf16():
    x = jnp.ones((2, 3, 4), jnp.bfloat16)
    kernel = jnp.ones((4, 6), jnp.bfloat16)
    grads = jax.grad(lambda a, b: layers.project(a, b, 1).astype(jnp.float32).sum(),
                     argnums=(0, 1))(x, kernel)
    assert [g.dtype for g in grads] == [jnp.bfloat16, jnp.bfloat16]


def test_gelu_erf_is_the_exact_gelu_and_its_derivative():
    """Against float64 scipy of the original's formula; below x of about -5.5, 1 + erf rounds to
    0 in float32 (as in the original's TF graph), so values under 1e-6 may be 0."""
    from scipy import special

    x = jnp.linspace(-8.0, 8.0, 2001)
    x64 = np.asarray(x, np.float64)
    reference = 0.5 * x64 * (1.0 + special.erf(x64 / np.sqrt(2.0)))
    np.testing.assert_allclose(layers.gelu_erf(x), reference, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layers.gelu_erf(x), jax.nn.gelu(x, approximate=False),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(jax.vmap(jax.grad(layers.gelu_erf))(x),
                               jax.vmap(jax.grad(lambda v: jax.nn.gelu(v, approximate=False)))(x),
                               rtol=1e-5, atol=1e-6)
    assert layers.activation("gelu") is layers.gelu_erf
