r"""Pretraining TFRecords with Apache Beam: create_pretraining_data beyond one machine.

    python -m data_pipelines.beam_pretraining_data --input_file='corpus/*.txt' \
      --output_dir=out --num_shards=64 --vocab_file=vocab.txt --do_lower_case \
      --max_seq_length=128 --max_predictions_per_seq=20 --dupe_factor=10 --random_seed=12345 \
      [--tfds_name=wikipedia/20230601.en --tfds_data_dir=...] \
      [Beam options: --runner=DirectRunner --direct_num_workers=2 \
       --direct_running_mode=multi_processing | --runner=DataflowRunner ...
       | --runner=FlinkRunner ...]

Same algorithm and output format as data_pipelines/create_pretraining_data.py (the original
script's rules: instances.create_instances_from_document, assemble_instances,
create_masked_lm_predictions; the seven original features, serialised by tfrecord_writer),
written by Beam's file sink (FramedRecordSink: the files beam.io.WriteToTFRecord writes) as
OUTPUT_DIR/pretraining.tfrecord-SSSSS-of-NNNNN, plus
OUTPUT_DIR/summary.json (the statistics, as create_pretraining_data prints them).

Sources: text files (any path data_pipelines.storage reads: local, gs://, ...; one sentence
per line, a blank line between documents) and TFDS text datasets (--tfds_name; one example =
one document, split into sentences by corpora.split_sentences, as corpora.tfds_documents).

Differences from the single-machine path, all so that the output given a seed does not depend
on the runner, the number of workers or how the runner splits the work into bundles:

* Seeds: each (document, dupe) draws from numpy SeedSequence(entropy=(random_seed,
  stable_hash(document key)), spawn_key=(dupe,)), the key being (the file's path below the
  folder all input files share, document index in the file) or the TFDS example id, so the
  output does not change when the corpus moves (local -> gs://). (The single-machine path
  seeds blocks of documents.)
* Documents end at the end of a file (the single-machine path, like the original, continues a
  document into the next file until a blank line).
* Random next: the random document is drawn uniformly from a deterministic sample of
  --random_document_pool documents (those with the smallest stable_hash(random_seed, key),
  a uniform sample), not from the whole corpus held in memory; the sample is a side input on
  every worker. With a pool at least as large as the corpus the rule is the original's exactly
  (uniform over every other document); with a smaller pool the random B segments come from
  that sample only (each pool document serves about num_random_next / pool_size times, from a
  random sentence onwards).
* Shuffle: instances are shuffled within a (document, dupe), whose records stay together;
  batches of such groups are spread over the shards by Beam's file sink. Which shard a
  record lands in and the order inside a shard are the runner's, so runs with the same seed
  write the same set of records, not the same bytes. (Readers shuffle with a buffer, as for
  the single-machine output, whose units are likewise written whole.)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from typing import Iterator, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from data_pipelines import beam_documents
from data_pipelines import create_pretraining_data as cpd
from data_pipelines import instances as instances_lib
from data_pipelines import storage
from data_pipelines import tfrecord_writer

_ENCODE_BATCH_ROWS = 4096  # Instances per encoded output element (at most, plus one document).
OUTPUT_PREFIX = "pretraining.tfrecord"


@dataclasses.dataclass(frozen=True)
class BeamPretrainingConfig:
    """The create_pretraining_data flags plus the Beam ones.

    Attributes:
      input_files: text file paths or glob patterns (any storage scheme); may be empty when
        tfds_name is given.
      output_dir: receives OUTPUT_PREFIX-SSSSS-of-NNNNN shards and summary.json.
      vocab_file: WordPiece vocabulary (any storage scheme).
      num_shards: output files; 0 lets the runner decide.
      tfds_name, tfds_split, tfds_data_dir, tfds_text_key: a prepared TFDS text dataset as a
        (further) source; no download happens.
      random_document_pool: documents in the random-next sample (see the module docstring).
      Others: as create_pretraining_data.PretrainingDataConfig.
    """

    input_files: tuple[str, ...]
    output_dir: str
    vocab_file: str
    num_shards: int = 0
    do_lower_case: bool = True
    do_whole_word_mask: bool = False
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    random_seed: int = 12345
    dupe_factor: int = 10
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    skip_invalid_utf8: bool = False
    tfds_name: str | None = None
    tfds_split: str = "train"
    tfds_data_dir: str | None = None
    tfds_text_key: str = "text"
    random_document_pool: int = 100_000


def stable_hash(*parts) -> int:
    """64-bit hash of the parts' str() forms, the same in every process and Python version
    (the builtin hash() of a str is salted per process)."""
    text = "\x1f".join(str(part) for part in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def document_seed_sequences(
    random_seed: int, key: str, dupe: int
) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(instance-creation seeds, masking seeds) of one (document, dupe)."""
    document = np.random.SeedSequence(
        entropy=(random_seed, stable_hash(key)), spawn_key=(dupe,)
    )
    creation, masking = document.spawn(2)
    return creation, masking


