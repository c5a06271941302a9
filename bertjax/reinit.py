"""Fine-tuning aids against few-sample instability: re-initialising the top layers, and Mixout.

"Revisiting Few-sample BERT Fine-tuning" (Zhang, Wu, Katiyar, Weinberger, Artzi, ICLR 2021)
finds that the top layers of a pretrained BERT are specialised to the pretraining tasks and hurt
few-sample fine-tuning; re-initialising the pooler and the top L (about 5) layers with BERT's own
initializer made fine-tuning more stable (RTE 69.5 +- 2.5 -> 72.6 +- 1.6 with bias-corrected Adam).

BERT's initializer: kernels N(0, initializer_range) resampled outside 2 std (TF's
truncated_normal_initializer, so the actual std is about 0.88 * 0.02 and |w| <= 0.04), biases 0,
LayerNorm scale 1 and bias 0. Every other parameter is returned bit-identical (the same array).

Both param layouts are supported: `encoder/layer_{i}/...` and the scanned `encoder/layer/...`
whose leaves stack the L layers on a leading axis. Fresh values are drawn per (layer, param
name) from `rng`, so the two layouts get the very same new weights.

Mixout ("Mixout: Effective Regularization to Finetune Large-scale Pretrained Language Models",
Lee, Cho, Kang, ICLR 2020) is dropout towards the pretrained weights instead of towards 0; see
`mixout`.
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from bertjax.optimizers import param_name


def _leaf_key(rng: jax.Array, scope: str, name: str) -> jax.Array:
    # crc32 of the name (not Python's salted hash) keeps the draw reproducible across processes.
    return jax.random.fold_in(rng, zlib.crc32(f"{scope}/{name}".encode()) & 0x7FFFFFFF)


@functools.partial(jax.jit, static_argnames=("size", "stddev"))
def _truncated_normal(key: jax.Array, size: int, stddev: float) -> jax.Array:
    # One float32 program per element count (then reshaped and cast): eagerly, each of the
    # sampler's ops would compile on its own for every shape and dtype.
    initializer = jax.nn.initializers.truncated_normal(stddev=stddev, lower=-2.0, upper=2.0)
    return initializer(key, (size,), jnp.float32)


def _fresh_value(
    full_name: str, leaf_name: str, shape, dtype, key: jax.Array, initializer_range: float
) -> jax.Array:
    if leaf_name == "kernel":
        size = int(np.prod(shape, dtype=np.int64))
        return _truncated_normal(key, size, float(initializer_range)).reshape(shape).astype(dtype)
    if leaf_name == "bias":
        return jnp.zeros(shape, dtype)
    if leaf_name == "scale":  # LayerNorm gain.
        return jnp.ones(shape, dtype)
    raise ValueError(f"do not know how to re-initialise param {full_name!r} (leaf {leaf_name!r})")


def _reinit_subtree(subtree: Any, scope: str, rng: jax.Array, initializer_range: float) -> Any:
    """Fresh BERT-initialised values for every leaf of one layer (or the pooler)."""

    def fresh(key_path, leaf):
        name = param_name(key_path)
        return _fresh_value(
            f"{scope}/{name}", name.split("/")[-1], jnp.shape(leaf), leaf.dtype,
            _leaf_key(rng, scope, name), initializer_range,
        )

    return jax.tree_util.tree_map_with_path(fresh, subtree)


def _reinit_scanned_layers(
    stacked: Any, num_layers_to_reinit: int, rng: jax.Array, initializer_range: float
) -> Any:
    """Replaces the top slices of the leading layer axis of every leaf in `encoder/layer`."""
    leading_sizes = {jnp.shape(leaf)[0] for leaf in jax.tree.leaves(stacked)}
    if len(leading_sizes) != 1:
        raise ValueError(
            f"scanned encoder/layer leaves disagree on the layer axis: {leading_sizes}"
        )
    (num_layers,) = leading_sizes
    _check_count(num_layers_to_reinit, num_layers)
    if not num_layers_to_reinit:
        return stacked
    first = num_layers - num_layers_to_reinit

    def replace_top(key_path, leaf):
        name = param_name(key_path)
        fresh_layers = [
            _fresh_value(
                f"encoder/layer/{name}", name.split("/")[-1], jnp.shape(leaf)[1:], leaf.dtype,
                _leaf_key(rng, f"layer_{i}", name), initializer_range,
            )
            for i in range(first, num_layers)
        ]
        return jnp.asarray(leaf).at[first:].set(jnp.stack(fresh_layers))

    return jax.tree_util.tree_map_with_path(replace_top, stacked)


def _check_count(num_layers_to_reinit: int, num_layers: int) -> None:
    if not 0 <= num_layers_to_reinit <= num_layers:
        raise ValueError(
            f"num_layers_to_reinit must be in [0, {num_layers}] for this {num_layers}-layer "
            f"encoder, got {num_layers_to_reinit}"
        )


def _reinit_bert(
    bert: Any, num_layers_to_reinit: int, rng: jax.Array, initializer_range: float,
    reinit_pooler: bool,
) -> Any:
    if "encoder" not in bert:
        raise ValueError(f"BertModel params have no 'encoder'; keys are {sorted(bert)}")
    encoder = bert["encoder"]
    new_bert = dict(bert)
    if "layer" in encoder:
        new_encoder = dict(encoder)
        new_encoder["layer"] = _reinit_scanned_layers(
            encoder["layer"], num_layers_to_reinit, rng, initializer_range
        )
    else:
        layer_indices = {}
        for key in encoder:
            match = re.fullmatch(r"layer_(\d+)", key)
            if match is None:
                raise ValueError(f"unexpected encoder entry {key!r}; expected layer_<i> or layer")
            layer_indices[key] = int(match.group(1))
        num_layers = len(layer_indices)
        if sorted(layer_indices.values()) != list(range(num_layers)):
            raise ValueError(f"encoder layers are not numbered 0..L-1: {sorted(layer_indices)}")
        _check_count(num_layers_to_reinit, num_layers)
        first = num_layers - num_layers_to_reinit
        new_encoder = {
            key: (
                _reinit_subtree(layer, f"layer_{layer_indices[key]}", rng, initializer_range)
                if layer_indices[key] >= first
                else layer
            )
            for key, layer in encoder.items()
        }
    new_bert["encoder"] = new_encoder
    if reinit_pooler:
        if "pooler" not in bert:
            raise ValueError(
                "params have no 'pooler' to re-initialise; pass reinit_pooler=False for a model "
                "built without the pooling layer"
            )
        new_bert["pooler"] = _reinit_subtree(bert["pooler"], "pooler", rng, initializer_range)
    return new_bert


def reinit_top_layers(
    params: Any,
    num_layers_to_reinit: int,
    rng: jax.Array,
    *,
    initializer_range: float = 0.02,
    reinit_pooler: bool = True,
) -> Any:
    """Re-initialises the top `num_layers_to_reinit` encoder layers and the pooler.

    Args:
      params: BertModel params (keys embeddings/encoder/pooler), or a task / pretraining model's
        params holding them under "bert" (heads such as "classifier" are left as they are).
      num_layers_to_reinit: k; layers L-k .. L-1 are re-initialised (0 for the pooler only).
      rng: a jax PRNG key.
      initializer_range: std of the truncated normal of the kernels (0.02, BERT's).
      reinit_pooler: also re-initialise pooler/dense (Zhang et al. always do).

    Returns:
      A new param tree of the same structure; untouched leaves are the very same arrays. The new
      leaves are not sharded: call this before placing the params on the mesh (or device_put the
      result with the params' shardings).

    Raises:
      ValueError: if the tree is not a BERT param tree, k is out of range, or the pooler is asked
        for but absent.
    """
    if "bert" in params:
        new_params = dict(params)
        new_params["bert"] = _reinit_bert(
            params["bert"], num_layers_to_reinit, rng, initializer_range, reinit_pooler
        )
        return new_params
    if "encoder" in params:
        return _reinit_bert(params, num_layers_to_reinit, rng, initializer_range, reinit_pooler)
    raise ValueError(
        f"expected BertModel params (with 'encoder') or a model's params with a 'bert' subtree; "
        f"got keys {sorted(params)}"
    )


def _is_kernel(name: str) -> bool:
    return name.endswith("/kernel") or name == "kernel"


def mixout(
    params: Any,
    target_params: Any,
    rate: float,
    rng: jax.Array,
    *,
    should_mix: Callable[[str], bool] = _is_kernel,
) -> Any:
    """Mixout (Lee et al. 2020): swap each weight for its target value with probability `rate`.

    Per element, with M ~ Bernoulli(1 - rate):

        out = (M * w + (1 - M) * u - rate * u) / (1 - rate)

    so a swapped element becomes exactly its target u, a kept one (w - rate * u) / (1 - rate),
    and E[out] = w; the gradient reaching w is M / (1 - rate). As the authors' MixLinear, only
    dense kernels are mixed by default. Use it in the training loss only, like dropout:
    `loss_fn(mixout(params, pretrained_params, 0.7, dropout_rng), batch)`, where
    `pretrained_params` are the params at the start of fine-tuning (a freshly initialised head
    mixes towards its initial value). Evaluate with `params` as they are.

    Args:
      params: the params being trained.
      target_params: u, a tree of the same structure (the pretrained / initial params).
      rate: probability of swapping an element for its target, in [0, 1).
      rng: a jax PRNG key, fresh per step.
      should_mix: picks the leaves to mix by their "/"-joined name; the rest pass through.

    Returns:
      The mixed params, same structure and dtypes.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"mixout rate must be in [0, 1), got {rate}")
    if jax.tree.structure(params) != jax.tree.structure(target_params):
        raise ValueError(
            "mixout target_params must have the structure of params; got "
            f"{jax.tree.structure(target_params)} vs {jax.tree.structure(params)}"
        )
    if rate == 0.0:
        return params

    def mix(key_path, weight, target):
        name = param_name(key_path)
        if not should_mix(name):
            return weight
        if jnp.shape(weight) != jnp.shape(target):
            raise ValueError(
                f"mixout target of {name!r} has shape {jnp.shape(target)}, "
                f"param {jnp.shape(weight)}"
            )
        keep = jax.random.bernoulli(_leaf_key(rng, "mixout", name), 1.0 - rate, jnp.shape(weight))
        target = jnp.asarray(target, weight.dtype)
        mixed = jnp.where(keep, weight, target)
        return ((mixed - rate * target) / (1.0 - rate)).astype(weight.dtype)

    return jax.tree_util.tree_map_with_path(mix, params, target_params)
