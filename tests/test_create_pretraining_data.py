"""create_pretraining_data against google-research/bert's script's outputs (tests/golden).

Our random draws are equal in distribution to the original's but not draw-for-draw (the
original's single random.Random stream cannot be split over processes), so the oracle tests
compare statistics on the same stored corpus with fixed seeds, with tolerances of a few standard
errors; exact properties (layout, spec, determinism, truncation lengths) are compared exactly.
"""

import collections
import random
import subprocess
import sys

import numpy as np
import pytest

from data_pipelines import tokenization
from data_pipelines import corpora
from data_pipelines import create_pretraining_data as cpd
from data_pipelines import features as features_lib
from data_pipelines import instances as instances_lib
from data_pipelines import tfrecord_writer
from tests import golden

GOLDEN = golden.load("create_pretraining_data")
INPUTS, ORIGINAL = GOLDEN["inputs"], GOLDEN["outputs"]


@pytest.fixture(scope="module")
def vocab_file():
    return corpora.default_vocab_file()


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return tokenization.FullTokenizer(vocab_file, do_lower_case=True)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("corpus") / "stdlib.txt")
    counts = corpora.write_documents(INPUTS["corpus"], path)
    assert counts["documents"] >= 15
    return path


@pytest.fixture(scope="module")
def token_documents(corpus_file, tokenizer):
    """The corpus as the original reads it: documents of sentences of WordPiece tokens."""
    documents = []
    for lines in cpd.read_documents([corpus_file]):
        document = [tokens for tokens in map(tokenizer.tokenize, lines) if tokens]
        if document:
            documents.append(document)
    return documents


def _config(tmp_path, corpus_file, vocab_file, name="out.tfrecord", **overrides):
    settings = dict(
        input_files=(corpus_file,),
        output_files=(str(tmp_path / name),),
        vocab_file=vocab_file,
        dupe_factor=2,
        num_workers=1,
        progress=False,
    )
    settings.update(overrides)
    return cpd.PretrainingDataConfig(**settings)


def _read_records(paths, max_seq_length=128, max_predictions_per_seq=20):
    import tensorflow as tf

    # The original reader's spec, written out here rather than taken from features.py.
    spec = {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }
    assert features_lib.tf_feature_spec(max_seq_length, max_predictions_per_seq) == spec
    records = [
        {k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()}
        for r in tf.data.TFRecordDataset(list(paths))
    ]
    return {name: np.stack([r[name] for r in records]) for name in spec}


def test_records_parse_with_original_spec_and_layout(tmp_path, corpus_file, vocab_file, tokenizer):
    summary = cpd.run(_config(tmp_path, corpus_file, vocab_file))
    records = _read_records([str(tmp_path / "out.tfrecord")])
    n = summary["instances"]
    assert records["input_ids"].shape == (n, 128) and n > 100
    vocab = tokenizer.vocab
    ids, mask, segments = records["input_ids"], records["input_mask"], records["segment_ids"]
    for row in range(n):
        length = int(mask[row].sum())
        assert mask[row, :length].all() and not mask[row, length:].any()
        assert not ids[row, length:].any() and not segments[row, length:].any()
        assert ids[row, 0] == vocab["[CLS]"] and ids[row, length - 1] == vocab["[SEP]"]
        seps = np.flatnonzero(ids[row, :length] == vocab["[SEP]"])
        first_sep = seps[0]
        # [CLS] A [SEP] -> segment 0, B [SEP] -> segment 1; A and B non-empty.
        assert 1 <= first_sep - 1 and first_sep + 1 < length - 1
        assert (
            not segments[row, : first_sep + 1].any() and segments[row, first_sep + 1 : length].all()
        )
        weights = records["masked_lm_weights"][row]
        k = int(weights.sum())
        assert weights[:k].all() and not weights[k:].any()
        positions = records["masked_lm_positions"][row]
        assert np.all(np.diff(positions[:k]) > 0) and not positions[k:].any()
        assert not records["masked_lm_ids"][row, k:].any()
        assert k == min(20, max(1, round(length * 0.15)))
        assert set(ids[row, positions[:k]]) <= set(range(len(vocab)))
        assert vocab["[CLS]"] not in records["masked_lm_ids"][row, :k]
    assert set(np.unique(records["next_sentence_labels"])) == {0, 1}
    assert summary["masked_lm_predictions"] == int(records["masked_lm_weights"].sum())


