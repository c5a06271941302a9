"""The one entry point from which pretraining gets its batches, whatever the source.

    spec = PretrainingDataSpec(**config.data)       # plain values, no ml_collections needed
    batches = pretraining_batches(spec, per_host_batch_size=B, start_step=k,
                                  process_index=i, process_count=n)

Sources (`spec.source`):
  tfrecord        files in the original format (`input_files`: comma list of paths or patterns on
                  any scheme the path layer reads); data_pipelines.pretraining_input.
  default_corpus  the embedded default corpus (the Python standard library's docstrings) written
                  as original-format TFRecords on first use under `cache_dir`, then read as above.
  dynamic         pairs and masks made on the fly (data_pipelines.dynamic_masking) from documents
                  in the original text format (`input_files`), or from the default corpus when
                  none are given: fresh masks every epoch.

Batches are host-local numpy dicts of the seven features (data_pipelines.features), this host's
share of the global batch, and a pure function of (spec, step): `start_step=k` yields exactly the
batches an uninterrupted stream yields from batch k on.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

import numpy as np

SOURCES = ("tfrecord", "default_corpus", "dynamic")


@dataclasses.dataclass(frozen=True)
class PretrainingDataSpec:
    """Where pretraining batches come from and how they are shaped (config.data's keys).

    Attributes:
      source: "tfrecord", "default_corpus" or "dynamic" (see the module docstring).
      input_files: comma list of files or patterns (tfrecord: records; dynamic: documents text).
      eval_input_files: files of the eval stream; default: the training files, as the original.
      vocab_file: WordPiece vocabulary; default: the bundled bert-base-uncased vocab.
      do_lower_case: tokenizer casing (default_corpus and dynamic).
      max_seq_length, max_predictions_per_seq: S and P of every batch.
      dupe_factor: default_corpus only: masks written per document.
      seed: data seed; the stream is a function of (seed, step).
      cache_dir: default_corpus only: where its TFRecords are kept (the trainer passes
        WORKDIR/data when empty).
    """

    source: str = "tfrecord"
    input_files: str = ""
    eval_input_files: str = ""
    vocab_file: str = ""
    do_lower_case: bool = True
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    dupe_factor: int = 5
    seed: int = 12345
    cache_dir: str = ""

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"config.data.source={self.source!r}; expected one of {SOURCES}")
        if self.source == "tfrecord" and not self.input_files:
            raise ValueError("config.data.source='tfrecord' needs config.data.input_files")
        if self.source == "default_corpus" and not self.cache_dir:
            raise ValueError("config.data.source='default_corpus' needs a cache_dir")


def pretraining_batches(
    spec: PretrainingDataSpec,
    *,
    per_host_batch_size: int,
    start_step: int = 0,
    is_training: bool = True,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
    """Host-local numpy batches from `spec`, starting at batch `start_step`.

    Training streams repeat forever; the eval stream (is_training=False) makes one pass over the
    eval files in order and is seeded apart from training (seed + 1). `process_index` numbers
    this host's share (rows [i * B, (i + 1) * B)) of each global batch of
    B * `process_count` examples; for TFRecord sources the global batches do not depend on
    process_count, so a run may resume on another topology.
    """
    from data_pipelines import corpora, pretraining_input  # tf.data is imported lazily

    seed = spec.seed if is_training else spec.seed + 1
    if spec.source == "dynamic":
        return _dynamic_masking_batches(spec, per_host_batch_size, start_step, seed,
                                        process_index, process_count)
    files = spec.input_files if is_training else (spec.eval_input_files or spec.input_files)
    if spec.source == "default_corpus":
        files = corpora.prepare_default_pretraining_data(
            spec.cache_dir, vocab_file=spec.vocab_file or None,
            max_seq_length=spec.max_seq_length,
            max_predictions_per_seq=spec.max_predictions_per_seq,
            dupe_factor=spec.dupe_factor, seed=spec.seed)
    files = pretraining_input.expand_file_patterns(files)

    def make_batches():
        return pretraining_input.make_pretraining_dataset(
            files, per_host_batch_size, spec.max_seq_length, spec.max_predictions_per_seq,
            is_training=is_training, seed=seed, start_step=start_step,
            process_index=process_index, process_count=process_count).as_numpy_iterator()

    # Built on the first batch, watched: a slow start is reported naming the files, and a
    # damaged file is named (tf.data gives an offset only).
    return pretraining_input.named_read_errors(make_batches, files)


def _dynamic_masking_batches(spec, per_host_batch_size, start_step, seed, process_index,
                             process_count):
    """Pairs and masks made on the fly from documents in the original input format, or from the
    embedded stdlib docstrings when no input files are given."""
    from data_pipelines import (corpora, create_pretraining_data, dynamic_masking, instances,
                                tokenization)

    tokenizer = tokenization.FullTokenizer(spec.vocab_file or corpora.default_vocab_file(),
                                           do_lower_case=spec.do_lower_case)
    if spec.input_files:
        files = create_pretraining_data.expand_input_files(spec.input_files.split(","))
        documents = create_pretraining_data.read_documents(files)
    else:
        documents = corpora.stdlib_docstring_documents()
    corpus = instances.TokenizedCorpus.from_documents(
        [[tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line)) for line in document]
         for document in documents])
    dataset = dynamic_masking.make_dynamic_masking_dataset(
        corpus, tokenizer.vocab, per_host_batch_size, spec.max_seq_length,
        spec.max_predictions_per_seq, seed=seed, start_step=start_step,
        process_index=process_index, process_count=process_count)
    return dataset.as_numpy_iterator()
