r"""Masked-LM / next-sentence pretraining TFRecords from text, as the original BERT script.

    python -m data_pipelines.create_pretraining_data \
      --input_file=corpus/*.txt --output_file=out/train-0.tfrecord,out/train-1.tfrecord \
      --vocab_file=vocab.txt --do_lower_case --max_seq_length=128 \
      --max_predictions_per_seq=20 --dupe_factor=5 --random_seed=12345

Input: one sentence per line, a blank line between documents (a document continues across
input files until a blank line, as in the original). Output: the original's seven features
(data_pipelines/features.py), records spread round-robin over the output files.

Same algorithm as google-research/bert's create_pretraining_data.py (instances.py), with:

* Parallelism: the corpus is tokenised once (not once per dupe) in chunks of whole documents
  by `num_workers` processes, into flat int32 arrays on disk (memory mapped, so resident
  memory is bounded by a chunk/block, not the corpus). Documents are then cut into blocks of
  about `block_tokens` tokens; each (dupe, block) unit is one task.
* Determinism: unit (dupe d, block b) draws from numpy SeedSequence(random_seed,
  spawn_key=(d, b)) and units are written in a seeded order, so the bytes depend on the seed
  and the block size, never on the worker count.
* Random next: the random document is drawn uniformly from the WHOLE corpus (every worker
  maps all token arrays), exactly the original's rule, so NSP statistics are unchanged.
* Shuffle: the original shuffles all instances of the corpus in memory; here instances are
  shuffled within a unit and units are written in a seeded random order, which keeps memory
  bounded (readers shuffle again with a buffer).
* Speed: tokenise once, integer spans instead of token lists, numpy masking for a whole
  unit, numpy tf.train.Example/TFRecord encoding (tfrecord_writer.py), no TensorFlow import.
* Safety: flags that would write useless data (dupe_factor < 1, max_predictions_per_seq < 1,
  masked_lm_prob outside (0, 1], ...) and an output that is also an input are refused before
  anything is read; outputs are written all or nothing (temporary files renamed at the end),
  so a failed or killed run leaves earlier files as they were.
"""

from __future__ import annotations

import collections
import dataclasses
import multiprocessing
import os
import random
import sys
import tempfile
import time
from typing import Iterable, Iterator

import numpy as np

# The documents format (one sentence a line, blank lines between documents) lives with its
# writer; these names stay importable from here, the original script's home for them.
from data_pipelines.corpora import (  # noqa: F401 (InvalidUtf8Error: re-exported)
    InvalidUtf8Error, expand_input_files, read_documents)
from data_pipelines import instances as instances_lib
from data_pipelines import storage
from data_pipelines import tfrecord_writer

_TOKENIZE_CHUNK_LINES = 4096  # Whole documents per tokenisation task, at least this many lines.


@dataclasses.dataclass(frozen=True)
class PretrainingDataConfig:
    """Flags of the original script plus the parallel ones.

    Attributes:
      input_files: files or glob patterns of documents text.
      output_files: TFRecord paths; records go round-robin over them.
      vocab_file: WordPiece vocabulary (one token per line).
      do_lower_case, do_whole_word_mask, max_seq_length, max_predictions_per_seq, random_seed,
        dupe_factor, masked_lm_prob, short_seq_prob: as the original flags.
      num_workers: processes; 0 means all cores. Does not change the output.
      block_tokens: about this many tokens per (dupe, block) unit. Changes the output (it
        decides the units and their seeds).
      skip_invalid_utf8: skip (and count) lines that are not UTF-8 instead of failing.
      progress: show tqdm progress bars on stderr.
      tokenizer, spm_model_file: "wordpiece" (vocab_file, do_lower_case) or "sentencepiece"
        (spm_model_file; vocab_file unused): data_pipelines.tokenizers.
    """

    input_files: tuple[str, ...]
    output_files: tuple[str, ...]
    vocab_file: str
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    random_seed: int = 12345
    dupe_factor: int = 10
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    num_workers: int = 0
    block_tokens: int = 1 << 18
    skip_invalid_utf8: bool = False
    progress: bool = True
    tokenizer: str = "wordpiece"
    spm_model_file: str = ""


