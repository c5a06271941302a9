"""bertjax.metrics on hand-worked GLUE and NER cases, and the SQuAD scorers against the official
scripts' scores (tests/golden)."""
import warnings

import numpy as np
import pytest

from bertjax import metrics
from tests import golden

# --------------------------------------------------------------------------------------------
# Classification and correlation metrics (sklearn / scipy underneath) on hand-worked cases.
# --------------------------------------------------------------------------------------------

# Predictions and labels with TP = 2, FP = 1, FN = 1, TN = 1.
HAND_PREDICTIONS = np.array([1, 1, 0, 0, 1])
HAND_LABELS = np.array([1, 0, 0, 1, 1])


def test_classification_metrics_hand_worked():
    assert metrics.accuracy(HAND_PREDICTIONS, HAND_LABELS) == pytest.approx(3 / 5)
    # F1 = 2 TP / (2 TP + FP + FN) = 4 / 6.
    assert metrics.f1(HAND_PREDICTIONS, HAND_LABELS) == pytest.approx(4 / 6)
    # F1 of class 0: TP0 = 1, FP0 = 1, FN0 = 1 -> 2 / 4.
    assert metrics.f1(HAND_PREDICTIONS, HAND_LABELS, positive_label=0) == pytest.approx(2 / 4)
    # MCC = (TP TN - FP FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) = (2 - 1) / sqrt(3 * 3 * 2 * 2).
    assert metrics.matthews_corrcoef(HAND_PREDICTIONS, HAND_LABELS) == pytest.approx(1 / 6)


def test_multiclass_mcc_hand_worked():
    # Gorodkin's form (c s - p.t) / sqrt((s^2 - p.p)(s^2 - t.t)): s = 6 samples, c = 4 correct,
    # true counts t = (2, 2, 2), predicted counts p = (3, 2, 1) -> (24 - 12) / sqrt(22 * 24).
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 0, 0, 1, 1, 2])
    assert metrics.matthews_corrcoef(predictions, labels) == pytest.approx(12 / np.sqrt(22 * 24))


@pytest.mark.parametrize("constant", [0, 1])
def test_constant_predictions_give_mcc_zero(constant):
    # The CoLA majority baseline: a zero denominator scores 0, not NaN.
    labels = np.array([0, 1, 1, 0, 1, 1, 1])
    predictions = np.full_like(labels, constant)
    assert metrics.matthews_corrcoef(predictions, labels) == 0.0


def test_f1_edge_cases_hand_worked():
    cases = [
        ([0, 0, 0], [0, 0, 0], 0.0),  # No positives anywhere: 0, not a division error.
        ([1, 1, 1], [1, 1, 1], 1.0),
        ([1, 0, 1], [0, 1, 0], 0.0),
        ([1, 1, 1, 1], [1, 0, 1, 0], 2 * 2 / (2 * 2 + 2)),  # Majority-positive, as MRPC's.
    ]
    for predictions, labels, expected in cases:
        assert metrics.f1(predictions, labels) == pytest.approx(expected)


def test_perfect_and_inverted_mcc():
    labels = np.array([0, 1, 1, 0])
    assert metrics.matthews_corrcoef(labels, labels) == pytest.approx(1.0)
    assert metrics.matthews_corrcoef(1 - labels, labels) == pytest.approx(-1.0)


def test_correlations_hand_worked():
    # Centred x = (-1, 0, 1), y = (-1, 1, 0): covariance 1, norms sqrt 2 each -> 0.5; the ranks
    # are the values themselves, so Spearman is 0.5 too.
    assert metrics.pearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)
    assert metrics.spearman([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]) == pytest.approx(0.5)
    # Ties take the average rank: x ranks (1, 2.5, 2.5, 4), y ranks (1, 2, 3, 4); centred
    # (-1.5, 0, 0, 1.5) . (-1.5, -0.5, 0.5, 1.5) = 4.5 over sqrt(4.5 * 5).
    assert metrics.spearman([10.0, 20.0, 20.0, 30.0], [1.0, 2.0, 3.0, 4.0]) == pytest.approx(
        4.5 / np.sqrt(4.5 * 5))
    # Pearson is not rank-based: a monotone but non-linear map scores below 1.
    assert metrics.spearman([1.0, 2.0, 3.0], [1.0, 4.0, 27.0]) == pytest.approx(1.0)
    assert metrics.pearson([1.0, 2.0, 3.0], [1.0, 4.0, 27.0]) < 0.95


