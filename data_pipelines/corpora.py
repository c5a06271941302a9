"""Text corpora in the pretraining documents format: one sentence per line, a blank line
between documents (what create_pretraining_data.py reads: `read_documents` here, next to
`write_documents`).

Sources:
* plain text files or folders (`text_file_documents`): one file = one document;
* reStructuredText such as the CPython docs' `_sources/*.rst.txt` (`rst_file_documents`):
  markup, directives, code blocks and tables dropped, one file = one document;
* the Python standard library's docstrings (`stdlib_docstring_documents`), the embedded
  default that needs no download: one module = one document;
* TFDS text datasets such as `wikipedia/20230601.en` (`tfds_documents`).

Sentences are split with one simple, documented rule (`split_sentences`): paragraphs are
joined into one line, then cut after ".", "!" or "?" (optionally followed by a closing quote
or bracket) when whitespace and then an upper-case letter, digit, quote or bracket follow.
It is a heuristic (abbreviations like "e.g. Foo" are cut), adequate for NSP pretraining.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from typing import Callable, Iterable, Iterator

from data_pipelines import storage

_SENTENCE_END = re.compile(r"(?<=[.!?])([\"')\]]?)\s+(?=[A-Z0-9\"'(\[])")
_WHITESPACE = re.compile(r"\s+")


def split_sentences(paragraph: str) -> list[str]:
    """Sentences of one paragraph (see the module docstring for the rule)."""
    paragraph = _WHITESPACE.sub(" ", paragraph).strip()
    if not paragraph:
        return []
    pieces = _SENTENCE_END.split(paragraph)
    # split() keeps the captured closing quote/bracket as its own item: glue it back.
    sentences, index = [], 0
    while index < len(pieces):
        sentence = pieces[index] + (pieces[index + 1] if index + 1 < len(pieces) else "")
        sentences.append(sentence.strip())
        index += 2
    return [sentence for sentence in sentences if sentence]


def text_to_sentences(text: str) -> list[str]:
    """Paragraphs (blank-line separated) of plain text -> sentences."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        sentences.extend(split_sentences(paragraph))
    return sentences


class InvalidUtf8Error(ValueError):
    """An input line is not UTF-8."""


def expand_input_files(patterns: Iterable[str]) -> list[str]:
    """Files of comma-free patterns, each pattern's matches sorted; a pattern matching nothing
    is an error (the original silently skipped it)."""
    return storage.expand_patterns(list(patterns), what="input")


def read_documents(
    input_files: list[str],
    skip_invalid_utf8: bool = False,
    counters: collections.Counter | None = None,
) -> Iterator[list[str]]:
    """Documents (lists of stripped non-empty lines) from the original input format.

    Lines are split on "\\n" only (as the original's GFile.readline); a blank line (after
    strip) ends a document; a document continues across files until a blank line.
    Raises InvalidUtf8Error naming the file and line unless skip_invalid_utf8, which skips and
    counts such lines in counters["invalid_utf8_lines"].
    """
    counters = collections.Counter() if counters is None else counters
    document: list[str] = []
    for path in input_files:
        with storage.open(path, "rb") as reader:
            for line_number, raw_line in enumerate(reader, start=1):
                counters["input_bytes"] += len(raw_line)
                try:
                    line = raw_line.decode("utf-8").strip()
                except UnicodeDecodeError as error:
                    if skip_invalid_utf8:
                        counters["invalid_utf8_lines"] += 1
                        continue
                    raise InvalidUtf8Error(
                        f"{path}:{line_number}: not valid UTF-8 ({error.reason} at byte {error.start} "
                        f"of the line); fix the file or pass --skip_invalid_utf8 to skip such lines"
                    ) from None
                if line:
                    document.append(line)
                elif document:
                    yield document
                    document = []
    if document:
        yield document


def write_documents(documents: Iterable[list[str]], path: str) -> dict:
    """Writes documents (lists of sentences) in the documents format; returns counts."""
    num_documents = num_sentences = 0
    with storage.atomic_write(path, "w") as writer:
        for document in documents:
            sentences = [s.replace("\n", " ").strip() for s in document]
            sentences = [s for s in sentences if s]
            if not sentences:
                continue
            writer.write("\n".join(sentences) + "\n\n")
            num_documents += 1
            num_sentences += len(sentences)
    return dict(documents=num_documents, sentences=num_sentences, path=path)


