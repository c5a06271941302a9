"""CoNLL-2003 named-entity recognition (Tjong Kim Sang and De Meulder 2003) as BERT token features.

File format: one token per line with four space-separated columns (word, POS tag, chunk tag,
NER tag), a blank line between sentences, and "-DOCSTART- -X- -X- O" lines between documents.
The original files tag in IOB1 (I-X everywhere except B-X between two adjacent same-type
entities); many redistributions use IOB2. Both score the same with bertjax.metrics.entity_f1.

Features follow the BERT paper (section 5.3): each word is WordPiece-tokenized, the first
sub-token of a word carries the word's label and the other sub-tokens are masked out
(label_weights 0), the sequence is [CLS] tokens [SEP] with segment 0, truncated to
max_seq_length. Predictions are read back at the first sub-token of each word
(`predictions_to_word_tags`) and compared with the gold word-level tags.

Shapes: N sentences, S = max_seq_length.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Protocol, Sequence

import numpy as np

from data_pipelines import storage

# The CoNLL-2003 label set, "O" first so that padding's label id 0 is a harmless "O" (it also
# has weight 0). Both IOB1 and IOB2 files use these nine tags.
CONLL2003_LABELS = ("O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC",
                    "I-LOC")

DOCSTART = "-DOCSTART-"


class WordPieceTokenizer(Protocol):
    """What feature conversion needs from a tokenizer (data_pipelines.tokenizers: either kind)."""

    def tokenize(self, text: str) -> list[str]:
        ...

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        ...


@dataclasses.dataclass(frozen=True)
class NerSentence:
    """One sentence: its words and their word-level NER tags (same length)."""
    words: tuple[str, ...]
    tags: tuple[str, ...]


def read_conll2003(path: str) -> list[NerSentence]:
    """Sentences of a CoNLL-2003 file (train.txt / valid.txt / test.txt); -DOCSTART- dropped."""
    sentences = []
    words: list[str] = []
    tags: list[str] = []

    def flush():
        if words:
            sentences.append(NerSentence(tuple(words), tuple(tags)))
            words.clear()
            tags.clear()

    try:
        text = storage.read_text(path)  # newlines already universal: split on "\n" only
    except UnicodeDecodeError as error:
        raise storage.not_utf8(path, error) from None
    for line_number, line in enumerate(text.split("\n"), start=1):
        columns = line.split()
        if not columns:
            flush()
            continue
        if columns[0] == DOCSTART:
            flush()  # A document boundary also ends any sentence that lacked a blank line.
            continue
        if len(columns) != 4:
            raise ValueError(
                f"{path}, line {line_number}: expected 4 columns (word POS chunk NER), "
                f"got {len(columns)}: {line.rstrip()!r}.")
        words.append(columns[0])
        tags.append(columns[3])
    flush()
    return sentences


def label_list_of(sentences: Iterable[NerSentence]) -> tuple[str, ...]:
    """The tags used in `sentences`: "O" first, then the rest by entity type, B before I."""
    used = {tag for sentence in sentences for tag in sentence.tags}
    others = sorted(used - {"O"}, key=lambda tag: (tag.partition("-")[2], tag))
    return ("O",) + tuple(others)


def convert_sentences_to_features(sentences: Sequence[NerSentence],
                                  tokenizer: WordPieceTokenizer,
                                  max_seq_length: int,
                                  label_list: Sequence[str] = CONLL2003_LABELS
                                  ) -> dict[str, np.ndarray]:
    """BERT token features with labels on each word's first sub-token.

    Returns:
      input_ids, input_mask, segment_ids: [N, S] int32 (segment ids all 0).
      label_ids: [N, S] int32, the word's label id at its first sub-token, 0 elsewhere.
      label_weights: [N, S] float32, 1.0 at first sub-tokens of words that fit, 0.0 elsewhere
        ([CLS], [SEP], continuation pieces, padding).
      word_start_positions: [N, W] int32 with W the longest sentence: the token position of word
        j's first sub-token, or -1 for words cut off by max_seq_length (and for padding).
      example_index: [N] int32.

    A word that tokenizes to nothing (e.g. only control characters) becomes [UNK] so that every
    word keeps a position and a label.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length {max_seq_length} leaves no room for a word.")
    label_map = {label: index for index, label in enumerate(label_list)}
    num = len(sentences)
    max_words = max((len(sentence.words) for sentence in sentences), default=0)
    input_ids = np.zeros((num, max_seq_length), np.int32)
    input_mask = np.zeros((num, max_seq_length), np.int32)
    label_ids = np.zeros((num, max_seq_length), np.int32)
    label_weights = np.zeros((num, max_seq_length), np.float32)
    word_start_positions = np.full((num, max_words), -1, np.int32)
    for sentence_index, sentence in enumerate(sentences):
        if len(sentence.words) != len(sentence.tags):
            raise ValueError(f"Sentence {sentence_index}: {len(sentence.words)} words but "
                             f"{len(sentence.tags)} tags.")
        tokens = ["[CLS]"]
        for word_index, (word, tag) in enumerate(zip(sentence.words, sentence.tags)):
            if tag not in label_map:
                raise ValueError(
                    f"Sentence {sentence_index}, word {word_index} ({word!r}): tag {tag!r} "
                    f"is not in the label list {list(label_list)}.")
            pieces = tokenizer.tokenize(word) or ["[UNK]"]
            if len(tokens) + 1 > max_seq_length - 1:  # Keep room for the closing [SEP].
                break
            first_position = len(tokens)
            # A word only partly inside the limit keeps its first pieces; the label is on the first.
            tokens.extend(pieces[:max_seq_length - 1 - len(tokens)])
            label_ids[sentence_index, first_position] = label_map[tag]
            label_weights[sentence_index, first_position] = 1.0
            word_start_positions[sentence_index, word_index] = first_position
        tokens.append("[SEP]")
        input_ids[sentence_index, :len(tokens)] = tokenizer.convert_tokens_to_ids(tokens)
        input_mask[sentence_index, :len(tokens)] = 1
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": np.zeros((num, max_seq_length), np.int32),
        "label_ids": label_ids,
        "label_weights": label_weights,
        "word_start_positions": word_start_positions,
        "example_index": np.arange(num, dtype=np.int32),
    }


