"""Per-layer gradient norms, recorded inside the train step at no extra cost.

Mosbach et al. (ICLR 2021, "On the Stability of Fine-tuning BERT") diagnose failed fine-tuning
runs by the gradient norm of each layer early in training: in failed runs the gradients of the
lower layers vanish (by orders of magnitude) while the top layers' stay large. To draw those
traces for every seed of a sweep we need the norm of each group's raw gradient at each step.

`record_gradient_norms()` is an optax transformation placed first in the optimizer chain: it
passes the gradients through unchanged and keeps their per-group global norms (before clipping)
in its state. The generic train step (bertjax.train_step) then carries them in
`state.opt_state`, vmapped seeds each get their own, and no second forward/backward pass is run.

Groups, bottom to top: "embeddings", "layer_0" .. "layer_{L-1}" (encoder layers; the scanned
layout `encoder/layer/...` is split along its leading L axis), "pooler", then each head at the
top level of the param tree (e.g. "classifier").
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from bertjax.optimizers import STACKED_LAYERS, encoder_layer_of, param_name


def _encoder_params(params: Any) -> Any:
    bert = params["bert"] if "bert" in params else params
    if "encoder" not in bert:
        raise ValueError(f"expected BERT params with an 'encoder'; got keys {sorted(bert)}")
    return bert


def _num_layers(params: Any) -> int:
    encoder = _encoder_params(params)["encoder"]
    if "layer" in encoder:  # scanned: every leaf stacks the L layers on axis 0
        return int(jnp.shape(jax.tree.leaves(encoder["layer"])[0])[0])
    indices = [int(m.group(1)) for key in encoder if (m := re.fullmatch(r"layer_(\d+)", key))]
    return max(indices) + 1 if indices else 0


def group_names(params: Any) -> list[str]:
    """The gradient-norm groups of a param tree, bottom to top (see the module docstring)."""
    bert = _encoder_params(params)
    names = ["embeddings"] + [f"layer_{i}" for i in range(_num_layers(params))]
    if "pooler" in bert:
        names.append("pooler")
    if "bert" in params:
        names += sorted(key for key in params if key != "bert")
    return names


def _group_of(name: str) -> str | None:
    """Group of a "/"-joined param name; None for the scanned encoder (split by slice)."""
    parts = name.split("/")
    if parts[0] == "bert":
        parts = parts[1:]
    else:
        if parts[0] not in ("embeddings", "encoder", "pooler"):
            return parts[0]  # a head such as "classifier"
    layer = encoder_layer_of("/".join(parts))
    if layer == STACKED_LAYERS:
        return None
    if layer is not None:
        return f"layer_{layer}"
    return parts[0]


def layer_gradient_norms(grads: Any) -> dict[str, jax.Array]:
    """{group: global L2 norm of that group's gradient} (float32 scalars), bottom to top."""
    squares: dict[str, jax.Array] = {name: jnp.zeros((), jnp.float32)
                                     for name in group_names(grads)}
    for key_path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        name = param_name(key_path)
        leaf = jnp.asarray(leaf, jnp.float32)
        group = _group_of(name)
        if group is None:  # [L, ...]: one sum of squares per layer slice
            per_layer = jnp.sum(jnp.square(leaf), axis=tuple(range(1, leaf.ndim)))
            for layer in range(leaf.shape[0]):
                squares[f"layer_{layer}"] = squares[f"layer_{layer}"] + per_layer[layer]
        else:
            if group not in squares:
                raise ValueError(f"gradient {name!r} belongs to no known group {list(squares)}")
            squares[group] = squares[group] + jnp.sum(jnp.square(leaf))
    return {group: jnp.sqrt(value) for group, value in squares.items()}


class GradientNormState(NamedTuple):
    """The per-group gradient norms of the latest update ({group: float32 scalar})."""

    norms: dict


def record_gradient_norms() -> optax.GradientTransformation:
    """Identity on the updates; its state keeps `layer_gradient_norms` of the incoming grads.

    Chain it first (`optax.chain(record_gradient_norms(), tx)`) so it sees the raw gradients,
    before clipping and the update rule; read the norms back with `read_gradient_norms`.
    """

    def init_fn(params):
        return GradientNormState({name: jnp.zeros((), jnp.float32)
                                  for name in group_names(params)})

    def update_fn(updates, state, params=None):
        del state, params
        return updates, GradientNormState(layer_gradient_norms(updates))

    return optax.GradientTransformation(init_fn, update_fn)


def with_gradient_norms(tx: optax.GradientTransformation) -> optax.GradientTransformation:
    """`tx` preceded by `record_gradient_norms()`."""
    return optax.chain(record_gradient_norms(), tx)


def read_gradient_norms(opt_state: Any) -> dict[str, jax.Array]:
    """The norms recorded by `with_gradient_norms(tx)`'s state (leading seed axes kept)."""
    if not (isinstance(opt_state, tuple) and opt_state
            and isinstance(opt_state[0], GradientNormState)):
        raise ValueError("opt_state was not built by with_gradient_norms(tx): its first element "
                         f"is {type(opt_state[0]).__name__ if opt_state else 'missing'}")
    return opt_state[0].norms
