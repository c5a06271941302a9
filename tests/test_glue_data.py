"""GLUE readers (TSV folders, TFDS), feature conversion against the original's outputs
(tests/golden/glue_features.json), and batching."""
import os

import numpy as np
import pytest
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")
import tensorflow_datasets as tfds  # noqa: E402

from bertjax import metrics
from data_pipelines import tokenization  # noqa: E402
from data_pipelines import finetune_input, glue  # noqa: E402
from tests import golden  # noqa: E402

GLUE_DIR = os.path.join(os.path.dirname(__file__), "fixtures", "glue")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.FullTokenizer(tokenization.bundled_uncased_vocab_file(), do_lower_case=True)


# --------------------------------------------------------------------------------------------
# TSV folders.
# --------------------------------------------------------------------------------------------


def test_cola_train_has_no_header_and_reads_columns_3_and_1():
    examples = glue.read_tsv_examples(GLUE_DIR, "cola", "train")
    assert len(examples) == 3  # No header row is lost.
    assert examples[0] == glue.GlueExample(
        "train-1", "Our friends won't buy this analysis, let alone the next one we propose.", None,
        "1")
    assert examples[1].label == "0"
    # Bare quotes are text, not CSV quoting.
    assert examples[2].text_a == '"Fred," said Mary, "watched the stars."'


def test_test_splits_have_no_labels_and_their_own_columns():
    cola = glue.read_tsv_examples(GLUE_DIR, "cola", "test")
    assert [e.text_a for e in cola] == ["Bill whistled past the house.",
                                        "The car honked its way down the road."]
    assert all(e.label is None for e in cola)
    sst2 = glue.read_tsv_examples(GLUE_DIR, "sst2", "test")
    assert sst2[0].text_a == "uneasy mishmash of styles and genres ."
    qqp = glue.read_tsv_examples(GLUE_DIR, "qqp", "test")
    assert qqp[0].text_a == "Why am I mentally very lonely? How can I solve it?"
    assert qqp[0].text_b.startswith("Find the remainder")
    stsb = glue.read_tsv_examples(GLUE_DIR, "stsb", "test")
    assert (stsb[0].text_a, stsb[0].text_b, stsb[0].label) == ("A girl is styling her hair.",
                                                               "A girl is brushing her hair.", None)


def test_pair_tasks_read_the_processor_columns():
    mrpc = glue.read_tsv_examples(GLUE_DIR, "mrpc", "train")
    assert mrpc[1].text_a.startswith("Yucaipa owned")
    assert mrpc[1].text_b.startswith("Yucaipa bought")
    assert [e.label for e in mrpc] == ["1", "0"]
    mnli = glue.read_tsv_examples(GLUE_DIR, "mnli", "validation_matched")
    # The label is gold_label (the last column), not label1.
    assert (mnli[0].text_a, mnli[0].text_b, mnli[0].label) == (
        "The new rights are nice enough", "Everyone really likes the newest benefits ", "neutral")
    assert glue.read_tsv_examples(GLUE_DIR, "mnli", "validation_mismatched")[0].label == (
        "contradiction")
    assert glue.read_tsv_examples(GLUE_DIR, "mnli", "test_mismatched")[0].text_b == (
        "So what's your decision?")
    qnli = glue.read_tsv_examples(GLUE_DIR, "qnli", "validation")
    assert qnli[0].text_a.startswith("What came") and qnli[0].label == "entailment"
    rte = glue.read_tsv_examples(GLUE_DIR, "rte", "train")
    assert [e.label for e in rte] == ["not_entailment", "entailment", "entailment"]
    wnli = glue.read_tsv_examples(GLUE_DIR, "wnli", "train")
    assert wnli[0].text_b == "The carrot had a hole." and wnli[2].label == "0"


def test_stsb_labels_are_float_scores():
    examples = glue.read_tsv_examples(GLUE_DIR, "stsb", "validation")
    assert [e.label for e in examples] == [5.0, 4.75, 0.0]
    assert glue.get_task("stsb").is_regression


