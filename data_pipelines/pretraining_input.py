"""tf.data pipeline over pretraining TFRecords in the original BERT format, exactly resumable.

Batches are a pure function of (files, seed, step): file order per epoch, interleave and
record shuffle all use fixed seeds and deterministic ops, so `start_step=k` yields exactly
the batches an uninterrupted pipeline yields from batch k on. Resuming skips k * B raw
serialized records before any parsing, which costs reading them but no decoding.

Output: dicts of the seven feature names (features.py) as numpy-able tensors:
input_ids, input_mask, segment_ids [B, S] int32; masked_lm_positions, masked_lm_ids [B, P]
int32; masked_lm_weights [B, P] float32; next_sentence_labels [B] int32 (squeezed from the
stored [1], as the original model code reshapes it).

Validation happens in the graph, per batch: a feature of the wrong length fails in
tf.io.parse_example (its error names the feature key), and the first record of every file is
parsed on the host before training, so a file written with other flags fails at once with
its name; token ids >= vocab_size or positions >= S fail a tf.debugging assert whose message
names the feature and whose data names the file.
"""

from __future__ import annotations

import re
from typing import Sequence

import tensorflow as tf

from data_pipelines import features as features_lib
from data_pipelines import storage

try:
    tf.config.set_visible_devices([], "GPU")  # tf.data only; the accelerators belong to JAX.
except RuntimeError:
    pass  # Devices were initialised before this import; nothing more can be done here.


def expand_file_patterns(file_patterns: str | Sequence[str]) -> list[str]:
    """Sorted files matching comma-separated or listed glob patterns; error if none match."""
    return storage.expand_patterns(file_patterns, what="pretraining")


def check_first_records(
    files: Sequence[str], max_seq_length: int, max_predictions_per_seq: int
) -> None:
    """Parses the first record of each file with the expected spec; names the file on error."""
    spec = features_lib.tf_feature_spec(max_seq_length, max_predictions_per_seq)
    for path in files:
        for record in tf.data.TFRecordDataset(path).take(1):
            try:
                tf.io.parse_single_example(record, spec)
            except tf.errors.InvalidArgumentError as error:
                detail = re.search(r"Key: \w+[^\n\[{]*", error.message)
                raise ValueError(
                    f"{path}: first record does not match max_seq_length={max_seq_length}, "
                    f"max_predictions_per_seq={max_predictions_per_seq} (the seven features of "
                    f"data_pipelines/features.py): {detail.group(0) if detail else error.message}"
                ) from None


def _parse_and_validate(max_seq_length: int, max_predictions_per_seq: int, vocab_size: int | None):
    spec = features_lib.tf_feature_spec(max_seq_length, max_predictions_per_seq)

    def parse(serialized, file_names):
        parsed = tf.io.parse_example(serialized, spec)
        batch = {}
        for name, value in parsed.items():
            batch[name] = tf.cast(value, tf.int32) if value.dtype == tf.int64 else value
        batch["next_sentence_labels"] = tf.reshape(batch["next_sentence_labels"], [-1])
        checks = []
        bounds = {"masked_lm_positions": max_seq_length}
        if vocab_size is not None:
            bounds.update(input_ids=vocab_size, masked_lm_ids=vocab_size)
        for name, bound in bounds.items():
            worst = tf.reduce_max(batch[name], axis=-1)  # [B]
            checks.append(
                tf.debugging.Assert(
                    tf.reduce_all(worst < bound),
                    [
                        f"pretraining feature {name} has a value >= {bound}: max",
                        tf.reduce_max(worst),
                        "in file",
                        tf.gather(file_names, tf.argmax(worst)),
                    ],
                )
            )
        with tf.control_dependencies(checks):
            return {name: tf.identity(value) for name, value in batch.items()}

    return parse


def make_pretraining_dataset(
    file_patterns: str | Sequence[str],
    per_host_batch_size: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    *,
    is_training: bool,
    seed: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    vocab_size: int | None = None,
    shuffle_buffer_size: int = 10_000,
    cycle_length: int = 8,
) -> tf.data.Dataset:
    """Batches of pretraining features from TFRecords (see the module docstring).

    Args:
      file_patterns: comma-separated string or list of glob patterns.
      per_host_batch_size: B, examples per batch on this host.
      max_seq_length, max_predictions_per_seq: S and P the records were written with.
      is_training: shuffle, repeat forever and drop the last partial batch; otherwise one pass
        in file order, partial last batch kept.
      seed: seeds the file order and record shuffle; batches are a function of (seed, step).
      start_step: the first batch to yield (exact resume).
      process_index, process_count: this host and the number of hosts; files are split
        between hosts, or records when there are fewer files than hosts.
      vocab_size: when given, token ids must be below it.
      shuffle_buffer_size: records in the shuffle buffer (training).
      cycle_length: files read at once (interleaved) in training.
    """
    files = expand_file_patterns(file_patterns)
    shard_records = len(files) < process_count
    if not shard_records:
        files = files[process_index::process_count]
    check_first_records(files, max_seq_length, max_predictions_per_seq)

    def records_of(file_name):
        return tf.data.TFRecordDataset(file_name).map(lambda record: (record, file_name))

    file_names = tf.data.Dataset.from_tensor_slices(files)
    if is_training:
        # Fixed seed, reshuffled each epoch: the sequence of epoch orders is fixed by the seed.
        file_names = file_names.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
        file_names = file_names.repeat()
        records = file_names.interleave(
            records_of,
            cycle_length=min(cycle_length, len(files)),
            block_length=1,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
    else:
        records = file_names.flat_map(records_of)
    if shard_records:
        records = records.shard(process_count, process_index)
    if is_training:
        records = records.shuffle(shuffle_buffer_size, seed=seed + 1, reshuffle_each_iteration=True)
    # Skip raw records, before parsing: batch k is records [k * B, (k + 1) * B).
    records = records.skip(start_step * per_host_batch_size)
    batches = records.batch(per_host_batch_size, drop_remainder=is_training)
    batches = batches.map(
        _parse_and_validate(max_seq_length, max_predictions_per_seq, vocab_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    options = tf.data.Options()
    options.deterministic = True
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)