class RandomDocumentPool(NamedTuple):
    """The random-next sample: corpus holds its documents, index_of_key maps key -> index."""

    corpus: instances_lib.TokenizedCorpus
    index_of_key: dict


def build_pool(sampled: list) -> RandomDocumentPool:
    """[(hash, key, TokenizedDocument)] (any order) -> the pool, in (hash, key) order."""
    sampled = sorted(sampled, key=lambda item: (item[0], item[1]))
    if not sampled:
        raise ValueError(
            "no documents: every input line is blank, invalid or tokenises to nothing "
            "(expected one sentence per line, blank lines between documents)"
        )
    lengths = np.concatenate([document.sentence_lengths for _, _, document in sampled])
    counts = [len(document.sentence_lengths) for _, _, document in sampled]
    corpus = instances_lib.TokenizedCorpus(
        token_ids=np.concatenate([document.token_ids for _, _, document in sampled]),
        sentence_starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        document_starts=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
    )
    return RandomDocumentPool(corpus, {key: index for index, (_, key, _) in enumerate(sampled)})


class _PoolWithDocument:
    """The pool plus one document, seen as one corpus by create_instances_from_document
    (num_documents and document_sentence_starts); the document gets the last index and its
    tokens the offsets after the pool's, unless it is itself in the pool. Nothing is copied:
    `tokens` reads a span from whichever array holds it."""

    def __init__(
        self, pool: RandomDocumentPool, key: str, document: beam_documents.TokenizedDocument
    ):
        self._pool = pool.corpus
        self._pool_tokens = len(pool.corpus.token_ids)
        self._document = document
        if key in pool.index_of_key:
            self.document_index = pool.index_of_key[key]
            self.num_documents = pool.corpus.num_documents
        else:
            self.document_index = pool.corpus.num_documents
            self.num_documents = pool.corpus.num_documents + 1
        self._starts = (
            self._pool_tokens + np.concatenate([[0], np.cumsum(document.sentence_lengths)])
        ).tolist()

    def document_sentence_starts(self, document_index: int) -> list[int]:
        if document_index == self._pool.num_documents:
            return self._starts
        return self._pool.document_sentence_starts(document_index)

    def tokens(self, start: int, length: int) -> np.ndarray:
        if start >= self._pool_tokens:
            start -= self._pool_tokens
            return self._document.token_ids[start : start + length]
        return self._pool.token_ids[start : start + length]


def _compact_spans(
    corpus: _PoolWithDocument, spans: list[instances_lib.InstanceSpans]
) -> tuple[np.ndarray, list[instances_lib.InstanceSpans]]:
    """The spans' tokens back to back ([sum of lengths] int32) and the spans re-pointed there,
    so that assemble_instances gathers from a small array."""
    pieces, compact, offset = [], [], 0
    for span in spans:
        pieces.append(corpus.tokens(span.a_start, span.a_length))
        pieces.append(corpus.tokens(span.b_start, span.b_length))
        compact.append(
            instances_lib.InstanceSpans(
                offset, span.a_length, offset + span.a_length, span.b_length, span.is_random_next
            )
        )
        offset += span.a_length + span.b_length
    return np.concatenate(pieces).astype(np.int32), compact