def _files_under(paths: Iterable[str], suffix: str) -> list[str]:
    files = []
    for path in paths:  # local document trees (folders walked with os.walk)
        if os.path.isdir(path):
            for root, directories, names in os.walk(path):
                directories.sort()
                files.extend(
                    os.path.join(root, name) for name in sorted(names) if name.endswith(suffix)
                )
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return files


def text_file_documents(paths: Iterable[str], suffix: str = ".txt") -> Iterator[list[str]]:
    """One document per plain text file (folders are searched for `suffix` files, sorted)."""
    for path in _files_under(paths, suffix):
        sentences = text_to_sentences(storage.read_text(path))
        if sentences:
            yield sentences


_RST_SECTION_LINE = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}\s*$")
_RST_ROLE = re.compile(r":[\w:+-]+:`([^`<]*?)(?:\s*<[^>]*>)?`")
_RST_LINK = re.compile(r"`([^`<]+?)\s*(?:<[^>]*>)?`_{1,2}")
_RST_LITERAL = re.compile(r"``([^`]*)``")
_RST_EMPHASIS = re.compile(r"\*{1,2}([^*]+)\*{1,2}")


def rst_to_sentences(text: str) -> list[str]:
    """Prose sentences of a reStructuredText document.

    Drops directives (".. x::" and their indented body), literal blocks (indented text after a
    paragraph ending in "::"), section under/overlines, tables, field lists and doctest lines;
    keeps the text of inline roles, links, literals and emphasis.
    """
    sentences = []
    for block in re.split(r"\n\s*\n", text.replace("\t", "    ")):
        lines = [line for line in block.split("\n") if line.strip()]
        if not lines:
            continue
        first = lines[0]
        if first.startswith((" ", "..", ">>>", "+-", "|")) or _RST_SECTION_LINE.match(first):
            continue  # Indented (code, directive body, quote), directive, doctest or table.
        lines = [line for line in lines if not _RST_SECTION_LINE.match(line)]
        paragraph = " ".join(line.strip() for line in lines)
        if paragraph.startswith(":") or paragraph.startswith("=") or paragraph.startswith("* "):
            paragraph = paragraph.lstrip(":=* ")
        paragraph = paragraph.replace("::", ":")
        for pattern in (_RST_ROLE, _RST_LINK, _RST_LITERAL, _RST_EMPHASIS):
            paragraph = pattern.sub(r"\1", paragraph)
        sentences.extend(split_sentences(paragraph))
    return sentences


def rst_file_documents(paths: Iterable[str], suffix: str = ".rst.txt") -> Iterator[list[str]]:
    """One document per reStructuredText file (folders searched for `suffix`, sorted)."""
    for path in _files_under(paths, suffix):
        with open(path, encoding="utf-8", errors="replace") as reader:
            sentences = rst_to_sentences(reader.read())
        if sentences:
            yield sentences


def python_docs_sources_dir() -> str | None:
    """The python3.11-doc package's reST sources folder, if installed (Debian/Ubuntu)."""
    for candidate in (
        "/usr/share/doc/python3.11/html/_sources",
        "/usr/share/doc/python3-doc/html/_sources",
    ):
        if os.path.isdir(candidate):
            return candidate
    return None


# Modules whose import has side effects (opens a browser, prints, starts Tk, changes the
# interpreter), that are tests or tools, or that are deprecated/private; never imported.
_UNSAFE_STDLIB_MODULES = frozenset(
    {
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "turtledemo",
        "test",
        "lib2to3",
        "ensurepip",
        "pydoc_data",
        "__hello__",
        "__phello__",
        "_pydev",
        "venv",
        "msilib",
        "winreg",
        "winsound",
        "_msi",
        "nt",
        "msvcrt",
        "_winapi",
        "_overlapped",
        "xxsubtype",
        "xxlimited",
        "xxlimited_35",
        "sre_compile",
        "sre_constants",
        "sre_parse",
        "asyncio.__main__",
        "crypt",
        "nis",
        "spwd",
        "ossaudiodev",
        "readline",
        "curses",
        "_tkinter",
        "pty",
        "tty",
    }
)


def stdlib_module_names() -> list[str]:
    """Public top-level standard-library modules in sorted order, unsafe ones excluded."""
    return sorted(
        name
        for name in sys.stdlib_module_names
        if not name.startswith("_") and name not in _UNSAFE_STDLIB_MODULES
    )