def predictions_to_word_tags(predicted_label_ids,
                             word_start_positions,
                             sentences: Sequence[NerSentence],
                             label_list: Sequence[str] = CONLL2003_LABELS) -> list[list[str]]:
    """Word-level predicted tags per sentence, read at each word's first sub-token.

    Args:
      predicted_label_ids: [N, S] argmax label ids per token.
      word_start_positions: [N, W] from convert_sentences_to_features.
      sentences: the N sentences (for their word counts).
      label_list: the label list the model was trained with.

    Words cut off by max_seq_length get "O", so they count as missed entities in entity_f1 rather
    than vanishing from the gold side.
    """
    predicted_label_ids = np.asarray(predicted_label_ids)
    word_start_positions = np.asarray(word_start_positions)
    if predicted_label_ids.shape[0] != len(sentences) or word_start_positions.shape[0] != len(
        sentences):
        raise ValueError(f"{len(sentences)} sentences but predictions {predicted_label_ids.shape} "
                         f"and word positions {word_start_positions.shape}.")
    word_tags = []
    for sentence_index, sentence in enumerate(sentences):
        tags = []
        for word_index in range(len(sentence.words)):
            position = word_start_positions[sentence_index, word_index]
            if position < 0:
                tags.append("O")
                continue
            label_id = int(predicted_label_ids[sentence_index, position])
            if not 0 <= label_id < len(label_list):
                raise ValueError(
                    f"Sentence {sentence_index}, word {word_index}: predicted label id "
                    f"{label_id} is outside the {len(label_list)}-label list.")
            tags.append(label_list[label_id])
        word_tags.append(tags)
    return word_tags
