"""Dynamic masking: sentence pairs and masks made on the fly, streaming, exactly resumable.

Instead of fixing dupe_factor masks on disk, every epoch pairs the documents afresh and every
batch draws fresh masks, while the GLOBAL batch stays an exact function of (seed, step), the
same whatever the number of hosts:

* Streams: the sorted input files are dealt round-robin to K = min(num_files, B, max_streams)
  streams (file f to stream f % K); row r of every global batch [B] comes from stream
  r * K // B (contiguous blocks of rows). A host builds only the streams of its rows
  [process_index * b, (process_index + 1) * b), so it reads and tokenises only their files
  (hosts share a stream when there are more hosts than streams; all share one for one file).
  Each stream costs one masking call per batch, hence the cap (16 by default).
* Streaming: a stream reads its files one at a time, line by line, and tokenises
  `window_documents` documents at a time; each window is cached under `cache_dir` as one .npz
  of flat arrays (token ids, sentence and document offsets: instances.TokenizedCorpus), written
  atomically through data_pipelines.storage, keyed by the tokenizer (kind, vocabulary sha256,
  casing) and the file's path, size and mtime; later epochs and later runs read the cache.
  Start-up costs one window per stream and memory holds one window per stream, whatever the
  corpus size.
* Pairing: stream s in epoch e draws from SeedSequence(seed, spawn_key=(s, e)): the order of
  its files, then per window the order of its documents and the original algorithm
  (instances.create_instances_from_document); pairs are shuffled within the window.
  Differences from the original, which holds the whole corpus in memory: a document ends at a
  blank line or at the end of its file (the original continues it into the next file); the
  random next segment comes from a document of the same window, not of the whole corpus, and
  pairs are shuffled within a window, not over the corpus. Statistics match the original's
  where a file fits in one window (the default corpus); otherwise NSP negatives stay local
  (take window_documents in the thousands so that they rarely share a topic).
* Masking: instances.create_masked_lm_predictions, THE masking of the offline writer too
  (per-token or whole-word; random replacements uniform over the whole vocabulary list,
  special tokens included, as the original), on each stream's block of global batch k with
  rng = numpy default_rng([seed, k, s]).
* Resume: `start_step=k` skips k blocks of every stream (pairing book-keeping only: no
  assembling, no masking), so it yields exactly the batches of an uninterrupted run.

Output: numpy dicts of the seven pretraining features (as
pretraining_input.make_pretraining_dataset), this host's rows of each global batch, made ahead
by a background thread (`prefetched`).
Shape legend: B global batch, b = B / process_count rows per host, S = max_seq_length,
P = max_predictions_per_seq, K streams.
"""

from __future__ import annotations

import array
import dataclasses
import hashlib
import io
import itertools
import json
import os
import queue
import random
import threading
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from data_pipelines import instances as instances_lib
from data_pipelines import storage
from data_pipelines import tokenizers as tokenizers_lib

_CACHE_FORMAT = 1
_ASSEMBLE_ROWS = 512


@dataclasses.dataclass(frozen=True)
class DynamicMaskingConfig:
    """How pairs and masks are made (the original flags) and where tokenised files are cached.

    Attributes:
      max_seq_length, max_predictions_per_seq, masked_lm_prob, short_seq_prob,
        do_whole_word_mask: as the original flags.
      seed: the stream is a function of (seed, step).
      window_documents: random next segments come from this many consecutive documents.
      max_streams: at most this many streams (each costs a masking call per batch).
      cache_dir: where tokenised files are cached ("" keeps them in memory only).
    """

    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    do_whole_word_mask: bool = False
    seed: int = 12345
    window_documents: int = 1024
    cache_dir: str = ""
    max_streams: int = 16