class CreateInstances(beam.DoFn):
    """(key, TokenizedDocument), pool side input -> TFRecord-framed tf.train.Example records
    back to back, each dupe's instances of a document in a seeded random order.

    Elements carry the records of several documents (about _ENCODE_BATCH_ROWS, or what a
    bundle holds): a TFRecord file is its records back to back, and both the encoder
    (vectorised over rows) and Beam (per element) cost too much per call otherwise.
    """

    def __init__(self, config: BeamPretrainingConfig):
        self._config = config

    def setup(self):
        tokenizer = cpd.load_tokenizer(
            beam_documents.local_vocab_file(self._config.vocab_file), self._config.do_lower_case
        )
        self._vocab = cpd.vocab_arrays(tokenizer)
        self._counters = {
            name: beam_documents.counter(name)
            for name in (
                "instances", "tokens", "predictions", "replaced_by_mask", "kept",
                "replaced_by_random", "random_next",
            )
        }

    def process(self, element, pool: RandomDocumentPool) -> Iterator[bytes]:
        key, document = element
        config, vocab = self._config, self._vocab
        corpus = _PoolWithDocument(pool, key, document)
        for dupe in range(config.dupe_factor):
            creation_seeds, masking_seeds = document_seed_sequences(config.random_seed, key, dupe)
            python_rng = random.Random(
                int.from_bytes(creation_seeds.generate_state(4).tobytes(), "little")
            )
            numpy_rng = np.random.default_rng(masking_seeds)
            spans = instances_lib.create_instances_from_document(
                corpus, corpus.document_index, config.max_seq_length, config.short_seq_prob,
                python_rng,
            )
            if not spans:
                continue
            token_ids, spans = _compact_spans(corpus, spans)
            arrays = cpd.masked_instance_arrays(token_ids, spans, config, vocab, numpy_rng)
            self._count(arrays.pop("replacement_kind"), arrays)
            self._pending.append(arrays)
            self._pending_rows += len(arrays["input_ids"])
            if self._pending_rows >= _ENCODE_BATCH_ROWS:
                yield self._encode_pending()

    def start_bundle(self):
        self._pending, self._pending_rows = [], 0

    def finish_bundle(self):
        if self._pending:
            yield WindowedValue(self._encode_pending(), MIN_TIMESTAMP, [GlobalWindow()])

    def _encode_pending(self) -> bytes:
        """The buffered instances as TFRecord-framed records back to back. Encoding is
        deterministic, so batching it over documents (which bundles decide) changes which
        records travel together, never the records."""
        arrays = {
            name: np.concatenate([pending[name] for pending in self._pending])
            for name in self._pending[0]
        }
        self._pending, self._pending_rows = [], 0
        framed, _ = tfrecord_writer.encode_tfrecords(arrays)
        return framed.tobytes()

    def _count(self, kinds: np.ndarray, arrays: dict[str, np.ndarray]) -> None:
        values = dict(
            instances=len(kinds),
            tokens=int(arrays["input_mask"].sum()),
            predictions=int((kinds >= 0).sum()),
            replaced_by_mask=int((kinds == 0).sum()),
            kept=int((kinds == 1).sum()),
            replaced_by_random=int((kinds == 2).sum()),
            random_next=int(arrays["next_sentence_labels"].sum()),
        )
        for name, value in values.items():
            self._counters[name].inc(value)


class FramedRecordSink(beam.io.filebasedsink.FileBasedSink):
    """TFRecord files from records already framed by tfrecord_writer (length, crc32c, data,
    crc32c): what beam.io.WriteToTFRecord writes, but with the framing computed vectorised for
    a whole document at a time, and without WriteToTFRecord's per-record crc32c dependency
    (python-snappy, google-crc32c or crcmod; none is a project requirement). Beam's file sink
    does the sharding and the atomic temp-then-rename finalisation.
    """

    def __init__(self, file_path_prefix: str, num_shards: int):
        super().__init__(
            file_path_prefix,
            coder=beam.coders.BytesCoder(),
            num_shards=num_shards,
            mime_type="application/octet-stream",
            compression_type=beam.io.filesystem.CompressionTypes.UNCOMPRESSED,
        )

    def write_encoded_record(self, file_handle, encoded_value: bytes) -> None:
        file_handle.write(encoded_value)


def _pool_entry(random_seed: int):
    def entry(element):
        key, document = element
        return stable_hash(random_seed, "random-document-pool", key), key, document

    return entry