def test_correlation_of_constant_is_nan():
    # A collapsed STS-B run (one score for everything) has no correlation: NaN, no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(metrics.pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))
        assert np.isnan(metrics.spearman([1.0, 2.0, 3.0], [2.0, 2.0, 2.0]))


def test_metrics_reject_bad_shapes():
    with pytest.raises(ValueError, match="differ in length"):
        metrics.accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="argmax"):
        metrics.accuracy(np.zeros((3, 2)), [0, 1, 1])
    with pytest.raises(ValueError, match="no examples"):
        metrics.matthews_corrcoef([], [])


def test_glue_metrics_per_task_and_weights():
    assert metrics.glue_metrics("cola", HAND_PREDICTIONS, HAND_LABELS) == {
        "matthews_corrcoef": pytest.approx(1 / 6)}
    assert metrics.glue_metrics("mrpc", HAND_PREDICTIONS, HAND_LABELS) == {
        "accuracy": pytest.approx(0.6), "f1": pytest.approx(4 / 6)}
    stsb = metrics.glue_metrics("stsb", [1.0, 2.0, 3.0], [1.0, 3.0, 2.0])
    assert stsb == {"pearson": pytest.approx(0.5), "spearman": pytest.approx(0.5)}
    for task in ("sst2", "mnli", "qnli", "rte", "wnli"):
        assert metrics.glue_metrics(task, HAND_PREDICTIONS, HAND_LABELS) == {
            "accuracy": pytest.approx(0.6)}
    # Weight-0 rows (padding of the last eval batch) are left out.
    weighted = metrics.glue_metrics("sst2", np.array([1, 0, 0, 0]), np.array([1, 0, 1, 1]),
                                    weights=np.array([1, 1, 0, 0]))
    assert weighted == {"accuracy": 1.0}
    with pytest.raises(ValueError, match="Unknown GLUE task"):
        metrics.glue_metrics("squad", HAND_PREDICTIONS, HAND_LABELS)


# --------------------------------------------------------------------------------------------
# SQuAD: the official evaluate-v1.1.py / evaluate-v2.0.py scores of stored predictions.
# --------------------------------------------------------------------------------------------

SQUAD_SCORES = golden.load("squad_scores")
OFFICIAL = {case["name"]: (case, scores)
            for case, scores in zip(SQUAD_SCORES["inputs"]["cases"], SQUAD_SCORES["outputs"],
                                    strict=True)}
_dataset = golden.squad_dataset


def _official(name, questions, predictions, na_probs=None, na_prob_thresh=None):
    """The official script's scores on golden case `name`, whose stored inputs must be these."""
    case, scores = OFFICIAL[name]
    assert case["questions"] == [[qid, list(golds)] for qid, golds in questions], name
    assert case["predictions"] == predictions, name
    assert (case.get("na_probs"), case.get("na_prob_thresh")) == (na_probs, na_prob_thresh), name
    return scores


def test_squad_v1_hand_worked_cases():
    dataset = _dataset([
        ("articles", ["The Eiffel Tower"]),  # "eiffel tower" after normalisation.
        ("punctuation", ["Denver Broncos!"]),
        ("max_over_golds", ["Carolina Panthers", "the Panthers", "Panthers"]),
        ("partial", ["Santa Clara, California"]),
        ("unanswered", ["1994"]),
    ])
    predictions = {
        "articles": "eiffel tower",  # EM 1.
        "punctuation": "denver, broncos",  # EM 1: punctuation and case vanish.
        "max_over_golds": "panthers",  # EM 1 against the third gold.
        "partial": "California",  # F1: p = 1, r = 1/3 -> 0.5.
    }
    result = metrics.squad_v1(dataset, predictions)
    assert result["exact_match"] == pytest.approx(100.0 * 3 / 5)
    assert result["f1"] == pytest.approx(100.0 * (1 + 1 + 1 + 0.5 + 0) / 5)
    assert result == pytest.approx(_official("v1_hand_worked", [
        ("articles", ["The Eiffel Tower"]), ("punctuation", ["Denver Broncos!"]),
        ("max_over_golds", ["Carolina Panthers", "the Panthers", "Panthers"]),
        ("partial", ["Santa Clara, California"]), ("unanswered", ["1994"])], predictions))


