"""The one place every pipeline gets its tokenizer from: WordPiece or SentencePiece.

    tokenizer = make_tokenizer("wordpiece", vocab_file="vocab.txt", do_lower_case=True)
    tokenizer = make_tokenizer("sentencepiece", spm_model_file="sp.model")

Both kinds have the same interface (tokenize, tokenize_to_ids, convert_tokens_to_ids,
convert_ids_to_tokens, vocab, inv_vocab) and BERT's special tokens [PAD] [UNK] [CLS] [SEP]
[MASK], so pretraining data (offline and dynamic) and fine-tuning data (GLUE, SQuAD, NER,
docstring topics) take either. `masking_arrays` gives what masking needs from a vocabulary:
the ids random replacements are drawn from and which pieces continue a word (whole-word
masking): WordPiece "##" pieces; SentencePiece pieces without the "▁" word-start mark.
For SentencePiece, casing is the model's (its normalisation rule), not do_lower_case.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

TOKENIZERS = ("wordpiece", "sentencepiece")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_SENTENCEPIECE_WORD_START = "\u2581"  # "▁"


def make_tokenizer(tokenizer: str = "wordpiece", *, vocab_file: str = "",
                   do_lower_case: bool = True, spm_model_file: str = ""):
    """A tokenizer of kind `tokenizer`, checked to have BERT's special tokens.

    Args:
      tokenizer: "wordpiece" (data_pipelines.tokenization.FullTokenizer, the original's) or
        "sentencepiece" (data_pipelines.sentencepiece_tokenizer).
      vocab_file: WordPiece vocabulary; default: the bundled bert-base-uncased vocab.
      do_lower_case: WordPiece casing.
      spm_model_file: the SentencePiece `.model` (required for "sentencepiece").
    """
    if tokenizer == "wordpiece":
        from data_pipelines import corpora, tokenization  # pylint: disable=import-outside-toplevel

        result = tokenization.FullTokenizer(vocab_file or corpora.default_vocab_file(),
                                            do_lower_case=do_lower_case)
        source = result.vocab_file
    elif tokenizer == "sentencepiece":
        if not spm_model_file:
            raise ValueError("tokenizer='sentencepiece' needs spm_model_file (a SentencePiece "
                             ".model, e.g. from python -m data_pipelines.build_vocab "
                             "--algorithm=sentencepiece)")
        from data_pipelines import (  # pylint: disable=import-outside-toplevel
            sentencepiece_tokenizer)

        result = sentencepiece_tokenizer.SentencePieceTokenizer(spm_model_file)
        source = spm_model_file
    else:
        raise ValueError(f"tokenizer={tokenizer!r}; expected one of {TOKENIZERS}")
    missing = [token for token in SPECIAL_TOKENS if token not in result.vocab]
    if missing:
        raise ValueError(f"{tokenizer} vocabulary {source} lacks the special token(s) {missing}; "
                         f"BERT needs all of {list(SPECIAL_TOKENS)}")
    return result


def from_data_config(data, vocab_file: str = ""):
    """make_tokenizer from a config.data-like mapping (keys tokenizer, spm_model_file,
    vocab_file, do_lower_case; missing keys take the defaults). `vocab_file`, when given,
    replaces data["vocab_file"] (e.g. the vocab.txt found beside a checkpoint)."""
    return make_tokenizer(data.get("tokenizer", "wordpiece"),
                          vocab_file=vocab_file or data.get("vocab_file", ""),
                          do_lower_case=data.get("do_lower_case", True),
                          spm_model_file=data.get("spm_model_file", ""))


def check_vocab_size(tokenizer, model_vocab_size: int) -> None:
    """Raises when the tokenizer makes ids the model's embedding table does not have (a lookup
    past the table would silently read a clamped row)."""
    largest = max(tokenizer.vocab.values())
    if largest >= model_vocab_size:
        raise ValueError(f"the tokenizer makes ids up to {largest} but the model's vocab_size is "
                         f"{model_vocab_size}; set config.model.vocab_size to at least "
                         f"{largest + 1} (or use the checkpoint's own vocabulary)")


class MaskingArrays(NamedTuple):
    """What masking needs from a vocabulary. Shapes: [V] each.

    vocab_ids: the ids a random replacement is drawn from, uniformly: the whole vocabulary,
      special tokens included, as the original's `vocab_words` list.
    continuation: True for pieces that continue the previous piece's word.
    """

    vocab_ids: np.ndarray
    continuation: np.ndarray
    cls_id: int
    sep_id: int
    mask_id: int


def masking_arrays(tokenizer) -> MaskingArrays:
    """MaskingArrays of `tokenizer` (cached per tokenizer object: building costs ~10 ms)."""
    return _masking_arrays(tokenizer)


@functools.lru_cache(maxsize=16)
def _masking_arrays(tokenizer) -> MaskingArrays:
    vocab = tokenizer.vocab
    size = max(vocab.values()) + 1
    continuation = np.zeros([size], bool)
    is_sentencepiece = hasattr(tokenizer, "processor")  # SentencePieceTokenizer
    for token, token_id in vocab.items():
        if is_sentencepiece:
            continuation[token_id] = (not token.startswith(_SENTENCEPIECE_WORD_START)
                                      and token not in SPECIAL_TOKENS)
        else:
            continuation[token_id] = token.startswith("##")
    return MaskingArrays(
        vocab_ids=np.fromiter(vocab.values(), np.int64, len(vocab)),
        continuation=continuation,
        cls_id=vocab["[CLS]"],
        sep_id=vocab["[SEP]"],
        mask_id=vocab["[MASK]"],
    )


def fingerprint(tokenizer_kind: str, vocab_file: str, do_lower_case: bool,
                spm_model_file: str) -> dict:
    """What decides a tokenisation, for cache keys: the kind, the vocabulary bytes' sha256 and
    the casing (WordPiece only)."""
    import hashlib  # pylint: disable=import-outside-toplevel

    from data_pipelines import corpora, storage  # pylint: disable=import-outside-toplevel

    if tokenizer_kind == "sentencepiece":
        path, casing = spm_model_file, None
    else:
        path, casing = vocab_file or corpora.default_vocab_file(), bool(do_lower_case)
    return dict(tokenizer=tokenizer_kind, do_lower_case=casing,
                vocab_sha256=hashlib.sha256(storage.read_bytes(path)).hexdigest())
