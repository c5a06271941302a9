"""The Beam pretraining-data pipeline against the single-machine create_pretraining_data.

The pipelines run on Beam's local engine (FnApiRunner, what the DirectRunner runs batch
pipelines on, named directly so that no Prism binary download is attempted), in memory with
one worker or in two worker processes. Draws differ from the single-machine path (per-document
seeds), so statistics are compared with tolerances of several standard errors on fixed seeds;
worker-count independence is exact.
"""

import os

import numpy as np
import pytest

from data_pipelines import beam_documents
from data_pipelines import beam_pretraining_data as bpd
from data_pipelines import corpora
from data_pipelines import create_pretraining_data as cpd
from data_pipelines import features as features_lib
from data_pipelines import instances as instances_lib

MODULES_A = ("json", "csv", "random", "textwrap", "string", "heapq", "bisect", "shlex", "argparse")
MODULES_B = ("fractions", "statistics", "difflib", "calendar", "gettext", "zipfile", "tarfile",
             "pathlib", "inspect")
ONE_WORKER = ["--runner=FnApiRunner", "--direct_num_workers=1"]
TWO_PROCESSES = ["--runner=FnApiRunner", "--direct_num_workers=2",
                 "--direct_running_mode=multi_processing"]


@pytest.fixture(scope="module")
def vocab_file():
    return corpora.default_vocab_file()


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory):
    """Two files (documents end with their file either way, so both paths see the same ones)."""
    folder = tmp_path_factory.mktemp("corpus")
    paths = []
    for name, modules in (("a.txt", MODULES_A), ("b.txt", MODULES_B)):
        path = str(folder / name)
        corpora.write_documents(corpora.stdlib_docstring_documents(modules), path)
        paths.append(path)
    return paths


def _config(output_dir, corpus_files, vocab_file, **overrides):
    settings = dict(
        input_files=(os.path.join(os.path.dirname(corpus_files[0]), "*.txt"),),
        output_dir=str(output_dir),
        vocab_file=vocab_file,
        num_shards=3,
        dupe_factor=2,
    )
    settings.update(overrides)
    return bpd.BeamPretrainingConfig(**settings)


def _framed_records(paths):
    """TFRecord payloads of the files (framing checked by tfrecord_writer's own tests)."""
    records = []
    for path in paths:
        with open(path, "rb") as reader:
            data = reader.read()
        offset = 0
        while offset < len(data):
            length = int.from_bytes(data[offset : offset + 8], "little")
            records.append(data[offset + 12 : offset + 12 + length])
            offset += 16 + length
        assert offset == len(data), path
    return records


def _parse(records, max_seq_length=128, max_predictions_per_seq=20):
    import tensorflow as tf

    spec = features_lib.tf_feature_spec(max_seq_length, max_predictions_per_seq)
    parsed = tf.io.parse_example(tf.constant(records), spec)
    return {name: value.numpy() for name, value in parsed.items()}


@pytest.fixture(scope="module")
def beam_run(tmp_path_factory, corpus_files, vocab_file):
    output = tmp_path_factory.mktemp("beam")
    summary = bpd.run(_config(output, corpus_files, vocab_file, dupe_factor=20), ONE_WORKER)
    return summary, _framed_records(summary["output_files"])


@pytest.fixture(scope="module")
def single_machine_run(tmp_path_factory, corpus_files, vocab_file):
    output = str(tmp_path_factory.mktemp("single") / "out.tfrecord")
    summary = cpd.run(
        cpd.PretrainingDataConfig(
            input_files=tuple(corpus_files),
            output_files=(output,),
            vocab_file=vocab_file,
            dupe_factor=20,
            num_workers=1,
            progress=False,
        )
    )
    return summary, _framed_records([output])


def test_shards_and_summary(beam_run, single_machine_run):
    summary, records = beam_run
    single, _ = single_machine_run
    assert [os.path.basename(p) for p in summary["output_files"]] == [
        f"pretraining.tfrecord-0000{k}-of-00003" for k in range(3)
    ]
    assert len(records) == summary["instances"]
    # Same documents, sentences and tokens read and tokenised as the single-machine path.
    for key in ("documents", "sentences", "input_bytes", "input_tokens"):
        assert summary[key] == single[key], key
    with open(os.path.join(os.path.dirname(summary["output_files"][0]), "summary.json")) as f:
        assert '"instances": %d' % summary["instances"] in f.read()


