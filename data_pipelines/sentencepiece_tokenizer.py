"""SentencePiece (Kudo & Richardson 2018) models with BERT's special tokens: training and loading.

An alternative to WordPiece (as ALBERT, T5 and XLNet use): no language-specific pre-tokenization,
whitespace kept as the "▁" meta symbol, unigram or BPE segmentation.

Id layout of every model trained here (fixed so that data pipelines can rely on it):

  0 [PAD]   padding (SentencePiece's pad piece)
  1 [UNK]   unknown (SentencePiece's unk piece)
  2 [CLS]   control symbols: reserved ids that encoding text never produces,
  3 [SEP]     even when the text contains the string "[CLS]"
  4 [MASK]
  5...      learned pieces

There is no BOS/EOS: BERT frames sequences with [CLS] and [SEP] itself.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import sentencepiece

from data_pipelines import storage

PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN, MASK_TOKEN = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
CONTROL_TOKENS = (CLS_TOKEN, SEP_TOKEN, MASK_TOKEN)
MODEL_TYPES = ("unigram", "bpe")


def expand_input_files(input_files: str | Iterable[str]) -> list[str]:
    """A comma-separated string or a list of paths/glob patterns -> sorted existing files."""
    # SentencePiece's trainer opens the files itself: they must be local.
    return storage.expand_patterns(input_files if isinstance(input_files, str)
                                   else list(input_files), what="input")


def train_sentencepiece(
    input_files: str | Iterable[str],
    model_prefix: str,
    vocab_size: int,
    model_type: str = "unigram",
    do_lower_case: bool = True,
    character_coverage: float = 0.9999,
    input_sentence_size: int = 10_000_000,
    seed_sentencepiece_size: int = 1_000_000,
    num_threads: int = 1,
) -> str:
    """Trains a SentencePiece model with the id layout above; returns the `.model` path.

    Args:
      input_files: text files, one sentence per line (blank lines are ignored), as a
        comma-separated string or a list of paths or glob patterns.
      model_prefix: writes `<model_prefix>.model` and `<model_prefix>.vocab`.
      vocab_size: total pieces, including the 5 special tokens.
      model_type: "unigram" (Kudo 2018) or "bpe" (Sennrich et al. 2016).
      do_lower_case: NFKC + Unicode case folding ("nmt_nfkc_cf") instead of NFKC ("nmt_nfkc").
      character_coverage: fraction of characters covered by single-character pieces; rarer
        characters become [UNK].
      input_sentence_size: at most this many sentences are sampled for training.
      seed_sentencepiece_size: unigram seed vocabulary size.
      num_threads: 1 keeps training deterministic.
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model_type must be one of {MODEL_TYPES}, got {model_type!r}")
    if vocab_size <= len(CONTROL_TOKENS) + 2:
        raise ValueError(f"vocab_size must exceed the 5 special tokens, got {vocab_size}")
    files = expand_input_files(input_files)
    # SentencePiece's C++ trainer reads and writes these files itself: local paths only.
    output_dir = os.path.dirname(os.path.abspath(model_prefix))
    os.makedirs(output_dir, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        input=files,
        model_prefix=model_prefix,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        normalization_rule_name="nmt_nfkc_cf" if do_lower_case else "nmt_nfkc",
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        seed_sentencepiece_size=seed_sentencepiece_size,
        num_threads=num_threads,
        pad_id=0,
        pad_piece=PAD_TOKEN,
        unk_id=1,
        unk_piece=UNK_TOKEN,
        bos_id=-1,
        eos_id=-1,
        control_symbols=list(CONTROL_TOKENS),
        # Small corpora cannot always fill vocab_size; fail loudly rather than shrink silently.
        hard_vocab_limit=True,
        minloglevel=2,
    )
    return f"{model_prefix}.model"


class SentencePieceTokenizer:
    """A trained SentencePiece model with FullTokenizer's interface.

    Attributes:
      vocab: piece -> id. inv_vocab: id -> piece.
      pad_id, unk_id, cls_id, sep_id, mask_id: the special token ids.
    """

    def __init__(self, model_file: str | os.PathLike):
        self.model_file = os.fspath(model_file)
        if not os.path.isfile(self.model_file):
            raise FileNotFoundError(f"SentencePiece model not found: {self.model_file}")
        self.processor = sentencepiece.SentencePieceProcessor(model_file=self.model_file)
        self.inv_vocab = {i: self.processor.id_to_piece(i) for i in range(self.processor.get_piece_size())}
        self.vocab = {piece: i for i, piece in self.inv_vocab.items()}
        missing = [t for t in (PAD_TOKEN, UNK_TOKEN, *CONTROL_TOKENS) if t not in self.vocab]
        if missing:
            raise ValueError(f"SentencePiece model {self.model_file} lacks special tokens {missing}")
        self.pad_id = self.vocab[PAD_TOKEN]
        self.unk_id = self.vocab[UNK_TOKEN]
        self.cls_id = self.vocab[CLS_TOKEN]
        self.sep_id = self.vocab[SEP_TOKEN]
        self.mask_id = self.vocab[MASK_TOKEN]

    @property
    def vocab_size(self) -> int:
        return len(self.inv_vocab)

    def tokenize(self, text: str) -> list[str]:
        """Pieces of `text`, e.g. "Hello world" -> ["▁hello", "▁world"]."""
        return self.processor.encode(text, out_type=str)

    def tokenize_to_ids(self, text: str) -> list[int]:
        return self.processor.encode(text, out_type=int)

    def tokenize_batch(self, lines: Sequence[str]) -> list[list[str]]:
        return self.processor.encode(list(lines), out_type=str)

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of pieces. Unlike WordPiece, `tokenize` returns an unknown character's own surface
        (e.g. "%" when "%" is not in the model), so any piece outside the vocab maps to unk_id."""
        return [self.processor.piece_to_id(token) for token in tokens]

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        try:
            return [self.inv_vocab[int(i)] for i in ids]
        except KeyError as error:
            raise ValueError(f"id {error.args[0]!r} is not in {self.model_file}") from None

    def decode(self, ids: Sequence[int]) -> str:
        """Text of `ids` (control symbols and padding decode to nothing)."""
        return self.processor.decode([int(i) for i in ids])
