"""bertjax.metrics on hand-worked GLUE and NER cases, and the SQuAD scorers against the official scripts."""
import collections
import re
import string
import sys
import warnings

import numpy as np
import pytest

from bertjax import metrics

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
# SQuAD: a transcription of the official scripts as the oracle.
# --------------------------------------------------------------------------------------------


class OfficialV11:
    """evaluate-v1.1.py (SQuAD explorer), transcribed; stderr printing kept."""

    @staticmethod
    def normalize_answer(s):

        def remove_articles(text):
            return re.sub(r'\b(a|an|the)\b', ' ', text)

        def white_space_fix(text):
            return ' '.join(text.split())

        def remove_punc(text):
            exclude = set(string.punctuation)
            return ''.join(ch for ch in text if ch not in exclude)

        def lower(text):
            return text.lower()

        return white_space_fix(remove_articles(remove_punc(lower(s))))

    @classmethod
    def f1_score(cls, prediction, ground_truth):
        prediction_tokens = cls.normalize_answer(prediction).split()
        ground_truth_tokens = cls.normalize_answer(ground_truth).split()
        common = collections.Counter(prediction_tokens) & collections.Counter(ground_truth_tokens)
        num_same = sum(common.values())
        if num_same == 0:
            return 0
        precision = 1.0 * num_same / len(prediction_tokens)
        recall = 1.0 * num_same / len(ground_truth_tokens)
        f1 = (2 * precision * recall) / (precision + recall)
        return f1

    @classmethod
    def exact_match_score(cls, prediction, ground_truth):
        return (cls.normalize_answer(prediction) == cls.normalize_answer(ground_truth))

    @staticmethod
    def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
        scores_for_ground_truths = []
        for ground_truth in ground_truths:
            score = metric_fn(prediction, ground_truth)
            scores_for_ground_truths.append(score)
        return max(scores_for_ground_truths)

    @classmethod
    def evaluate(cls, dataset, predictions):
        f1 = exact_match = total = 0
        for article in dataset:
            for paragraph in article['paragraphs']:
                for qa in paragraph['qas']:
                    total += 1
                    if qa['id'] not in predictions:
                        message = 'Unanswered question ' + qa['id'] + ' will receive score 0.'
                        print(message, file=sys.stderr)
                        continue
                    ground_truths = list(map(lambda x: x['text'], qa['answers']))
                    prediction = predictions[qa['id']]
                    exact_match += cls.metric_max_over_ground_truths(
                        cls.exact_match_score, prediction, ground_truths)
                    f1 += cls.metric_max_over_ground_truths(cls.f1_score, prediction, ground_truths)
        exact_match = 100.0 * exact_match / total
        f1 = 100.0 * f1 / total
        return {'exact_match': exact_match, 'f1': f1}


