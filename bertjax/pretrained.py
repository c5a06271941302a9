"""Starting a model from a checkpoint: the one loader every kind of run uses.

    source = pretrained.load(path)                   # HF folder, original TF, bertjax export
    params = pretrained.merge_into(fresh_params, source)

`load` reads any checkpoint format (bertjax.convert) into a `Pretrained`: its BertConfig (the
architecture), its params with whatever head they carry, the vocab.txt beside it and, for a
fine-tuned model, its class names. `merge_into` copies it into the freshly initialised params of
the model about to train, checking every shape:

  * the encoder always ("bert" of a task or pretraining model, or a bare BertModel tree); a
    pooler that the target lacks (span and token-classification models have none) is dropped,
    one the source lacks keeps its fresh initialisation;
  * the head too when the source has the same head with the same shapes: phase-2 pretraining
    continues phase 1's MLM/NSP heads, and a fine-tuned classifier (ours or HF's) can be
    evaluated or trained on. A different head (a pretraining checkpoint under a classifier,
    or another number of classes) keeps the target's fresh head.

A tensor the target does not have, or one of another shape, is a ValueError naming it and both
shapes, before anything trains.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from bertjax import convert, param_layout
from bertjax.checkpoint_names import Head, head_of
from bertjax.config import BertConfig
from data_pipelines import storage

Params = param_layout.Params


@dataclasses.dataclass
class Pretrained:
    """A loaded checkpoint. `params` are host (numpy) arrays in the unrolled layout unless
    `load(..., scan_layers=True)` asked otherwise."""

    config: BertConfig
    params: Params
    source: str
    vocab_file: str | None = None
    labels: list[str] | None = None

    @property
    def head(self) -> Head:
        return head_of(self.params)

    def encoder(self) -> Params:
        """The BertModel subtree: {embeddings, encoder[, pooler]}."""
        return param_layout.encoder_params(self.params)


def load(path: str, *, scan_layers: bool | None = None,
         bert_config_file: str | None = None) -> Pretrained:
    """Reads the checkpoint at `path` (any format; see bertjax.convert.load_any)."""
    if not path:
        raise ValueError("no checkpoint path given (config.init_checkpoint is empty)")
    config, params = convert.load_any(path, scan_layers=scan_layers,
                                      bert_config_file=bert_config_file)
    return Pretrained(config, params, path, vocab_file_beside(path), convert.labels_of(path))


def vocab_file_beside(path: str) -> str | None:
    """vocab.txt in the checkpoint's folder (or beside a TF prefix), if there is one."""
    folder = path if storage.isdir(path) else storage.dirname(path)
    candidate = storage.join(folder, "vocab.txt")
    return candidate if storage.exists(candidate) else None


def _merge_tree(ours: Any, theirs: Any, path: str, source: str) -> Any:
    if isinstance(ours, dict):
        if not isinstance(theirs, dict):
            raise ValueError(f"{source}: '{path}' is a tensor; the model has a subtree there")
        unknown = sorted(set(theirs) - set(ours))
        if unknown:
            raise ValueError(f"{source}: tensors {unknown} under '{path}' do not exist in the "
                             "model")
        return {key: _merge_tree(value, theirs[key], f"{path}/{key}", source)
                if key in theirs else value for key, value in ours.items()}
    if tuple(np.shape(ours)) != tuple(np.shape(theirs)):
        raise ValueError(f"{source}: tensor '{path}' has shape {tuple(np.shape(theirs))}; the "
                         f"model expects {tuple(np.shape(ours))}")
    return np.asarray(theirs, dtype=ours.dtype)


def _heads_match(target: Params, source: Params, names: list[str]) -> bool:
    for name in names:
        if name not in source:
            return False
        ours, theirs = param_layout.flatten(target[name]), param_layout.flatten(source[name])
        if set(ours) != set(theirs) or any(np.shape(ours[k]) != np.shape(theirs[k])
                                           for k in ours):
            return False
    return True


def merge_into(target: Params, source: Pretrained | Params, source_name: str | None = None
               ) -> Params:
    """`target` (fresh params of the model to train) with the checkpoint's tensors copied in.

    See the module docstring for what is taken. Returns a new tree (numpy leaves where copied,
    the target's own leaves elsewhere).
    """
    if isinstance(source, Pretrained):
        source_name = source_name or source.source
        source = source.params
    source_name = source_name or "checkpoint"
    if param_layout.is_scanned(source) != param_layout.is_scanned(target):
        raise ValueError(f"{source_name}: layer layouts differ (scanned vs unrolled); load it "
                         "with scan_layers= the model's setting")
    source_encoder = param_layout.encoder_params(source)
    if head_of(target).kind == "encoder":
        return _merge_tree(target, _only(source_encoder, target, source_name), "", source_name)
    merged = dict(target)
    merged["bert"] = _merge_tree(target["bert"], _only(source_encoder, target["bert"],
                                                       source_name), "bert", source_name)
    head_names = sorted(set(target) - {"bert"})
    if head_of(source).kind == head_of(target).kind and _heads_match(target, source,
                                                                     head_names):
        for name in head_names:
            merged[name] = _merge_tree(target[name], source[name], name, source_name)
        logging.info("%s: encoder and head %s loaded", source_name, head_names)
    else:
        logging.info("%s: encoder loaded; head %s freshly initialised", source_name, head_names)
    return merged


def _only(source_encoder: Params, target_encoder: Params, source_name: str) -> Params:
    """Drops the pooler when the target model has none (span, token classification)."""
    if "pooler" in source_encoder and "pooler" not in target_encoder:
        logging.info("%s: pooler not used by this model", source_name)
        return {k: v for k, v in source_encoder.items() if k != "pooler"}
    return source_encoder
