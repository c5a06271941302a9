"""Pretraining instances: the original create_pretraining_data.py algorithm on token ids.

Same rules as google-research/bert (create_pretraining_data.py), restated on a tokenised
corpus held as flat arrays so that nothing is copied per token in Python:

* `create_instances_from_document` walks one document's sentences exactly as the original
  does (target length with short_seq_prob, random A/B split, 50% random next from another
  document with the unused sentences put back, truncation of the longer segment from a
  random end) but only does integer book-keeping: an instance is two token spans
  (start, length) into the corpus plus the next-sentence label.
* `assemble_instances` turns N spans into [N, S] arrays ([CLS] A [SEP] B [SEP], zero padded)
  with one vectorised gather.
* `create_masked_lm_predictions` masks all N instances at once with numpy: a uniformly
  random subset of num_to_predict = min(P, max(1, round(len * masked_lm_prob))) candidate
  tokens (all but [CLS]/[SEP]), or greedy whole words in random order with the original's
  skip rule; each chosen token becomes [MASK] 80%, stays 10%, a uniform vocab id 10%. It is
  THE masking: the offline writer (create_pretraining_data) and dynamic masking
  (dynamic_masking.py) both call it; data_pipelines.tokenizers.masking_arrays gives its
  vocabulary arrays for WordPiece and SentencePiece alike.

The random draws are equal in distribution to the original's, not draw-for-draw identical
(its single `random.Random` stream cannot be split across processes); the tests compare the
statistics with the original's, stored in tests/golden/create_pretraining_data.json.
Shape legend: N instances, S = max_seq_length, P = max_predictions_per_seq, W words.
"""

from __future__ import annotations

import dataclasses
import random
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass
class TokenizedCorpus:
    """Documents of sentences of token ids, stored flat (arrays may be np.memmap).

    Attributes:
      token_ids: [T] int32, every sentence's ids back to back.
      sentence_starts: [num_sentences + 1] int64 offsets into token_ids.
      document_starts: [num_documents + 1] int64 offsets into sentences.
    """

    token_ids: np.ndarray
    sentence_starts: np.ndarray
    document_starts: np.ndarray

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    @classmethod
    def from_documents(cls, documents: list[list[list[int]]]) -> "TokenizedCorpus":
        """From documents -> sentences -> token ids; empty sentences and documents are dropped."""
        sentences = [sentence for document in documents for sentence in document if sentence]
        sentence_counts = [sum(1 for sentence in document if sentence) for document in documents]
        sentence_counts = [count for count in sentence_counts if count]
        lengths = np.array([len(sentence) for sentence in sentences], np.int64)
        token_ids = (
            np.concatenate([np.asarray(s, np.int32) for s in sentences])
            if sentences
            else np.zeros([0], np.int32)
        )
        return cls(
            token_ids=token_ids,
            sentence_starts=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            document_starts=np.concatenate([[0], np.cumsum(sentence_counts)]).astype(np.int64),
        )

    def document_sentence_starts(self, document_index: int) -> list[int]:
        """Token offsets of the document's sentences plus its end offset (Python ints)."""
        first = int(self.document_starts[document_index])
        end = int(self.document_starts[document_index + 1])
        return self.sentence_starts[first : end + 1].tolist()

    def documents(self) -> list[list[list[int]]]:
        """Back to nested lists (for tests and small corpora)."""
        result = []
        for document_index in range(self.num_documents):
            starts = self.document_sentence_starts(document_index)
            result.append([self.token_ids[s:e].tolist() for s, e in zip(starts[:-1], starts[1:])])
        return result


class InstanceSpans(NamedTuple):
    """One sentence pair as token spans into TokenizedCorpus.token_ids (after truncation)."""

    a_start: int
    a_length: int
    b_start: int
    b_length: int
    is_random_next: bool


def _uniform_int(rng: random.Random, low: int, high: int) -> int:
    """Uniform integer in [low, high], like rng.randint but 3x cheaper (one float draw; the
    bias is below (high - low + 1) / 2**53)."""
    return low + int(rng.random() * (high - low + 1))


