"""Evaluation metrics for GLUE, SQuAD v1.1/v2.0 and CoNLL-2003 NER.

GLUE scores come from scikit-learn and scipy, entity F1 from seqeval (the libraries made for
them); this module adds shape checks, padding weights and the per-task tables. The SQuAD scorers
are the project's own, checked against the official scripts' scores on stored cases.

Nothing here imports jax: metrics run on host arrays after the eval loop has gathered them.

Conventions:
  * Classification and correlation metrics return fractions in [0, 1] (as sklearn and scipy do);
    multiply by 100 for the usual GLUE tables.
  * The SQuAD scorers return percentages, exactly as the official evaluate-v1.1.py and
    evaluate-v2.0.py scripts print them.
  * Shapes: N examples. `predictions` and `labels` are [N] arrays of class ids (int) or, for
    STS-B, scores (float).

GLUE metrics per task follow the GLUE benchmark (Wang et al. 2018): CoLA Matthews correlation;
SST-2, QNLI, RTE, WNLI, MNLI accuracy; MRPC and QQP accuracy and F1 of the positive class
(label id 1: "equivalent" / "duplicate"); STS-B Pearson and Spearman correlation. MNLI has two dev
sets: call `glue_metrics("mnli", ...)` once on validation_matched and once on
validation_mismatched, and report them as MNLI-m and MNLI-mm.
"""
from __future__ import annotations

import collections
import re
import string
from typing import Iterable, Mapping, Sequence

import numpy as np
from absl import logging
from scipy import stats as scipy_stats
from seqeval import metrics as seqeval_metrics
from seqeval.metrics import sequence_labeling as seqeval_labeling
from sklearn import metrics as sklearn_metrics

from data_pipelines import glue

# --------------------------------------------------------------------------------------------
# Classification and regression metrics.
# --------------------------------------------------------------------------------------------


