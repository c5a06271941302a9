"""Exact parameter counts of BERT, by component, from the model's own param tree.

The tree comes from `jax.eval_shape(model.init)`, so nothing is allocated (BERT-large is counted
in about a second) and the counts are of the code that trains, not of a formula. The closed-form
formulas (Devlin et al. 2018, section 3) are kept beside them as a cross-check: `count_params`
raises if the two ever disagree.

Components (H hidden, F intermediate, V vocab, P positions 512, T segment types 2, L layers):
  word / position / segment embeddings  V*H, P*H, T*H; embedding LayerNorm 2H
  per layer: attention Q, K, V and output 4H^2 + 4H; its LayerNorm 2H; FFN 2HF + F + H; its LN 2H
  pooler H^2 + H; MLM transform H^2 + H and its LayerNorm 2H; MLM output bias V (the decoder is
  tied to the word embeddings); NSP 2H + 2.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax

from bertjax import modeling
from bertjax.config import PAPER_PARAMS, BertConfig

# (component, path prefix in the BertForPreTraining tree); a layer's paths are matched after
# "bert/encoder/layer_i/".
_EMBEDDING_COMPONENTS = {
    "word_embeddings": "bert/embeddings/word_embeddings/",
    "position_embeddings": "bert/embeddings/position_embeddings/",
    "segment_embeddings": "bert/embeddings/token_type_embeddings/",
    "embedding_layer_norm": "bert/embeddings/LayerNorm/",
}
_LAYER_COMPONENTS = {
    "attention_qkv": ("attention/self/",),
    "attention_output": ("attention/output/dense/",),
    "attention_layer_norm": ("attention/output/LayerNorm/",),
    "ffn": ("intermediate/dense/", "output/dense/"),
    "ffn_layer_norm": ("output/LayerNorm/",),
}
_HEAD_COMPONENTS = {
    "pooler": "bert/pooler/",
    "mlm_transform": "cls/predictions/transform/dense/",
    "mlm_layer_norm": "cls/predictions/transform/LayerNorm/",
    "mlm_output_bias": "cls/predictions/output_bias",
    "nsp": "cls/seq_relationship/",
}


def abstract_params(config: BertConfig) -> Any:
    """BertForPreTraining's params as ShapeDtypeStructs (unrolled layers), allocating nothing."""
    model = modeling.BertForPreTraining(config.replace(scan_layers=False))
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                                 *modeling.dummy_inputs(1, 2)))
    return nn.meta.unbox(abstract["params"])


def _sizes_by_path(params: Any) -> dict[str, int]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {"/".join(key.key for key in path): math.prod(leaf.shape) for path, leaf in flat}


def components_from_tree(config: BertConfig) -> dict[str, int]:
    """{component: count}, grouping the eval_shape'd tree by path. Per-layer components are per
    ONE layer (they are checked identical across layers); `layers` is all L layers together."""
    sizes = _sizes_by_path(abstract_params(config))
    counts: dict[str, int] = {}
    claimed: set[str] = set()

    def take(prefixes: tuple[str, ...]) -> int:
        total = 0
        for path, size in sizes.items():
            if any(path.startswith(prefix) for prefix in prefixes):
                total += size
                claimed.add(path)
        return total

    for name, prefix in _EMBEDDING_COMPONENTS.items():
        counts[name] = take((prefix,))
    per_layer = []
    for i in range(config.num_hidden_layers):
        scope = f"bert/encoder/layer_{i}/"
        per_layer.append({name: take(tuple(scope + prefix for prefix in prefixes))
                          for name, prefixes in _LAYER_COMPONENTS.items()})
    if any(layer != per_layer[0] for layer in per_layer):
        raise RuntimeError(f"layers differ in size: {per_layer}")
    counts.update(per_layer[0])
    counts["layer"] = sum(per_layer[0].values())
    counts["layers"] = counts["layer"] * config.num_hidden_layers
    for name, prefix in _HEAD_COMPONENTS.items():
        counts[name] = take((prefix,))
    unclaimed = set(sizes) - claimed
    if unclaimed:
        raise RuntimeError(f"parameters in no component: {sorted(unclaimed)}")
    if sum(sizes.values()) != _total(counts):
        raise RuntimeError("components do not add up to the tree's total")
    return counts


def components_from_formulas(config: BertConfig) -> dict[str, int]:
    """The same components from the closed-form formulas (per embedding, layer, pooler and head)."""
    H, F, V = config.hidden_size, config.intermediate_size, config.vocab_size
    counts = {
        "word_embeddings": V * H,
        "position_embeddings": config.max_position_embeddings * H,
        "segment_embeddings": config.type_vocab_size * H,
        "embedding_layer_norm": 2 * H,
        "attention_qkv": 3 * (H * H + H),
        "attention_output": H * H + H,
        "attention_layer_norm": 2 * H,
        "ffn": 2 * H * F + F + H,
        "ffn_layer_norm": 2 * H,
    }
    counts["layer"] = sum(counts[name] for name in _LAYER_COMPONENTS)
    counts["layers"] = counts["layer"] * config.num_hidden_layers
    counts.update(pooler=H * H + H, mlm_transform=H * H + H, mlm_layer_norm=2 * H,
                  mlm_output_bias=V, nsp=2 * H + 2)
    return counts


def _total(counts: dict[str, int]) -> int:
    return (sum(counts[name] for name in _EMBEDDING_COMPONENTS) + counts["layers"]
            + sum(counts[name] for name in _HEAD_COMPONENTS))


def approximation(config: BertConfig) -> int:
    """The usual estimate V*H + 12*L*H^2 (embeddings, 4H^2 attention + 8H^2 FFN per layer)."""
    H = config.hidden_size
    return config.vocab_size * H + 12 * config.num_hidden_layers * H * H


def count_params(name: str, config: BertConfig) -> dict[str, Any]:
    """One row of the parameter table: the architecture, the breakdown, the totals and the
    estimates with their relative errors against the exact count with pooler (BertModel).

    Raises RuntimeError if the tree and the formulas disagree on any component.
    """
    counts = components_from_tree(config)
    formulas = components_from_formulas(config)
    if counts != formulas:
        diff = {k: (counts.get(k), formulas.get(k)) for k in counts.keys() | formulas.keys()
                if counts.get(k) != formulas.get(k)}
        raise RuntimeError(f"{name}: tree counts differ from the formulas (tree, formula): {diff}")
    embeddings = sum(counts[k] for k in _EMBEDDING_COMPONENTS)
    encoder = embeddings + counts["layers"]
    with_pooler = encoder + counts["pooler"]
    pretraining = _total(counts)
    formula = approximation(config)
    paper = PAPER_PARAMS.get(name)
    return {
        "name": name,
        "num_layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "num_heads": config.num_attention_heads,
        "intermediate_size": config.intermediate_size,
        "vocab_size": config.vocab_size,
        "components": counts,
        "embeddings": embeddings,
        "encoder": encoder,
        "with_pooler": with_pooler,
        "pretraining": pretraining,
        "formula": formula,
        "formula_rel_error": (formula - with_pooler) / with_pooler,
        "paper": paper,
        "paper_rel_error": None if paper is None else (paper - with_pooler) / with_pooler,
    }