def tokenize_windows(path: str, tokenizer, window_documents: int
                     ) -> Iterator[instances_lib.TokenizedCorpus]:
    """The documents of one file in the original text format, tokenised line by line and
    yielded `window_documents` at a time (the last window may be smaller).

    A blank line ends a document, and so does the end of the file; sentences that tokenise to
    nothing and empty documents are dropped. Raises ValueError naming the file and line when a
    line is not UTF-8.
    """
    token_ids, sentence_ends, document_ends = array.array("i"), array.array("q"), array.array("q")

    def window():
        return instances_lib.TokenizedCorpus(
            token_ids=np.array(token_ids, np.int32),
            sentence_starts=np.concatenate([[0], np.array(sentence_ends, np.int64)]),
            document_starts=np.concatenate([[0], np.array(document_ends, np.int64)]))

    def end_document():
        if len(sentence_ends) and (not document_ends or document_ends[-1] < len(sentence_ends)):
            document_ends.append(len(sentence_ends))

    tokenize_to_ids = tokenizer.tokenize_to_ids
    with storage.open(path, "rb") as reader:
        for line_number, raw_line in enumerate(reader, start=1):
            try:
                line = raw_line.decode("utf-8").strip()
            except UnicodeDecodeError as error:
                raise ValueError(f"{path}:{line_number}: not valid UTF-8 ({error.reason} at "
                                 f"byte {error.start} of the line)") from None
            if not line:
                end_document()
                if len(document_ends) == window_documents:
                    yield window()
                    token_ids, sentence_ends, document_ends = (
                        array.array("i"), array.array("q"), array.array("q"))
                continue
            ids = tokenize_to_ids(line)
            if ids:
                token_ids.extend(ids)
                sentence_ends.append(len(token_ids))
    end_document()
    if document_ends:
        yield window()


def tokenize_file(path: str, tokenizer) -> instances_lib.TokenizedCorpus:
    """All documents of one file as one TokenizedCorpus (tokenize_windows in one window)."""
    windows = list(tokenize_windows(path, tokenizer, window_documents=2**62))
    if windows:
        return windows[0]
    return instances_lib.TokenizedCorpus(np.zeros([0], np.int32), np.zeros([1], np.int64),
                                         np.zeros([1], np.int64))


def _cache_folder(cache_dir: str, path: str, tokenizer_key: str, window_documents: int) -> str:
    """Cache folder of `path`: keyed by the tokenizer, the window and the file's path, size
    and (local files) mtime."""
    stamp = [path, storage.size(path), window_documents]
    if not storage.is_remote(path):
        stamp.append(os.stat(path).st_mtime_ns)
    file_key = hashlib.sha256(repr(stamp).encode()).hexdigest()[:20]
    name = storage.basename(path).replace(".", "_")[:60]
    return storage.join(cache_dir, f"tokenized-v{_CACHE_FORMAT}-{tokenizer_key}",
                        f"{name}-{file_key}")


def file_windows(path: str, tokenizer, window_documents: int, cache_dir: str = "",
                 tokenizer_key: str = "") -> Iterator[instances_lib.TokenizedCorpus]:
    """tokenize_windows(path), through the cache under `cache_dir` when one is given.

    Each window is written as it is made (window-NNNNNN.npz, atomically); `complete.json`,
    written after the file's last window, marks the file as cached. A file whose pass was cut
    short is tokenised again from its start.
    """
    if not cache_dir:
        yield from tokenize_windows(path, tokenizer, window_documents)
        return
    folder = _cache_folder(cache_dir, path, tokenizer_key, window_documents)
    marker = storage.join(folder, "complete.json")
    if storage.exists(marker):
        num_windows = json.loads(storage.read_text(marker))["windows"]
        for index in range(num_windows):
            with storage.open(storage.join(folder, f"window-{index:06d}.npz"), "rb") as reader:
                arrays = np.load(io.BytesIO(reader.read()))
                yield instances_lib.TokenizedCorpus(
                    arrays["token_ids"], arrays["sentence_starts"], arrays["document_starts"])
        return
    # One window of lookahead: the marker is written when the last window is known, before it
    # is yielded (a consumer may never ask for more after the last window).
    num_windows, previous = 0, None
    for window in tokenize_windows(path, tokenizer, window_documents):
        with storage.atomic_write(storage.join(folder, f"window-{num_windows:06d}.npz"),
                                  "wb") as writer:
            np.savez(writer, token_ids=window.token_ids, sentence_starts=window.sentence_starts,
                     document_starts=window.document_starts)
        num_windows += 1
        if previous is not None:
            yield previous
        previous = window
    storage.write_text(marker, json.dumps(dict(path=path, windows=num_windows)))
    if previous is not None:
        yield previous