def test_qqp_skips_broken_rows_other_tasks_raise(tmp_path):
    assert len(glue.read_tsv_examples(GLUE_DIR, "qqp", "train")) == 2
    (tmp_path / "RTE").mkdir()
    (tmp_path / "RTE" / "dev.tsv").write_text("index\tsentence1\tsentence2\tlabel\n0\tonly one\n")
    with pytest.raises(ValueError, match=r"dev.tsv, line 2"):
        glue.read_tsv_examples(str(tmp_path), "rte", "validation")
    (tmp_path / "RTE" / "dev.tsv").write_text(
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n")
    with pytest.raises(ValueError, match=r"line 2: label 'maybe'"):
        glue.read_tsv_examples(str(tmp_path), "rte", "validation")
    with pytest.raises(ValueError, match="no split"):
        glue.read_tsv_examples(GLUE_DIR, "rte", "validation_matched")


def test_every_task_reads_every_split_of_the_fixture():
    for task in glue.TASKS.values():
        for split in task.splits:
            examples = glue.read_tsv_examples(GLUE_DIR, task.name, split)
            assert examples, (task.name, split)
            for example in examples:
                assert (example.text_b is None) == (task.tfds_text_features[1] is None)
                if split.startswith("test"):
                    assert example.label is None
                elif task.is_regression:
                    assert 0.0 <= example.label <= 5.0
                else:
                    assert example.label in task.label_list


# --------------------------------------------------------------------------------------------
# TFDS.
# --------------------------------------------------------------------------------------------

# TFDS generator split names for our split names.
_TFDS_SOURCE_SPLIT = {
    "train": "train",
    "validation": "dev",
    "validation_matched": "dev",
    "validation_mismatched": "dev",
    "test": "test",
    "test_matched": "test",
    "test_mismatched": "test",
}


@pytest.mark.parametrize("task_name,split", [("cola", "train"), ("cola", "test"),
                                             ("stsb", "validation"),
                                             ("mnli", "validation_matched"),
                                             ("mnli", "validation_mismatched"), ("rte", "train"),
                                             ("wnli", "train"), ("qnli", "validation"),
                                             ("sst2", "train")])
def test_tfds_load_matches_tsv_reader(task_name, split):
    """TFDS's own GLUE generator encodes the fixture TSV; tfds.load must give back our examples."""
    task = glue.get_task(task_name)
    builder = tfds.builder(task.tfds_name)
    tsv_path = os.path.join(GLUE_DIR, task.tsv_folder, task.tsv_files[split])
    encoded = [
        builder.info.features.encode_example(example)
        for _, example in builder._generate_examples(tsv_path, _TFDS_SOURCE_SPLIT[split])
    ]

    def as_dataset(self, *args, **kwargs):
        del args, kwargs
        return tf.data.Dataset.from_generator(lambda: iter(encoded),
                                              output_types=self.info.features.dtype,
                                              output_shapes=self.info.features.shape)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        from_tfds = glue.load_tfds_examples(task_name, split)
    from_tsv = glue.read_tsv_examples(GLUE_DIR, task_name, split)
    assert [(e.text_a, e.text_b) for e in from_tfds] == [(e.text_a, e.text_b) for e in from_tsv]
    if task.is_regression:
        np.testing.assert_allclose([e.label for e in from_tfds], [e.label for e in from_tsv])
    else:
        assert [e.label for e in from_tfds] == [e.label for e in from_tsv]


@pytest.mark.parametrize("task_name,split", [("mnli", "test_matched"), ("qqp", "train"),
                                             ("stsb", "train")])
def test_tfds_random_mock_data_gives_valid_examples(task_name, split):
    task = glue.get_task(task_name)
    with tfds.testing.mock_data(num_examples=4, policy=tfds.testing.MockPolicy.USE_CODE):
        examples = glue.load_tfds_examples(task_name, split)
    assert len(examples) == 4
    for example in examples:
        assert isinstance(example.text_a, str) and isinstance(example.text_b, str)
        if split.startswith("test"):
            assert example.label is None
        elif task.is_regression:
            assert isinstance(example.label, float)
        else:
            assert example.label in task.label_list


# --------------------------------------------------------------------------------------------
# Features against the original convert_single_example.
# --------------------------------------------------------------------------------------------


def test_features_hand_worked_single_sentence(tokenizer):
    example = glue.GlueExample("x", "hide new secretions", None, "0")
    features = glue.convert_examples_to_features([example], tokenizer, 8,
                                                 glue.TASKS["sst2"].label_list)
    tokens = tokenizer.convert_ids_to_tokens(
        features["input_ids"][0][features["input_mask"][0] == 1].tolist())
    assert tokens == ["[CLS]", "hide", "new", "secret", "##ions", "[SEP]"]
    assert features["input_ids"][0, 6:].tolist() == [0, 0]
    assert features["segment_ids"][0].tolist() == [0] * 8
    assert features["label_ids"].tolist() == [0]
    assert features["input_ids"].dtype == np.int32 and features["input_ids"].shape == (1, 8)


def test_truncation_pops_the_longer_segment_one_token_at_a_time():
    tokens_a, tokens_b = list("abcdef"), list("xyz")
    glue.truncate_seq_pair(tokens_a, tokens_b, 5)
    assert (tokens_a, tokens_b) == (list("abc"), list("xy"))  # Ties pop from B.


GLUE_GOLDEN = golden.load("glue_features")


def test_golden_examples_are_the_fixtures():
    for name, stored in GLUE_GOLDEN["inputs"]["examples"].items():
        examples = glue.read_tsv_examples(GLUE_DIR, name, "train")
        assert [[e.guid, e.text_a, e.text_b, e.label] for e in examples] == stored, name
    assert set(GLUE_GOLDEN["inputs"]["examples"]) == set(glue.TASKS)


@pytest.mark.parametrize("max_seq_length", GLUE_GOLDEN["inputs"]["max_seq_lengths"])
def test_features_match_original_token_by_token(tokenizer, max_seq_length):
    for task_name, stored in GLUE_GOLDEN["inputs"]["examples"].items():
        task = glue.TASKS[task_name]
        examples = [glue.GlueExample(*example) for example in stored]
        features = glue.convert_examples_to_features(examples, tokenizer, max_seq_length,
                                                     task.label_list)
        originals = GLUE_GOLDEN["outputs"][task_name][str(max_seq_length)]
        assert len(originals) == len(examples) > 0
        for index, (example, original) in enumerate(zip(examples, originals)):
            for name in ("input_ids", "input_mask", "segment_ids"):
                assert features[name][index].tolist() == golden.padded(
                    original[name], max_seq_length), (task_name, index, name)
            if task.label_list:
                assert features["label_ids"][index] == original["label_id"]
            else:
                assert features["label_ids"][index] == pytest.approx(float(example.label))
        assert features["example_index"].tolist() == list(range(len(examples)))


def test_features_of_unlabelled_and_regression_examples(tokenizer):
    test_examples = glue.read_tsv_examples(GLUE_DIR, "rte", "test")
    features = glue.convert_examples_to_features(test_examples, tokenizer, 32,
                                                 glue.TASKS["rte"].label_list)
    assert features["label_ids"].tolist() == [-1]
    stsb = glue.convert_examples_to_features(glue.read_tsv_examples(GLUE_DIR, "stsb", "train"),
                                             tokenizer, 32, None)
    assert stsb["label_ids"].dtype == np.float32
    np.testing.assert_allclose(stsb["label_ids"], [5.0, 3.8], rtol=1e-6)
    with pytest.raises(ValueError, match="not in the label list"):
        glue.convert_examples_to_features([glue.GlueExample("g", "a", None, "2")], tokenizer, 8,
                                          ("0", "1"))


# --------------------------------------------------------------------------------------------
# Registry and majority baseline.
# --------------------------------------------------------------------------------------------


def test_registry_metrics_and_tfds_names():
    assert glue.TASKS["cola"].metric_names == ("matthews_corrcoef",)
    assert glue.TASKS["mrpc"].metric_names == ("accuracy", "f1")
    assert glue.TASKS["stsb"].metric_names == ("pearson", "spearman")
    assert glue.TASKS["mnli"].tfds_name == "glue/mnli"
    assert set(glue.TASKS) == {"cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte", "wnli"}
    # TFDS's class names, per id, must be the canonical labels (or their 0/1 positions).
    for task in glue.TASKS.values():
        if task.is_regression:
            continue
        tfds_names = tfds.builder(task.tfds_name).info.features["label"].names
        for tfds_id, canonical in enumerate(task.tfds_label_names):
            assert canonical in (tfds_names[tfds_id], str(tfds_id))


def test_majority_baseline_reproduces_mosbach_failure_thresholds():
    # Dev label counts: RTE 131 entailment / 146 not; MRPC 279 equivalent / 129 not; CoLA 721/322.
    rte = np.array([0] * 131 + [1] * 146)
    assert metrics.majority_class_baseline("rte", rte)["accuracy"] == pytest.approx(0.527, abs=5e-4)
    mrpc = np.array([1] * 279 + [0] * 129)
    baseline = metrics.majority_class_baseline("mrpc", mrpc)
    assert baseline["accuracy"] == pytest.approx(0.684, abs=5e-4)
    assert baseline["f1"] == pytest.approx(0.812, abs=5e-4)
    cola = np.array([1] * 721 + [0] * 322)
    assert metrics.majority_class_baseline("cola", cola) == {"matthews_corrcoef": 0.0}
    # The majority class can come from the training labels instead.
    assert metrics.majority_class_baseline("rte", rte, train_labels=[0, 0, 1])["accuracy"] == (
        pytest.approx(131 / 277))
    assert metrics.majority_class_baseline("stsb", [1.0, 2.0]) == {"pearson": 0.0, "spearman": 0.0}


# --------------------------------------------------------------------------------------------
# Batching.
# --------------------------------------------------------------------------------------------


def _toy_features(num):
    return {
        "input_ids": np.arange(num * 3, dtype=np.int32).reshape(num, 3),
        "label_ids": np.arange(num, dtype=np.int32),
        "example_index": np.arange(num, dtype=np.int32),
    }


def test_train_batches_shuffle_deterministically_and_drop_remainder():
    features = _toy_features(10)
    batches = list(finetune_input.train_batches(features, 4, seed=3, num_epochs=2))
    assert len(batches) == 4  # 2 full batches per epoch, remainder of 2 dropped.
    assert all(batch["input_ids"].shape == (4, 3) for batch in batches)
    for batch in batches:  # Rows stay aligned across keys.
        np.testing.assert_array_equal(batch["input_ids"][:, 0], batch["label_ids"] * 3)
    for epoch in (batches[:2], batches[2:]):
        seen = np.concatenate([batch["label_ids"] for batch in epoch])
        assert len(set(seen.tolist())) == 8  # No repeats within an epoch.
    again = list(finetune_input.train_batches(features, 4, seed=3, num_epochs=2))
    assert all(np.array_equal(a["label_ids"], b["label_ids"]) for a, b in zip(batches, again))
    other = list(finetune_input.train_batches(features, 4, seed=4, num_epochs=2))
    assert any(not np.array_equal(a["label_ids"], b["label_ids"]) for a, b in zip(batches, other))
    # Epochs use different permutations.
    assert not np.array_equal(np.concatenate([b["label_ids"] for b in batches[:2]]),
                              np.concatenate([b["label_ids"] for b in batches[2:]]))
    assert len(list(finetune_input.train_batches(features, 4, seed=0, num_epochs=None,
                                                 num_steps=7))) == 7
    with pytest.raises(ValueError, match="cannot fill one batch"):
        next(finetune_input.train_batches(features, 11, seed=0))


def test_eval_batches_cover_every_example_once_with_padding_weights():
    features = _toy_features(10)
    batches = list(finetune_input.eval_batches(features, 4))
    assert [batch["input_ids"].shape for batch in batches] == [(4, 3)] * 3
    weights = np.concatenate([batch[finetune_input.EXAMPLE_WEIGHT_KEY] for batch in batches])
    assert weights.tolist() == [1.0] * 10 + [0.0] * 2
    indices = np.concatenate([batch["example_index"] for batch in batches])
    assert indices[weights > 0].tolist() == list(range(10))
    assert indices[weights == 0].tolist() == [-1, -1]
    # Weighted metrics see each real example exactly once.
    labels = np.concatenate([batch["label_ids"] for batch in batches])
    assert metrics.glue_metrics("sst2", labels, labels, weights=weights) == {"accuracy": 1.0}
    with pytest.raises(ValueError, match="leading dimension"):
        next(finetune_input.eval_batches({"a": np.zeros(3), "b": np.zeros(4)}, 2))