def _truncate_seq_pair(
    a_length: int, b_length: int, max_num_tokens: int, rng: random.Random
) -> tuple[int, int, int, int]:
    """The original truncate_seq_pair in closed form.

    The original pops one token at a time from the longer segment (ties: B), from the front or
    the back with probability 1/2. Which segment loses each token is deterministic, so only
    the front/back split is random: per segment a Binomial(pops, 1/2) number of front pops.
    Returns (a_front_pops, a_length, b_front_pops, b_length).
    """
    excess = a_length + b_length - max_num_tokens
    if excess <= 0:
        return 0, a_length, 0, b_length
    a_pops = b_pops = 0
    if a_length > b_length:
        a_pops = min(excess, a_length - b_length)
    else:
        b_pops = min(excess, b_length - a_length)
    remaining = excess - a_pops - b_pops
    # Equal lengths now: B loses a token (tie), then A (now longer), and so on.
    b_pops += (remaining + 1) // 2
    a_pops += remaining // 2
    a_front = bin(rng.getrandbits(a_pops)).count("1") if a_pops else 0
    b_front = bin(rng.getrandbits(b_pops)).count("1") if b_pops else 0
    return a_front, a_length - a_pops, b_front, b_length - b_pops


def create_instances_from_document(
    corpus: TokenizedCorpus,
    document_index: int,
    max_seq_length: int,
    short_seq_prob: float,
    rng: random.Random,
) -> list[InstanceSpans]:
    """The original create_instances_from_document, without the masking.

    Args:
      corpus: the whole corpus; random-next segments come from any of its documents.
      document_index: the document to cut into sentence pairs.
      max_seq_length: S; segments fill at most S - 3 tokens ([CLS], [SEP], [SEP]).
      short_seq_prob: probability of a random target length in [2, S - 3] for this document.
      rng: the draws (random, uniform ints, getrandbits), in the original's order.
    Returns:
      The document's sentence pairs as spans, in document order.
    """
    max_num_tokens = max_seq_length - 3
    target_seq_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_seq_length = _uniform_int(rng, 2, max_num_tokens)
    starts = corpus.document_sentence_starts(document_index)
    num_sentences = len(starts) - 1
    num_documents = corpus.num_documents
    instances = []
    chunk_begin = 0  # First sentence of the current chunk.
    current_length = 0
    i = 0
    while i < num_sentences:
        current_length += starts[i + 1] - starts[i]
        if i == num_sentences - 1 or current_length >= target_seq_length:
            chunk_size = i - chunk_begin + 1
            a_end = 1 if chunk_size < 2 else _uniform_int(rng, 1, chunk_size - 1)
            a_start = starts[chunk_begin]
            a_length = starts[chunk_begin + a_end] - a_start
            if chunk_size == 1 or rng.random() < 0.5:
                is_random_next = True
                target_b_length = target_seq_length - a_length
                # As the original: ten tries to avoid the same document (a one-document corpus
                # therefore pairs a document with itself).
                for _ in range(10):
                    random_document_index = _uniform_int(rng, 0, num_documents - 1)
                    if random_document_index != document_index:
                        break
                random_starts = corpus.document_sentence_starts(random_document_index)
                random_start = _uniform_int(rng, 0, len(random_starts) - 2)
                b_start = random_starts[random_start]
                sentence_end = random_start + 1
                while (
                    random_starts[sentence_end] - b_start < target_b_length
                    and sentence_end < len(random_starts) - 1
                ):
                    sentence_end += 1
                b_length = random_starts[sentence_end] - b_start
                i -= chunk_size - a_end  # Put the unused sentences back.
            else:
                is_random_next = False
                b_start = starts[chunk_begin + a_end]
                b_length = starts[i + 1] - b_start
            a_front, a_length, b_front, b_length = _truncate_seq_pair(
                a_length, b_length, max_num_tokens, rng
            )
            instances.append(
                InstanceSpans(
                    a_start + a_front, a_length, b_start + b_front, b_length, is_random_next
                )
            )
            chunk_begin = i + 1
            current_length = 0
        i += 1
    return instances