def test_squad_v1_article_only_prediction_scores_zero_f1():
    # v1.1 has no special case for empty token lists: an empty prediction scores 0.
    dataset = _dataset([("q", ["the"])])
    assert metrics.squad_v1(dataset, {"q": "a"}) == {"exact_match": 100.0, "f1": 0.0}


def test_squad_v2_hand_worked_cases():
    dataset = _dataset([
        ("has_right", ["Normandy", "in Normandy"]),
        ("has_partial", ["10th and 11th centuries"]),  # pred "11th centuries": F1 = 0.8
        ("has_abstained", ["France"]),  # pred "": 0 / 0.
        ("no_abstained", []),  # pred "": 1 / 1.
        ("no_answered", []),  # pred text: 0 / 0.
        ("no_article_gold", ["the"]),  # gold normalises to "": treated as no-answer gold "".
    ])
    predictions = {
        "has_right": "normandy",
        "has_partial": "11th centuries",
        "has_abstained": "",
        "no_abstained": "",
        "no_answered": "Rollo",
        "no_article_gold": "",
    }
    result = metrics.squad_v2(dataset, predictions)
    partial_f1 = 2 * 1.0 * 0.5 / 1.5  # 2 of 2 predicted tokens, 2 of 4 gold tokens.
    assert result["total"] == 6 and result["HasAns_total"] == 4 and result["NoAns_total"] == 2
    assert result["exact"] == pytest.approx(100.0 * 3 / 6)
    assert result["f1"] == pytest.approx(100.0 * (1 + partial_f1 + 0 + 1 + 0 + 1) / 6)
    assert result["HasAns_exact"] == pytest.approx(100.0 * 2 / 4)
    assert result["NoAns_exact"] == pytest.approx(100.0 * 1 / 2)
    assert result == pytest.approx(_official("v2_hand_worked", [
        ("has_right", ["Normandy", "in Normandy"]), ("has_partial", ["10th and 11th centuries"]),
        ("has_abstained", ["France"]), ("no_abstained", []), ("no_answered", []),
        ("no_article_gold", ["the"])], predictions))


def test_squad_v2_threshold_and_best_threshold():
    dataset = _dataset([("a", ["x"]), ("b", ["y z"]), ("c", []), ("d", [])])
    predictions = {"a": "x", "b": "y", "c": "w", "d": ""}
    na_probs = {"a": 0.1, "b": 0.7, "c": 0.9, "d": 0.4}
    for threshold in (1.0, 0.7, 0.5, 0.0):  # b sits at 0.7: no-answer only above it
        ours = metrics.squad_v2(dataset, predictions, na_probs, threshold)
        assert ours == pytest.approx(_official(
            f"v2_threshold_{threshold}", [("a", ["x"]), ("b", ["y z"]), ("c", []), ("d", [])],
            predictions, na_probs, threshold))
    # Above 0.5 "b" and "c" become no-answer: b loses its F1, c gains a correct abstention.
    result = metrics.squad_v2(dataset, predictions, na_probs, 0.5)
    assert result["exact"] == pytest.approx(100.0 * (1 + 0 + 1 + 1) / 4)
    # Best threshold (raw exact a=1, b=0, c=0, d=1; 2 no-answer questions start as correct):
    # sweeping na_prob upwards, a (0.1) adds 1 -> 3, d adds 0, b adds 0, c (answered) loses 1.
    assert result["best_exact"] == pytest.approx(75.0)
    assert result["best_exact_thresh"] == pytest.approx(0.1)


