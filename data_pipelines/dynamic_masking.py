"""Dynamic masking: sentence pairs and 80/10/10 masks made on the fly in tf.data.

Instead of fixing dupe_factor masks on disk, every epoch pairs the tokenised documents
afresh and every batch draws fresh masks, while staying an exact function of (seed, step):

* Pairing: a Python generator runs the original algorithm (instances.py:
  create_instances_from_document, random next from the whole corpus) over this host's
  documents, epoch after epoch. Epoch e draws from SeedSequence(seed, spawn_key=(e, host)):
  the document order, the pairs and their order within a chunk of documents. The generator
  is deterministic, so the k-th pair it yields never changes.
* Masking: in-graph, per batch, with stateless random ops keyed by (seed, batch index) (the
  batch index fixes the example indexes: batch k holds pairs [k * B, (k + 1) * B)): a
  uniformly random subset of num_to_predict = min(P, max(1, round(len * masked_lm_prob)))
  tokens other than [CLS]/[SEP], each [MASK] 80%, kept 10%, a uniform vocab id 10%.
  tensorflow_text.mask_language_model's selectors draw from stateful RNG ops, whose state a
  resumed run cannot restore, which is why they are not used here.
* Resume: `start_step=k` skips k * B unmasked pairs (generator work only, no masking) and
  numbers batches from k, so it yields exactly the batches of an uninterrupted run.

Per-token masking only (whole-word masking is in the offline writer). Output: the same dict
as pretraining_input.make_pretraining_dataset (next_sentence_labels [B]).
Shape legend: B batch, S = max_seq_length, P = max_predictions_per_seq.
"""

from __future__ import annotations

import itertools
import random
from typing import Iterator

import numpy as np
import tensorflow as tf

from data_pipelines import instances as instances_lib

try:
    tf.config.set_visible_devices([], "GPU")  # tf.data only; the accelerators belong to JAX.
except RuntimeError:
    pass  # Devices were initialised before this import.

_DOCUMENTS_PER_CHUNK = 64  # Pairs are shuffled within chunks of this many documents.


