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

Length bucketing (`length_buckets`, a few static sequence lengths, e.g. (32, 64, 96, 128) from
`length_buckets_of(S, 4)`). The original pads every example to max_seq_length S; on GLUE-like
data most of each step is then padding. With buckets, a batch is cut to the smallest bucket that
holds its longest example (`trim_to_bucket`): attention never looks at padding, positions are
absolute, and [CLS] is row 0, so every example's outputs are those of the padded computation (to
float round-off; dropout draws differ with the shape). Training batches keep their composition
and order (the optimisation is the same run); eval batches are grouped by bucket and carry
`example_position` so predictions go back to file order. A handful of buckets means a handful of
compiled programs: shapes stay static, as TPUs want.

Group-by-length batching (`train_batches(..., group_by_length=M)`, opt-in): a shuffled batch of
32 usually holds one long example that sets its bucket, so bucketing alone gains little. As HF's
LengthGroupedSampler does, each epoch's permutation (the same one as without grouping) is cut
into mega-batches of M x B examples, each sorted by length (stable) and split into batches,
then the batch order is shuffled: batches hold examples of similar length and are cut to small
buckets. Every example still appears once per epoch in batches of B, but WHICH examples share a
batch changes, so a grouped run is a different (equally valid) optimisation, not the padded run
to round-off as bucketing alone is. With `length_schedule_seed` the batch order is instead a
schedule of length ranks drawn from that seed alone (step t of an epoch takes the batch of rank
schedule[t]): runs with different data seeds then have batches of similar length at every step,
which is what the vmapped sweep needs (its K stacked batches share one bucket).
"""
from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

# Padding rows get -1 in these index columns so a padded row can never pass for example 0.
_INDEX_KEYS = ("example_index", "unique_ids", "unique_id")

EXAMPLE_WEIGHT_KEY = "example_weight"
EXAMPLE_POSITION_KEY = "example_position"  # eval, bucketed: the example's row in the features


def length_buckets_of(max_seq_length: int, num_buckets: int) -> tuple[int, ...]:
    """`num_buckets` lengths spread evenly up to S, each a multiple of 8 (0 or 1: just (S,))."""
    if num_buckets < 0:
        raise ValueError(f"num_length_buckets must be >= 0, got {num_buckets}")
    if num_buckets <= 1:
        return (max_seq_length,)
    lengths = {min(max_seq_length, -(-max_seq_length * (i + 1) // num_buckets // 8) * 8)
               for i in range(num_buckets)}
    return tuple(sorted(lengths | {max_seq_length}))


def _sequence_lengths(features: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.asarray(features["input_mask"]).sum(axis=-1)


def bucket_of(length: int, buckets: tuple[int, ...]) -> int:
    """The smallest bucket holding `length` tokens."""
    for bucket in buckets:
        if length <= bucket:
            return bucket
    raise ValueError(f"a sequence of {length} tokens is longer than every bucket {buckets}")


def trim_to_bucket(batch: Mapping[str, np.ndarray], buckets: tuple[int, ...],
                   seq_axis: int = 1) -> dict[str, np.ndarray]:
    """`batch` with every [.., S, ..] sequence array cut to the bucket of its longest example.

    Sequence arrays are those whose `seq_axis` has input_ids' length S (input_ids, input_mask,
    segment_ids, and token-level labels and weights); the rest pass through.
    """
    full = np.shape(batch["input_ids"])[seq_axis]
    length = bucket_of(int(np.max(_sequence_lengths(batch), initial=1)), buckets)
    if length >= full:
        return dict(batch)
    cut = (slice(None),) * seq_axis + (slice(0, length),)
    return {name: array[cut] if np.ndim(array) > seq_axis and np.shape(array)[seq_axis] == full
            else array for name, array in batch.items()}


def num_examples(features: Mapping[str, np.ndarray]) -> int:
    """The shared leading dimension N of a feature dict; raises if the arrays disagree."""
    if not features:
        raise ValueError("Empty feature dict: nothing to batch.")
    lengths = {name: len(array) for name, array in features.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"Feature arrays differ in their leading dimension: {lengths}.")
    return next(iter(lengths.values()))


def group_by_length_of(data_config) -> int:
    """M, the mega-batch size in batches, of a config.data (0: group_by_length off)."""
    if not data_config.get("group_by_length", False):
        return 0
    megabatches = int(data_config.get("group_by_length_megabatches", 50))
    if megabatches < 1:
        raise ValueError(f"config.data.group_by_length_megabatches={megabatches}: must be >= 1")
    return megabatches


def _epoch_batches(rng: np.random.Generator, order_rng: np.random.Generator,
                   lengths: np.ndarray | None, total: int, batch_size: int,
                   batches_per_epoch: int, group_by_length: int,
                   schedule_rng: np.random.Generator | None) -> np.ndarray:
    """The rows [batches_per_epoch, B] of one epoch's batches, in training order.

    Draws one permutation from `rng` whatever the mode (so an epoch holds the same examples
    grouped or not); grouped, the batch order comes from `order_rng`, or from `schedule_rng`
    as length ranks. The remainder N mod B of the permutation is dropped, grouped or not.
    """
    rows = rng.permutation(total)[:batches_per_epoch * batch_size]
    if not group_by_length:
        return rows.reshape(batches_per_epoch, batch_size)
    mega = group_by_length * batch_size
    rows = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                           for chunk in np.split(rows, range(mega, len(rows), mega))])
    batches = rows.reshape(batches_per_epoch, batch_size)
    if schedule_rng is None:
        return batches[order_rng.permutation(batches_per_epoch)]
    batch_lengths = lengths[batches]  # [batches, B]
    # ranked[r]: the batch of length rank r, shortest first (by its longest example, then tokens)
    ranked = np.lexsort((batch_lengths.sum(axis=1), batch_lengths.max(axis=1)))
    return batches[ranked[schedule_rng.permutation(batches_per_epoch)]]


def train_batches(features: Mapping[str, np.ndarray],
                  batch_size: int,
                  *,
                  seed: int,
                  num_epochs: int | None = 1,
                  num_steps: int | None = None,
                  start_step: int = 0,
                  group_by_length: int = 0,
                  length_schedule_seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
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
      group_by_length: 0 (default): batches are consecutive slices of the permutation. M > 0:
        mega-batches of M x B examples of the permutation, each sorted by length (input_mask),
        split into batches whose order is shuffled by a stream of `seed` (module docstring).
      length_schedule_seed: grouped only: order each epoch's batches by a schedule of length
        ranks drawn from this seed alone (the same for every `seed`), not by `seed`.
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
    if group_by_length < 0:
        raise ValueError(f"group_by_length must be >= 0 (0: off), got {group_by_length}")
    lengths = None
    if group_by_length:
        if "input_mask" not in features:
            raise ValueError("group_by_length needs the input_mask feature to measure lengths; "
                             f"have {sorted(features)}")
        lengths = _sequence_lengths(features)
    rng = np.random.default_rng(seed)
    order_rng = np.random.default_rng([seed, 1])  # grouped batch order: its own stream
    schedule_rng = (np.random.default_rng(length_schedule_seed)
                    if group_by_length and length_schedule_seed is not None else None)
    steps_done = 0
    epoch = 0
    while num_epochs is None or epoch < num_epochs:
        batches = _epoch_batches(rng, order_rng, lengths, total, batch_size, batches_per_epoch,
                                 group_by_length, schedule_rng)
        for rows in batches:
            if num_steps is not None and steps_done >= num_steps:
                return
            if steps_done >= start_step:
                yield {name: array[rows] for name, array in features.items()}
            steps_done += 1
        epoch += 1


def eval_batches(features: Mapping[str, np.ndarray], batch_size: int,
                 length_buckets: tuple[int, ...] = ()) -> Iterator[dict[str, np.ndarray]]:
    """Yields every example once, in batches of `batch_size` rows.

    Each batch has the feature arrays [B, ...] plus `example_weight` [B] float32. The last batch is
    padded with zero rows (weight 0; -1 in example_index / unique_ids) so every batch has the same
    shape and jit compiles once. With `length_buckets`, the examples of each bucket (in file
    order) are batched and cut to that bucket's length, and every batch also carries
    `example_position` [B] int64 (the row in `features`, -1 for padding).
    """
    total = num_examples(features)
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    if length_buckets:
        lengths = _sequence_lengths(features)
        of = np.asarray([bucket_of(int(n), tuple(length_buckets)) for n in lengths])
        for bucket in sorted(set(of.tolist())):
            rows = np.flatnonzero(of == bucket)
            part = {name: array[rows] for name, array in features.items()}
            part[EXAMPLE_POSITION_KEY] = rows.astype(np.int64)
            for batch in eval_batches(part, batch_size):
                position = batch[EXAMPLE_POSITION_KEY]
                position[batch[EXAMPLE_WEIGHT_KEY] == 0] = -1
                yield trim_to_bucket(batch, (bucket,) + tuple(length_buckets))
        return
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