def test_squad_unanswered_scores_zero_and_counts():
    dataset = _dataset([("a", ["x"]), ("b", [])])
    assert metrics.squad_v1(_dataset([("a", ["x"]), ("b", ["y"])]), {"a": "x"}) == {
        "exact_match": 50.0, "f1": 50.0}
    result = metrics.squad_v2(dataset, {"a": "x"})
    assert result["exact"] == 50.0 and result["total"] == 2 and result["NoAns_exact"] == 0.0
    with pytest.raises(ValueError, match="best-threshold"):
        metrics.squad_v2(dataset, {"a": "x"}, na_probs={"a": 0.0})


@pytest.mark.parametrize("seed", range(3))
def test_squad_scores_match_official_scripts_on_random_strings(seed):
    # 150 questions of random answer strings (articles, punctuation, case, accents, whitespace).
    v1_case, v1_scores = OFFICIAL[f"v1_random_{seed}"]
    v2_case, v2_scores = OFFICIAL[f"v2_random_{seed}"]
    na_case, na_scores = OFFICIAL[f"v2_random_{seed}_na_probs"]
    predictions = v1_case["predictions"]
    assert len(predictions) == 150
    assert v2_case["predictions"] == na_case["predictions"] == predictions
    v1_dataset = _dataset(v1_case["questions"])
    v2_dataset = _dataset(v2_case["questions"])
    assert na_case["questions"] == v2_case["questions"]
    assert metrics.squad_v1(v1_dataset, predictions) == pytest.approx(v1_scores, abs=1e-9)
    assert metrics.squad_v2(v2_dataset, predictions) == pytest.approx(v2_scores, abs=1e-9)
    assert metrics.squad_v2(v2_dataset, predictions, na_case["na_probs"],
                            na_case["na_prob_thresh"]) == pytest.approx(na_scores, abs=1e-9)


# --------------------------------------------------------------------------------------------
# Entity F1.
# --------------------------------------------------------------------------------------------


def test_extract_entities_bio_and_iob1():
    assert metrics.extract_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1),
                                                                          ("LOC", 3, 3)]
    # IOB1: I- opens a chunk; B- only splits two adjacent same-type chunks.
    assert metrics.extract_entities(["I-PER", "I-PER", "B-PER", "O", "I-ORG", "I-LOC"]) == [
        ("PER", 0, 1), ("PER", 2, 2), ("ORG", 4, 4), ("LOC", 5, 5)
    ]
    # An I- of another type after B- closes the first chunk and opens a new one.
    assert metrics.extract_entities(["B-PER", "I-ORG"]) == [("PER", 0, 0), ("ORG", 1, 1)]
    with pytest.raises(ValueError, match="position 1"):
        metrics.extract_entities(["O", "PER"])


def test_entity_f1_hand_worked():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "I-ORG", "I-ORG", "O", "B-MISC"]]
    pred = [
        ["B-PER", "I-PER", "O", "B-ORG"],  # PER right; LOC predicted as ORG (wrong type).
        ["B-ORG", "I-ORG", "O", "O", "B-MISC"],  # ORG boundary wrong; MISC right.
    ]
    result = metrics.entity_f1(gold, pred)
    # 4 gold, 4 predicted, 2 correct.
    assert result["precision"] == pytest.approx(0.5)
    assert result["recall"] == pytest.approx(0.5)
    assert result["f1"] == pytest.approx(0.5)
    assert result["support"] == 4
    per_type = result["per_type"]
    assert per_type["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert per_type["LOC"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert per_type["ORG"]["precision"] == 0.0 and per_type["ORG"]["support"] == 1
    assert per_type["MISC"]["f1"] == 1.0


def test_entity_f1_iob1_gold_against_bio_prediction_of_same_chunks():
    iob1 = [["I-PER", "I-PER", "O", "I-LOC", "B-LOC"]]
    bio = [["B-PER", "I-PER", "O", "B-LOC", "B-LOC"]]
    assert metrics.entity_f1(iob1, bio)["f1"] == 1.0


def test_entity_f1_unequal_recall_precision():
    gold = [["B-PER", "O", "B-PER", "O", "B-LOC"]]
    pred = [["B-PER", "O", "O", "O", "O"]]
    result = metrics.entity_f1(gold, pred)
    assert result["precision"] == 1.0
    assert result["recall"] == pytest.approx(1 / 3)
    assert result["f1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="sentence 0"):
        metrics.entity_f1([["O", "O"]], [["O"]])