def _ratio_and_error(sums, counts):
    """Mean of a per-instance (or per-document) statistic and its standard error over clusters."""
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    mean = sums.sum() / counts.sum()
    return mean, np.sqrt(np.sum((sums - mean * counts) ** 2)) / counts.sum()


def test_instance_statistics_match_original(token_documents, tokenizer):
    settings = INPUTS["settings"]
    assert len(token_documents) == ORIGINAL["documents"]
    ids_documents = [[tokenizer.convert_tokens_to_ids(s) for s in d] for d in token_documents]
    corpus = instances_lib.TokenizedCorpus.from_documents(ids_documents)
    vocab_size = len(tokenizer.vocab)
    cls_id, sep_id, mask_id = (tokenizer.vocab[t] for t in ("[CLS]", "[SEP]", "[MASK]"))
    # Per (repeat, document) cluster: the instances of one document share its target length,
    # so standard errors are computed over clusters, not instances. [sum, instance count].
    ours = collections.defaultdict(list)
    our_kinds = []
    for repeat in range(settings["repeats"]):
        our_rng = random.Random(1000 + repeat)
        for index in range(len(token_documents)):
            spans = instances_lib.create_instances_from_document(
                corpus, index, settings["max_seq_length"], settings["short_seq_prob"], our_rng)
            pairs = instances_lib.assemble_instances(corpus.token_ids, spans,
                                                     settings["max_seq_length"], cls_id, sep_id)
            masked = instances_lib.create_masked_lm_predictions(
                pairs.input_ids,
                pairs.input_mask,
                (cls_id, sep_id),
                settings["masked_lm_prob"],
                settings["max_predictions_per_seq"],
                np.arange(vocab_size),
                mask_id,
                np.random.default_rng([repeat, index]),
            )
            lengths = pairs.input_mask.sum(axis=1)
            count = len(spans)
            ours["instances"].append([count, 1])
            ours["length"].append([lengths.sum(), count])
            ours["short"].append([(lengths < settings["short_length"]).sum(), count])
            ours["random_next"].append([sum(x.is_random_next for x in spans), count])
            ours["masked"].append([masked.masked_lm_weights.sum(), count])
            our_kinds.extend(masked.replacement_kind[masked.replacement_kind >= 0].tolist())

    for name in ("instances", "length", "short", "random_next", "masked"):
        a, a_error = _ratio_and_error(*zip(*ORIGINAL["clusters"][name]))
        b, b_error = _ratio_and_error(*zip(*ours[name]))
        assert abs(a - b) < 4 * np.hypot(a_error, b_error) + 1e-9, (name, a, b)
    short_share = _ratio_and_error(*zip(*ours["short"]))[0]
    assert 0.02 < short_share < 0.3
    assert 0.4 < _ratio_and_error(*zip(*ours["random_next"]))[0] < 0.65
    original_kinds = ORIGINAL["replacement_kinds"]
    total = sum(original_kinds.values())
    kinds = np.bincount(our_kinds, minlength=3) / len(our_kinds)
    for index, name in enumerate(("mask", "keep", "random")):
        share = original_kinds[name] / total
        assert abs(share - kinds[index]) < 0.025, (name, share, kinds[index])
    assert abs(kinds[0] - 0.8) < 0.02 and abs(kinds[1] - 0.1) < 0.02


def test_truncation_matches_original_lengths_and_front_back_balance():
    rng = random.Random(0)
    fronts = []
    cases = zip(INPUTS["truncation_cases"], ORIGINAL["truncated_lengths"], strict=True)
    for (a_length, b_length, limit), original_kept in cases:
        a_front, a_kept, b_front, b_kept = instances_lib._truncate_seq_pair(
            a_length, b_length, limit, rng
        )
        assert [a_kept, b_kept] == original_kept
        for _ in range(200):
            a_front, *_ = instances_lib._truncate_seq_pair(a_length, b_length, limit, rng)
            fronts.append(a_front / max(a_length - a_kept, 1) if a_length > a_kept else 0.5)
    assert abs(np.mean(fronts) - 0.5) < 0.02


