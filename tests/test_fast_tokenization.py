"""The in-graph tensorflow_text tokenizer against data_pipelines.tokenization.FullTokenizer (itself
checked token for token against the original in test_tokenization.py)."""

import unicodedata

import pytest
import tensorflow as tf

from data_pipelines import fast_tokenization, tokenization
from tests import golden

# Every code point of the BMP, the CJK extension planes and the tag block, each between two
# letters so that joining, splitting and folding all show.
ALL_CODE_POINTS = [*range(1, 0xD800), *range(0xE000, 0x30000), *range(0xE0000, 0xE0080)]


@pytest.fixture(scope="module")
def vocab_file():
    return tokenization.bundled_uncased_vocab_file()


@pytest.fixture(scope="module")
def docstring_lines():
    return golden.load("tokenization")["inputs"]["lines"]  # real text, stored


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def do_lower_case(request):
    return request.param


@pytest.fixture(scope="module")
def exact_tokenizer(vocab_file, do_lower_case):
    return tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)


def _disagreements(tf_tokenizer, exact_tokenizer, lines):
    tf_ids = tf_tokenizer(lines).to_list()
    return [
        (line, exact_tokenizer.tokenize(line), exact_tokenizer.convert_ids_to_tokens(ids))
        for line, ids in zip(lines, tf_ids)
        if exact_tokenizer.tokenize_to_ids(line) != ids
    ]


def test_exact_normalization_agrees_on_every_docstring_line(vocab_file, do_lower_case, exact_tokenizer, docstring_lines):
    tf_tokenizer = fast_tokenization.make_tf_tokenizer(vocab_file, do_lower_case)
    disagreements = _disagreements(tf_tokenizer, exact_tokenizer, docstring_lines)
    assert not disagreements, disagreements[:3]


def test_exact_normalization_agrees_on_every_assigned_code_point(vocab_file, do_lower_case, exact_tokenizer):
    tf_tokenizer = fast_tokenization.make_tf_tokenizer(vocab_file, do_lower_case)
    lines = [f"x{chr(cp)}y" for cp in ALL_CODE_POINTS]
    disagreements = _disagreements(tf_tokenizer, exact_tokenizer, lines)
    # Only code points unassigned in Python 3.11's Unicode 14 tables (newer in ICU) remain.
    assert {unicodedata.category(line[1]) for line, _, _ in disagreements} <= {"Cn"}
    assert len(disagreements) < 100


def test_native_normalizer_differs_only_where_documented(vocab_file, do_lower_case, exact_tokenizer, docstring_lines):
    tf_tokenizer = fast_tokenization.make_tf_tokenizer(vocab_file, do_lower_case, exact_normalization=False)
    lines = [f"x{chr(cp)}y" for cp in ALL_CODE_POINTS]
    disagreements = _disagreements(tf_tokenizer, exact_tokenizer, lines)
    undocumented = [
        (hex(ord(line[1])), unicodedata.name(line[1], "?"), ours, theirs)
        for line, ours, theirs in disagreements
        if not fast_tokenization.native_normalizer_may_differ(line[1], do_lower_case)
    ]
    assert not undocumented, undocumented[:5]
    disagreeing_chars = {line[1] for line, _, _ in disagreements}
    assert "\x01" in disagreeing_chars  # the original deletes it, FastBertTokenizer splits there
    assert ("\u200b" in disagreeing_chars) == (not do_lower_case)  # kept unless lower-casing
    if do_lower_case:
        assert "\u017f" in disagreeing_chars  # long s: [UNK] in the original, folded to "s"

    # On real text: the native normaliser agrees on nearly every line, and exactly on every
    # line without a flagged character.
    docstring_disagreements = _disagreements(tf_tokenizer, exact_tokenizer, docstring_lines)
    assert len(docstring_disagreements) <= 0.01 * len(docstring_lines)
    for line, ours, theirs in docstring_disagreements:
        assert any(
            fast_tokenization.native_normalizer_may_differ(char, do_lower_case) for char in line
        ), (line, ours, theirs)


def test_documented_residual_differences(vocab_file):
    tf_tokenizer = fast_tokenization.make_tf_tokenizer(vocab_file, do_lower_case=True)
    exact_tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    # Word-final capital sigma: str.lower() gives the final form, the per-character table not.
    final_sigma = "ΟΔΟΣ"
    assert exact_tokenizer.tokenize(final_sigma)[-1].endswith("ς")
    assert tf_tokenizer([final_sigma]).to_list()[0] != exact_tokenizer.tokenize_to_ids(final_sigma)
    # A 150-character word of 2-byte letters: under the original's 200-character limit, over
    # FastBertTokenizer's 200-byte limit.
    long_word = "ж" * 150
    assert exact_tokenizer.tokenize(long_word) != ["[UNK]"]
    assert tf_tokenizer([long_word]).to_list()[0] != exact_tokenizer.tokenize_to_ids(long_word)
    # ASCII words: both limits are 200.
    for length in (200, 201):
        word = "a" * length
        assert tf_tokenizer([word]).to_list()[0] == exact_tokenizer.tokenize_to_ids(word)


def test_runs_inside_tf_data_and_accepts_scalars(vocab_file):
    tf_tokenizer = fast_tokenization.make_tf_tokenizer(vocab_file, do_lower_case=True)
    exact_tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    lines = ["Héllo, wörld!", "zero\u200bwidth café", "plain ascii text."]
    dataset = tf.data.Dataset.from_tensor_slices(lines).batch(2).map(tf_tokenizer.tokenize)
    ids = [row for batch in dataset for row in batch.to_list()]
    assert ids == [exact_tokenizer.tokenize_to_ids(line) for line in lines]
    assert tf_tokenizer("Héllo").numpy().tolist() == exact_tokenizer.tokenize_to_ids("Héllo")
    with pytest.raises(ValueError, match="shape"):
        tf_tokenizer([["a", "b"]])


def test_backend_names():
    assert fast_tokenization.TokenizerBackend("exact") is fast_tokenization.TokenizerBackend.EXACT
    assert fast_tokenization.TokenizerBackend("fast_tf") is fast_tokenization.TokenizerBackend.FAST_TF
    with pytest.raises(ValueError):
        fast_tokenization.TokenizerBackend("fast")
