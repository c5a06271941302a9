"""SQuAD post-processing: gold answers from synthetic logits, and parity with the original's
write_predictions and get_final_text (tests/golden/squad_predictions.json, squad_features.json)."""
import os

import numpy as np
import pytest

from bertjax import metrics, squad_postprocess
from data_pipelines import tokenization
from data_pipelines import squad
from tests import golden
from tests.golden import golden_inputs

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "squad")
V1_FILE = os.path.join(FIXTURES, "tiny-v1.1.json")
V2_FILE = os.path.join(FIXTURES, "tiny-v2.0.json")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.FullTokenizer(tokenization.bundled_uncased_vocab_file(), do_lower_case=True)


FINAL_TEXT = golden.load("squad_features")
PREDICTIONS = golden.load("squad_predictions")


@pytest.mark.parametrize("pred_text,orig_text,expected", [
    ("steve smith", "Steve Smith's", "Steve Smith"),
    ("1895", "(1895-1943).", "1895"),
    ("zurich , switzerland", "Zürich, Switzerland,", "Zürich, Switzerland"),
    ("4 , 200 employees", "4,200 employees", "4,200 employees"),
    ("24 – 10", "24–10", "24–10"),
    ("not there", "Some Text", "Some Text"),  # Alignment fails: the whole original span.
])
def test_get_final_text_projects_back_to_original_characters(pred_text, orig_text, expected):
    assert squad_postprocess.get_final_text(pred_text, orig_text, do_lower_case=True) == expected
    original = dict(zip(map(tuple, FINAL_TEXT["inputs"]["final_text"]),
                        FINAL_TEXT["outputs"]["final_text"]))
    assert original[(pred_text, orig_text)] == expected


def _gold_logits(arrays, train_features, seq_length, impossible_ids, examples, rng):
    """Logits peaking at the gold span in every window that holds it, or at [CLS] if impossible."""
    num = arrays["input_ids"].shape[0]
    start_logits = rng.uniform(-2.0, 0.0, (num, seq_length)).astype(np.float32)
    end_logits = rng.uniform(-2.0, 0.0, (num, seq_length)).astype(np.float32)
    for row, feature in enumerate(train_features):
        qas_id = examples[feature.example_index].qas_id
        if qas_id in impossible_ids:
            start_logits[row, 0] = end_logits[row, 0] = 10.0
        elif feature.start_position > 0:
            start_logits[row, feature.start_position] = 8.0
            end_logits[row, feature.end_position] = 8.0
    return start_logits, end_logits


def _expected_answer(gold_text):
    # Predictions join the original words with single spaces; "Japan" is annotated inside the word
    # "Japanese", which WordPiece cannot split, so the model can only answer the whole word.
    return "Japanese" if gold_text == "Japan" else " ".join(gold_text.split())


@pytest.mark.parametrize("max_seq_length,doc_stride", [(384, 128), (32, 8), (28, 5)])
def test_synthetic_gold_logits_recover_gold_text_v1(tokenizer, max_seq_length, doc_stride):
    data = squad.load_squad_json(V1_FILE)
    examples = squad.read_squad_examples(data, is_training=True, version_2_with_negative=False)
    arrays, features = squad.convert_examples_to_features(examples, tokenizer, max_seq_length,
                                                          doc_stride, 16, is_training=True)
    assert len(features) > len(examples) or max_seq_length == 384
    rng = np.random.default_rng(0)
    start_logits, end_logits = _gold_logits(arrays, features, max_seq_length, set(), examples, rng)
    result = squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"],
                                                   start_logits, end_logits)
    golds = {qa["id"]: qa["answers"][0]["text"] for article in data
             for paragraph in article["paragraphs"] for qa in paragraph["qas"]}
    assert result.predictions == {qid: _expected_answer(text) for qid, text in golds.items()}
    assert result.null_odds == {}
    for qid, nbest in result.nbest.items():
        assert nbest[0]["text"] == result.predictions[qid]
        assert sum(entry["probability"] for entry in nbest) == pytest.approx(1.0)
        assert len(nbest) <= 20
    scores = metrics.squad_v1(data, result.predictions)
    assert scores["exact_match"] == pytest.approx(100.0 * 10 / 11)  # All but "Japan".


def test_synthetic_logits_v2_predict_null_for_impossible_questions(tokenizer):
    data = squad.load_squad_json(V2_FILE)
    examples = squad.read_squad_examples(data, is_training=True, version_2_with_negative=True)
    arrays, features = squad.convert_examples_to_features(examples, tokenizer, 32, 8, 16, True)
    impossible = {"q-impossible-founder", "q-impossible-loser"}
    rng = np.random.default_rng(1)
    start_logits, end_logits = _gold_logits(arrays, features, 32, impossible, examples, rng)
    result = squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"],
                                                   start_logits, end_logits,
                                                   version_2_with_negative=True)
    for example in examples:
        if example.qas_id in impossible:
            assert result.predictions[example.qas_id] == ""
            assert result.null_odds[example.qas_id] > 0
        else:
            assert result.predictions[example.qas_id] == _expected_answer(example.orig_answer_text)
            # score_null is the minimum over windows: a window without the answer has [CLS] logits
            # in [-2, 0], far below the 16 of the gold span.
            assert result.null_odds[example.qas_id] < -10
    scores = metrics.squad_v2(data, result.predictions, result.null_odds, na_prob_thresh=0.0)
    assert scores["NoAns_exact"] == 100.0 and scores["HasAns_exact"] == pytest.approx(1000 / 11)
    # A threshold above every null odds answers even the impossible questions.
    lenient = squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"],
                                                    start_logits, end_logits,
                                                    version_2_with_negative=True,
                                                    null_score_diff_threshold=1e9)
    assert all(lenient.predictions[qid] for qid in impossible)