def test_whole_word_masking_matches_original(tokenizer):
    whole_word = INPUTS["whole_word"]
    tokens = (
        ["[CLS]"] + tokenizer.tokenize(whole_word["text_a"]) + ["[SEP]"]
        + tokenizer.tokenize(whole_word["text_b"]) + ["[SEP]"]
    )
    assert tokens == ORIGINAL["whole_word_tokens"]
    vocab = tokenizer.vocab
    continuation = np.array([t.startswith("##") for t in vocab], bool)
    words = []  # The original's candidate groups.
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if words and token.startswith("##"):
            words[-1].append(i)
        else:
            words.append([i])
    draws = whole_word["draws"]
    ids = np.array([tokenizer.convert_tokens_to_ids(tokens)] * draws)
    masked = instances_lib.create_masked_lm_predictions(
        ids,
        np.ones_like(ids),
        (vocab["[CLS]"], vocab["[SEP]"]),
        INPUTS["settings"]["masked_lm_prob"],
        whole_word["max_predictions_per_seq"],
        np.arange(len(vocab)),
        vocab["[MASK]"],
        np.random.default_rng(0),
        continuation_ids=continuation,
    )
    our_counts = collections.Counter(masked.masked_lm_weights.sum(axis=1).astype(int).tolist())
    for row in range(200):
        chosen = set(masked.masked_lm_positions[row][masked.masked_lm_weights[row] > 0].tolist())
        assert all(set(w) <= chosen or not set(w) & chosen for w in words)
    original_counts = {int(k): v for k, v in ORIGINAL["whole_word_masked_counts"].items()}
    assert sum(original_counts.values()) == draws
    for count in set(original_counts) | set(our_counts):
        assert abs(original_counts.get(count, 0) - our_counts[count]) / draws < 0.04, count
    # The text puts a "##" piece right after [SEP]: the original joins it to A's last word.
    assert any(len(w) > 1 and tokens[w[-1]].startswith("##") for w in words)


