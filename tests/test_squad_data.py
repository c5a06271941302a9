"""SQuAD reading and windowed features against the original run_squad.py's outputs
(tests/golden/squad_features.json); window edges; TFDS."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")
import tensorflow_datasets as tfds  # noqa: E402
from tensorflow_datasets.datasets.squad import squad_dataset_builder  # noqa: E402
from tensorflow_datasets.question_answering import qa_utils  # noqa: E402

from data_pipelines import tokenization  # noqa: E402
from data_pipelines import squad  # noqa: E402
from tests import golden  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "squad")
V1_FILE = os.path.join(FIXTURES, "tiny-v1.1.json")
V2_FILE = os.path.join(FIXTURES, "tiny-v2.0.json")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenization.FullTokenizer(tokenization.bundled_uncased_vocab_file(), do_lower_case=True)


GOLDEN = golden.load("squad_features")
VERSIONS = {"v1.1": (V1_FILE, False), "v2.0": (V2_FILE, True)}


@pytest.fixture(scope="module")
def vocab_tokens():
    """Vocab entries in id order, read straight from the file (tokens of golden input_ids)."""
    with open(tokenization.bundled_uncased_vocab_file(), encoding="utf-8") as vocab_file:
        return [line.strip() for line in vocab_file]


def test_split_paragraph_handles_tabs_double_spaces_and_narrow_nbsp():
    data = squad.load_squad_json(V1_FILE)
    context = data[1]["paragraphs"][0]["context"]
    doc_tokens, char_to_word_offset = squad.split_paragraph(context)
    assert doc_tokens == ["The", "Broncos", "defeated", "the", "Carolina", "Panthers", "24–10",
                          "in", "Super", "Bowl", "50", "at", "Levi's", "Stadium", "in", "Santa",
                          "Clara."]
    assert len(char_to_word_offset) == len(context)
    # "The  B": whitespace belongs to the word on its left.
    assert char_to_word_offset[:6] == [0, 0, 0, 0, 0, 1]
    assert char_to_word_offset[context.index("Broncos")] == 1
    assert char_to_word_offset[context.index("\u202f")] == 10


@pytest.mark.parametrize("version", list(VERSIONS))
def test_golden_datasets_are_the_fixtures(version):
    assert GOLDEN["inputs"]["datasets"][version] == squad.load_squad_json(VERSIONS[version][0])


@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("is_training", [True, False])
def test_examples_match_original(version, is_training):
    ours = squad.read_squad_examples(GOLDEN["inputs"]["datasets"][version], is_training,
                                     VERSIONS[version][1])
    original = GOLDEN["outputs"]["examples"][f"{version}/{'train' if is_training else 'predict'}"]
    assert len(ours) == len(original) > 0
    for mine, theirs in zip(ours, original):
        assert [mine.qas_id, mine.question_text, mine.doc_tokens, mine.orig_answer_text,
                mine.start_position, mine.end_position, mine.is_impossible] == theirs


@pytest.mark.parametrize("max_seq_length,doc_stride,max_query_length", [(384, 128, 64),
                                                                        (32, 8, 6), (24, 5, 64),
                                                                        (40, 16, 3)])
@pytest.mark.parametrize("version", list(VERSIONS))
@pytest.mark.parametrize("is_training", [True, False])
def test_features_match_original_field_by_field(tokenizer, vocab_tokens, version, is_training,
                                                max_seq_length, doc_stride, max_query_length):
    if max_seq_length <= max_query_length + 3:
        with pytest.raises(ValueError, match="must be greater than max_query_length"):
            squad.convert_examples_to_features([], tokenizer, max_seq_length, doc_stride,
                                               max_query_length, is_training)
        return
    examples = squad.read_squad_examples(GOLDEN["inputs"]["datasets"][version], is_training,
                                         VERSIONS[version][1])
    arrays, features = squad.convert_examples_to_features(examples, tokenizer, max_seq_length,
                                                          doc_stride, max_query_length,
                                                          is_training)
    key = (f"{version}/{'train' if is_training else 'predict'}/"
           f"{max_seq_length}-{doc_stride}-{max_query_length}")
    original = GOLDEN["outputs"]["features"][key]
    assert len(features) == len(original) == arrays["input_ids"].shape[0]
    for row, (mine, theirs) in enumerate(zip(features, original)):
        input_ids = golden.padded(theirs["input_ids"], max_seq_length)
        assert mine.unique_id == theirs["unique_id"] == arrays["unique_ids"][row]
        assert mine.example_index == theirs["example_index"] == arrays["example_index"][row]
        assert mine.doc_span_index == theirs["doc_span_index"]
        assert mine.tokens == [vocab_tokens[i] for i in input_ids[:theirs["num_tokens"]]]
        assert mine.token_to_orig_map == golden.expand_position_map(theirs["token_to_orig_map"])
        first, runs = theirs["token_is_max_context"]
        assert mine.token_is_max_context == golden.expand_position_map(
            [first, golden.expand_runs(runs)])
        assert arrays["input_ids"][row].tolist() == input_ids
        assert arrays["input_mask"][row].tolist() == golden.expand_runs(theirs["input_mask"])
        assert arrays["segment_ids"][row].tolist() == golden.expand_runs(theirs["segment_ids"])
        assert mine.start_position == theirs["start_position"]
        assert mine.end_position == theirs["end_position"]
        if is_training:
            assert arrays["start_positions"][row] == theirs["start_position"]
            assert arrays["end_positions"][row] == theirs["end_position"]
            assert arrays["is_impossible"][row] == int(theirs["is_impossible"])
    assert ("start_positions" in arrays) == is_training


def test_window_edges_answers_inside_across_and_outside(tokenizer):
    """With short windows, answers sit inside some windows, cross the edge of others, miss some."""
    examples = squad.read_squad_examples(squad.load_squad_json(V1_FILE), True, False)
    max_seq_length, doc_stride = 24, 6
    _, features = squad.convert_examples_to_features(examples, tokenizer, max_seq_length,
                                                     doc_stride, 12, is_training=True)
    relations = {"inside": 0, "across": 0, "outside": 0}
    for feature in features:
        example = examples[feature.example_index]
        doc_positions = sorted(feature.token_to_orig_map)
        window_words = {feature.token_to_orig_map[p] for p in doc_positions}
        answer_words = set(range(example.start_position, example.end_position + 1))
        answer_tokens = tokenizer.tokenize(example.orig_answer_text)
        if feature.start_position > 0:
            relations["inside"] += 1
            span = feature.tokens[feature.start_position:feature.end_position + 1]
            assert all(p in feature.token_to_orig_map for p in
                       range(feature.start_position, feature.end_position + 1))
            if example.qas_id != "q-japan":  # "Japan" cannot be split out of "japanese".
                assert span == answer_tokens
        else:
            assert feature.start_position == feature.end_position == 0  # [CLS]
            relations["across" if answer_words & window_words else "outside"] += 1
    assert all(count > 0 for count in relations.values()), relations
    # Every answerable question keeps at least one window that holds its whole answer.
    assert {f.example_index for f in features if f.start_position > 0} == set(range(len(examples)))


def test_improve_answer_span_tightens_to_wordpieces(tokenizer):
    examples = squad.read_squad_examples(squad.load_squad_json(V1_FILE), True, False)
    _, features = squad.convert_examples_to_features(examples, tokenizer, 384, 128, 64, True)
    by_id = {examples[f.example_index].qas_id: f for f in features}
    born = by_id["q-born"]
    # The word is "(1895-1943)." but the target is the single piece "1895".
    assert examples[born.example_index].doc_tokens[examples[born.example_index].start_position] == (
        "(1895-1943).")
    assert born.tokens[born.start_position:born.end_position + 1] == ["1895"]
    owner = by_id["q-owner"]
    assert owner.tokens[owner.start_position:owner.end_position + 1] == ["steve", "smith"]
    japan = by_id["q-japan"]
    assert japan.tokens[japan.start_position:japan.end_position + 1] == ["japanese"]


def test_impossible_questions_target_cls_in_every_window(tokenizer):
    examples = squad.read_squad_examples(squad.load_squad_json(V2_FILE), True, True)
    arrays, features = squad.convert_examples_to_features(examples, tokenizer, 32, 8, 16, True)
    impossible_rows = [row for row, f in enumerate(features) if f.is_impossible]
    assert len(impossible_rows) > 2  # Both impossible questions, over several windows.
    assert arrays["start_positions"][impossible_rows].tolist() == [0] * len(impossible_rows)
    assert arrays["end_positions"][impossible_rows].tolist() == [0] * len(impossible_rows)
    assert arrays["is_impossible"][impossible_rows].tolist() == [1] * len(impossible_rows)


def test_query_truncation_and_segments(tokenizer):
    examples = squad.read_squad_examples(squad.load_squad_json(V1_FILE), False, False)
    arrays, features = squad.convert_examples_to_features(examples[:1], tokenizer, 64, 16, 3)
    first = features[0]
    assert first.tokens[:5] == ["[CLS]", "what", "year", "was", "[SEP]"]
    length = len(first.tokens)
    assert arrays["segment_ids"][0, :5].tolist() == [0] * 5
    assert arrays["segment_ids"][0, 5:length].tolist() == [1] * (length - 5)
    assert arrays["input_mask"][0].sum() == length
    assert arrays["unique_ids"][0] == squad.FIRST_UNIQUE_ID
    assert arrays["unique_ids"].dtype == np.int64 and arrays["input_ids"].dtype == np.int32


def test_bad_training_data_raises_with_question_id():
    data = squad.load_squad_json(V1_FILE)
    data[0]["paragraphs"][0]["qas"][0]["answers"].append({"text": "1943", "answer_start": 32})
    with pytest.raises(ValueError, match="q-born.*exactly 1 answer"):
        squad.read_squad_examples(data, True, False)
    data = squad.load_squad_json(V1_FILE)
    data[0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 10_000
    with pytest.raises(ValueError, match="q-born.*outside"):
        squad.read_squad_examples(data, True, False)
    data = squad.load_squad_json(V2_FILE)
    del data[0]["paragraphs"][0]["qas"][0]["is_impossible"]
    with pytest.raises(ValueError, match="is_impossible"):
        squad.read_squad_examples(data, True, True)


def test_unrecoverable_answer_is_skipped_as_in_original():
    unrecoverable = GOLDEN["inputs"]["unrecoverable"]
    data = squad.load_squad_json(V1_FILE)
    qa = data[0]["paragraphs"][0]["qas"][0]
    assert qa["id"] == unrecoverable["qas_id"] == "q-born"
    qa["answers"][0]["text"] = unrecoverable["answer_text"]  # Not the words at that offset.
    ours = squad.read_squad_examples(data, True, False)
    assert [e.qas_id for e in ours] == GOLDEN["outputs"]["unrecoverable_qas_ids"]
    assert "q-born" not in [e.qas_id for e in ours]


def _plain(encoded):
    """Object arrays of bytes -> lists, which tf.data.Dataset.from_generator accepts."""
    if isinstance(encoded, dict):
        return {key: _plain(value) for key, value in encoded.items()}
    if isinstance(encoded, list):
        return [_plain(value) for value in encoded]
    if isinstance(encoded, np.ndarray) and encoded.dtype == object:
        return _plain(encoded.tolist())
    return encoded


@pytest.mark.parametrize("version,path,generate", [
    ("v1.1", V1_FILE, qa_utils.generate_squadlike_examples),
    ("v2.0", V2_FILE, squad_dataset_builder._generate_v2_examples),
])
def test_tfds_load_gives_the_official_json(version, path, generate):
    """TFDS's own SQuAD generator encodes the fixture; tfds.load must give back its "data" list."""
    builder = tfds.builder(f"squad/{version}")
    encoded = [
        _plain(builder.info.features.encode_example(example)) for _, example in generate(path)
    ]

    def as_dataset(self, *args, **kwargs):
        del args, kwargs
        return tf.data.Dataset.from_generator(lambda: iter(encoded),
                                              output_types=self.info.features.dtype,
                                              output_shapes=self.info.features.shape)

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        from_tfds = squad.load_tfds_dataset(version, "validation")
    expected = squad.load_squad_json(path)
    for article in expected:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                # TFDS keeps these apart; the scorer ignores them.
                qa.pop("plausible_answers", None)
    assert from_tfds == expected


def test_tfds_random_mock_records_with_unpaired_answers_are_rejected():
    # TFDS's random mock draws the answer texts and starts independently: a record no real
    # SQuAD file can produce, which must fail loudly, naming the record.
    with tfds.testing.mock_data(num_examples=3, policy=tfds.testing.MockPolicy.USE_CODE):
        with pytest.raises(ValueError, match="TFDS squad record .* answer texts but .* starts"):
            squad.load_tfds_dataset("v2.0", "validation")
    with pytest.raises(ValueError, match="version"):
        squad.load_tfds_dataset("v3", "train")


def test_json_roundtrip_of_fixture_is_official_layout():
    with open(V2_FILE, encoding="utf-8") as json_file:
        contents = json.load(json_file)
    assert contents["version"] == "v2.0"
    qa = contents["data"][0]["paragraphs"][0]["qas"][0]
    assert set(qa) == {"id", "question", "answers", "is_impossible"}