def build_pipeline(pipeline: beam.Pipeline, config: BeamPretrainingConfig) -> None:
    """Adds the read -> tokenise -> instances -> TFRecord shards graph to `pipeline`."""
    sources = []
    if config.input_files:
        files = storage.expand_patterns(list(config.input_files))
        sources.append(
            pipeline
            | "Files" >> beam.Create(list(zip(files, beam_documents.relative_names(files))))
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadText" >> beam.ParDo(beam_documents.ReadTextDocuments(config.skip_invalid_utf8))
        )
    if config.tfds_name:
        pieces = beam_documents.tfds_split_pieces(
            config.tfds_name, config.tfds_split, config.tfds_data_dir
        )
        sources.append(
            pipeline
            | "TfdsPieces" >> beam.Create(pieces)
            | "SpreadPieces" >> beam.Reshuffle()
            | "ReadTfds"
            >> beam.ParDo(
                beam_documents.ReadTfdsDocuments(
                    config.tfds_name, config.tfds_data_dir, config.tfds_text_key
                )
            )
        )
    if not sources:
        raise ValueError("no source: give --input_file and/or --tfds_name")
    documents = (
        sources | "AllSources" >> beam.Flatten()
        # A file holds many documents: spread them before the costly steps.
        | "SpreadDocuments" >> beam.Reshuffle()
        | "Tokenize"
        >> beam.ParDo(
            beam_documents.TokenizeDocuments(config.vocab_file, config.do_lower_case)
        )
    )
    pool = (
        documents
        | "PoolKeys" >> beam.Map(_pool_entry(config.random_seed))
        | "Sample"
        >> beam.combiners.Top.Smallest(
            config.random_document_pool, key=lambda item: (item[0], item[1])
        )
        | "BuildPool" >> beam.Map(build_pool)
    )
    _ = (
        documents
        | "Instances" >> beam.ParDo(CreateInstances(config), pool=beam.pvalue.AsSingleton(pool))
        | "Write"
        >> beam.io.Write(
            FramedRecordSink(storage.join(config.output_dir, OUTPUT_PREFIX), config.num_shards)
        )
    )


def _summary(counters: dict, config: BeamPretrainingConfig) -> dict:
    predictions = max(counters.get("predictions", 0), 1)
    instances = counters.get("instances", 0)
    return dict(
        instances=instances,
        documents=counters.get("documents", 0),
        sentences=counters.get("sentences", 0),
        input_bytes=counters.get("input_bytes", 0),
        input_tokens=counters.get("input_tokens", 0),
        tokens=counters.get("tokens", 0),
        masked_lm_predictions=counters.get("predictions", 0),
        masked_fraction=counters.get("predictions", 0) / max(counters.get("tokens", 0), 1),
        masked_per_instance=counters.get("predictions", 0) / max(instances, 1),
        random_next_fraction=counters.get("random_next", 0) / max(instances, 1),
        replaced_by_mask_share=counters.get("replaced_by_mask", 0) / predictions,
        kept_share=counters.get("kept", 0) / predictions,
        replaced_by_random_share=counters.get("replaced_by_random", 0) / predictions,
        invalid_utf8_lines_skipped=counters.get("invalid_utf8_lines", 0),
        output_files=sorted(storage.glob(storage.join(config.output_dir, OUTPUT_PREFIX + "*"))),
    )


def run(config: BeamPretrainingConfig, pipeline_args: list[str] | None = None) -> dict:
    """Runs the pipeline (Beam options in pipeline_args) and returns the summary dict, also
    written to OUTPUT_DIR/summary.json. Waits for the runner to finish."""
    # pylint: disable=import-outside-toplevel
    from apache_beam.metrics.metric import MetricsFilter
    from apache_beam.options.pipeline_options import PipelineOptions

    if config.max_seq_length < 5:
        raise ValueError(
            f"max_seq_length={config.max_seq_length}: needs room for [CLS] A [SEP] B [SEP] "
            "with A and B non-empty (>= 5)"
        )
    if config.random_document_pool < 1:
        raise ValueError(f"random_document_pool={config.random_document_pool}: must be >= 1")
    # Fail early on a bad vocab, before any worker starts.
    cpd.load_tokenizer(beam_documents.local_vocab_file(config.vocab_file), config.do_lower_case)
    storage.makedirs(config.output_dir)
    pipeline = beam.Pipeline(options=PipelineOptions(list(pipeline_args or [])))
    build_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    query = result.metrics().query(
        MetricsFilter().with_namespace(beam_documents.METRICS_NAMESPACE)
    )
    counters: dict[str, int] = {}
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        counters[counter.key.metric.name] = counters.get(counter.key.metric.name, 0) + value
    if not counters.get("instances"):
        raise ValueError(
            f"no instances written from {list(config.input_files) or config.tfds_name}: no "
            "document survived tokenisation"
        )
    summary = _summary(counters, config)
    storage.write_text(
        storage.join(config.output_dir, "summary.json"), json.dumps(summary, indent=1)
    )
    return summary


