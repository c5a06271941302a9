"""Pretraining and fine-tuning losses, as sums with their normalisers.

Each function returns (numerator, denominator) sums rather than a mean, so gradient accumulation
can normalise by the WHOLE batch's denominator and reproduce the large-batch gradient exactly
(see bertjax.train_step). The loss is numerator / denominator.

Shape legend: B batch, P masked positions, V vocab, C classes, S sequence length.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def masked_lm_sums(mlm_logits, masked_lm_ids, masked_lm_weights):
    """Weighted MLM cross-entropy as in the original run_pretraining.py.

    mlm_logits [B, P, V] fp32, masked_lm_ids [B, P] int, masked_lm_weights [B, P] (1 real,
    0 padding). Returns dict of sums: loss (sum of w * nll), weight (sum of w), correct (sum of
    w * [argmax == id]).
    """
    weights = masked_lm_weights.astype(jnp.float32)
    nll = optax.softmax_cross_entropy_with_integer_labels(mlm_logits, masked_lm_ids)
    correct = (jnp.argmax(mlm_logits, -1) == masked_lm_ids).astype(jnp.float32)
    return {"loss": jnp.sum(nll * weights), "weight": jnp.sum(weights),
            "correct": jnp.sum(correct * weights)}


def next_sentence_sums(nsp_logits, next_sentence_labels, example_weights=None):
    """NSP cross-entropy. nsp_logits [B, 2]; labels [B] or [B, 1] (0 = actual next, 1 = random)."""
    labels = jnp.reshape(next_sentence_labels, (-1,))
    weights = (jnp.ones(labels.shape, jnp.float32) if example_weights is None
               else example_weights.astype(jnp.float32))
    nll = optax.softmax_cross_entropy_with_integer_labels(nsp_logits, labels)
    correct = (jnp.argmax(nsp_logits, -1) == labels).astype(jnp.float32)
    return {"loss": jnp.sum(nll * weights), "weight": jnp.sum(weights),
            "correct": jnp.sum(correct * weights)}


def classification_sums(logits, labels, example_weights=None):
    """Softmax cross-entropy for [B, C] logits, or squared error for regression ([B, 1] logits,
    float labels, as STS-B). Token classification passes [B, S, C] logits with [B, S] labels and
    weights (0 for padding and non-first word pieces)."""
    weights = (jnp.ones(labels.shape, jnp.float32) if example_weights is None
               else example_weights.astype(jnp.float32))
    if logits.shape[-1] == 1 and jnp.issubdtype(labels.dtype, jnp.floating):
        loss = jnp.square(logits[..., 0] - labels)
        return {"loss": jnp.sum(loss * weights), "weight": jnp.sum(weights)}
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
    return {"loss": jnp.sum(nll * weights), "weight": jnp.sum(weights),
            "correct": jnp.sum(correct * weights)}


def ratio(numerator, denominator):
    """numerator / denominator, 0 where the denominator is 0 (an all-padding batch)."""
    return jnp.where(denominator > 0, numerator / jnp.maximum(denominator, 1e-12), 0.0)


def pretraining_sums(outputs, batch):
    """MLM and NSP sums for a BertForPreTraining output dict and a pretraining batch."""
    return {"mlm": masked_lm_sums(outputs["mlm_logits"], batch["masked_lm_ids"],
                                  batch["masked_lm_weights"]),
            "nsp": next_sentence_sums(outputs["nsp_logits"], batch["next_sentence_labels"])}


def tree_sum(a, b):
    return jax.tree_util.tree_map(jnp.add, a, b)