class InstanceArrays(NamedTuple):
    """N unmasked sentence pairs. Shapes: [N, S] ids/mask/segments, [N] labels."""

    input_ids: np.ndarray
    input_mask: np.ndarray
    segment_ids: np.ndarray
    a_lengths: np.ndarray
    b_lengths: np.ndarray
    next_sentence_labels: np.ndarray


def assemble_instances(
    token_ids: np.ndarray, spans: list[InstanceSpans], max_seq_length: int, cls_id: int, sep_id: int
) -> InstanceArrays:
    """[CLS] A [SEP] B [SEP] rows, zero padded to S, for all spans with one gather."""
    span_array = np.array(spans, np.int64).reshape(-1, 5)
    a_start, a_length, b_start, b_length, is_random_next = span_array.T
    position = np.arange(max_seq_length)[None, :]  # [1, S]
    in_a = (position >= 1) & (position <= a_length[:, None])
    b_first = a_length[:, None] + 2
    in_b = (position >= b_first) & (position < b_first + b_length[:, None])
    source = np.where(
        in_a,
        a_start[:, None] + position - 1,
        np.where(in_b, b_start[:, None] + position - b_first, 0),
    )
    input_ids = np.where(in_a | in_b, np.asarray(token_ids)[source], 0).astype(np.int32)
    input_ids[:, 0] = cls_id
    rows = np.arange(len(span_array))
    input_ids[rows, a_length + 1] = sep_id
    input_ids[rows, a_length + b_length + 2] = sep_id
    total_length = a_length + b_length + 3
    input_mask = (position < total_length[:, None]).astype(np.int32)
    segment_ids = (input_mask & (position >= b_first)).astype(np.int32)
    return InstanceArrays(
        input_ids,
        input_mask,
        segment_ids,
        a_length.astype(np.int32),
        b_length.astype(np.int32),
        is_random_next.astype(np.int32),
    )


class MaskedLmPredictions(NamedTuple):
    """Masking of N rows. Shapes: [N, S] masked ids; [N, P] positions/ids/weights/kind."""

    input_ids: np.ndarray
    masked_lm_positions: np.ndarray
    masked_lm_ids: np.ndarray
    masked_lm_weights: np.ndarray
    replacement_kind: np.ndarray  # 0 [MASK], 1 kept, 2 random token, -1 padding.