def stream_windows(files: Sequence[str], tokenizer, stream_index: int,
                   config: DynamicMaskingConfig, tokenizer_key: str = "",
                   num_epochs: int | None = None, opened: list | None = None):
    """Unassembled pairs of one stream, window after window, epoch after epoch.

    Args:
      files: the stream's files.
      opened: if given, each file's path is appended when the stream starts reading it.
    Yields (window token_ids [T], shuffled list of instances.InstanceSpans into them).
    """
    epochs = itertools.count() if num_epochs is None else range(num_epochs)
    for epoch in epochs:
        seeds = np.random.SeedSequence(config.seed, spawn_key=(stream_index, epoch))
        numpy_rng = np.random.default_rng(seeds)
        python_rng = random.Random(int.from_bytes(seeds.generate_state(4).tobytes(), "little"))
        any_pairs = False
        for file_index in numpy_rng.permutation(len(files)):
            path = files[int(file_index)]
            if opened is not None:
                opened.append(path)
            for window in file_windows(path, tokenizer, config.window_documents,
                                       config.cache_dir, tokenizer_key):
                spans = []
                for document_index in numpy_rng.permutation(window.num_documents):
                    spans.extend(instances_lib.create_instances_from_document(
                        window, int(document_index), config.max_seq_length,
                        config.short_seq_prob, python_rng))
                if spans:
                    any_pairs = True
                    shuffle = numpy_rng.permutation(len(spans))
                    yield window.token_ids, [spans[i] for i in shuffle]
        if not any_pairs:
            raise ValueError(f"stream {stream_index} has no document in its files {list(files)}")


class _Rows:
    """Takes rows from a stream of windows. Rows are assembled _ASSEMBLE_ROWS at a time (one
    vectorised gather amortised over several batches); skipped rows are never assembled."""

    def __init__(self, windows, max_seq_length: int, cls_id: int, sep_id: int):
        self._windows = windows
        self._token_ids = None
        self._spans: list = []
        self._index = 0  # next row of the current window
        self._chunk = None  # assembled rows [chunk_start, chunk_start + len(chunk))
        self._chunk_start = 0
        self._settings = (max_seq_length, cls_id, sep_id)

    def _next_window(self):
        while self._index >= len(self._spans):
            self._token_ids, self._spans = next(self._windows)
            self._index, self._chunk = 0, None

    def skip(self, count: int) -> None:
        while count:
            self._next_window()
            used = min(count, len(self._spans) - self._index)
            self._index += used
            count -= used

    def take(self, count: int) -> instances_lib.InstanceArrays:
        parts = []
        while count:
            self._next_window()
            chunk_end = (self._chunk_start + len(self._chunk.input_ids)
                         if self._chunk is not None else -1)
            if not self._chunk_start <= self._index < chunk_end:
                self._chunk_start = self._index
                self._chunk = instances_lib.assemble_instances(
                    self._token_ids, self._spans[self._index:self._index + _ASSEMBLE_ROWS],
                    *self._settings)
                chunk_end = self._chunk_start + len(self._chunk.input_ids)
            used = min(count, chunk_end - self._index)
            offset = self._index - self._chunk_start
            parts.append([field[offset:offset + used] for field in self._chunk])
            self._index += used
            count -= used
        return instances_lib.InstanceArrays(*(np.concatenate(f) for f in zip(*parts)))