def test_tfrecord_framing_is_tensorflow_byte_for_byte(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(0)
    arrays = dict(
        input_ids=rng.integers(0, 30522, (7, 16)),
        input_mask=np.ones((7, 16), int),
        segment_ids=rng.integers(0, 2, (7, 16)),
        masked_lm_positions=rng.integers(0, 16, (7, 4)),
        masked_lm_ids=rng.integers(0, 30522, (7, 4)),
        masked_lm_weights=np.ones((7, 4), np.float32),
        next_sentence_labels=rng.integers(0, 2, (7, 1)),
    )
    payloads, lengths = tfrecord_writer.serialize_examples(arrays)
    ours = str(tmp_path / "ours.tfrecord")
    with tfrecord_writer.RoundRobinTFRecordWriter([ours]) as writer:
        writer.write(*tfrecord_writer.frame_records(payloads, lengths))
    theirs = str(tmp_path / "theirs.tfrecord")
    starts = np.cumsum(lengths) - lengths
    with tf.io.TFRecordWriter(theirs) as writer:
        for row, (start, length) in enumerate(zip(starts, lengths)):
            example = tf.train.Example.FromString(payloads[start : start + length].tobytes())
            assert sorted(example.features.feature) == sorted(arrays)
            for name, feature in example.features.feature.items():
                values = feature.float_list.value or feature.int64_list.value
                np.testing.assert_array_equal(values, np.ravel(arrays[name][row]))
            writer.write(payloads[start : start + length].tobytes())
    with open(ours, "rb") as a, open(theirs, "rb") as b:
        assert a.read() == b.read()


def test_output_independent_of_worker_count_and_round_robin(tmp_path, corpus_file, vocab_file):
    common = dict(block_tokens=4000, dupe_factor=2)
    one = cpd.run(
        _config(tmp_path, corpus_file, vocab_file, "one.tfrecord", num_workers=1, **common)
    )
    two = cpd.run(
        _config(tmp_path, corpus_file, vocab_file, "two.tfrecord", num_workers=2, **common)
    )
    assert one["units"] >= 4 and one["instances"] == two["instances"]
    with open(tmp_path / "one.tfrecord", "rb") as a, open(tmp_path / "two.tfrecord", "rb") as b:
        assert a.read() == b.read()
    spread = _config(
        tmp_path,
        corpus_file,
        vocab_file,
        num_workers=1,
        output_files=(str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")),
        **common,
    )
    cpd.run(spread)
    single = _read_records([str(tmp_path / "one.tfrecord")])["input_ids"]
    first = _read_records([str(tmp_path / "a.tfrecord")])["input_ids"]
    second = _read_records([str(tmp_path / "b.tfrecord")])["input_ids"]
    np.testing.assert_array_equal(first, single[0::2])
    np.testing.assert_array_equal(second, single[1::2])
    other_seed = cpd.run(
        _config(tmp_path, corpus_file, vocab_file, "seed.tfrecord", random_seed=7, **common)
    )
    assert other_seed["instances"] > 0
    with open(tmp_path / "seed.tfrecord", "rb") as a, open(tmp_path / "one.tfrecord", "rb") as b:
        assert a.read() != b.read()


def test_summary_statistics(tmp_path, corpus_file, vocab_file):
    summary = cpd.run(_config(tmp_path, corpus_file, vocab_file, dupe_factor=3))
    assert abs(summary["replaced_by_mask_share"] - 0.8) < 0.03
    assert abs(summary["kept_share"] - 0.1) < 0.03
    assert abs(summary["random_next_fraction"] - 0.5) < 0.1
    assert 0.12 < summary["masked_fraction"] < 0.16
    assert summary["documents"] == len(list(cpd.read_documents([corpus_file])))


def test_one_sentence_document_is_paired_with_random_next_like_original(
    tmp_path, vocab_file, tokenizer
):
    one_sentence = INPUTS["one_sentence"]
    path = tmp_path / "docs.txt"
    path.write_text("\n\n".join("\n".join(d) for d in one_sentence["documents"]) + "\n",
                    encoding="utf-8")
    documents = [
        [tokenizer.tokenize(line) for line in document]
        for document in cpd.read_documents([str(path)])
    ]
    corpus = instances_lib.TokenizedCorpus.from_documents(
        [[tokenizer.convert_tokens_to_ids(s) for s in d] for d in documents]
    )
    theirs = ORIGINAL["one_sentence_instances"]
    assert len(theirs) == one_sentence["seeds"]
    for seed, (count, all_random_next) in enumerate(theirs):
        ours = instances_lib.create_instances_from_document(
            corpus, 0, 128, 0.1, random.Random(seed)
        )
        assert len(ours) == count == 1
        assert ours[0].is_random_next and all_random_next
    summary = cpd.run(_config(tmp_path, str(path), vocab_file, dupe_factor=4))
    assert summary["documents"] == 3 and summary["instances"] >= 3 * 4 - 4


def test_errors_are_clear(tmp_path, corpus_file, vocab_file):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n\n   \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no documents"):
        cpd.run(_config(tmp_path, str(blank), vocab_file))
    with pytest.raises(FileNotFoundError, match="matches no file"):
        cpd.run(_config(tmp_path, str(tmp_path / "missing*.txt"), vocab_file))
    bad_vocab = tmp_path / "vocab.txt"
    bad_vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"lacks the special token\(s\) \['\[MASK\]'\]"):
        cpd.run(_config(tmp_path, corpus_file, str(bad_vocab)))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Good line.\nCaf\u00e9 au lait.\n".encode("latin-1") + b"More text.\n")
    with pytest.raises(cpd.InvalidUtf8Error, match=r"latin1\.txt:2: not valid UTF-8"):
        cpd.run(_config(tmp_path, str(latin1), vocab_file))
    summary = cpd.run(_config(tmp_path, str(latin1), vocab_file, skip_invalid_utf8=True))
    assert summary["invalid_utf8_lines_skipped"] == 1 and summary["sentences"] == 2


def test_command_line(tmp_path, corpus_file, vocab_file):
    output = tmp_path / "cli.tfrecord"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "data_pipelines.create_pretraining_data",
            f"--input_file={corpus_file}",
            f"--output_file={output}",
            f"--vocab_file={vocab_file}",
            "--max_seq_length=64",
            "--max_predictions_per_seq=10",
            "--dupe_factor=1",
            "--num_workers=1",
            "--do_whole_word_mask",
            "--noprogress",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert '"instances"' in result.stdout
    records = _read_records([str(output)], 64, 10)
    assert records["input_ids"].shape[1] == 64 and len(records["input_ids"]) > 50