def _as_paired_1d(predictions, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
    predictions = np.asarray(predictions)
    labels = np.asarray(labels)
    if predictions.ndim != 1 or labels.ndim != 1:
        raise ValueError(
            f"{name}: predictions and labels must be 1-D [N] arrays (take the argmax of logits "
            f"first); got shapes {predictions.shape} and {labels.shape}.")
    if predictions.shape != labels.shape:
        raise ValueError(f"{name}: predictions {predictions.shape} and labels {labels.shape} "
                         "differ in length.")
    if predictions.size == 0:
        raise ValueError(f"{name}: no examples to score.")
    return predictions, labels


def accuracy(predictions, labels) -> float:
    """Fraction of predictions [N] equal to labels [N] (sklearn's accuracy_score)."""
    predictions, labels = _as_paired_1d(predictions, labels, "accuracy")
    return float(sklearn_metrics.accuracy_score(labels, predictions))


def f1(predictions, labels, positive_label: int = 1) -> float:
    """Binary F1 of `positive_label` (sklearn's f1_score, average="binary").

    F1 = 2 TP / (2 TP + FP + FN); 0.0 when there is neither a positive prediction nor a positive
    label (zero_division=0, sklearn's documented default value).
    """
    predictions, labels = _as_paired_1d(predictions, labels, "f1")
    return float(sklearn_metrics.f1_score(labels, predictions, pos_label=positive_label,
                                          average="binary", zero_division=0.0))


def matthews_corrcoef(predictions, labels) -> float:
    """Matthews correlation coefficient, multiclass form (Gorodkin 2004; sklearn's).

    Constant predictions (or constant labels) make its denominator zero; sklearn then returns 0.0,
    which is why the CoLA majority-class baseline scores MCC 0.
    """
    predictions, labels = _as_paired_1d(predictions, labels, "matthews_corrcoef")
    return float(sklearn_metrics.matthews_corrcoef(labels, predictions))


def _correlation(statistic, predictions, labels, name: str) -> float:
    predictions, labels = _as_paired_1d(predictions, labels, name)
    predictions = predictions.astype(np.float64)
    labels = labels.astype(np.float64)
    # scipy warns and returns NaN for a constant input; a run that predicts one score for every
    # example is a real outcome (a collapsed STS-B run), so NaN is reported without the warning.
    if np.all(predictions == predictions[0]) or np.all(labels == labels[0]):
        return float("nan")
    return float(statistic(predictions, labels).statistic)


def pearson(predictions, labels) -> float:
    """Pearson correlation of predictions [N] and labels [N] (scipy); NaN when either is constant."""
    return _correlation(scipy_stats.pearsonr, predictions, labels, "pearson")


def spearman(predictions, labels) -> float:
    """Spearman rank correlation (scipy; ties get average ranks); NaN when either is constant."""
    return _correlation(scipy_stats.spearmanr, predictions, labels, "spearman")


# --------------------------------------------------------------------------------------------
# GLUE.
# --------------------------------------------------------------------------------------------

# Official metric(s) per GLUE task (defined with the tasks in data_pipelines.glue).
GLUE_TASK_METRICS = glue.GLUE_TASK_METRICS

_METRIC_FUNCTIONS = {
    "accuracy": accuracy,
    "f1": f1,
    "matthews_corrcoef": matthews_corrcoef,
    "pearson": pearson,
    "spearman": spearman,
}


def glue_metrics(task: str, predictions, labels, weights=None) -> dict[str, float]:
    """The official GLUE metric(s) of `task` as a dict of fractions.

    Args:
      task: one of GLUE_TASK_METRICS ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli",
        "rte", "wnli"). For MNLI call once per dev set (matched, mismatched).
      predictions: [N] predicted class ids, or predicted scores for STS-B.
      labels: [N] gold class ids, or gold scores (0-5) for STS-B.
      weights: optional [N]; rows with weight 0 (the padding of a fixed-size final eval batch) are
        left out, so no example is dropped or counted twice.
    """
    if task not in GLUE_TASK_METRICS:
        raise ValueError(
            f"Unknown GLUE task {task!r}; expected one of {sorted(GLUE_TASK_METRICS)}.")
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if weights is not None:
        weights = np.asarray(weights)
        if weights.shape != labels.shape:
            raise ValueError(f"glue_metrics({task}): weights {weights.shape} do not match labels "
                             f"{labels.shape}.")
        keep = weights > 0
        predictions, labels = predictions[keep], labels[keep]
    return {name: _METRIC_FUNCTIONS[name](predictions, labels) for name in GLUE_TASK_METRICS[task]}


def majority_class_baseline(task_name: str, eval_labels, train_labels=None) -> dict[str, float]:
    """The task's metrics for always predicting the most frequent class.

    The most frequent class is taken from `train_labels` when given, else from `eval_labels` (the
    latter is the baseline Mosbach et al. 2021 use to call a run failed: RTE 52.7% accuracy,
    MRPC 68.4% accuracy / 81.2 F1, CoLA MCC 0). Ties go to the smaller label id. A constant
    prediction has no correlation with anything, so STS-B's baseline is Pearson = Spearman = 0.

    Args:
      task_name: GLUE task.
      eval_labels: [N] gold label ids (or scores) of the evaluation split.
      train_labels: optional [M] label ids from which to pick the majority class.
    """
    task = glue.get_task(task_name)
    eval_labels = np.asarray(eval_labels)
    if task.is_regression:
        return {name: 0.0 for name in task.metric_names}
    reference = np.asarray(train_labels if train_labels is not None else eval_labels)
    if reference.size == 0 or eval_labels.size == 0:
        raise ValueError(f"GLUE {task.name}: no labels to compute the majority baseline from.")
    counts = np.bincount(reference.astype(np.int64), minlength=len(task.label_list))
    majority = int(np.argmax(counts))
    predictions = np.full(eval_labels.shape, majority, eval_labels.dtype)
    return glue_metrics(task.name, predictions, eval_labels)


# --------------------------------------------------------------------------------------------
# SQuAD v1.1: evaluate-v1.1.py, function by function.
# --------------------------------------------------------------------------------------------


def _normalize_answer_v1(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (evaluate-v1.1.py)."""
    text = text.lower()
    exclude = set(string.punctuation)
    text = "".join(ch for ch in text if ch not in exclude)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1_v1(prediction: str, ground_truth: str) -> float:
    prediction_tokens = _normalize_answer_v1(prediction).split()
    ground_truth_tokens = _normalize_answer_v1(ground_truth).split()
    common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    return (2 * precision * recall) / (precision + recall)


def _exact_match_v1(prediction: str, ground_truth: str) -> bool:
    return _normalize_answer_v1(prediction) == _normalize_answer_v1(ground_truth)


def _iterate_qas(dataset: Sequence[Mapping]) -> Iterable[Mapping]:
    for article_index, article in enumerate(dataset):
        if "paragraphs" not in article:
            raise ValueError(
                f"SQuAD dataset article {article_index} has no 'paragraphs' field; pass the "
                "list under the official JSON's 'data' key.")
        for paragraph in article["paragraphs"]:
            yield from paragraph["qas"]


def squad_v1(dataset: Sequence[Mapping], predictions: Mapping[str, str]) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1 in percent, exactly as the official evaluate-v1.1.py.

    Args:
      dataset: the list under "data" of the official JSON (articles -> paragraphs -> qas).
      predictions: question id -> predicted answer text.

    Each question scores its maximum over the gold answers; an unanswered question scores 0 and
    still counts in the denominator (the official script logs it and moves on; so do we).
    """
    exact_match = f1_total = total = 0
    unanswered = []
    for qa in _iterate_qas(dataset):
        total += 1
        if qa["id"] not in predictions:
            unanswered.append(qa["id"])
            continue
        ground_truths = [answer["text"] for answer in qa["answers"]]
        if not ground_truths:
            raise ValueError(
                f"SQuAD v1.1 question {qa['id']!r} has no gold answers; v1.1 questions "
                "always have one (is this a v2.0 file? use squad_v2).")
        prediction = predictions[qa["id"]]
        exact_match += max(_exact_match_v1(prediction, truth) for truth in ground_truths)
        f1_total += max(_f1_v1(prediction, truth) for truth in ground_truths)
    if unanswered:
        logging.warning("SQuAD v1.1: %d unanswered questions score 0 (first: %s).", len(unanswered),
                        unanswered[0])
    if total == 0:
        raise ValueError("SQuAD dataset holds no questions.")
    return {"exact_match": 100.0 * exact_match / total, "f1": 100.0 * f1_total / total}


# --------------------------------------------------------------------------------------------
# SQuAD v2.0: evaluate-v2.0.py, function by function.
# --------------------------------------------------------------------------------------------


def _normalize_answer_v2(text: str) -> str:
    """As v1.1, but the article regex is compiled with re.UNICODE (evaluate-v2.0.py)."""
    text = text.lower()
    exclude = set(string.punctuation)
    text = "".join(ch for ch in text if ch not in exclude)
    text = re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)
    return " ".join(text.split())


def _get_tokens_v2(text: str) -> list[str]:
    if not text:
        return []
    return _normalize_answer_v2(text).split()


def _compute_exact_v2(gold: str, prediction: str) -> int:
    return int(_normalize_answer_v2(gold) == _normalize_answer_v2(prediction))


def _compute_f1_v2(gold: str, prediction: str) -> float:
    gold_tokens = _get_tokens_v2(gold)
    prediction_tokens = _get_tokens_v2(prediction)
    common = collections.Counter(gold_tokens) & collections.Counter(prediction_tokens)
    num_same = sum(common.values())
    if len(gold_tokens) == 0 or len(prediction_tokens) == 0:
        # If either is no-answer, F1 is 1 if they agree and 0 otherwise.
        return int(gold_tokens == prediction_tokens)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _find_best_threshold(predictions, scores, na_probs, qid_to_has_answer) -> tuple[float, float]:
    num_no_answer = sum(1 for qid in qid_to_has_answer if not qid_to_has_answer[qid])
    current_score = num_no_answer
    best_score = current_score
    best_threshold = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        if qid_to_has_answer[qid]:
            difference = scores[qid]
        elif predictions[qid]:
            difference = -1
        else:
            difference = 0
        current_score += difference
        if current_score > best_score:
            best_score = current_score
            best_threshold = na_probs[qid]
    return 100.0 * best_score / len(scores), best_threshold


def squad_v2(dataset: Sequence[Mapping],
             predictions: Mapping[str, str],
             na_probs: Mapping[str, float] | None = None,
             na_prob_thresh: float = 1.0) -> dict[str, float]:
    """SQuAD v2.0 scores in percent, exactly as the official evaluate-v2.0.py.

    Args:
      dataset: the list under "data" of the official JSON.
      predictions: question id -> predicted answer text ("" predicts no answer).
      na_probs: optional question id -> the model's no-answer probability (or null-score
        difference). With it, a question whose value exceeds `na_prob_thresh` is predicted
        unanswerable, and the result gains best_exact, best_exact_thresh, best_f1, best_f1_thresh.
      na_prob_thresh: see na_probs.

    Returns exact, f1, total, then HasAns_* and NoAns_* (when such questions exist), then the
    best-threshold fields when na_probs is given.

    Gold answers that normalise to "" are dropped and a question with no gold left has the single
    gold "" (no answer). One deliberate difference from the script: it silently leaves unanswered
    questions out of the denominator (and then crashes in the HasAns/NoAns split); here an
    unanswered question scores 0 and counts, as in squad_v1. The best-threshold search needs a
    prediction and an na_prob for every question, and raises otherwise.
    """
    qid_to_has_answer = {}
    exact_raw, f1_raw = {}, {}
    unanswered = []
    for qa in _iterate_qas(dataset):
        qid = qa["id"]
        qid_to_has_answer[qid] = bool(qa["answers"])
        gold_answers = [a["text"] for a in qa["answers"] if _normalize_answer_v2(a["text"])]
        if not gold_answers:
            # For unanswerable questions the only correct answer is the empty string.
            gold_answers = [""]
        if qid not in predictions:
            unanswered.append(qid)
            exact_raw[qid], f1_raw[qid] = 0, 0
            continue
        prediction = predictions[qid]
        exact_raw[qid] = max(_compute_exact_v2(gold, prediction) for gold in gold_answers)
        f1_raw[qid] = max(_compute_f1_v2(gold, prediction) for gold in gold_answers)
    if not qid_to_has_answer:
        raise ValueError("SQuAD dataset holds no questions.")
    if unanswered:
        logging.warning("SQuAD v2.0: %d unanswered questions score 0 (first: %s).", len(unanswered),
                        unanswered[0])

    has_na_probs = na_probs is not None
    if has_na_probs:
        if unanswered:
            raise ValueError(f"squad_v2: the best-threshold search needs a prediction for every "
                             f"question; {len(unanswered)} are missing (first: {unanswered[0]!r}).")
        missing = [qid for qid in exact_raw if qid not in na_probs]
        if missing:
            raise ValueError(f"squad_v2: na_probs lacks {len(missing)} question ids "
                             f"(first: {missing[0]!r}).")
    else:
        na_probs = {qid: 0.0 for qid in predictions}

    def apply_no_answer_threshold(scores):
        thresholded = {}
        for qid, score in scores.items():
            # An unanswered question has no na_prob either (the script defaults only answered ones).
            if na_probs.get(qid, 0.0) > na_prob_thresh:
                thresholded[qid] = float(not qid_to_has_answer[qid])
            else:
                thresholded[qid] = score
        return thresholded

    exact_thresholded = apply_no_answer_threshold(exact_raw)
    f1_thresholded = apply_no_answer_threshold(f1_raw)

    def eval_dict(qids):
        total = len(qids)
        return {
            "exact": 100.0 * sum(exact_thresholded[k] for k in qids) / total,
            "f1": 100.0 * sum(f1_thresholded[k] for k in qids) / total,
            "total": total,
        }

    result = eval_dict(list(exact_thresholded))
    has_answer_qids = [k for k, v in qid_to_has_answer.items() if v]
    no_answer_qids = [k for k, v in qid_to_has_answer.items() if not v]
    for prefix, qids in (("HasAns", has_answer_qids), ("NoAns", no_answer_qids)):
        if qids:
            for key, value in eval_dict(qids).items():
                result[f"{prefix}_{key}"] = value
    if has_na_probs:
        result["best_exact"], result["best_exact_thresh"] = _find_best_threshold(
            predictions, exact_raw, na_probs, qid_to_has_answer)
        result["best_f1"], result["best_f1_thresh"] = _find_best_threshold(
            predictions, f1_raw, na_probs, qid_to_has_answer)
    return result


# --------------------------------------------------------------------------------------------
# Entity-level F1 for CoNLL-style tags: seqeval's default (conlleval) mode.
# --------------------------------------------------------------------------------------------

Entity = tuple[str, int, int]  # (type, first word index, last word index), inclusive.


def _check_tags(tags: Sequence[str], where: str) -> list[str]:
    """The tags as a list, each 'O' or PREFIX-TYPE with PREFIX in B, I, E, S.

    seqeval reads any string as a tag (a bare "PER" would become an entity of type "ER"), so a
    malformed tag is refused here with its position instead of scoring silently.
    """
    tags = list(tags)
    for position, tag in enumerate(tags):
        if tag == "O":
            continue
        prefix, separator, entity_type = tag.partition("-")
        if not separator or prefix not in ("B", "I", "E", "S") or not entity_type:
            raise ValueError(f"{where}, position {position}: tag {tag!r} is neither 'O' nor "
                             "PREFIX-TYPE with PREFIX in B, I, E, S.")
    return tags


def extract_entities(tags: Sequence[str], where: str = "sequence") -> list[Entity]:
    """Chunks of one tag sequence as (type, start, end) with inclusive word indices.

    Accepts IOB1 (CoNLL-2003's original: I-X opens a chunk unless it continues one of type X; B-X
    only separates adjacent same-type chunks), IOB2/BIO and IOBES, with conlleval's rules as
    seqeval implements them: a chunk opens at B-X or S-X, or at an I-X / E-X whose predecessor is
    O, of another type, or closed.
    """
    return [tuple(entity) for entity in seqeval_labeling.get_entities(_check_tags(tags, where))]


def _scores(report_row) -> dict:
    return {"precision": float(report_row["precision"]), "recall": float(report_row["recall"]),
            "f1": float(report_row["f1-score"]), "support": int(report_row["support"])}


def entity_f1(true_tag_sequences: Sequence[Sequence[str]],
              pred_tag_sequences: Sequence[Sequence[str]]) -> dict:
    """Micro-averaged entity-level precision, recall and F1 (fractions), as conlleval / seqeval.

    An entity counts as correct only when its type and both boundaries match a gold entity.

    Args:
      true_tag_sequences: per sentence, the gold word-level tags.
      pred_tag_sequences: per sentence, the predicted word-level tags (same lengths).

    Returns:
      {"precision", "recall", "f1", "support" (gold entities), "per_type": {type: {precision,
      recall, f1, support}}}; scores with a zero denominator are 0.0.
    """
    if len(true_tag_sequences) != len(pred_tag_sequences):
        raise ValueError(f"entity_f1: {len(true_tag_sequences)} gold sentences but "
                         f"{len(pred_tag_sequences)} predicted ones.")
    gold, predicted = [], []
    for sentence_index, (true_tags, pred_tags) in enumerate(
        zip(true_tag_sequences, pred_tag_sequences)):
        if len(true_tags) != len(pred_tags):
            raise ValueError(f"entity_f1: sentence {sentence_index} has {len(true_tags)} gold tags "
                             f"but {len(pred_tags)} predicted ones.")
        gold.append(_check_tags(true_tags, f"gold sentence {sentence_index}"))
        predicted.append(_check_tags(pred_tags, f"predicted sentence {sentence_index}"))
    report = seqeval_metrics.classification_report(gold, predicted, output_dict=True,
                                                   zero_division=0)
    result = _scores(report.pop("micro avg"))
    for average in ("macro avg", "weighted avg"):
        report.pop(average)
    result["per_type"] = {entity_type: _scores(row) for entity_type, row in sorted(report.items())}
    return result

