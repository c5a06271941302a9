"""tf.data pipeline over pretraining TFRecords in the original BERT format, exactly resumable.

Batches are a pure function of (files, seed, step): file order per epoch, interleave and
record shuffle all use fixed seeds and deterministic ops, so `start_step=k` yields exactly
the batches an uninterrupted pipeline yields from batch k on. Resuming skips k * G raw
serialized records before any parsing, which costs reading them but no decoding.

The global batch (G = B x number of hosts) is the same whatever the number of hosts: every
host reads the same global stream of serialized records and parses only its own B rows of
each global batch. A run can therefore resume on another topology, and the losses of a run on
N hosts equal those of a run on one (up to the order of the cross-device reductions). The
price is that each host reads the bytes of every record (0.82 KB per record at S = 128, P = 20:
the embedded corpus's 3,547 records take 2.92 MB; so 0.2 MB per step for BERT-base's global
batch of 256), while decoding stays split.
Evaluation drops a last partial global batch, as the original's TPU input_fn does
(drop_remainder=True), so that every host runs the same number of eval steps.

Output: dicts of the seven feature names (features.py) as numpy-able tensors:
input_ids, input_mask, segment_ids [B, S] int32; masked_lm_positions, masked_lm_ids [B, P]
int32; masked_lm_weights [B, P] float32; next_sentence_labels [B] int32 (squeezed from the
stored [1], as the original model code reshapes it).

Validation happens in the graph, per batch: a feature of the wrong length fails in
tf.io.parse_example (its error names the feature key), and the first record of every file is
parsed on the host before training, so a file written with other flags, an empty file (a
training stream over files without records would wait forever) or one that is not a TFRecord
file fails at once with its name; token ids >= vocab_size or positions >= S fail a
tf.debugging assert whose message names the feature and whose data names the file. A file
damaged further in (a truncated copy) surfaces as tf.data's DataLossError, which carries only
an offset: `named_read_errors` builds the stream on its first batch and, on such an error,
finds and names the damaged file by reading each file on its own; until the first batch comes
it logs a warning naming the files every minute, so a slow or stuck start is never silent.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Callable, Iterator, Sequence

import tensorflow as tf

from data_pipelines import features as features_lib
from data_pipelines import storage

try:
    tf.config.set_visible_devices([], "GPU")  # tf.data only; the accelerators belong to JAX.
except RuntimeError:
    pass  # Devices were initialised before this import; nothing more can be done here.


def expand_file_patterns(file_patterns: str | Sequence[str]) -> list[str]:
    """Files of comma-separated or listed paths and glob patterns (storage.expand_patterns)."""
    return storage.expand_patterns(file_patterns, what="pretraining")


class CorruptRecordError(ValueError):
    """A TFRecord file is empty, damaged or not a TFRecord file; the message names it."""


def find_unreadable_file(files: Sequence[str]) -> tuple[str, str] | None:
    """(path, TF's message) of the first file whose records cannot all be read; None if all
    can. Costs reading every file once: only called after a read failed."""
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except tf.errors.OpError as error:
            return path, error.message
    return None


# While the first batch is awaited, a warning naming the files is logged this often, so a slow
# or stuck read (a huge shuffle buffer, a stalled object store) is visible, never silent.
WAIT_WARNING_SECONDS = 60.0


def named_read_errors(make_batches: Callable[[], Iterator], files: Sequence[str],
                      wait_warning_seconds: float = WAIT_WARNING_SECONDS) -> Iterator:
    """The batches of `make_batches()`, built on the first `next` (so that opening and checking
    the files is watched too), with a warning naming the files every `wait_warning_seconds`
    until the first batch comes, and tf.data's anonymous DataLossError (an offset, no file
    name) re-raised as CorruptRecordError naming the damaged file."""
    waited = threading.Event()

    def warn(seconds: float) -> None:
        while not waited.wait(wait_warning_seconds):
            seconds += wait_warning_seconds
            logging.warning("still reading the first batch after %.0f s from %d file(s): %s",
                            seconds, len(files), ", ".join(list(files)[:4]))

    threading.Thread(target=warn, args=(0.0,), daemon=True).start()
    try:
        for count, batch in enumerate(make_batches()):
            if count == 0:
                waited.set()
            yield batch
    except tf.errors.DataLossError as error:
        found = find_unreadable_file(files)
        where = f"{found[0]}: {found[1]}" if found else f"one of {list(files)}: {error.message}"
        raise CorruptRecordError(
            f"damaged TFRecord file {where} (truncated copy or not a TFRecord file?); "
            "recreate or remove it") from None
    finally:
        waited.set()


def check_first_records(
    files: Sequence[str], max_seq_length: int, max_predictions_per_seq: int
) -> None:
    """Parses the first record of each file with the expected spec; names the file on error.

    An empty file is an error too: a training stream repeats its files forever, so files
    without a record would make it wait forever for a first batch.
    """
    spec = features_lib.tf_feature_spec(max_seq_length, max_predictions_per_seq)
    for path in files:
        try:
            records = list(tf.data.TFRecordDataset(path).take(1))
        except tf.errors.OpError as error:
            raise CorruptRecordError(
                f"{path}: not a readable TFRecord file ({error.message})") from None
        if not records:
            raise CorruptRecordError(
                f"{path}: empty TFRecord file ({storage.size(path)} bytes, no record); "
                "a failed create_pretraining_data run? Recreate or remove it")
        try:
            tf.io.parse_single_example(records[0], spec)
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
      is_training: shuffle and repeat forever; otherwise one pass in file order. Either way a
        last partial global batch is dropped.
      seed: seeds the file order and record shuffle; batches are a function of (seed, step).
      start_step: the first batch to yield (exact resume).
      process_index, process_count: this host's share of each global batch and the number of
        shares: the host yields rows [i * B, (i + 1) * B) of every global batch of
        B * process_count records (see the module docstring).
      vocab_size: when given, token ids must be below it.
      shuffle_buffer_size: records in the shuffle buffer (training).
      cycle_length: files read at once (interleaved) in training.
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} is not in [0, {process_count})")
    files = expand_file_patterns(file_patterns)
    check_first_records(files, max_seq_length, max_predictions_per_seq)
    global_batch_size = per_host_batch_size * process_count
    first_row = per_host_batch_size * process_index

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
    if is_training:
        records = records.shuffle(shuffle_buffer_size, seed=seed + 1, reshuffle_each_iteration=True)
    # Skip raw records, before parsing: global batch k is records [k * G, (k + 1) * G).
    records = records.skip(start_step * global_batch_size)
    global_batches = records.batch(global_batch_size, drop_remainder=True)
    batches = global_batches.map(
        lambda serialized, file_names: (
            serialized[first_row:first_row + per_host_batch_size],
            file_names[first_row:first_row + per_host_batch_size]))
    batches = batches.map(
        _parse_and_validate(max_seq_length, max_predictions_per_seq, vocab_size),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    options = tf.data.Options()
    options.deterministic = True
    return batches.with_options(options).prefetch(tf.data.AUTOTUNE)
