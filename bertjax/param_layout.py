"""Param-tree layout: the unrolled (encoder/layer_0 ... layer_{L-1}) and the scanned (one
`encoder/layer` subtree whose leaves carry a leading L axis, `nn.scan`'s layout) forms, and the
small tree helpers checkpoint conversion and fine-tuning share.

    from bertjax import param_layout
    stacked = param_layout.stack_layers(params)      # layer_i -> layer with leaves [L, ...]
    params = param_layout.to_layout(config, params)  # whatever config.scan_layers asks for

Trees are plain nested dicts; leaves are numpy or jax arrays (kept as they are).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from bertjax.config import BertConfig

Params = dict[str, Any]


def set_path(tree: dict, path: tuple[str, ...], value) -> None:
    """tree[path[0]][path[1]]... = value, creating the intermediate dicts."""
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def flatten(tree: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """{path tuple: leaf} of a nested mapping."""
    if not isinstance(tree, dict) and not hasattr(tree, "items"):
        return {prefix: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(flatten(value, (*prefix, str(key))))
    return flat


def has_heads(params: Params) -> bool:
    """True for BertForPreTraining params ({"bert", "cls"}), False for BertModel's."""
    return "bert" in params


def encoder_params(params: Params) -> Params:
    """The BertModel subtree ({embeddings, encoder, pooler}) of any loaded params: what a
    fine-tuning model's "bert" is initialised from."""
    return params["bert"] if has_heads(params) else params


def _encoders(params: Params) -> Iterable[dict]:
    """The `encoder` subtrees of a param tree: at the top (BertModel) or under a model's "bert"."""
    if "encoder" in params:
        yield params["encoder"]
    for value in params.values():
        if isinstance(value, dict) and "encoder" in value:
            yield value["encoder"]


def is_scanned(params: Params) -> bool:
    """True when the layers are stacked under encoder/layer (config.scan_layers)."""
    return any("layer" in encoder for encoder in _encoders(params))


def _map_encoders(params: Params, fn) -> Params:
    """A copy of `params` with every encoder subtree replaced by fn(encoder)."""
    if "encoder" in params:
        return {**params, "encoder": fn(params["encoder"])}
    return {key: (_map_encoders(value, fn) if isinstance(value, dict) and "encoder" in value
                  else value) for key, value in params.items()}


def stack_layers(params: Params) -> Params:
    """layer_0 ... layer_{L-1} -> one `layer` subtree whose leaves have a leading L axis (the
    `nn.scan` layout). A tree already stacked is returned unchanged."""
    def stack(encoder):
        if "layer" in encoder:
            return encoder
        names = sorted(encoder, key=lambda n: int(n.split("_")[1]) if n.startswith("layer_") else -1)
        expected = [f"layer_{i}" for i in range(len(names))]
        if names != expected:
            raise ValueError(f"encoder has sub-trees {sorted(encoder)}; expected {expected}")
        layers = [flatten(encoder[name]) for name in names]
        stacked: dict = {}
        for path in layers[0]:
            for i, layer in enumerate(layers):
                if path not in layer:
                    raise ValueError(f"encoder/layer_{i} lacks {'/'.join(path)}")
            values = [layer[path] for layer in layers]
            # jnp keeps device arrays (and tracers) where they are; numpy stays numpy.
            stack_fn = jnp.stack if isinstance(values[0], jax.Array) else np.stack
            set_path(stacked, path, stack_fn(values))
        return {"layer": stacked}
    return _map_encoders(params, stack)


def unstack_layers(params: Params) -> Params:
    """The inverse of `stack_layers`: encoder/layer with a leading L axis -> layer_0 ... layer_{L-1}.
    A tree already unrolled is returned unchanged."""
    def unstack(encoder):
        if "layer" not in encoder:
            return encoder
        flat = flatten(encoder["layer"])
        num_layers = {np.shape(v)[0] for v in flat.values()}
        if len(num_layers) != 1:
            raise ValueError(f"encoder/layer leaves disagree on the layer axis: {num_layers}")
        unrolled: dict = {}
        for i in range(num_layers.pop()):
            for path, value in flat.items():
                set_path(unrolled, (f"layer_{i}", *path), value[i])
        return unrolled
    return _map_encoders(params, unstack)


def to_layout(config: BertConfig, params: Params) -> Params:
    """Params in the layout `config.scan_layers` asks for."""
    return stack_layers(params) if config.scan_layers else unstack_layers(params)