def sentence_pairs(
    corpus: instances_lib.TokenizedCorpus,
    max_seq_length: int,
    short_seq_prob: float,
    seed: int,
    cls_id: int,
    sep_id: int,
    process_index: int = 0,
    process_count: int = 1,
    num_epochs: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Unmasked [CLS] A [SEP] B [SEP] pairs, chunk by chunk, epoch after epoch.

    Documents are split between hosts (document i goes to host i % process_count); random
    next segments come from the whole corpus on every host.
    Yields dicts of input_ids, input_mask, segment_ids [n, S] int32 and
    next_sentence_labels [n] int32.
    """
    host_documents = np.arange(process_index, corpus.num_documents, process_count)
    if host_documents.size == 0:
        raise ValueError(
            f"host {process_index} of {process_count} gets no document: the corpus "
            f"has only {corpus.num_documents}"
        )
    epochs = itertools.count() if num_epochs is None else range(num_epochs)
    for epoch in epochs:
        epoch_seeds = np.random.SeedSequence(seed, spawn_key=(epoch, process_index))
        numpy_rng = np.random.default_rng(epoch_seeds)
        python_rng = random.Random(
            int.from_bytes(epoch_seeds.generate_state(4).tobytes(), "little")
        )
        order = numpy_rng.permutation(host_documents)
        for chunk_start in range(0, len(order), _DOCUMENTS_PER_CHUNK):
            spans = []
            for document_index in order[chunk_start : chunk_start + _DOCUMENTS_PER_CHUNK]:
                spans.extend(
                    instances_lib.create_instances_from_document(
                        corpus, int(document_index), max_seq_length, short_seq_prob, python_rng
                    )
                )
            if not spans:
                continue
            pairs = instances_lib.assemble_instances(
                corpus.token_ids, spans, max_seq_length, cls_id, sep_id
            )
            shuffle = numpy_rng.permutation(len(spans))
            yield dict(
                input_ids=pairs.input_ids[shuffle],
                input_mask=pairs.input_mask[shuffle],
                segment_ids=pairs.segment_ids[shuffle],
                next_sentence_labels=pairs.next_sentence_labels[shuffle],
            )


def mask_batch(
    batch: dict[str, tf.Tensor],
    seed: tf.Tensor,
    *,
    max_predictions_per_seq: int,
    masked_lm_prob: float,
    vocab_size: int,
    cls_id: int,
    sep_id: int,
    mask_id: int,
) -> dict[str, tf.Tensor]:
    """80/10/10 masking of a batch, deterministic in `seed` ([2] int64, stateless ops).

    Args:
      batch: input_ids, input_mask, segment_ids [B, S] int32; next_sentence_labels [B].
      seed: [2] stateless seed, e.g. (data seed, batch index).
    Returns:
      The seven pretraining features; masked_lm_* are [B, P], positions sorted, zero padded.
    """
    input_ids = batch["input_ids"]
    input_mask = batch["input_mask"]
    batch_size = tf.shape(input_ids)[0]
    seq_length = tf.shape(input_ids)[1]
    width = max_predictions_per_seq
    seeds = tf.random.experimental.stateless_split(seed, num=4)
    candidates = (input_mask == 1) & (input_ids != cls_id) & (input_ids != sep_id)  # [B, S]
    lengths = tf.reduce_sum(input_mask, axis=1)
    # tf.round rounds half to even, like Python 3's round() in the original.
    num_to_predict = tf.minimum(
        width,
        tf.maximum(1, tf.cast(tf.round(tf.cast(lengths, tf.float64) * masked_lm_prob), tf.int32)),
    )
    num_chosen = tf.minimum(num_to_predict, tf.reduce_sum(tf.cast(candidates, tf.int32), axis=1))
    # A uniformly random subset: the num_chosen candidates with the smallest uniform keys.
    keys = tf.where(candidates, tf.random.stateless_uniform(tf.shape(input_ids), seeds[0]), 2.0)
    _, smallest = tf.math.top_k(-keys, k=tf.minimum(width, seq_length))  # [B, <=P]
    rank = tf.range(tf.shape(smallest)[1])[None, :]
    real = rank < num_chosen[:, None]
    positions = tf.sort(tf.where(real, smallest, seq_length), axis=1)  # chosen first, sorted
    positions = tf.where(real, positions, 0)
    pad = width - tf.shape(positions)[1]
    positions = tf.pad(positions, [[0, 0], [0, pad]])
    real = tf.pad(real, [[0, 0], [0, pad]])
    original_ids = tf.where(real, tf.gather(input_ids, positions, batch_dims=1), 0)
    draw = tf.random.stateless_uniform([batch_size, width], seeds[1])
    random_ids = tf.random.stateless_uniform(
        [batch_size, width], seeds[2], minval=0, maxval=vocab_size, dtype=tf.int32
    )
    replacement = tf.where(draw < 0.8, mask_id, tf.where(draw < 0.9, original_ids, random_ids))
    rows = tf.broadcast_to(tf.range(batch_size)[:, None], tf.shape(positions))
    update_index = tf.boolean_mask(tf.stack([rows, positions], axis=-1), real)
    masked_ids = tf.tensor_scatter_nd_update(
        input_ids, update_index, tf.boolean_mask(replacement, real)
    )
    return dict(
        input_ids=masked_ids,
        input_mask=input_mask,
        segment_ids=batch["segment_ids"],
        masked_lm_positions=positions,
        masked_lm_ids=original_ids,
        masked_lm_weights=tf.cast(real, tf.float32),
        next_sentence_labels=tf.reshape(batch["next_sentence_labels"], [-1]),
    )


def make_dynamic_masking_dataset(
    corpus: instances_lib.TokenizedCorpus,
    vocab: dict[str, int],
    per_host_batch_size: int,
    max_seq_length: int,
    max_predictions_per_seq: int,
    *,
    seed: int,
    start_step: int = 0,
    process_index: int = 0,
    process_count: int = 1,
    masked_lm_prob: float = 0.15,
    short_seq_prob: float = 0.1,
) -> tf.data.Dataset:
    """Endless batches of freshly paired and masked examples (see the module docstring).

    Args:
      corpus: tokenised documents (instances.TokenizedCorpus; e.g. from_documents(ids)).
      vocab: token -> id (tokenizer.vocab); needs [CLS], [SEP], [MASK]; random replacements are
        uniform over ids [0, len(vocab)).
      per_host_batch_size, max_seq_length, max_predictions_per_seq: B, S, P.
      seed: data seed; the batches are a function of (seed, step).
      start_step: first batch to yield (exact resume).
      process_index, process_count: this host and the number of hosts.
      masked_lm_prob, short_seq_prob: as the original flags.
    """
    cls_id, sep_id, mask_id = vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"]
    spec_2d = tf.TensorSpec([None, max_seq_length], tf.int32)
    chunks = tf.data.Dataset.from_generator(
        lambda: sentence_pairs(
            corpus,
            max_seq_length,
            short_seq_prob,
            seed,
            cls_id,
            sep_id,
            process_index,
            process_count,
        ),
        output_signature=dict(
            input_ids=spec_2d,
            input_mask=spec_2d,
            segment_ids=spec_2d,
            next_sentence_labels=tf.TensorSpec([None], tf.int32),
        ),
    )
    pairs = chunks.unbatch().skip(start_step * per_host_batch_size)
    batches = pairs.batch(per_host_batch_size, drop_remainder=True)
    batches = batches.enumerate(start=start_step)

    def mask(step, batch):
        return mask_batch(
            batch,
            tf.stack([tf.cast(seed, tf.int64), step]),
            max_predictions_per_seq=max_predictions_per_seq,
            masked_lm_prob=masked_lm_prob,
            vocab_size=len(vocab),
            cls_id=cls_id,
            sep_id=sep_id,
            mask_id=mask_id,
        )

    batches = batches.map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)
