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
                  none are given: fresh masks every epoch; each host tokenises only its own
                  files (cached under `cache_dir`), the global batch does not depend on the
                  number of hosts.

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
      cache_dir: where default_corpus keeps its TFRecords and dynamic its tokenised files (the
        trainer passes WORKDIR/data when empty).
      tokenizer, spm_model_file: "wordpiece" (vocab_file, do_lower_case) or "sentencepiece"
        (spm_model_file); data_pipelines.tokenizers.
      do_whole_word_mask, masked_lm_prob, short_seq_prob: as the original flags
        (default_corpus and dynamic).
      window_documents: dynamic only: random next segments come from this many documents.
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
    tokenizer: str = "wordpiece"
    spm_model_file: str = ""
    do_whole_word_mask: bool = False
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    window_documents: int = 1024

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"config.data.source={self.source!r}; expected one of {SOURCES}")
        if self.source == "tfrecord" and not self.input_files:
            raise ValueError("config.data.source='tfrecord' needs config.data.input_files")
        if self.source == "default_corpus" and not self.cache_dir:
            raise ValueError("config.data.source='default_corpus' needs a cache_dir")
        if self.tokenizer not in ("wordpiece", "sentencepiece"):
            raise ValueError(f"config.data.tokenizer={self.tokenizer!r}; expected 'wordpiece' or "
                             "'sentencepiece'")
        if self.tokenizer == "sentencepiece" and not self.spm_model_file:
            raise ValueError("config.data.tokenizer='sentencepiece' needs config.data.spm_model_file")


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
            dupe_factor=spec.dupe_factor, seed=spec.seed, tokenizer=spec.tokenizer,
            spm_model_file=spec.spm_model_file, do_whole_word_mask=spec.do_whole_word_mask,
            masked_lm_prob=spec.masked_lm_prob, short_seq_prob=spec.short_seq_prob)
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
    embedded stdlib docstrings when no input files are given (data_pipelines.dynamic_masking)."""
    from data_pipelines import dynamic_masking, storage, tokenizers

    tokenizer = tokenizers.make_tokenizer(
        spec.tokenizer, vocab_file=spec.vocab_file, do_lower_case=spec.do_lower_case,
        spm_model_file=spec.spm_model_file)
    cache_dir = storage.join(spec.cache_dir, "dynamic") if spec.cache_dir else ""
    if spec.input_files:
        files = storage.expand_patterns(spec.input_files, what="config.data.input_files")
    else:
        files = [_default_corpus_file(cache_dir)]
    config = dynamic_masking.DynamicMaskingConfig(
        max_seq_length=spec.max_seq_length, max_predictions_per_seq=spec.max_predictions_per_seq,
        masked_lm_prob=spec.masked_lm_prob, short_seq_prob=spec.short_seq_prob,
        do_whole_word_mask=spec.do_whole_word_mask, seed=seed,
        window_documents=spec.window_documents, cache_dir=cache_dir)
    return dynamic_masking.prefetched(dynamic_masking.host_batches(
        files, tokenizer, config, global_batch_size=per_host_batch_size * process_count,
        process_index=process_index, process_count=process_count, start_step=start_step))


def _default_corpus_file(cache_dir: str) -> str:
    """The stdlib docstrings in the original text format, written once (atomically) under
    cache_dir (a temporary folder without one); named by the Python version they come from."""
    import sys  # pylint: disable=import-outside-toplevel
    import tempfile  # pylint: disable=import-outside-toplevel

    from data_pipelines import corpora, storage

    cache_dir = cache_dir or tempfile.mkdtemp(prefix="bertjax_default_corpus_")
    path = storage.join(cache_dir, f"stdlib_docstrings-py{sys.version.split()[0]}.txt")
    if not storage.exists(path):
        documents = ([s.replace("\n", " ").strip() for s in document]
                     for document in corpora.stdlib_docstring_documents())
        text = "".join("\n".join(s for s in document if s) + "\n\n"
                       for document in documents if any(document))
        storage.write_text(path, text)
    return path
