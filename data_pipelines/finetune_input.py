"""Numpy batching for fine-tuning: shuffled training batches and complete, padded eval batches.

Fine-tuning sets (GLUE, SQuAD, CoNLL-2003) fit in host memory as a dict of numpy arrays with a
shared leading dimension N (input_ids [N, S], label_ids [N], ...), so plain numpy is enough: no
tf.data graph, nothing to trace, and the order is reproducible from one seed.

  * `train_batches`: every epoch a fresh permutation (one numpy Generator seeded once), batches of
    exactly B rows, the remainder dropped (static shapes for jit, as the original's
    drop_remainder=True), optionally a fixed number of steps that cycles through epochs.
  * `eval_batches`: in order, every example exactly once; the final batch is padded to B rows and
    carries `example_weight` [B] float32 (1 real, 0 padding), the `is_real_example` of the original
    run_classifier.py, so metrics count each example once.
"""
from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

# Padding rows get -1 in these index columns so a padded row can never pass for example 0.
_INDEX_KEYS = ("example_index", "unique_ids", "unique_id")

EXAMPLE_WEIGHT_KEY = "example_weight"


def num_examples(features: Mapping[str, np.ndarray]) -> int:
    """The shared leading dimension N of a feature dict; raises if the arrays disagree."""
    if not features:
        raise ValueError("Empty feature dict: nothing to batch.")
    lengths = {name: len(array) for name, array in features.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"Feature arrays differ in their leading dimension: {lengths}.")
    return next(iter(lengths.values()))


def train_batches(features: Mapping[str, np.ndarray],
                  batch_size: int,
                  *,
                  seed: int,
                  num_epochs: int | None = 1,
                  num_steps: int | None = None,
                  start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Yields shuffled training batches {name: [B, ...]} of exactly `batch_size` rows.

    Args:
      features: {name: [N, ...]} numpy arrays.
      batch_size: B.
      seed: seeds the permutations; the same seed gives the same batches.
      num_epochs: passes over the data (each with its own permutation, remainder dropped);
        None repeats forever (then bound it with num_steps).
      num_steps: if given, stop after this many batches (may end mid-epoch).
      start_step: the first batch to yield: batches 0 .. start_step - 1 are skipped (their
        permutations are still drawn, so batch k is the same whatever the start: exact resume).
    """
    total = num_examples(features)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    batches_per_epoch = total // batch_size
    if batches_per_epoch == 0:
        raise ValueError(f"{total} training examples cannot fill one batch of {batch_size} with "
                         "drop_remainder; lower the batch size.")
    if num_epochs is None and num_steps is None:
        raise ValueError("train_batches needs num_epochs or num_steps to end.")
    rng = np.random.default_rng(seed)
    steps_done = 0
    epoch = 0
    while num_epochs is None or epoch < num_epochs:
        permutation = rng.permutation(total)
        for batch_index in range(batches_per_epoch):
            if num_steps is not None and steps_done >= num_steps:
                return
            if steps_done >= start_step:
                rows = permutation[batch_index * batch_size:(batch_index + 1) * batch_size]
                yield {name: array[rows] for name, array in features.items()}
            steps_done += 1
        epoch += 1


def eval_batches(features: Mapping[str, np.ndarray],
                 batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Yields every example once, in order, in batches of `batch_size` rows.

    Each batch has the feature arrays [B, ...] plus `example_weight` [B] float32. The last batch is
    padded with zero rows (weight 0; -1 in example_index / unique_ids) so every batch has the same
    shape and jit compiles once.
    """
    total = num_examples(features)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        num_real = stop - start
        batch = {}
        for name, array in features.items():
            rows = array[start:stop]
            if num_real < batch_size:
                pad_value = -1 if name in _INDEX_KEYS else 0
                padding_shape = (batch_size - num_real,) + array.shape[1:]
                padding = np.full(padding_shape, pad_value, array.dtype)
                rows = np.concatenate([rows, padding])
            batch[name] = rows
        weight = np.zeros(batch_size, np.float32)
        weight[:num_real] = 1.0
        batch[EXAMPLE_WEIGHT_KEY] = weight
        yield batch