def _whole_word_selection(
    candidates: np.ndarray,
    is_continuation: np.ndarray,
    num_to_predict: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """The original whole-word choice for N rows at once: [N, S] bool of chosen positions.

    Words are a candidate plus the following "##" candidates (the original groups over the
    candidate list, so a "##" piece right after [SEP] joins the last word of A). Words are
    visited in random order; a word is taken when it still fits in num_to_predict and skipped
    otherwise, which is a sequential rule, so the loop runs over word ranks, vectorised over
    rows.
    """
    num_rows, seq_length = candidates.shape
    first_candidate = candidates & (np.cumsum(candidates, axis=1) == 1)
    word_start = candidates & (~is_continuation | first_candidate)
    word_index = np.cumsum(word_start, axis=1) - 1  # [N, S], valid where candidates
    num_words = word_start.sum(axis=1)
    max_words = max(int(num_words.max()), 1)
    word_sizes = np.zeros([num_rows, max_words], np.int64)
    rows = np.broadcast_to(np.arange(num_rows)[:, None], candidates.shape)
    np.add.at(word_sizes, (rows[candidates], word_index[candidates]), 1)
    keys = np.where(
        np.arange(max_words) < num_words[:, None], rng.random([num_rows, max_words]), 2.0
    )
    order = np.argsort(keys, axis=1)  # [N, W] random word order, missing words last
    sizes_in_order = np.take_along_axis(word_sizes, order, axis=1)
    taken_in_order = np.zeros([num_rows, max_words], bool)
    count = np.zeros([num_rows], np.int64)
    for rank in range(max_words):
        size = sizes_in_order[:, rank]
        take = (size > 0) & (count + size <= num_to_predict)
        taken_in_order[:, rank] = take
        count += np.where(take, size, 0)
    taken = np.zeros([num_rows, max_words], bool)
    np.put_along_axis(taken, order, taken_in_order, axis=1)
    return candidates & np.take_along_axis(taken, np.maximum(word_index, 0), axis=1)


def create_masked_lm_predictions(
    input_ids: np.ndarray,
    input_mask: np.ndarray,
    special_token_ids: tuple[int, ...],
    masked_lm_prob: float,
    max_predictions_per_seq: int,
    vocab_ids: np.ndarray,
    mask_id: int,
    rng: np.random.Generator,
    continuation_ids: np.ndarray | None = None,
) -> MaskedLmPredictions:
    """The original create_masked_lm_predictions for N rows at once.

    Args:
      input_ids: [N, S] unmasked ids; input_mask: [N, S] 1 for real tokens.
      special_token_ids: ids never masked ([CLS], [SEP]).
      masked_lm_prob, max_predictions_per_seq: as the original flags.
      vocab_ids: [V] the ids a random replacement is drawn from (uniformly), as the original's
        `vocab_words` list.
      mask_id: the [MASK] id.
      rng: numpy generator for all draws.
      continuation_ids: None for per-token masking; for whole-word masking a [V] bool array,
        True for "##" pieces.
    Returns:
      MaskedLmPredictions with positions sorted and zero padded to P.
    """
    input_ids = np.asarray(input_ids)
    num_rows, seq_length = input_ids.shape
    candidates = np.asarray(input_mask) == 1
    for special_id in special_token_ids:  # a few ids: cheaper than np.isin's sort
        candidates &= input_ids != special_id
    lengths = np.asarray(input_mask).sum(axis=1)
    # np.rint rounds half to even, like Python 3's round() in the original.
    num_to_predict = np.minimum(
        max_predictions_per_seq, np.maximum(1, np.rint(lengths * masked_lm_prob).astype(np.int64))
    )
    if continuation_ids is None:
        # A uniformly random subset of num_to_predict candidates, as shuffle-and-take-first.
        keys = np.where(candidates, rng.random(candidates.shape), 2.0)
        order = np.argsort(keys, axis=1)
        num_chosen = np.minimum(num_to_predict, candidates.sum(axis=1))
        chosen = np.zeros(candidates.shape, bool)
        np.put_along_axis(chosen, order, np.arange(seq_length) < num_chosen[:, None], axis=1)
    else:
        chosen = _whole_word_selection(
            candidates, np.asarray(continuation_ids)[input_ids], num_to_predict, rng
        )
    num_chosen = chosen.sum(axis=1)
    width = max_predictions_per_seq
    # Sorted chosen positions: the chosen column indexes in order, then padding.
    sort_keys = np.where(chosen, np.arange(seq_length), seq_length)
    positions = np.sort(sort_keys, axis=1)[:, :width]
    if positions.shape[1] < width:
        positions = np.pad(
            positions, [(0, 0), (0, width - positions.shape[1])], constant_values=seq_length
        )
    real = np.arange(width) < num_chosen[:, None]
    positions = np.where(real, positions, 0)
    original_ids = np.where(real, np.take_along_axis(input_ids, positions, axis=1), 0)
    # One uniform per prediction: [0, .8) [MASK], [.8, .9) keep, [.9, 1) random token; the same
    # 80/10/10 law as the original's two draws (u1 < .8; else u2 < .5 keeps).
    draw = rng.random([num_rows, width])
    kind = np.where(draw < 0.8, 0, np.where(draw < 0.9, 1, 2))
    random_ids = np.asarray(vocab_ids)[rng.integers(0, len(vocab_ids), [num_rows, width])]
    replacement = np.where(kind == 0, mask_id, np.where(kind == 1, original_ids, random_ids))
    masked_input_ids = input_ids.copy()
    rows = np.broadcast_to(np.arange(num_rows)[:, None], positions.shape)
    masked_input_ids[rows[real], positions[real]] = replacement[real]
    return MaskedLmPredictions(
        input_ids=masked_input_ids,
        masked_lm_positions=positions.astype(np.int32),
        masked_lm_ids=original_ids.astype(np.int32),
        masked_lm_weights=real.astype(np.float32),
        replacement_kind=np.where(real, kind, -1).astype(np.int8),
    )