def load_tokenizer(vocab_file: str, do_lower_case: bool, tokenizer: str = "wordpiece",
                   spm_model_file: str = ""):
    """The tokenizer of data_pipelines.tokenizers.make_tokenizer (WordPiece: the exact original
    FullTokenizer); it checks the special tokens are in the vocabulary."""
    from data_pipelines import tokenizers  # pylint: disable=import-outside-toplevel

    return tokenizers.make_tokenizer(tokenizer, vocab_file=vocab_file,
                                     do_lower_case=do_lower_case, spm_model_file=spm_model_file)


def _document_chunks(documents: Iterable[list[str]]) -> Iterator[list[list[str]]]:
    chunk, num_lines = [], 0
    for document in documents:
        chunk.append(document)
        num_lines += len(document)
        if num_lines >= _TOKENIZE_CHUNK_LINES:
            yield chunk
            chunk, num_lines = [], 0
    if chunk:
        yield chunk


# Per-process caches: worker processes build their tokenizer and map the corpus once.
_TOKENIZERS: dict[tuple, object] = {}
_CORPORA: dict[str, instances_lib.TokenizedCorpus] = {}


def _cached_tokenizer(vocab_file: str, do_lower_case: bool, tokenizer: str = "wordpiece",
                      spm_model_file: str = ""):
    key = (vocab_file, do_lower_case, tokenizer, spm_model_file)
    if key not in _TOKENIZERS:
        _TOKENIZERS[key] = load_tokenizer(*key)
    return _TOKENIZERS[key]