class OfficialV20:
    """evaluate-v2.0.py (SQuAD explorer), transcribed: main() without file IO and plots."""

    @staticmethod
    def make_qid_to_has_ans(dataset):
        qid_to_has_ans = {}
        for article in dataset:
            for p in article['paragraphs']:
                for qa in p['qas']:
                    qid_to_has_ans[qa['id']] = bool(qa['answers'])
        return qid_to_has_ans

    @staticmethod
    def normalize_answer(s):

        def remove_articles(text):
            regex = re.compile(r'\b(a|an|the)\b', re.UNICODE)
            return re.sub(regex, ' ', text)

        def white_space_fix(text):
            return ' '.join(text.split())

        def remove_punc(text):
            exclude = set(string.punctuation)
            return ''.join(ch for ch in text if ch not in exclude)

        def lower(text):
            return text.lower()

        return white_space_fix(remove_articles(remove_punc(lower(s))))

    @classmethod
    def get_tokens(cls, s):
        if not s:
            return []
        return cls.normalize_answer(s).split()

    @classmethod
    def compute_exact(cls, a_gold, a_pred):
        return int(cls.normalize_answer(a_gold) == cls.normalize_answer(a_pred))

    @classmethod
    def compute_f1(cls, a_gold, a_pred):
        gold_toks = cls.get_tokens(a_gold)
        pred_toks = cls.get_tokens(a_pred)
        common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
        num_same = sum(common.values())
        if len(gold_toks) == 0 or len(pred_toks) == 0:
            return int(gold_toks == pred_toks)
        if num_same == 0:
            return 0
        precision = 1.0 * num_same / len(pred_toks)
        recall = 1.0 * num_same / len(gold_toks)
        f1 = (2 * precision * recall) / (precision + recall)
        return f1

    @classmethod
    def get_raw_scores(cls, dataset, preds):
        exact_scores = {}
        f1_scores = {}
        for article in dataset:
            for p in article['paragraphs']:
                for qa in p['qas']:
                    qid = qa['id']
                    gold_answers = [
                        a['text'] for a in qa['answers'] if cls.normalize_answer(a['text'])
                    ]
                    if not gold_answers:
                        gold_answers = ['']
                    if qid not in preds:
                        print('Missing prediction for %s' % qid)
                        continue
                    a_pred = preds[qid]
                    exact_scores[qid] = max(cls.compute_exact(a, a_pred) for a in gold_answers)
                    f1_scores[qid] = max(cls.compute_f1(a, a_pred) for a in gold_answers)
        return exact_scores, f1_scores

    @staticmethod
    def apply_no_ans_threshold(scores, na_probs, qid_to_has_ans, na_prob_thresh):
        new_scores = {}
        for qid, s in scores.items():
            pred_na = na_probs[qid] > na_prob_thresh
            if pred_na:
                new_scores[qid] = float(not qid_to_has_ans[qid])
            else:
                new_scores[qid] = s
        return new_scores

    @staticmethod
    def make_eval_dict(exact_scores, f1_scores, qid_list=None):
        if not qid_list:
            total = len(exact_scores)
            return collections.OrderedDict([
                ('exact', 100.0 * sum(exact_scores.values()) / total),
                ('f1', 100.0 * sum(f1_scores.values()) / total),
                ('total', total),
            ])
        else:
            total = len(qid_list)
            return collections.OrderedDict([
                ('exact', 100.0 * sum(exact_scores[k] for k in qid_list) / total),
                ('f1', 100.0 * sum(f1_scores[k] for k in qid_list) / total),
                ('total', total),
            ])

    @staticmethod
    def merge_eval(main_eval, new_eval, prefix):
        for k in new_eval:
            main_eval['%s_%s' % (prefix, k)] = new_eval[k]

    @staticmethod
    def find_best_thresh(preds, scores, na_probs, qid_to_has_ans):
        num_no_ans = sum(1 for k in qid_to_has_ans if not qid_to_has_ans[k])
        cur_score = num_no_ans
        best_score = cur_score
        best_thresh = 0.0
        qid_list = sorted(na_probs, key=lambda k: na_probs[k])
        for i, qid in enumerate(qid_list):
            if qid not in scores:
                continue
            if qid_to_has_ans[qid]:
                diff = scores[qid]
            else:
                if preds[qid]:
                    diff = -1
                else:
                    diff = 0
            cur_score += diff
            if cur_score > best_score:
                best_score = cur_score
                best_thresh = na_probs[qid]
        return 100.0 * best_score / len(scores), best_thresh

    @classmethod
    def main(cls, dataset, preds, na_probs=None, na_prob_thresh=1.0):
        has_na_prob_file = na_probs is not None
        if not has_na_prob_file:
            na_probs = {k: 0.0 for k in preds}
        qid_to_has_ans = cls.make_qid_to_has_ans(dataset)
        has_ans_qids = [k for k, v in qid_to_has_ans.items() if v]
        no_ans_qids = [k for k, v in qid_to_has_ans.items() if not v]
        exact_raw, f1_raw = cls.get_raw_scores(dataset, preds)
        exact_thresh = cls.apply_no_ans_threshold(exact_raw, na_probs, qid_to_has_ans,
                                                  na_prob_thresh)
        f1_thresh = cls.apply_no_ans_threshold(f1_raw, na_probs, qid_to_has_ans, na_prob_thresh)
        out_eval = cls.make_eval_dict(exact_thresh, f1_thresh)
        if has_ans_qids:
            has_ans_eval = cls.make_eval_dict(exact_thresh, f1_thresh, qid_list=has_ans_qids)
            cls.merge_eval(out_eval, has_ans_eval, 'HasAns')
        if no_ans_qids:
            no_ans_eval = cls.make_eval_dict(exact_thresh, f1_thresh, qid_list=no_ans_qids)
            cls.merge_eval(out_eval, no_ans_eval, 'NoAns')
        if has_na_prob_file:
            best_exact, exact_thresh = cls.find_best_thresh(preds, exact_raw, na_probs,
                                                            qid_to_has_ans)
            best_f1, f1_thresh = cls.find_best_thresh(preds, f1_raw, na_probs, qid_to_has_ans)
            out_eval['best_exact'] = best_exact
            out_eval['best_exact_thresh'] = exact_thresh
            out_eval['best_f1'] = best_f1
            out_eval['best_f1_thresh'] = f1_thresh
        return dict(out_eval)