def mask_rows(pairs: instances_lib.InstanceArrays, arrays: tokenizers_lib.MaskingArrays,
              config: DynamicMaskingConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The seven pretraining features of unmasked pairs, masked by create_masked_lm_predictions."""
    masked = instances_lib.create_masked_lm_predictions(
        pairs.input_ids, pairs.input_mask, (arrays.cls_id, arrays.sep_id),
        config.masked_lm_prob, config.max_predictions_per_seq, arrays.vocab_ids, arrays.mask_id,
        rng, continuation_ids=arrays.continuation if config.do_whole_word_mask else None)
    return dict(
        input_ids=masked.input_ids.astype(np.int32),
        input_mask=pairs.input_mask.astype(np.int32),
        segment_ids=pairs.segment_ids.astype(np.int32),
        masked_lm_positions=masked.masked_lm_positions,
        masked_lm_ids=masked.masked_lm_ids,
        masked_lm_weights=masked.masked_lm_weights,
        next_sentence_labels=pairs.next_sentence_labels.astype(np.int32),
    )


def tokenizer_cache_key(tokenizer) -> str:
    """A cache key of what decides a tokenisation: the tokenizer's kind, casing, vocabulary and
    (SentencePiece) model bytes."""
    digest = hashlib.sha256(type(tokenizer).__name__.encode())
    digest.update(repr(getattr(tokenizer, "do_lower_case", None)).encode())
    digest.update("\n".join(tokenizer.vocab).encode())
    if hasattr(tokenizer, "model_file"):
        digest.update(storage.read_bytes(tokenizer.model_file))
    return digest.hexdigest()[:16]


def stream_layout(num_files: int, global_batch_size: int, max_streams: int = 16) -> np.ndarray:
    """[B] the stream of each global batch row (contiguous blocks); K = min(num_files, B,
    max_streams)."""
    num_streams = min(num_files, global_batch_size, max_streams)
    return np.arange(global_batch_size) * num_streams // global_batch_size


def host_batches(files: Sequence[str], tokenizer, config: DynamicMaskingConfig, *,
                 global_batch_size: int, process_index: int = 0, process_count: int = 1,
                 start_step: int = 0, tokenizer_key: str = "",
                 stats: dict | None = None) -> Iterator[dict[str, np.ndarray]]:
    """This host's rows [b] of global batches start_step, start_step + 1, ... (numpy dicts).

    Args:
      files: the input files in the original text format, sorted (every host the same list).
      tokenizer: from data_pipelines.tokenizers.make_tokenizer.
      config: DynamicMaskingConfig.
      global_batch_size: B; a multiple of process_count.
      tokenizer_key: names the tokenizer in cache keys; default: tokenizer_cache_key(tokenizer).
      stats: if given, stats["files_loaded"] lists the files this host loaded (for tests).
    """
    if not files:
        raise ValueError("dynamic masking needs at least one input file")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, {process_count})")
    if global_batch_size % process_count:
        raise ValueError(f"global batch {global_batch_size} does not split over "
                         f"{process_count} processes")
    rows_per_host = global_batch_size // process_count
    row_stream = stream_layout(len(files), global_batch_size, config.max_streams)
    num_streams = int(row_stream[-1]) + 1
    host_first = process_index * rows_per_host
    host_streams = sorted(set(row_stream[host_first:host_first + rows_per_host].tolist()))
    arrays = tokenizers_lib.masking_arrays(tokenizer)
    tokenizer_key = tokenizer_key or tokenizer_cache_key(tokenizer)
    readers = {}
    for stream in host_streams:
        opened = stats.setdefault("files_loaded", []) if stats is not None else None
        windows = stream_windows(list(files[stream::num_streams]), tokenizer, stream, config,
                                 tokenizer_key, opened=opened)
        readers[stream] = _Rows(windows, config.max_seq_length, arrays.cls_id, arrays.sep_id)
    block_first = {s: int(np.argmax(row_stream == s)) for s in host_streams}
    block_size = {s: int(np.sum(row_stream == s)) for s in host_streams}
    for stream in host_streams:
        readers[stream].skip(start_step * block_size[stream])
    for step in itertools.count(start_step):
        parts = []
        for stream in host_streams:
            pairs = readers[stream].take(block_size[stream])
            rng = np.random.default_rng([config.seed, step, stream])
            block = mask_rows(pairs, arrays, config, rng)
            low = max(host_first, block_first[stream]) - block_first[stream]
            high = min(host_first + rows_per_host,
                       block_first[stream] + block_size[stream]) - block_first[stream]
            parts.append({name: value[low:high] for name, value in block.items()})
        yield {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def prefetched(iterator: Iterator, size: int = 4) -> Iterator:
    """`iterator` run ahead by a daemon thread, `size` items deep (numpy releases the GIL for
    much of the pairing and masking, so it overlaps the training step). Errors are raised by
    the next() that reaches them. The thread stops when the returned iterator is closed or
    garbage collected, and never holds up interpreter exit (a tf.data generator dataset can:
    its prefetch thread waits on a Python function that interpreter shutdown never runs)."""
    return _Prefetcher(iterator, size)


_END = object()


class _Raised(NamedTuple):
    error: BaseException


def _put(items: queue.Queue, item, stop: threading.Event) -> bool:
    """Puts `item`, waiting for room; False if `stop` was set first (the consumer is gone)."""
    while not stop.is_set():
        try:
            items.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _fill(iterator, items: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in iterator:
            if not _put(items, item, stop):
                return
        item = _END
    except BaseException as error:  # pylint: disable=broad-except
        item = _Raised(error)
    _put(items, item, stop)


class _Prefetcher:
    def __init__(self, iterator, size: int):
        self._items: queue.Queue = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        threading.Thread(target=_fill, args=(iterator, self._items, self._stop), daemon=True,
                         name="dynamic_masking").start()

    def __iter__(self):
        return self

    def __next__(self):
        item = self._items.get()
        if item is _END:
            self._items.put(_END)
            raise StopIteration
        if isinstance(item, _Raised):
            self._items.put(item)
            raise item.error
        return item

    def close(self) -> None:
        self._stop.set()

    __del__ = close
