"""Fine-tuning task kinds: which head, how a batch feeds it, its loss, its predictions.

A `Task` bundles what the generic train/eval steps (bertjax.train_step) need for one kind of
fine-tuning, so GLUE, SQuAD, NER and the stability sweeps share one training loop:

  classification        BertForSequenceClassification on the pooled [CLS]; cross-entropy, or
                        squared error when num_labels == 1 (regression, STS-B).
  token_classification  BertForTokenClassification; cross-entropy at positions whose
                        label_weights are 1 (first word piece of each word, as BERT's NER).
  span                  BertForQuestionAnswering; mean of start and end cross-entropies (the
                        original run_squad.py), positions 0 ([CLS]) for no answer.

Batches are dicts of [B, S] input_ids / input_mask / segment_ids plus the task's labels;
`example_weight` [B] (0 for eval padding rows) weights every loss and metric when present.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from bertjax import losses, modeling
from bertjax.config import BertConfig


@dataclasses.dataclass(frozen=True)
class Task:
    kind: str
    model: nn.Module
    forward: Callable  # (model, params, batch, rng, deterministic) -> outputs
    loss_sums: Callable  # (outputs, batch) -> {group: {"loss", "weight", ...}}
    predict: Callable  # outputs -> what the metrics read (labels, scores or logits)


def _encoder_inputs(batch):
    return batch["input_ids"], batch["segment_ids"], batch["input_mask"]


def _forward(model, params, batch, rng, deterministic):
    return model.apply({"params": params}, *_encoder_inputs(batch), deterministic=deterministic,
                       rngs=None if deterministic else {"dropout": rng})


def _weights(batch, shape):
    weight = batch.get("example_weight")
    if weight is None:
        return None
    return jnp.broadcast_to(weight.reshape(weight.shape + (1,) * (len(shape) - 1)), shape)


def classification(config: BertConfig, num_labels: int) -> Task:
    """Sentence(-pair) classification, or regression when num_labels == 1."""

    def loss_sums(outputs, batch):
        labels = batch["label_ids"]
        if num_labels == 1:
            labels = labels.astype(jnp.float32)
        return {"task": losses.classification_sums(outputs["logits"], labels,
                                                   _weights(batch, labels.shape))}

    def predict(outputs):
        logits = outputs["logits"]
        return logits[..., 0] if num_labels == 1 else jnp.argmax(logits, -1)

    return Task("classification", modeling.BertForSequenceClassification(config, num_labels),
                _forward, loss_sums, predict)


def token_classification(config: BertConfig, num_labels: int) -> Task:
    """Per-token labels (NER); label_weights [B, S] select the scored positions."""

    def loss_sums(outputs, batch):
        weights = batch["label_weights"].astype(jnp.float32)
        example = _weights(batch, weights.shape)
        if example is not None:
            weights = weights * example
        return {"task": losses.classification_sums(outputs["logits"], batch["label_ids"],
                                                   weights)}

    return Task("token_classification", modeling.BertForTokenClassification(config, num_labels),
                _forward, loss_sums, lambda outputs: jnp.argmax(outputs["logits"], -1))


def span(config: BertConfig) -> Task:
    """SQuAD start/end positions; loss = (CE(start) + CE(end)) / 2 as the original."""

    def loss_sums(outputs, batch):
        weights = _weights(batch, batch["start_positions"].shape)
        start = losses.classification_sums(outputs["start_logits"], batch["start_positions"],
                                           weights)
        end = losses.classification_sums(outputs["end_logits"], batch["end_positions"], weights)
        return {"task": {"loss": (start["loss"] + end["loss"]) / 2, "weight": start["weight"],
                         "correct": (start["correct"] + end["correct"]) / 2}}

    def predict(outputs):
        return {"start_logits": outputs["start_logits"], "end_logits": outputs["end_logits"]}

    return Task("span", modeling.BertForQuestionAnswering(config), _forward, loss_sums, predict)


def with_mixout(forward: Callable, anchor, rate: float) -> Callable:
    """`forward` with mixout (Lee et al. 2020) on the encoder while training.

    Each training forward pass draws, per encoder dense kernel element, whether it is replaced
    by its `anchor` value (the pretrained weights) with probability `rate`
    (bertjax.reinit.mixout); evaluation uses the params as they are. The head is not mixed: it
    has no pretrained value to return to. The draw comes from the step's dropout key, split, so
    runs stay a pure function of (seed, step).
    """
    from bertjax import reinit  # pylint: disable=import-outside-toplevel

    if rate <= 0.0:
        return forward

    def mixed(model, params, batch, rng, deterministic):
        if not deterministic:
            mix_rng, rng = jax.random.split(rng)
            params = dict(params, bert=reinit.mixout(params["bert"], anchor, rate, mix_rng))
        return forward(model, params, batch, rng, deterministic)

    return mixed