def test_statistics_equal_single_machine(beam_run, single_machine_run):
    summary, records = beam_run
    single, single_records = single_machine_run
    # ~5,000 instances each. Over 12 seeds (20-31) the paths agree: instances 5,070 (Beam) vs
    # 5,122 (single machine), sd 170 per run (the 10% short-target draws per document
    # dominate); NSP share 0.538 vs 0.550, sd 0.014; mean length 109.6 vs 109.5, sd 3. The
    # tolerances are ~3.3 standard deviations of a difference of two runs.
    assert summary["instances"] == pytest.approx(single["instances"], rel=0.15)
    assert summary["masked_fraction"] == pytest.approx(single["masked_fraction"], abs=0.003)
    # ~90,000 predictions: the standard error of the 80/10/10 shares is <= 0.0013.
    assert summary["replaced_by_mask_share"] == pytest.approx(0.8, abs=0.006)
    assert summary["kept_share"] == pytest.approx(0.1, abs=0.005)
    assert summary["replaced_by_random_share"] == pytest.approx(0.1, abs=0.005)
    assert summary["random_next_fraction"] == pytest.approx(
        single["random_next_fraction"], abs=0.06
    )
    ours, theirs = _parse(records), _parse(single_records)
    assert np.mean(ours["next_sentence_labels"]) == pytest.approx(summary["random_next_fraction"])
    lengths, single_lengths = ours["input_mask"].sum(1), theirs["input_mask"].sum(1)
    assert lengths.mean() == pytest.approx(single_lengths.mean(), rel=0.12)
    # Length distribution: the share of full rows and of short (< 64) rows.
    assert np.mean(lengths == 128) == pytest.approx(np.mean(single_lengths == 128), abs=0.08)
    assert np.mean(lengths < 64) == pytest.approx(np.mean(single_lengths < 64), abs=0.06)
    # Layout: [CLS] first, masked positions inside the real tokens, labels at those positions.
    assert (ours["input_ids"][:, 0] == 101).all()
    weights = ours["masked_lm_weights"] > 0
    at_positions = np.take_along_axis(ours["input_mask"], ours["masked_lm_positions"], 1)
    assert (at_positions[weights] == 1).all()


def test_output_independent_of_worker_count(tmp_path, corpus_files, vocab_file):
    one = bpd.run(_config(tmp_path / "one", corpus_files, vocab_file), ONE_WORKER)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(bpd.__file__)), os.environ.get("PYTHONPATH", "")]
    )
    two = bpd.run(_config(tmp_path / "two", corpus_files, vocab_file, num_shards=2), TWO_PROCESSES)
    one_records = sorted(_framed_records(one["output_files"]))
    assert one_records == sorted(_framed_records(two["output_files"]))
    assert one["masked_lm_predictions"] == two["masked_lm_predictions"]
    other_seed = bpd.run(
        _config(tmp_path / "seed", corpus_files, vocab_file, random_seed=7), ONE_WORKER
    )
    assert sorted(_framed_records(other_seed["output_files"])) != one_records


def _tokenized(lengths, first_id):
    ids = np.arange(first_id, first_id + sum(lengths), dtype=np.int32)
    return beam_documents.TokenizedDocument(ids, np.asarray(lengths, np.int64))


def test_random_next_comes_from_the_pool_and_never_the_document_itself():
    documents = {f"doc{k}": _tokenized([3, 4, 2, 5], 1000 * (k + 1)) for k in range(6)}
    sampled = [(bpd.stable_hash(1, key), key, documents[key]) for key in ("doc1", "doc4")]
    pool = bpd.build_pool(sampled)
    assert pool.corpus.num_documents == 2
    import random

    for key in ("doc0", "doc1"):  # Outside and inside the pool.
        corpus = bpd._PoolWithDocument(pool, key, documents[key])
        own = set(documents[key].token_ids.tolist())
        pooled_elsewhere = set().union(
            *(documents[k].token_ids.tolist() for k in ("doc1", "doc4") if k != key)
        )
        rng = random.Random(3)
        spans = []
        for _ in range(40):
            spans += instances_lib.create_instances_from_document(
                corpus, corpus.document_index, 12, 0.0, rng
            )
        assert any(span.is_random_next for span in spans)
        for span in spans:
            a = set(corpus.tokens(span.a_start, span.a_length).tolist())
            b = set(corpus.tokens(span.b_start, span.b_length).tolist())
            assert a and a <= own
            assert b <= (pooled_elsewhere if span.is_random_next else own), span


