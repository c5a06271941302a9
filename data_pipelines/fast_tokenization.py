"""In-graph BERT tokenization for tf.data: tensorflow_text's FastBertTokenizer on the same vocab.

FastBertTokenizer (Song et al. 2021, "Fast WordPiece Tokenization") runs BERT's basic
tokenization and WordPiece in C++ inside the graph, about 20x faster than the original Python.
Its own normaliser differs from the original in three ways, measured on every code point
(tests/test_fast_tokenization.py and `python -m benchmarks.tokenization`):

  * the original deletes NUL, U+FFFD and control and format characters (Cc, Cf), joining their
    neighbours ("a\x01b" -> "ab"); FastBertTokenizer makes the Cc ones (U+0001-U+001F but tab,
    newline, carriage return; U+007F-U+009F), U+FFFD and the non-default-ignorable Cf ones
    (U+0600-U+0605, U+06DD, U+070F, U+FFF9-U+FFFB, ...) word breaks, and keeps the
    default-ignorable Cf ones (soft hyphen, zero-width space/joiners, bidi marks, BOM, tags) as
    letters unless it lower-cases, when it deletes them too;
  * with lower-casing it applies NFKD and Unicode case folding, where the original applies
    `str.lower`, NFD and drops Mn marks: compatibility characters are folded instead of kept
    (long s "ſ" -> "s", Roman numerals "Ⅻ" -> "xii", ligatures "ﬁ" -> "fi", superscripts and
    fractions "²" "½", full-width forms "Ａ１", "…" -> "...", ß -> "ss", ª º ʰ, ...);
  * it drops the default-ignorable Hangul fillers U+115F and U+1160 when lower-casing;
  * its Unicode tables are newer than Python 3.11's (Unicode 14): code points unassigned in
    Python (category Cn) may be punctuation to it.

`native_normalizer_may_differ` is that list as a predicate; on every code point, each
disagreement of the native normaliser with the original is a character it flags.

`TfBertTokenizer` therefore does the original's character normalisation itself, in-graph, with a
per-code-point table computed from Python's own `unicodedata` (delete what `_clean_text` deletes;
when lower-casing, map each character to strip_Mn(NFD(lower(char)))), and runs FastBertTokenizer
with its normaliser off. That matches the original on every assigned code point. What is left:

  * an upper-case sigma at the end of a word: `str.lower` gives final "ς", the table gives "σ";
  * a word of at most 200 characters but more than 200 UTF-8 bytes: FastBertTokenizer's limit
    counts bytes, the original's counts characters, so it becomes [UNK] here;
  * code points unassigned in Python 3.11's Unicode 14 tables (never seen in real text).

`TokenizerBackend` names the two ways a pipeline can tokenize.

Shapes: B = number of strings, T = tokens per string (ragged).
"""

from __future__ import annotations

import enum
import functools
import os
import unicodedata

import tensorflow as tf
import tensorflow_text as tf_text

from data_pipelines import tokenization

try:  # tf.data only: never let TensorFlow claim an accelerator that JAX will use.
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # Devices were already initialised by an earlier import.
    pass

_NOT_MAPPED = "\uffff<not mapped>"


class TokenizerBackend(str, enum.Enum):
    """Which tokenizer a data pipeline uses.

    EXACT: data_pipelines.tokenization.FullTokenizer in Python; the original, token for token.
    FAST_TF: TfBertTokenizer, in-graph; agrees with EXACT except for the rare cases listed in
      this module's docstring.
    """

    EXACT = "exact"
    FAST_TF = "fast_tf"


_HANGUL_FILLERS = ("\u115f", "\u1160")


def _strip_combining_marks(text: str) -> str:
    return "".join(char for char in text if unicodedata.category(char) != "Mn")


@functools.lru_cache(maxsize=2)
def original_char_normalization(do_lower_case: bool) -> dict[int, str]:
    """Code point -> replacement, for every character the original normalises (others are kept).

    Deletes NUL, U+FFFD and control/format characters (original `_clean_text`); when
    `do_lower_case`, maps each character to strip_Mn(NFD(char.lower())) (original
    `_run_strip_accents` after `lower()`), e.g. "É" -> "e", "İ" -> "i", U+0301 -> "".
    """
    table: dict[int, str] = {}
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or tokenization.is_control(char):
            table[cp] = ""
        elif do_lower_case and (cp > 127 or "A" <= char <= "Z"):
            normalized = _strip_combining_marks(unicodedata.normalize("NFD", char.lower()))
            if normalized != char:
                table[cp] = normalized
    return table