def module_docstrings(module) -> list[str]:
    """The module docstring, then its public classes/functions (and class methods), by name."""
    texts = [inspect.getdoc(module) or ""]
    for name, member in sorted(vars(module).items()):
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        if inspect.isclass(member) or inspect.isfunction(member):
            texts.append(inspect.getdoc(member) or "")
            if inspect.isclass(member):
                for method_name, method in sorted(vars(member).items()):
                    if not method_name.startswith("_") and inspect.isfunction(method):
                        texts.append(inspect.getdoc(method) or "")
    return [text for text in texts if text]


def stdlib_docstring_documents(module_names: Iterable[str] | None = None) -> Iterator[list[str]]:
    """One document per standard-library module: the sentences of its docstrings.

    Modules that fail to import are skipped; docstring code lines (">>>", indented) dropped.
    """
    for name in stdlib_module_names() if module_names is None else module_names:
        if name.split(".")[0] in _UNSAFE_STDLIB_MODULES:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(name)
        except Exception:  # pylint: disable=broad-except
            continue  # Platform-specific or broken optional modules.
        sentences = []
        for docstring in module_docstrings(module):
            sentences.extend(rst_to_sentences(docstring))
        if sentences:
            yield sentences


def tfds_documents(
    name: str = "wikipedia/20230601.en",
    split: str = "train",
    text_key: str = "text",
    data_dir: str | None = None,
    max_documents: int | None = None,
) -> Iterator[list[str]]:
    """Documents of a TFDS text dataset: one example = one document, its text split into
    paragraphs on newlines and then into sentences. Needs the dataset prepared in data_dir
    (no download happens here)."""
    from data_pipelines import tfds_source  # pylint: disable=import-outside-toplevel

    dataset = tfds_source.load(name, split, data_dir)
    if max_documents is not None:
        dataset = dataset.take(max_documents)
    for example in dataset.as_numpy_iterator():
        if text_key not in example:
            raise KeyError(
                f"TFDS dataset {name} has no feature {text_key!r}; features: {sorted(example)}"
            )
        text = example[text_key]
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        sentences = []
        for paragraph in text.split("\n"):
            sentences.extend(split_sentences(paragraph))
        if sentences:
            yield sentences


def default_vocab_file() -> str:
    """The real bert-base-uncased vocab.txt (30,522 tokens) bundled with an installed package."""
    from data_pipelines import tokenization  # pylint: disable=import-outside-toplevel

    return str(tokenization.bundled_uncased_vocab_file())


def default_corpus_vocab(output_dir: str, vocab_size: int = 8192,
                         module_names: tuple[str, ...] | None = None) -> str:
    """A WordPiece vocab.txt learned from the default corpus (data_pipelines.build_vocab), built
    once per (size, Python version) under `output_dir` and then reused; returns its path.

    On the stdlib docstrings (0.64 MB, 5,789 distinct words on Python 3.11) the learner stops
    well below 8,192 tokens (words seen once are not learned), so the vocab's size is the line
    count of the file, not `vocab_size`. A small in-domain vocab makes tiny-model pretraining
    cheaper (the MLM softmax and the embedding table shrink 7x against bert-base-uncased's
    30,522) and its masked tokens easier to predict.
    """
    from data_pipelines import build_vocab  # pylint: disable=import-outside-toplevel

    arguments = dict(vocab_size=vocab_size, python=sys.version.split()[0],
                     module_names=list(module_names) if module_names else None)
    key = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(output_dir, f"default-corpus-vocab-{key}.txt")

    def build(building: str) -> None:
        corpus = os.path.join(building, "stdlib_docstrings.txt")
        write_documents(stdlib_docstring_documents(module_names), corpus)
        build_vocab.build_vocab(corpus, os.path.join(building, "vocab.txt"), vocab_size,
                                do_lower_case=True)
        os.rename(os.path.join(building, "vocab.txt"), path)

    _build_once(output_dir, lambda: os.path.isfile(path), build)
    return path


