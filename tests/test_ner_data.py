"""CoNLL-2003 reading, first-sub-token labelling (vs HF's word_ids alignment) and the way back."""
import os

import numpy as np
import pytest
import transformers

from bertjax import metrics
from data_pipelines import tokenization
from data_pipelines import ner

CONLL_FILE = os.path.join(os.path.dirname(__file__), "fixtures", "conll2003", "tiny.txt")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.FullTokenizer(tokenization.bundled_uncased_vocab_file(), do_lower_case=True)


@pytest.fixture(scope="module")
def hf_tokenizer():
    return transformers.BertTokenizerFast(str(tokenization.bundled_uncased_vocab_file()),
                                          do_lower_case=True)


@pytest.fixture(scope="module")
def sentences():
    return ner.read_conll2003(CONLL_FILE)


def test_read_conll2003(sentences):
    assert len(sentences) == 5  # -DOCSTART- lines dropped; the last sentence has no blank line.
    assert sentences[0].words == ("EU", "rejects", "German", "call", "to", "boycott", "British",
                                  "lamb", ".")
    assert sentences[0].tags == ("I-ORG", "O", "I-MISC", "O", "O", "O", "I-MISC", "O", "O")
    assert sentences[2] == ner.NerSentence(("BRUSSELS", "1996-08-22"), ("I-LOC", "O"))
    assert sentences[4].tags == ("I-PER", "B-PER", "O", "I-LOC")


def test_bad_lines_raise_with_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("EU NNP B-NP I-ORG\nrejects VBZ O\n")
    with pytest.raises(ValueError, match=r"bad.txt, line 2: expected 4 columns"):
        ner.read_conll2003(str(path))


def test_label_list(sentences):
    assert ner.label_list_of(sentences) == ("O", "I-LOC", "I-MISC", "I-ORG", "B-PER", "I-PER")
    assert set(ner.label_list_of(sentences)) <= set(ner.CONLL2003_LABELS)
    assert ner.CONLL2003_LABELS[0] == "O"


@pytest.mark.parametrize("max_seq_length", [64, 12])
def test_first_subtoken_labels_match_hf_word_ids_alignment(sentences, tokenizer, hf_tokenizer,
                                                           max_seq_length):
    """HF's token-classification recipe (label the first token of each word_id) as the oracle."""
    label_list = ner.CONLL2003_LABELS
    features = ner.convert_sentences_to_features(sentences, tokenizer, max_seq_length, label_list)
    for index, sentence in enumerate(sentences):
        encoding = hf_tokenizer(list(sentence.words), is_split_into_words=True, truncation=True,
                                max_length=max_seq_length)
        length = len(encoding["input_ids"])
        assert features["input_ids"][index, :length].tolist() == encoding["input_ids"]
        assert features["input_mask"][index].sum() == length
        expected_labels = np.zeros(max_seq_length, np.int32)
        expected_weights = np.zeros(max_seq_length, np.float32)
        expected_starts = np.full(features["word_start_positions"].shape[1], -1)
        previous_word = None
        for position, word_id in enumerate(encoding.word_ids()):
            if word_id is not None and word_id != previous_word:
                expected_labels[position] = label_list.index(sentence.tags[word_id])
                expected_weights[position] = 1.0
                expected_starts[word_id] = position
            previous_word = word_id
        np.testing.assert_array_equal(features["label_ids"][index], expected_labels)
        np.testing.assert_array_equal(features["label_weights"][index], expected_weights)
        np.testing.assert_array_equal(features["word_start_positions"][index], expected_starts)
    assert features["segment_ids"].sum() == 0


def test_multi_piece_words_are_labelled_once(sentences, tokenizer):
    features = ner.convert_sentences_to_features(sentences[2:3], tokenizer, 16)
    tokens = tokenizer.convert_ids_to_tokens(
        features["input_ids"][0][features["input_mask"][0] == 1].tolist())
    assert tokens == ["[CLS]", "brussels", "1996", "-", "08", "-", "22", "[SEP]"]
    assert features["label_weights"][0, :8].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]
    assert features["label_ids"][0, 1] == ner.CONLL2003_LABELS.index("I-LOC")
    assert features["word_start_positions"][0].tolist() == [1, 2]


def test_predictions_back_to_word_tags_and_entity_f1(sentences, tokenizer):
    features = ner.convert_sentences_to_features(sentences, tokenizer, 64)
    rng = np.random.default_rng(0)
    # Gold ids at first sub-tokens, noise everywhere else: only first sub-tokens may be read.
    noise = rng.integers(0, len(ner.CONLL2003_LABELS), features["label_ids"].shape)
    predicted = np.where(features["label_weights"] > 0, features["label_ids"], noise)
    word_tags = ner.predictions_to_word_tags(predicted, features["word_start_positions"], sentences)
    assert word_tags == [list(sentence.tags) for sentence in sentences]
    gold = [list(s.tags) for s in sentences]
    assert metrics.entity_f1(gold, word_tags)["f1"] == 1.0


def test_truncated_words_come_back_as_o_and_count_as_misses(sentences, tokenizer):
    long_sentence = sentences[3]  # Germany ... Britain ...: entities beyond 12 tokens.
    features = ner.convert_sentences_to_features([long_sentence], tokenizer, 12)
    starts = features["word_start_positions"][0]
    kept = int(np.sum(starts >= 0))
    assert 0 < kept < len(long_sentence.words)
    assert np.all(starts[kept:] == -1)
    tags = ner.predictions_to_word_tags(features["label_ids"], starts[None], [long_sentence])[0]
    assert tags[:kept] == list(long_sentence.tags[:kept])
    assert tags[kept:] == ["O"] * (len(long_sentence.words) - kept)
    result = metrics.entity_f1([list(long_sentence.tags)], [tags])
    # Gold: Germany (LOC), European Union (ORG), Werner Zwingmann (PER), Britain (LOC).
    found = [e for e in metrics.extract_entities(long_sentence.tags) if e[2] < kept]
    assert result["recall"] == pytest.approx(len(found) / 4)
    assert result["precision"] == 1.0


def test_unknown_tag_and_bad_prediction_ids_raise(tokenizer):
    sentence = ner.NerSentence(("Paris",), ("B-CITY",))
    with pytest.raises(ValueError, match="tag 'B-CITY'"):
        ner.convert_sentences_to_features([sentence], tokenizer, 8)
    good = ner.NerSentence(("Paris",), ("B-LOC",))
    features = ner.convert_sentences_to_features([good], tokenizer, 8)
    with pytest.raises(ValueError, match="label id 42"):
        ner.predictions_to_word_tags(np.full((1, 8), 42), features["word_start_positions"], [good])