@pytest.mark.parametrize("index", range(len(PREDICTIONS["inputs"]["cases"])),
                         ids=lambda i: "{version}-{max_seq_length}-{n_best_size}".format(
                             **PREDICTIONS["inputs"]["cases"][i]))
def test_random_logits_match_original_write_predictions(tokenizer, index):
    inputs = PREDICTIONS["inputs"]
    case, original = inputs["cases"][index], PREDICTIONS["outputs"][index]
    version_2 = case["version"] == "v2.0"
    examples = squad.read_squad_examples(squad.load_squad_json(V2_FILE if version_2 else V1_FILE),
                                         False, version_2)
    arrays, features = squad.convert_examples_to_features(
        examples, tokenizer, case["max_seq_length"], case["doc_stride"], inputs["max_query_length"])
    start_logits, end_logits = golden_inputs.seeded_logits(case["seed"], arrays["input_mask"])
    assert list(start_logits.shape) == original["logits_shape"]
    assert [start_logits.astype(np.float64).sum(), end_logits.astype(np.float64).sum()] == (
        pytest.approx(original["logits_sums"], rel=1e-9)), "numpy's seeded normals changed"
    result = squad_postprocess.compute_predictions(
        examples, features, arrays["unique_ids"], start_logits, end_logits,
        n_best_size=case["n_best_size"], max_answer_length=case["max_answer_length"],
        version_2_with_negative=version_2,
        null_score_diff_threshold=inputs["null_score_diff_threshold"])
    assert result.predictions == original["predictions"]
    assert list(result.nbest) == list(original["nbest"])
    for qid, entries in original["nbest"].items():
        assert [e["text"] for e in result.nbest[qid]] == [e["text"] for e in entries]
        for ours, theirs in zip(result.nbest[qid], entries):
            assert ours["probability"] == pytest.approx(theirs["probability"], rel=1e-12)
            assert ours["start_logit"] == theirs["start_logit"]
            assert ours["end_logit"] == theirs["end_logit"]
    if version_2:
        assert result.null_odds == pytest.approx(original["null_odds"], rel=1e-12)
    else:
        assert original["null_odds"] is None


def test_padding_rows_are_ignored_and_missing_logits_raise(tokenizer):
    examples = squad.read_squad_examples(squad.load_squad_json(V1_FILE), False, False)[:2]
    arrays, features = squad.convert_examples_to_features(examples, tokenizer, 64, 16, 16)
    num, seq_length = arrays["input_ids"].shape
    rng = np.random.default_rng(2)
    start = rng.normal(size=(num, seq_length)).astype(np.float32)
    end = rng.normal(size=(num, seq_length)).astype(np.float32)
    reference = squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"],
                                                      start, end)
    # Eval batches pad with unique id -1 rows (and come in any order).
    order = rng.permutation(num)
    padded_ids = np.concatenate([arrays["unique_ids"][order], [-1, -1]])
    padded_start = np.concatenate([start[order], np.full((2, seq_length), 99.0, np.float32)])
    padded_end = np.concatenate([end[order], np.full((2, seq_length), 99.0, np.float32)])
    padded = squad_postprocess.compute_predictions(examples, features, padded_ids, padded_start,
                                                   padded_end)
    assert padded.predictions == reference.predictions
    with pytest.raises(ValueError, match="No logits for feature"):
        squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"][1:],
                                              start[1:], end[1:])
    with pytest.raises(ValueError, match=r"\[R, S\]"):
        squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"], start,
                                              end[:, :-1])


def test_v2_with_no_valid_span_predicts_null(tokenizer):
    examples = squad.read_squad_examples(squad.load_squad_json(V2_FILE), False, True)[:1]
    arrays, features = squad.convert_examples_to_features(examples, tokenizer, 64, 16, 16)
    logits = np.zeros(arrays["input_ids"].shape, np.float32)
    # max_answer_length 0 rejects every span: only the null answer is left.
    result = squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"], logits,
                                                   logits, max_answer_length=0,
                                                   version_2_with_negative=True)
    qid = examples[0].qas_id
    assert result.predictions[qid] == "" and result.null_odds[qid] == float("inf")
    v1 = squad_postprocess.compute_predictions(examples, features, arrays["unique_ids"], logits,
                                               logits, max_answer_length=0)
    assert v1.predictions[qid] == "empty"  # The original's nonce answer.
