"""data_pipelines.tokenization against google-research/bert's tokenizer's outputs (tests/golden)."""

import collections
import unicodedata

import pytest

from data_pipelines import tokenization
from tests import golden

GOLDEN = golden.load("tokenization")
CASINGS = {"uncased": True, "cased": False}
LINES = GOLDEN["inputs"]["lines"]
EDGE_CASES = [golden.decode_text(text) for text in GOLDEN["inputs"]["edge_cases"]]


@pytest.fixture(scope="module")
def vocab_file():
    vocab_file = tokenization.bundled_uncased_vocab_file()
    assert golden.file_sha256(vocab_file) == GOLDEN["vocab_sha256"], (
        f"{vocab_file} is not the vocab the goldens were made with; regenerate: "
        f"{golden.REGENERATE}")
    return vocab_file


@pytest.fixture(scope="module", params=list(CASINGS))
def casing(request, vocab_file):
    """(our tokenizer, the original's outputs) for one casing."""
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=CASINGS[request.param])
    return tokenizer, GOLDEN["outputs"][request.param]


def test_load_vocab_matches_original(vocab_file):
    vocab = tokenization.load_vocab(vocab_file)
    assert isinstance(vocab, collections.OrderedDict)
    assert len(vocab) == GOLDEN["outputs"]["vocab"]["size"] == 30522
    assert golden.digest(list(vocab.items())) == GOLDEN["outputs"]["vocab"]["digest"]
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 100, 101, 102, 103]


def test_every_stored_line_matches_original(casing):
    ours, original = casing
    assert len(LINES) > 2000 and any(not line.isascii() for line in LINES)
    mismatches = [
        (line, ours.tokenize(line), golden.split_tokens(expected))
        for line, expected in zip(LINES, original["lines"], strict=True)
        if ours.tokenize(line) != golden.split_tokens(expected)
    ]
    assert not mismatches, mismatches[:3]


def test_batch_matches_single_lines(casing):
    ours, _ = casing
    sample = LINES[:200]
    assert ours.tokenize_batch(sample) == [ours.tokenize(line) for line in sample]


@pytest.mark.parametrize("index", range(len(EDGE_CASES)), ids=lambda i: repr(EDGE_CASES[i])[:30])
def test_unicode_edge_cases_match_original(casing, index):
    ours, original = casing
    text = EDGE_CASES[index]
    assert ours.tokenize(text) == original["edge_cases"][index]
    assert ours.basic_tokenizer.tokenize(text) == original["edge_cases_basic"][index]


@pytest.mark.parametrize("casing_name", list(CASINGS))
def test_every_character_class_matches_original(casing_name):
    """Each code point of the BMP, the CJK extension planes and the tag block, between letters."""
    if unicodedata.unidata_version != GOLDEN["source"]["unidata_version"]:
        pytest.skip(f"the goldens hold Unicode {GOLDEN['source']['unidata_version']} behaviour; "
                    f"this Python has Unicode {unicodedata.unidata_version}")
    ours = tokenization.BasicTokenizer(do_lower_case=CASINGS[casing_name])
    expected = GOLDEN["outputs"][casing_name]["code_point_blocks"]
    blocks = golden.code_point_blocks()
    assert len(blocks) == len(expected)
    differing = [
        f"U+{first:04X}..U+{last:04X}"
        for block, (first, last, digest) in zip(blocks, expected)
        if (block[0], block[-1]) != (first, last)
        or golden.digest(ours.tokenize(golden.code_point_text(block))) != digest
    ]
    assert not differing, f"tokens differ from the original's in blocks {differing}"


def test_known_tokenizations(vocab_file):
    tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=True)
    assert tokenizer.tokenize("UNwant\u00E9d,running") == ["unwanted", ",", "running"]
    assert tokenizer.tokenize("Héllo中文!") == ["hello", "中", "文", "!"]
    assert tokenizer.tokenize("a" * 201) == ["[UNK]"]
    assert tokenizer.tokenize("") == []


def test_wordpiece_longest_match_first():
    vocab = {token: i for i, token in enumerate(["[UNK]", "un", "##want", "##ed", "runn", "##ing", "wa"])}
    wordpiece = tokenization.WordpieceTokenizer(vocab)
    assert wordpiece.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert wordpiece.tokenize("unwantedX") == ["[UNK]"]
    short_limit = tokenization.WordpieceTokenizer(vocab, max_input_chars_per_word=5)
    assert short_limit.tokenize("unwanted wa") == ["[UNK]", "wa"]


def test_ids_round_trip_and_unknown_token_error(vocab_file):
    tokenizer = tokenization.FullTokenizer(vocab_file)
    tokens = tokenizer.tokenize("The quick brown fox jumps over the lazy dog.")
    ids = tokenizer.convert_tokens_to_ids(tokens)
    assert tokenizer.convert_ids_to_tokens(ids) == tokens
    assert tokenizer.tokenize_to_ids("hello") == [tokenizer.vocab["hello"]]
    with pytest.raises(ValueError, match="'notatoken123'"):
        tokenizer.convert_tokens_to_ids(["hello", "notatoken123"])
    with pytest.raises(KeyError):  # what the original raises
        tokenizer.convert_tokens_to_ids(["notatoken123"])
    with pytest.raises(ValueError, match="id 30522"):
        tokenizer.convert_ids_to_tokens([30522])


def test_bad_input_errors(tmp_path, vocab_file):
    tokenizer = tokenization.FullTokenizer(vocab_file)
    with pytest.raises(TypeError, match="int"):
        tokenizer.tokenize(42)
    with pytest.raises(FileNotFoundError, match="missing_vocab.txt"):
        tokenization.FullTokenizer(tmp_path / "missing_vocab.txt")
    no_unk = tmp_path / "no_unk_vocab.txt"
    no_unk.write_text("[PAD]\nhello\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no_unk_vocab.txt has no \[UNK\]"):
        tokenization.FullTokenizer(no_unk)