def prepare_default_pretraining_data(
    output_dir: str,
    vocab_file: str | None = None,
    max_seq_length: int = 128,
    max_predictions_per_seq: int = 20,
    dupe_factor: int = 2,
    seed: int = 12345,
    num_workers: int = 0,
    module_names: tuple[str, ...] | None = None,
    tokenizer: str = "wordpiece",
    spm_model_file: str = "",
    do_whole_word_mask: bool = False,
    masked_lm_prob: float = 0.15,
    short_seq_prob: float = 0.1,
) -> list[str]:
    """The default tiny pretraining data (stdlib docstrings), built once and then reused.

    Each set of arguments (and the Python version, since the docstrings come from it) has its
    own folder under `output_dir`, named by their digest, with a manifest beside the TFRecords,
    so runs with different arguments (a concurrent run, another run's final eval) never rebuild
    each other's files. A folder is built under a temporary name and renamed into place when
    complete, under a lock (`output_dir/.lock`), so a reader never sees half a build; a build
    killed midway leaves a `.tmp-` folder that the next build removes. Returns the TFRecord
    paths. tokenizer, spm_model_file: data_pipelines.tokenizers.
    """
    from data_pipelines import create_pretraining_data  # pylint: disable=import-outside-toplevel
    from data_pipelines import tokenizers  # pylint: disable=import-outside-toplevel

    vocab_file = vocab_file or default_vocab_file()
    fingerprint = tokenizers.fingerprint(tokenizer, vocab_file, True, spm_model_file)
    arguments = dict(
        vocab_sha256=fingerprint["vocab_sha256"],
        max_seq_length=max_seq_length,
        max_predictions_per_seq=max_predictions_per_seq,
        dupe_factor=dupe_factor,
        seed=seed,
        module_names=list(module_names) if module_names else None,
        python=sys.version.split()[0],
        format=1,
    )
    if tokenizer != "wordpiece" or do_whole_word_mask or (masked_lm_prob, short_seq_prob) != (
            0.15, 0.1):  # Only then, so that existing caches stay valid.
        arguments.update(tokenizer=tokenizer, do_whole_word_mask=do_whole_word_mask,
                         masked_lm_prob=masked_lm_prob, short_seq_prob=short_seq_prob)
    key = hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()[:16]
    final_dir = os.path.join(output_dir, f"default-corpus-{key}")
    names = ["pretraining-00000-of-00002.tfrecord", "pretraining-00001-of-00002.tfrecord"]
    output_files = [os.path.join(final_dir, name) for name in names]

    def build(building: str) -> None:
        corpus_path = os.path.join(building, "stdlib_docstrings.txt")
        write_documents(stdlib_docstring_documents(module_names), corpus_path)
        summary = create_pretraining_data.run(
            create_pretraining_data.PretrainingDataConfig(
                input_files=(corpus_path,),
                output_files=tuple(os.path.join(building, name) for name in names),
                vocab_file=vocab_file,
                max_seq_length=max_seq_length,
                max_predictions_per_seq=max_predictions_per_seq,
                random_seed=seed,
                dupe_factor=dupe_factor,
                num_workers=num_workers,
                progress=False,
                tokenizer=tokenizer,
                spm_model_file=spm_model_file,
                do_whole_word_mask=do_whole_word_mask,
                masked_lm_prob=masked_lm_prob,
                short_seq_prob=short_seq_prob,
            )
        )
        summary["output_files"] = output_files
        with open(os.path.join(building, "manifest.json"), "w") as writer:
            json.dump(dict(arguments=arguments, summary=summary), writer, indent=1)
        if os.path.isdir(final_dir):  # incomplete (no manifest): from an older layout
            shutil.rmtree(final_dir)
        os.rename(building, final_dir)

    # The folder only appears once fully built, so its manifest marks a complete build.
    _build_once(output_dir, lambda: os.path.isfile(os.path.join(final_dir, "manifest.json")),
                build)
    return output_files


def _build_once(output_dir: str, is_built: Callable[[], bool],
                build: Callable[[str], None]) -> None:
    """Runs `build(scratch_folder)` unless `is_built()`, once across processes sharing the
    local folder `output_dir`: under an exclusive lock on `output_dir/.lock` (released when
    the file closes, or when the process dies), re-checking `is_built()` once the lock is held
    (another process may have built it while this one waited). `build` writes into a fresh
    `.tmp-` folder under `output_dir` and renames its result into place, so a reader never
    sees half a build; scratch folders that a killed build left behind are removed first."""
    if storage.is_remote(output_dir):
        raise ValueError(
            f"the default corpus cache {output_dir} must be a local folder (it is built under a "
            "file lock); with a remote workdir pass --config.data.cache_dir=LOCAL_DIR")
    if is_built():
        return
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_built():
            return
        for name in os.listdir(output_dir):
            if name.startswith(".tmp-"):  # left by a killed build (builds hold the lock)
                shutil.rmtree(os.path.join(output_dir, name), ignore_errors=True)
        building = tempfile.mkdtemp(prefix=".tmp-", dir=output_dir)
        try:
            build(building)
        finally:
            shutil.rmtree(building, ignore_errors=True)  # gone already when renamed into place
