"""Documents for the Beam pipelines: text-file and TFDS sources, tokenisation, stable keys.

Used by data_pipelines/beam_pretraining_data.py. A document is (key, lines) and, tokenised,
(key, TokenizedDocument). Keys are stable strings (a file's path below the folder all input
files share plus the document's index in the file, or the TFDS example id), so that seeds
derived from them do not depend on the runner, the worker count or where the corpus lives.
Counters go to Beam metrics under METRICS_NAMESPACE.
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterator, NamedTuple

import apache_beam as beam
import numpy as np

from data_pipelines import corpora
from data_pipelines import create_pretraining_data as cpd
from data_pipelines import storage

METRICS_NAMESPACE = "beam_pretraining_data"


class TokenizedDocument(NamedTuple):
    """One document: token_ids [T] int32 back to back, sentence_lengths [num_sentences]."""

    token_ids: np.ndarray
    sentence_lengths: np.ndarray


def counter(name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, name)


def relative_names(files: list[str]) -> list[str]:
    """Each file's path after the folder all of them share (the basename for one file): the
    document keys use these, so that the output does not change when the corpus moves."""
    cut = os.path.commonprefix(files).rfind("/") + 1
    return [path[cut:] for path in files]


class ReadTextDocuments(beam.DoFn):
    """(path, name) -> (key, lines) per document; key "name:document index in the file", name
    from relative_names."""

    def __init__(self, skip_invalid_utf8: bool):
        self._skip_invalid_utf8 = skip_invalid_utf8

    def setup(self):
        self._input_bytes = counter("input_bytes")
        self._invalid_lines = counter("invalid_utf8_lines")

    def process(self, element: tuple[str, str]) -> Iterator[tuple[str, list[str]]]:
        path, name = element
        document: list[str] = []
        index = 0
        with storage.open(path, "rb") as reader:
            for line_number, raw_line in enumerate(reader, start=1):
                self._input_bytes.inc(len(raw_line))
                try:
                    line = raw_line.decode("utf-8").strip()
                except UnicodeDecodeError as error:
                    if self._skip_invalid_utf8:
                        self._invalid_lines.inc()
                        continue
                    raise cpd.InvalidUtf8Error(
                        f"{path}:{line_number}: not valid UTF-8 ({error.reason} at byte "
                        f"{error.start} of the line); fix the file or pass --skip_invalid_utf8"
                    ) from None
                if line:
                    document.append(line)
                elif document:
                    yield f"{name}:{index}", document
                    document, index = [], index + 1
        if document:
            yield f"{name}:{index}", document


class ReadTfdsDocuments(beam.DoFn):
    """TFDS split piece ("train[3shard]") -> (key, sentences) per example; key the tfds_id."""

    def __init__(self, name: str, data_dir: str | None, text_key: str):
        self._name, self._data_dir, self._text_key = name, data_dir, text_key

    def process(self, piece: str) -> Iterator[tuple[str, list[str]]]:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel
        import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass  # Devices already initialised in this process.
        dataset = tfds.load(
            self._name,
            split=piece,
            data_dir=self._data_dir,
            download=False,
            shuffle_files=False,
            read_config=tfds.ReadConfig(add_tfds_id=True),
        )
        for index, example in enumerate(tfds.as_numpy(dataset)):
            if self._text_key not in example:
                raise KeyError(
                    f"TFDS dataset {self._name} has no feature {self._text_key!r}; "
                    f"features: {sorted(example)}"
                )
            key = example.get("tfds_id")
            key = key.decode("utf-8") if key is not None else f"{self._name}/{piece}:{index}"
            text = example[self._text_key]
            text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
            sentences = []
            for paragraph in text.split("\n"):
                sentences.extend(corpora.split_sentences(paragraph))
            if sentences:
                yield key, sentences


def tfds_split_pieces(name: str, split: str, data_dir: str | None) -> list[str]:
    """One split piece per TFDS shard file ("train[0shard]", ...), so that workers read the
    shards in parallel; the whole split as one piece when the dataset info lists no shards."""
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    builder = tfds.builder(name, data_dir=data_dir)
    try:
        num_shards = builder.info.splits[split].num_shards
    except (KeyError, ValueError):
        num_shards = 0
    if "[" in split or not num_shards:
        return [split]
    return [f"{split}[{shard}shard]" for shard in range(num_shards)]


def local_vocab_file(vocab_file: str) -> str:
    """The tokenizer reads local files only: a remote vocab is copied to a temporary file."""
    if not storage.is_remote(vocab_file):
        return vocab_file
    local = os.path.join(tempfile.mkdtemp(prefix="bertjax_vocab_"), "vocab.txt")
    storage.copy(vocab_file, local)
    return local


class TokenizeDocuments(beam.DoFn):
    """(key, lines) -> (key, TokenizedDocument); as the original, a line that tokenises to
    nothing is dropped, and a document left without lines too."""

    def __init__(self, vocab_file: str, do_lower_case: bool):
        self._vocab_file, self._do_lower_case = vocab_file, do_lower_case

    def setup(self):
        self._tokenizer = cpd.load_tokenizer(
            local_vocab_file(self._vocab_file), self._do_lower_case
        )
        self._documents = counter("documents")
        self._sentences = counter("sentences")
        self._tokens = counter("input_tokens")

    def process(self, element) -> Iterator[tuple[str, TokenizedDocument]]:
        key, lines = element
        token_ids, lengths = [], []
        for line in lines:
            ids = self._tokenizer.convert_tokens_to_ids(self._tokenizer.tokenize(line))
            if ids:
                token_ids.extend(ids)
                lengths.append(len(ids))
        if lengths:
            self._documents.inc()
            self._sentences.inc(len(lengths))
            self._tokens.inc(len(token_ids))
            yield key, TokenizedDocument(
                np.asarray(token_ids, np.int32), np.asarray(lengths, np.int64)
            )