def _dataset(questions):
    """Official "data" list from [(qid, [gold texts])]."""
    qas = [{
        "id": qid,
        "question": "?",
        "answers": [{"text": text, "answer_start": 0} for text in golds]
    } for qid, golds in questions]
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


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
    assert result == pytest.approx(OfficialV11.evaluate(dataset, predictions))


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
    assert result == pytest.approx(OfficialV20.main(dataset, predictions))


def test_squad_v2_threshold_and_best_threshold():
    dataset = _dataset([("a", ["x"]), ("b", ["y z"]), ("c", []), ("d", [])])
    predictions = {"a": "x", "b": "y", "c": "w", "d": ""}
    na_probs = {"a": 0.1, "b": 0.7, "c": 0.9, "d": 0.4}
    for threshold in (1.0, 0.5, 0.0):
        ours = metrics.squad_v2(dataset, predictions, na_probs, threshold)
        assert ours == pytest.approx(OfficialV20.main(dataset, predictions, na_probs, threshold))
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


def _random_answer(rng):
    vocabulary = ["the", "a", "An", "THE", "cat", "Cat's", "dog", "dog.", "(1895)", "1895", ",",
                  "an-", "thea", "é", "naïve", "--", "  ", "\t", "New", "York", "!?", "a.b"]
    return "".join(
        rng.choice(vocabulary) + rng.choice(["", " ", "  "]) for _ in range(rng.integers(0, 7)))


@pytest.mark.parametrize("seed", range(3))
def test_squad_scores_match_official_scripts_on_random_strings(seed):
    rng = np.random.default_rng(seed)
    v1_questions, v2_questions, predictions, na_probs = [], [], {}, {}
    for index in range(150):
        qid = f"q{index}"
        golds = [_random_answer(rng) for _ in range(rng.integers(1, 4))]
        v1_questions.append((qid, golds))
        v2_questions.append((qid, golds if rng.random() < 0.6 else []))
        predictions[qid] = _random_answer(rng) if rng.random() < 0.8 else ""
        na_probs[qid] = float(rng.random())
    v1_dataset, v2_dataset = _dataset(v1_questions), _dataset(v2_questions)
    assert metrics.squad_v1(v1_dataset, predictions) == pytest.approx(
        OfficialV11.evaluate(v1_dataset, predictions), abs=1e-9)
    assert metrics.squad_v2(v2_dataset, predictions) == pytest.approx(
        OfficialV20.main(v2_dataset, predictions), abs=1e-9)
    assert metrics.squad_v2(v2_dataset, predictions, na_probs, 0.5) == pytest.approx(
        OfficialV20.main(v2_dataset, predictions, na_probs, 0.5), abs=1e-9)


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