def native_normalizer_may_differ(char: str, do_lower_case: bool) -> bool:
    """Whether FastBertTokenizer's own normaliser may tokenize text with `char` differently.

    True for control/format characters and U+FFFD, code points unassigned in Python's tables,
    and, when lower-casing, the Hangul fillers and every character whose NFKD + case folding
    differs from the original's lower() + NFD (both without Mn marks). A superset: many flagged
    characters end up as the same token (often [UNK]) either way.
    """
    if ord(char) == 0xFFFD or tokenization.is_control(char) or unicodedata.category(char) == "Cn":
        return True
    if not do_lower_case:
        return False
    if char in _HANGUL_FILLERS:
        return True
    native = _strip_combining_marks(unicodedata.normalize("NFKD", char.casefold()))
    return native != _strip_combining_marks(unicodedata.normalize("NFD", char.lower()))


class TfBertTokenizer(tf.Module):
    """Strings -> BERT WordPiece ids, in-graph (usable inside `tf.data.Dataset.map`).

    Attributes:
      vocab_file, do_lower_case: as for data_pipelines.tokenization.FullTokenizer.
      exact_normalization: do the original's character normalisation (see module docstring);
        False uses FastBertTokenizer's own normaliser (faster, and differs on the characters
        listed in the module docstring).
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        do_lower_case: bool = True,
        exact_normalization: bool = True,
        max_input_chars_per_word: int = tokenization.ORIGINAL_MAX_INPUT_CHARS_PER_WORD,
    ):
        super().__init__(name="tf_bert_tokenizer")
        self.vocab_file = os.fspath(vocab_file)
        self.do_lower_case = do_lower_case
        self.exact_normalization = exact_normalization
        vocab = list(tokenization.load_vocab(vocab_file))
        if tokenization.UNK_TOKEN not in vocab:
            raise ValueError(f"vocab file {self.vocab_file} has no {tokenization.UNK_TOKEN} token")
        self._fast_bert = tf_text.FastBertTokenizer(
            vocab=vocab,
            token_out_type=tf.int64,
            unknown_token=tokenization.UNK_TOKEN,
            # Counts bytes where the original counts characters: equal for ASCII words.
            max_bytes_per_word=max_input_chars_per_word,
            lower_case_nfd_strip_accents=do_lower_case and not exact_normalization,
        )
        self._char_table = None
        if exact_normalization:
            mapping = original_char_normalization(do_lower_case)
            self._char_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(list(mapping.keys()), tf.int32),
                    tf.constant(list(mapping.values()), tf.string),
                ),
                default_value=_NOT_MAPPED,
            )
            # Lines of printable ASCII (plus \t \n \r) need no table: ASCII lower-casing is
            # all the original does to them.
            self._untouched_text = "[\t\n\r -~]*"

    def _normalize(self, lines: tf.Tensor) -> tf.Tensor:
        """The original's per-character normalisation of lines [B] (string) -> [B] (string)."""
        code_points = tf.strings.unicode_decode(lines, "UTF-8", errors="ignore")  # [B, (C)]
        flat_code_points = code_points.flat_values
        replacements = self._char_table.lookup(flat_code_points)
        kept_chars = tf.strings.unicode_encode(
            tf.RaggedTensor.from_tensor(flat_code_points[:, None]), "UTF-8"
        )
        flat_chars = tf.where(tf.equal(replacements, _NOT_MAPPED), kept_chars, replacements)
        chars = code_points.with_flat_values(flat_chars)
        return tf.strings.reduce_join(chars, axis=-1)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, lines: tf.Tensor) -> tf.RaggedTensor:
        """lines [B] (UTF-8 strings) -> WordPiece ids [B, (T)] int64."""
        if self._char_table is not None:
            if self.do_lower_case:
                lines = tf.strings.lower(lines)  # A-Z only; the table does the rest.
            untouched = tf.strings.regex_full_match(lines, self._untouched_text)
            needs_table = tf.where(~untouched)[:, 0]
            normalized = self._normalize(tf.gather(lines, needs_table))
            lines = tf.tensor_scatter_nd_update(lines, needs_table[:, None], normalized)
        return self._fast_bert.tokenize(lines)

    def __call__(self, lines) -> tf.RaggedTensor:
        """`tokenize` for a string, a list of strings or a [B] string tensor."""
        lines = tf.convert_to_tensor(lines, tf.string)
        if lines.shape.rank == 0:
            return self.tokenize(lines[None])[0]
        if lines.shape.rank != 1:
            raise ValueError(f"lines must be a string or a [B] string tensor, got shape {lines.shape}")
        return self.tokenize(lines)


def make_tf_tokenizer(
    vocab_file: str | os.PathLike,
    do_lower_case: bool = True,
    exact_normalization: bool = True,
) -> TfBertTokenizer:
    """The in-graph tokenizer for `vocab_file` and casing (see TfBertTokenizer)."""
    return TfBertTokenizer(vocab_file, do_lower_case, exact_normalization)