def test_seeds_depend_on_key_and_dupe_only():
    first = bpd.document_seed_sequences(5, "x.txt:3", 1)[1].generate_state(2).tolist()
    assert first == bpd.document_seed_sequences(5, "x.txt:3", 1)[1].generate_state(2).tolist()
    for other in ((5, "x.txt:4", 1), (5, "x.txt:3", 0), (6, "x.txt:3", 1)):
        assert bpd.document_seed_sequences(*other)[1].generate_state(2).tolist() != first
    assert bpd.stable_hash("a", 1) == 13924241962069754241  # Fixed across processes/versions.
    # Keys use paths below the inputs' common folder: a moved corpus keeps its seeds.
    assert beam_documents.relative_names(["/x/a/b1.txt", "/x/a/c/d.txt"]) == ["b1.txt", "c/d.txt"]
    names = beam_documents.relative_names(["gs://k/x/a/b1.txt", "gs://k/x/a/b2.txt"])
    assert names == ["b1.txt", "b2.txt"]
    assert beam_documents.relative_names(["gs://k/corpus.txt"]) == ["corpus.txt"]


def test_tfds_source(tmp_path, vocab_file):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        summary = bpd.run(
            bpd.BeamPretrainingConfig(
                input_files=(), output_dir=str(tmp_path), vocab_file=vocab_file,
                tfds_name="wikipedia/20230601.en", num_shards=1, dupe_factor=1,
            ),
            ONE_WORKER,
        )
        texts = [
            example["text"].decode()
            for example in tfds.as_numpy(tfds.load("wikipedia/20230601.en", split="train"))
        ]
    assert summary["documents"] == len(texts) == 12
    assert summary["sentences"] == sum(len(corpora.split_sentences(t)) for t in texts)
    assert len(_framed_records(summary["output_files"])) == summary["instances"] > 0


def test_errors_name_the_input(tmp_path, corpus_files, vocab_file):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        bpd.run(_config(tmp_path, ["/nothing-here/*.txt"], vocab_file), ONE_WORKER)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"A fine line.\n\xff\xfe broken\n")
    with pytest.raises(Exception, match=r"bad.txt:2: not valid UTF-8"):
        bpd.run(_config(tmp_path / "out", [str(bad)], vocab_file, input_files=(str(bad),)),
                ONE_WORKER)
    summary = bpd.run(
        _config(tmp_path / "skip", [str(bad)], vocab_file, input_files=(str(bad),),
                skip_invalid_utf8=True),
        ONE_WORKER,
    )
    assert summary["invalid_utf8_lines_skipped"] == 1 and summary["documents"] == 1
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\n")
    with pytest.raises(Exception, match="no documents"):
        bpd.run(_config(tmp_path / "blank", [str(blank)], vocab_file, input_files=(str(blank),)),
                ONE_WORKER)


def test_beam_word_counts_equal_build_vocab_counts(tmp_path, corpus_files):
    from data_pipelines import beam_word_counts
    from data_pipelines import build_vocab

    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Caf\xe9 au lait, caf\xe9.\n".encode("latin-1"))  # Replaced, as read_lines.
    files = [*corpus_files, str(bad)]
    output = str(tmp_path / "counts.tsv")
    summary = beam_word_counts.count_words(files, output, True, ONE_WORKER)
    expected = build_vocab.count_words(build_vocab.read_lines(files), do_lower_case=True)
    counts = build_vocab.read_word_counts(output)
    assert counts == expected and summary["distinct_words"] == len(expected)
    lines = open(output, encoding="utf-8").read().splitlines()
    assert lines[0] == "%s\t%d" % min(expected.items(), key=lambda item: (-item[1], item[0]))
    (tmp_path / "broken.tsv").write_text("the\t3\nno-count-here\n")
    with pytest.raises(ValueError, match=r"broken.tsv:2: expected 'word<TAB>count'"):
        build_vocab.read_word_counts(str(tmp_path / "broken.tsv"))


def test_command_line(tmp_path, corpus_files, vocab_file):
    import json
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(bpd.__file__))
    result = subprocess.run(
        [sys.executable, "-m", "data_pipelines.beam_pretraining_data",
         f"--input_file={corpus_files[0]}", f"--output_dir={tmp_path}", "--num_shards=2",
         f"--vocab_file={vocab_file}", "--dupe_factor=1", "--max_seq_length=64",
         "--max_predictions_per_seq=10", "--runner=FnApiRunner"],
        capture_output=True, text=True, cwd=root, env=dict(os.environ, PYTHONPATH=root),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    parsed = _parse(_framed_records(summary["output_files"]), 64, 10)
    assert len(parsed["input_ids"]) == summary["instances"] > 0
    assert parsed["masked_lm_weights"].sum(1).max() <= 10