def _tokenize_chunk(task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokenises whole documents: (token ids [T] int32, sentence lengths, sentences per doc).

    As the original, a line that tokenises to nothing is dropped and an empty document too.
    """
    tokenizer_args, documents = task
    tokenizer = _cached_tokenizer(*tokenizer_args)
    token_ids, sentence_lengths, document_sizes = [], [], []
    for document in documents:
        num_sentences = 0
        for line in document:
            ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(line))
            if ids:
                token_ids.extend(ids)
                sentence_lengths.append(len(ids))
                num_sentences += 1
        if num_sentences:
            document_sizes.append(num_sentences)
    return (
        np.asarray(token_ids, np.int32),
        np.asarray(sentence_lengths, np.int64),
        np.asarray(document_sizes, np.int64),
    )


def _ordered_map(pool, function, tasks: Iterable, window: int) -> Iterator:
    """pool.imap with at most `window` tasks in flight (imap reads all tasks eagerly)."""
    if pool is None:
        yield from map(function, tasks)
        return
    pending = collections.deque()
    for task in tasks:
        pending.append(pool.apply_async(function, (task,)))
        if len(pending) >= window:
            yield pending.popleft().get()
    while pending:
        yield pending.popleft().get()


def _corpus_paths(corpus_dir: str) -> dict[str, str]:
    return {
        name: os.path.join(corpus_dir, name + ".bin")
        for name in ("token_ids", "sentence_starts", "document_starts")
    }


def _load_corpus(corpus_dir: str) -> instances_lib.TokenizedCorpus:
    if corpus_dir not in _CORPORA:
        paths = _corpus_paths(corpus_dir)

        def mapped(name, dtype):
            if os.path.getsize(paths[name]) == 0:
                return np.zeros([0], dtype)
            # asarray: a plain ndarray view of the map; slicing an np.memmap is several times slower.
            return np.asarray(np.memmap(paths[name], dtype=dtype, mode="r"))

        _CORPORA.clear()  # One corpus per run; do not keep old maps open.
        _CORPORA[corpus_dir] = instances_lib.TokenizedCorpus(
            token_ids=mapped("token_ids", np.int32),
            sentence_starts=mapped("sentence_starts", np.int64),
            document_starts=mapped("document_starts", np.int64),
        )
    return _CORPORA[corpus_dir]


def tokenize_corpus(
    config: PretrainingDataConfig, corpus_dir: str, pool, counters, progress_bar=None
) -> instances_lib.TokenizedCorpus:
    """Tokenises the input files into flat arrays under corpus_dir (see TokenizedCorpus)."""
    input_files = expand_input_files(config.input_files)
    paths = _corpus_paths(corpus_dir)
    documents = read_documents(input_files, config.skip_invalid_utf8, counters)
    tasks = (
        (_tokenizer_args(config), chunk) for chunk in _document_chunks(documents)
    )
    num_tokens = num_sentences = 0
    with (
        open(paths["token_ids"], "wb") as token_file,
        open(paths["sentence_starts"], "wb") as sentence_file,
        open(paths["document_starts"], "wb") as document_file,
    ):
        sentence_file.write(np.zeros([1], np.int64).tobytes())
        document_file.write(np.zeros([1], np.int64).tobytes())
        for token_ids, sentence_lengths, document_sizes in _ordered_map(
            pool, _tokenize_chunk, tasks, window=4 * max(1, config.num_workers)
        ):
            token_file.write(token_ids.tobytes())
            sentence_file.write((num_tokens + np.cumsum(sentence_lengths)).tobytes())
            document_file.write((num_sentences + np.cumsum(document_sizes)).tobytes())
            num_tokens += len(token_ids)
            num_sentences += len(sentence_lengths)
            counters["documents"] += len(document_sizes)
            counters["sentences"] += len(sentence_lengths)
            if progress_bar is not None:
                progress_bar.update(len(sentence_lengths))
    counters["input_tokens"] = num_tokens
    if counters["documents"] == 0:
        raise ValueError(
            f"no documents in {input_files}: every line is blank, invalid or "
            "tokenises to nothing (expected one sentence per line, blank lines "
            "between documents)"
        )
    _CORPORA.pop(corpus_dir, None)
    return _load_corpus(corpus_dir)


def document_blocks(
    corpus: instances_lib.TokenizedCorpus, block_tokens: int
) -> list[tuple[int, int]]:
    """Consecutive document ranges [begin, end) of about block_tokens tokens each."""
    document_ends = np.asarray(corpus.sentence_starts)[np.asarray(corpus.document_starts)[1:]]
    block_of_document = document_ends // max(1, block_tokens)
    # A block ends where the cumulative token count crosses a multiple of block_tokens.
    boundaries = np.flatnonzero(np.diff(block_of_document)) + 1
    edges = [0, *boundaries.tolist(), corpus.num_documents]
    return [(begin, end) for begin, end in zip(edges[:-1], edges[1:]) if end > begin]


@dataclasses.dataclass(frozen=True)
class _UnitTask:
    corpus_dir: str
    config: PretrainingDataConfig
    dupe: int
    block: int
    document_begin: int
    document_end: int


def unit_seed_sequences(
    random_seed: int, dupe: int, block: int
) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(instance-creation seeds, masking seeds) of unit (dupe, block)."""
    unit = np.random.SeedSequence(random_seed, spawn_key=(dupe, block))
    creation, masking = unit.spawn(2)
    return creation, masking


def _tokenizer_args(config: PretrainingDataConfig) -> tuple:
    return (config.vocab_file, config.do_lower_case, config.tokenizer, config.spm_model_file)


def vocab_arrays(tokenizer) -> dict:
    """Id arrays the masking needs (data_pipelines.tokenizers.masking_arrays, as a dict)."""
    from data_pipelines import tokenizers  # pylint: disable=import-outside-toplevel

    arrays = tokenizers.masking_arrays(tokenizer)
    return dict(
        vocab_ids=arrays.vocab_ids,
        special_token_ids=(arrays.cls_id, arrays.sep_id),
        cls_id=arrays.cls_id,
        sep_id=arrays.sep_id,
        mask_id=arrays.mask_id,
        continuation_ids=arrays.continuation,
    )


def create_unit_arrays(
    corpus: instances_lib.TokenizedCorpus,
    document_range: tuple[int, int],
    config: PretrainingDataConfig,
    vocab: dict,
    dupe: int,
    block: int,
) -> dict[str, np.ndarray]:
    """All masked instances of one (dupe, block) unit, shuffled: the seven features and
    "replacement_kind" ([N, P], 0 mask / 1 keep / 2 random / -1 padding)."""
    creation_seeds, masking_seeds = unit_seed_sequences(config.random_seed, dupe, block)
    python_rng = random.Random(int.from_bytes(creation_seeds.generate_state(4).tobytes(), "little"))
    numpy_rng = np.random.default_rng(masking_seeds)
    spans = []
    for document_index in range(*document_range):
        spans.extend(
            instances_lib.create_instances_from_document(
                corpus, document_index, config.max_seq_length, config.short_seq_prob, python_rng
            )
        )
    return masked_instance_arrays(corpus.token_ids, spans, config, vocab, numpy_rng)


def masked_instance_arrays(
    token_ids: np.ndarray,
    spans: list,
    config: PretrainingDataConfig,
    vocab: dict,
    numpy_rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Instance spans -> the seven features and "replacement_kind" of their masked instances, in
    an order shuffled by numpy_rng (the one path from spans to records, also Beam's)."""
    pairs = instances_lib.assemble_instances(
        token_ids, spans, config.max_seq_length, vocab["cls_id"], vocab["sep_id"]
    )
    masked = instances_lib.create_masked_lm_predictions(
        pairs.input_ids,
        pairs.input_mask,
        vocab["special_token_ids"],
        config.masked_lm_prob,
        config.max_predictions_per_seq,
        vocab["vocab_ids"],
        vocab["mask_id"],
        numpy_rng,
        continuation_ids=vocab["continuation_ids"] if config.do_whole_word_mask else None,
    )
    order = numpy_rng.permutation(len(spans))
    arrays = dict(
        input_ids=masked.input_ids,
        input_mask=pairs.input_mask,
        segment_ids=pairs.segment_ids,
        masked_lm_positions=masked.masked_lm_positions,
        masked_lm_ids=masked.masked_lm_ids,
        masked_lm_weights=masked.masked_lm_weights,
        next_sentence_labels=pairs.next_sentence_labels[:, None],
        replacement_kind=masked.replacement_kind,
    )
    return {name: value[order] for name, value in arrays.items()}


def _unit_statistics(arrays: dict[str, np.ndarray]) -> collections.Counter:
    kinds = arrays["replacement_kind"]
    return collections.Counter(
        instances=len(kinds),
        tokens=int(arrays["input_mask"].sum()),
        predictions=int((kinds >= 0).sum()),
        replaced_by_mask=int((kinds == 0).sum()),
        kept=int((kinds == 1).sum()),
        replaced_by_random=int((kinds == 2).sum()),
        random_next=int(arrays["next_sentence_labels"].sum()),
    )


def _run_unit(task: _UnitTask):
    """One (dupe, block) unit -> (framed TFRecord bytes, framed lengths, statistics)."""
    corpus = _load_corpus(task.corpus_dir)
    vocab = vocab_arrays(_cached_tokenizer(*_tokenizer_args(task.config)))
    arrays = create_unit_arrays(
        corpus, (task.document_begin, task.document_end), task.config, vocab, task.dupe, task.block
    )
    framed, framed_lengths = tfrecord_writer.encode_tfrecords(arrays)
    return framed, framed_lengths, _unit_statistics(arrays)


def write_instances(arrays: dict[str, np.ndarray], output_files: list[str]) -> int:
    """Writes feature arrays (features.py names, leading dim N) as TFRecords, round-robin."""
    with tfrecord_writer.RoundRobinTFRecordWriter(output_files) as writer:
        writer.write(*tfrecord_writer.encode_tfrecords(arrays))
        return writer.records_written


def _multiprocessing_context():
    # fork is fastest, but forking a process that already runs TensorFlow's or JAX's threads
    # can deadlock the child; such callers (tests, notebooks) get spawn.
    if "tensorflow" in sys.modules or "jax" in sys.modules:
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def _progress_bar(enabled: bool, **kwargs):
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel

    return tqdm(disable=not enabled, file=sys.stderr, dynamic_ncols=True, **kwargs)


# (flag, accepted values, what the error says): flags that would write useless or silently
# wrong data are refused before anything is read.
_FLAG_RULES = (
    ("max_seq_length", lambda v: v >= 5,
     "needs room for [CLS] A [SEP] B [SEP] with A and B non-empty (>= 5)"),
    ("max_predictions_per_seq", lambda v: v >= 1,
     "must be >= 1 (records without masked LM targets teach nothing)"),
    ("dupe_factor", lambda v: v >= 1, "must be >= 1 (each document is written dupe_factor "
     "times with different masks)"),
    ("masked_lm_prob", lambda v: 0.0 < v <= 1.0, "must be in (0, 1] (0.15 in BERT)"),
    ("short_seq_prob", lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
    ("num_workers", lambda v: v >= 0, "must be >= 0 (0: all cores)"),
    ("block_tokens", lambda v: v >= 1, "must be >= 1"),
)


def validate_config(config: PretrainingDataConfig) -> None:
    """Refuses flag values that would write useless or silently wrong data, each error naming
    the flag and the values it accepts, and outputs that would overwrite an input."""
    for name, accepts, requirement in _FLAG_RULES:
        if not accepts(getattr(config, name)):
            raise ValueError(f"{name}={getattr(config, name)}: {requirement}")
    outputs = [path for path in config.output_files if path.strip()]
    if not outputs or len(outputs) < len(config.output_files):
        raise ValueError(f"output_file={','.join(config.output_files)!r}: empty file name")
    if len({os.path.realpath(path) for path in outputs}) < len(outputs):
        raise ValueError(f"output_file names the same file twice: {outputs}")
    inputs = {os.path.realpath(path) for path in expand_input_files(config.input_files)}
    for path in outputs:
        if os.path.realpath(path) in inputs:
            raise ValueError(f"output file {path} is also an input file; writing it would "
                             "replace the corpus with records")
        if os.path.isdir(path):
            raise ValueError(f"output file {path} is a folder")


def run(config: PretrainingDataConfig) -> dict:
    """Creates the pretraining TFRecords; returns (and prints) a summary dict.

    The outputs are written all or nothing: a run that fails (or is killed) leaves any previous
    files at those paths as they were, and a run that makes no instance writes nothing.
    """
    validate_config(config)
    start_time = time.perf_counter()
    load_tokenizer(*_tokenizer_args(config))  # Fail early on a bad vocab.
    num_workers = config.num_workers or os.cpu_count() or 1
    config = dataclasses.replace(config, num_workers=num_workers)
    counters = collections.Counter()
    for path in config.output_files:
        storage.makedirs(storage.dirname(storage.absolute(path)))
    pool = _multiprocessing_context().Pool(num_workers) if num_workers > 1 else None
    try:
        # The tokenised corpus is scratch space memory-mapped by the workers: local, beside the
        # output when that is local (same disk), in the system's temp folder otherwise.
        first_output = config.output_files[0]
        scratch_parent = (None if storage.is_remote(first_output)
                          else os.path.dirname(os.path.abspath(first_output)))
        with tempfile.TemporaryDirectory(prefix="bertjax_corpus_", dir=scratch_parent) as corpus_dir:
            with _progress_bar(config.progress, desc="tokenizing", unit=" sentences") as bar:
                corpus = tokenize_corpus(config, corpus_dir, pool, counters, bar)
            tokenize_seconds = time.perf_counter() - start_time
            blocks = document_blocks(corpus, config.block_tokens)
            units = [
                _UnitTask(corpus_dir, config, dupe, block, begin, end)
                for dupe in range(config.dupe_factor)
                for block, (begin, end) in enumerate(blocks)
            ]
            unit_order = np.random.default_rng(
                np.random.SeedSequence(config.random_seed, spawn_key=(2**31,))
            ).permutation(len(units))
            with (
                tfrecord_writer.RoundRobinTFRecordWriter(list(config.output_files)) as writer,
                _progress_bar(
                    config.progress, desc="instances", unit=" instances", unit_scale=True
                ) as bar,
            ):
                for framed, framed_lengths, statistics in _ordered_map(
                    pool, _run_unit, (units[k] for k in unit_order), window=2 * num_workers
                ):
                    writer.write(framed, framed_lengths)
                    counters.update(statistics)
                    bar.update(statistics["instances"])
                if not counters["instances"]:
                    # Raised inside the writer: no output file is replaced by an empty one.
                    raise ValueError(
                        f"no training instance from {counters['documents']} document(s) "
                        f"({counters['sentences']} sentences) of {list(config.input_files)}; "
                        "documents are separated by blank lines and need at least two "
                        "sentences (lines) for next-sentence pairs")
                output_bytes = writer.bytes_written
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    seconds = time.perf_counter() - start_time
    predictions = max(counters["predictions"], 1)
    instances = max(counters["instances"], 1)
    summary = dict(
        instances=counters["instances"],
        documents=counters["documents"],
        sentences=counters["sentences"],
        input_bytes=counters["input_bytes"],
        input_tokens=counters["input_tokens"],
        tokens=counters["tokens"],
        masked_lm_predictions=counters["predictions"],
        masked_fraction=counters["predictions"] / max(counters["tokens"], 1),
        masked_per_instance=counters["predictions"] / instances,
        random_next_fraction=counters["random_next"] / instances,
        replaced_by_mask_share=counters["replaced_by_mask"] / predictions,
        kept_share=counters["kept"] / predictions,
        replaced_by_random_share=counters["replaced_by_random"] / predictions,
        invalid_utf8_lines_skipped=counters["invalid_utf8_lines"],
        units=len(units),
        num_workers=num_workers,
        output_files=list(config.output_files),
        output_bytes=output_bytes,
        tokenize_seconds=tokenize_seconds,
        seconds=seconds,
        instances_per_second=counters["instances"] / seconds,
    )
    return summary


def _define_flags():
    # Defined on demand (not at import) so that importing this module next to google-research/bert's
    # script (loaded from a checkout by benchmarks/original_bert.py), which defines the same absl
    # flags, does not clash.
    from absl import flags  # pylint: disable=import-outside-toplevel

    flags.DEFINE_string("input_file", None, "Input text file(s): comma list of files or globs.")
    flags.DEFINE_string("output_file", None, "Output TFRecord file(s): comma list.")
    flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary of the BERT model.")
    flags.DEFINE_enum("tokenizer", "wordpiece", ["wordpiece", "sentencepiece"],
                      "wordpiece (--vocab_file) or sentencepiece (--spm_model_file).")
    flags.DEFINE_string("spm_model_file", "", "SentencePiece model (--tokenizer=sentencepiece).")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the input (uncased models).")
    flags.DEFINE_bool("do_whole_word_mask", False, "Mask whole words rather than WordPieces.")
    flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
    flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum masked LM predictions per seq.")
    flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
    flags.DEFINE_integer("dupe_factor", 10, "Times to duplicate the input (different masks).")
    flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
    flags.DEFINE_float("short_seq_prob", 0.1, "Probability of a shorter target length.")
    flags.DEFINE_integer("num_workers", 0, "Worker processes (0: all cores); output unchanged.")
    flags.DEFINE_integer(
        "block_tokens",
        1 << 18,
        "Tokens per (dupe, block) unit; part of the seed, so changing it changes the output.",
    )
    flags.DEFINE_bool("skip_invalid_utf8", False, "Skip (and count) non-UTF-8 lines.")
    flags.DEFINE_bool("progress", True, "Show progress bars.")
    for name in ("input_file", "output_file"):
        flags.mark_flag_as_required(name)
    return flags.FLAGS


def main(argv):
    del argv
    import json  # pylint: disable=import-outside-toplevel
    from absl import flags  # pylint: disable=import-outside-toplevel

    flag_values = flags.FLAGS
    if flag_values.tokenizer == "wordpiece" and not flag_values.vocab_file:
        from absl import app  # pylint: disable=import-outside-toplevel

        raise app.UsageError("--vocab_file is required with --tokenizer=wordpiece")
    summary = run(
        PretrainingDataConfig(
            input_files=tuple(flag_values.input_file.split(",")),
            output_files=tuple(flag_values.output_file.split(",")),
            vocab_file=flag_values.vocab_file or "",
            do_lower_case=flag_values.do_lower_case,
            do_whole_word_mask=flag_values.do_whole_word_mask,
            max_seq_length=flag_values.max_seq_length,
            max_predictions_per_seq=flag_values.max_predictions_per_seq,
            random_seed=flag_values.random_seed,
            dupe_factor=flag_values.dupe_factor,
            masked_lm_prob=flag_values.masked_lm_prob,
            short_seq_prob=flag_values.short_seq_prob,
            num_workers=flag_values.num_workers,
            block_tokens=flag_values.block_tokens,
            skip_invalid_utf8=flag_values.skip_invalid_utf8,
            progress=flag_values.progress,
            tokenizer=flag_values.tokenizer,
            spm_model_file=flag_values.spm_model_file,
        )
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    from absl import app  # pylint: disable=g-import-not-at-top

    _define_flags()
    app.run(main)
