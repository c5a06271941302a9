"""bertjax.dropout: the drop rate, the scale and independence, against the exact rule."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from bertjax import dropout


@pytest.mark.parametrize("shape", [(64, 128, 64), (63, 127, 65)])  # even and odd last axis
def test_drop_rate_is_the_rounded_rate_and_the_mean_is_kept(shape):
    rate = 0.1
    x = jnp.ones(shape, jnp.float32)
    y = np.asarray(dropout.dropout(x, rate, jax.random.PRNGKey(3)))
    dropped = y == 0.0
    n = dropped.size
    realised_rate = dropout.drop_threshold(rate) / 2 ** 16
    assert realised_rate == pytest.approx(0.1, abs=1e-5)
    # Binomial test of the drop count at the exact rate.
    assert stats.binomtest(int(dropped.sum()), n, realised_rate).pvalue > 1e-3
    np.testing.assert_allclose(y[~dropped], 1.0 / (1.0 - realised_rate), rtol=1e-6)


def test_neighbouring_decisions_are_independent():
    """The two halves of each random word decide elements j and j + n/2 of a row: their joint
    drop frequency must be rate^2, and a contingency test must not see dependence."""
    keep = np.asarray(dropout.keep_mask(jax.random.PRNGKey(0), 0.5, (2000, 512)))
    pairs = np.stack([keep[:, :256].ravel(), keep[:, 256:].ravel()], axis=1)
    table = np.array([[np.sum(~pairs[:, 0] & ~pairs[:, 1]), np.sum(~pairs[:, 0] & pairs[:, 1])],
                      [np.sum(pairs[:, 0] & ~pairs[:, 1]), np.sum(pairs[:, 0] & pairs[:, 1])]])
    assert stats.chi2_contingency(table).pvalue > 1e-3
    # and across rows and neighbouring elements (different words)
    assert abs(np.corrcoef(keep[:-1].ravel(), keep[1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(keep[:, :-1].ravel(), keep[:, 1:].ravel())[0, 1]) < 0.01


def test_keys_and_determinism():
    x = jnp.ones((8, 16, 32))
    a = dropout.dropout(x, 0.3, jax.random.PRNGKey(1))
    np.testing.assert_array_equal(a, dropout.dropout(x, 0.3, jax.random.PRNGKey(1)))
    assert np.mean(np.asarray(a) != np.asarray(dropout.dropout(x, 0.3, jax.random.PRNGKey(2)))) > 0.2
    assert dropout.dropout(x, 0.0, jax.random.PRNGKey(1)) is x


def test_module_is_identity_when_deterministic_and_rejects_bad_rates():
    x = jnp.arange(12.0).reshape(3, 4)
    module = dropout.Dropout(0.5)
    np.testing.assert_array_equal(module.apply({}, x, deterministic=True), x)
    y = module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.PRNGKey(0)})
    assert set(np.unique(np.asarray(y) / np.maximum(np.asarray(x), 1e-9)).round(6)) <= {0.0, 2.0}
    with pytest.raises(ValueError, match="dropout rate 1.0 must be in"):
        dropout.drop_threshold(1.0)
