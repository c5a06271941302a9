"""data_pipelines.tokenization against the vendored original google-research/bert tokenizer (the oracle)."""

import collections

import pytest

from data_pipelines import tokenization
from tests.reference import original_tokenization
from tests.reference.stdlib_docstrings import stdlib_docstring_lines

UNICODE_EDGE_CASES = [
    # accents, precomposed and decomposed
    "café naïve Å Ångström résumé façade", "cafe\u0301 A\u030a", "ÉCOLE Über STRASSE straße",
    # CJK ideographs (spaced), Japanese kana and Korean Hangul (not spaced)
    "中文字符", "日本語のテキスト", "한국어 텍스트", "mixed中文and English", "𠀀𪜀 豈",
    # control characters, NUL, replacement character
    "a\x00b", "a\ufffdb", "bell\x07char", "vt\x0bff\x0cfs\x1cend", "del\x7fete", "nel\x85line",
    # zero-width and format characters (category Cf: dropped, joining their neighbours)
    "zero\u200bwidth", "joiner\u200dhere", "\ufeffbom", "soft\u00adhyphen", "rtl\u202emark",
    # emoji (So category: not punctuation, usually [UNK]) and ZWJ sequences
    "I ❤️ 🐍 Python 👩‍💻!", "🇫🇷 flag",
    # combining marks alone and stacked
    "\u0301", "a\u0301\u0302\u0303", "x \u0308 y",
    # RTL text
    "مرحبا بالعالم", "שלום עולם", "(مرحبا)",
    # Unicode punctuation, symbols, spaces and line separators
    "“quoted” — dash – en… ellipsis «guillemets» ¿qué? ¡sí!", "$5 ^caret^ `tick` ~tilde~",
    "non\u00a0breaking\u2003em\u3000ideographic", "line\u2028sep\u2029para",
    # letters that compatibility-fold elsewhere
    "ſtraße Ⅻ ﬁne ℌ ① ²", "Σίσυφος ΟΔΟΣ", "İstanbul",
    # very long words, and the max_input_chars_per_word boundary
    "a" * 150, "a" * 200, "a" * 201, "supercalifragilistic" * 12,
    # empty and whitespace-only, tabs and newlines
    "", " ", "\t\n\r ", "tabs\tand\nnewlines\r\nhere",
    # bytes input, decoded as UTF-8 dropping bad bytes
    b"bytes caf\xc3\xa9 \xff bad",
]


@pytest.fixture(scope="module")
def vocab_file():
    return tokenization.bundled_uncased_vocab_file()


@pytest.fixture(scope="module")
def docstring_lines():
    return stdlib_docstring_lines()


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def tokenizer_pair(request, vocab_file):
    do_lower_case = request.param
    return (
        tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case),
        original_tokenization.FullTokenizer(str(vocab_file), do_lower_case=do_lower_case),
    )


def test_load_vocab_matches_original(vocab_file):
    vocab = tokenization.load_vocab(vocab_file)
    assert isinstance(vocab, collections.OrderedDict)
    assert vocab == original_tokenization.load_vocab(str(vocab_file))
    assert len(vocab) == 30522
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 100, 101, 102, 103]


def test_every_docstring_line_matches_original(tokenizer_pair, docstring_lines):
    ours, original = tokenizer_pair
    assert len(docstring_lines) > 2000
    mismatches = [
        (line, ours.tokenize(line), original.tokenize(line))
        for line in docstring_lines
        if ours.tokenize(line) != original.tokenize(line)
    ]
    assert not mismatches, mismatches[:3]


def test_batch_matches_single_lines(tokenizer_pair, docstring_lines):
    ours, _ = tokenizer_pair
    sample = docstring_lines[:200]
    assert ours.tokenize_batch(sample) == [ours.tokenize(line) for line in sample]


@pytest.mark.parametrize("text", UNICODE_EDGE_CASES, ids=lambda t: repr(t)[:30])
def test_unicode_edge_cases_match_original(tokenizer_pair, text):
    ours, original = tokenizer_pair
    assert ours.tokenize(text) == original.tokenize(text)
    assert ours.basic_tokenizer.tokenize(text) == original.basic_tokenizer.tokenize(text)


def test_every_character_class_matches_original():
    """Each code point of the BMP, the CJK extension planes and the tag block, between letters."""
    ours = tokenization.BasicTokenizer(do_lower_case=True)
    original = original_tokenization.BasicTokenizer(do_lower_case=True)
    code_points = [*range(1, 0xD800), *range(0xE000, 0x30000), *range(0xE0000, 0xE0080)]
    text = " ".join(f"x{chr(cp)}y" for cp in code_points)
    assert ours.tokenize(text) == original.tokenize(text)
    cased_ours = tokenization.BasicTokenizer(do_lower_case=False)
    cased_original = original_tokenization.BasicTokenizer(do_lower_case=False)
    assert cased_ours.tokenize(text) == cased_original.tokenize(text)


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