def _define_flags():
    from absl import flags  # pylint: disable=import-outside-toplevel

    flags.DEFINE_string("input_file", None, "Input text file(s): comma list of files or globs.")
    flags.DEFINE_string("output_dir", None, "Folder for the TFRecord shards and summary.json.")
    flags.DEFINE_integer("num_shards", 0, "Output files (0: the runner decides).")
    flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary of the BERT model.")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the input (uncased models).")
    flags.DEFINE_bool("do_whole_word_mask", False, "Mask whole words rather than WordPieces.")
    flags.DEFINE_integer("max_seq_length", 128, "Maximum sequence length.")
    flags.DEFINE_integer("max_predictions_per_seq", 20, "Maximum masked LM predictions per seq.")
    flags.DEFINE_integer("random_seed", 12345, "Random seed for data generation.")
    flags.DEFINE_integer("dupe_factor", 10, "Times to duplicate the input (different masks).")
    flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.")
    flags.DEFINE_float("short_seq_prob", 0.1, "Probability of a shorter target length.")
    flags.DEFINE_bool("skip_invalid_utf8", False, "Skip (and count) non-UTF-8 lines.")
    flags.DEFINE_string(
        "tfds_name", None, "A prepared TFDS text dataset, e.g. wikipedia/20230601.en."
    )
    flags.DEFINE_string("tfds_split", "train", "Its split.")
    flags.DEFINE_string("tfds_data_dir", None, "Its data_dir (TFDS default when unset).")
    flags.DEFINE_string("tfds_text_key", "text", "Its text feature.")
    flags.DEFINE_integer(
        "random_document_pool", 100_000, "Documents in the random-next sample (a side input)."
    )
    flags.DEFINE_integer(
        "num_workers", 0, "Workers: passed on to Beam (Dataflow's initial worker count); with "
        "the local runner, worker processes (--direct_num_workers, multi_processing)."
    )
    flags.mark_flag_as_required("output_dir")
    flags.mark_flag_as_required("vocab_file")
    return flags.FLAGS


def main(argv):
    from absl import flags  # pylint: disable=import-outside-toplevel

    flag_values = flags.FLAGS
    pipeline_args = list(argv[1:])
    if flag_values.num_workers:
        # --num_workers is create_pretraining_data's flag and also Beam's (Dataflow's initial
        # worker count): absl takes it, so hand it on; for the local runner it means processes.
        pipeline_args.append(f"--num_workers={flag_values.num_workers}")
        runner = [a.split("=", 1)[-1] for a in pipeline_args if a.startswith("--runner=")]
        local = not runner or runner[-1] in ("DirectRunner", "FnApiRunner")
        if local and not any(a.startswith("--direct_num_workers") for a in pipeline_args):
            pipeline_args += [
                f"--direct_num_workers={flag_values.num_workers}",
                "--direct_running_mode=multi_processing",
            ]
    summary = run(
        BeamPretrainingConfig(
            input_files=tuple(p for p in (flag_values.input_file or "").split(",") if p),
            output_dir=flag_values.output_dir,
            vocab_file=flag_values.vocab_file,
            num_shards=flag_values.num_shards,
            do_lower_case=flag_values.do_lower_case,
            do_whole_word_mask=flag_values.do_whole_word_mask,
            max_seq_length=flag_values.max_seq_length,
            max_predictions_per_seq=flag_values.max_predictions_per_seq,
            random_seed=flag_values.random_seed,
            dupe_factor=flag_values.dupe_factor,
            masked_lm_prob=flag_values.masked_lm_prob,
            short_seq_prob=flag_values.short_seq_prob,
            skip_invalid_utf8=flag_values.skip_invalid_utf8,
            tfds_name=flag_values.tfds_name,
            tfds_split=flag_values.tfds_split,
            tfds_data_dir=flag_values.tfds_data_dir,
            tfds_text_key=flag_values.tfds_text_key,
            random_document_pool=flag_values.random_document_pool,
        ),
        pipeline_args,
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    from absl import app  # pylint: disable=g-import-not-at-top
    from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top

    # Run the imported module, not __main__: Beam pickles the DoFns and the TokenizedDocument
    # elements by their module name, which worker processes can import.
    from data_pipelines import beam_pretraining_data  # pylint: disable=g-import-not-at-top

    beam_pretraining_data._define_flags()  # pylint: disable=protected-access
    # Flags this module does not know are Beam pipeline options: pass them through.
    app.run(
        beam_pretraining_data.main,
        flags_parser=lambda argv: absl_flags.FLAGS(argv, known_only=True),
    )
