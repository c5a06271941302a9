"""Corpora readers: the documents format from text, reST, stdlib docstrings and TFDS."""

import json
import os

import pytest

from data_pipelines import corpora
from data_pipelines import create_pretraining_data as cpd


def test_split_sentences_rule():
    assert corpora.split_sentences('One two. Three four! Five? 6 is next.  "Quoted." End') == [
        "One two.",
        "Three four!",
        "Five?",
        "6 is next.",
        '"Quoted."',
        "End",
    ]
    # Not split: no space, or a lower-case continuation.
    assert corpora.split_sentences("Use os.path.join. then x.y works") == [
        "Use os.path.join. then x.y works"
    ]
    assert corpora.split_sentences("It ended (really.) Next one.") == [
        "It ended (really.)",
        "Next one.",
    ]


def test_rst_keeps_prose_and_drops_markup():
    text = """Title
=====

.. note::

   Hidden directive body.

Use :func:`os.path.join` with ``paths``. See `the docs <https://x>`_ for **more**.

Example::

    code_line = 1

>>> print(1)
1
"""
    assert corpora.rst_to_sentences(text) == [  # Section titles stay, their underlines go.
        "Title",
        "Use os.path.join with paths.",
        "See the docs for more.",
        "Example:",
    ]


def test_text_files_and_folders_and_documents_format(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.txt").write_text("Second file. Two sentences.", encoding="utf-8")
    (folder / "sub" / "a.txt").write_text("Nested file.\n\nNew paragraph.", encoding="utf-8")
    (folder / "skip.md").write_text("Not text.", encoding="utf-8")
    documents = list(corpora.text_file_documents([str(folder)]))
    assert documents == [["Second file.", "Two sentences."], ["Nested file.", "New paragraph."]]
    counts = corpora.write_documents(documents + [[]], str(tmp_path / "docs.txt"))
    assert counts["documents"] == 2 and counts["sentences"] == 4
    assert list(cpd.read_documents([str(tmp_path / "docs.txt")])) == documents
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        list(corpora.text_file_documents([str(tmp_path / "missing")]))


def test_stdlib_docstrings_are_safe_and_deterministic():
    names = corpora.stdlib_module_names()
    assert names == sorted(names) and "json" in names
    for unsafe in (
        "antigravity",
        "this",
        "idlelib",
        "tkinter",
        "turtle",
        "test",
        "lib2to3",
        "ensurepip",
    ):
        assert unsafe not in names
    modules = ("json", "this", "no_such_module_xyz", "textwrap")
    first = list(corpora.stdlib_docstring_documents(modules))
    assert first == list(corpora.stdlib_docstring_documents(modules))
    assert len(first) == 2  # "this" skipped as unsafe, the missing module skipped
    assert first[0][0].startswith("JSON (JavaScript Object Notation)")
    assert all(sentence.strip() == sentence and sentence for doc in first for sentence in doc)


def test_tfds_documents_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=3):
        documents = list(corpora.tfds_documents("wikipedia/20230601.en", max_documents=3))
        raw = [
            example["text"].decode()
            for example in tfds.as_numpy(
                tfds.load("wikipedia/20230601.en", split="train", shuffle_files=False)
            )
        ]
    expected = [[s for p in text.split("\n") for s in corpora.split_sentences(p)] for text in raw]
    assert documents == [d for d in expected if d] and len(documents) == 3
    with tfds.testing.mock_data(num_examples=1):
        with pytest.raises(KeyError, match="has no feature 'body'"):
            list(corpora.tfds_documents("wikipedia/20230601.en", text_key="body"))


def test_default_pretraining_data_is_built_once(tmp_path):
    modules = ("json", "textwrap", "heapq", "bisect", "string")
    paths = corpora.prepare_default_pretraining_data(
        str(tmp_path),
        max_seq_length=64,
        max_predictions_per_seq=10,
        dupe_factor=1,
        module_names=modules,
        num_workers=1,
    )
    assert all(os.path.getsize(p) > 0 for p in paths)
    stamps = [os.path.getmtime(p) for p in paths]
    with open(os.path.join(os.path.dirname(paths[0]), "manifest.json")) as reader:
        manifest = json.load(reader)
    assert manifest["summary"]["instances"] > 0
    again = corpora.prepare_default_pretraining_data(
        str(tmp_path),
        max_seq_length=64,
        max_predictions_per_seq=10,
        dupe_factor=1,
        module_names=modules,
        num_workers=1,
    )
    assert again == paths and [os.path.getmtime(p) for p in paths] == stamps
    other = corpora.prepare_default_pretraining_data(
        str(tmp_path),
        max_seq_length=64,
        max_predictions_per_seq=10,
        dupe_factor=2,
        module_names=modules,
        num_workers=1,
    )
    # Other arguments get their own folder: the first set is neither rebuilt nor replaced.
    assert os.path.dirname(other[0]) != os.path.dirname(paths[0])
    assert [os.path.getmtime(p) for p in paths] == stamps
    with open(os.path.join(os.path.dirname(other[0]), "manifest.json")) as reader:
        assert json.load(reader)["arguments"]["dupe_factor"] == 2
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_default_corpus_vocab_is_built_once_and_never_half_written(tmp_path, monkeypatch):
    """The learned vocab is built once per arguments and reused; a build killed midway leaves
    no vocab file behind (a later call builds it whole); a remote folder is refused."""
    from data_pipelines import build_vocab  # pylint: disable=import-outside-toplevel
    from data_pipelines import tokenization  # pylint: disable=import-outside-toplevel

    modules = ("json", "textwrap", "heapq", "bisect", "string")
    learn = build_vocab.build_vocab

    def killed(input_files, output_file, *args, **kwargs):
        with open(output_file, "w") as writer:
            writer.write("[PAD]\n")  # half a file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(build_vocab, "build_vocab", killed)
    with pytest.raises(KeyboardInterrupt):
        corpora.default_corpus_vocab(str(tmp_path), module_names=modules)
    assert sorted(os.listdir(tmp_path)) == [".lock"]
    monkeypatch.setattr(build_vocab, "build_vocab", learn)
    path = corpora.default_corpus_vocab(str(tmp_path), module_names=modules)
    vocab = tokenization.load_vocab(path)
    assert {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "json"} <= set(vocab)
    stamp = os.path.getmtime(path)

    def must_not_run(*args, **kwargs):
        raise AssertionError("a built vocab was rebuilt")

    monkeypatch.setattr(build_vocab, "build_vocab", must_not_run)
    assert corpora.default_corpus_vocab(str(tmp_path), module_names=modules) == path
    assert os.path.getmtime(path) == stamp
    monkeypatch.setattr(build_vocab, "build_vocab", learn)
    smaller = corpora.default_corpus_vocab(str(tmp_path), vocab_size=200, module_names=modules)
    assert smaller != path and len(tokenization.load_vocab(smaller)) <= 200
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]
    with pytest.raises(ValueError, match="gs://bucket/cache must be a local folder"):
        corpora.default_corpus_vocab("gs://bucket/cache")
