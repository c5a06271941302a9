"""SQuAD answers from per-window start/end logits: the original run_squad.py write_predictions.

For each question, over all of its windows (features):
  1. Candidate spans pair the n_best_size highest start logits with the n_best_size highest end
     logits; a span is kept only if both ends are document tokens of the window, the start token
     has its maximum context in this window, end >= start and the span is at most
     max_answer_length tokens.
  2. SQuAD v2.0 adds the null answer ([CLS], position 0) with the score of the window where
     start_logit[0] + end_logit[0] is smallest (score_null).
  3. Candidates are ranked by start_logit + end_logit; each becomes text by joining its
     WordPieces and projecting them back onto the original words (`get_final_text`), so the answer
     keeps the paragraph's casing, accents and inner punctuation; duplicates are dropped until
     n_best_size remain.
  4. v1.1 answers with the best text. v2.0 answers "" when score_null minus the best non-null
     score exceeds null_score_diff_threshold; that difference is the question's null odds.

Shapes: F windows, S = max_seq_length.
"""
from __future__ import annotations

import collections
import dataclasses
import math
from typing import TYPE_CHECKING, Sequence

import numpy as np
from absl import logging

from data_pipelines import tokenization

if TYPE_CHECKING:  # Only the attributes are used; bertjax does not import data_pipelines.
    from data_pipelines.squad import SquadExample, SquadFeature


@dataclasses.dataclass
class SquadPredictions:
    """predictions: question id -> answer text; nbest: question id -> [{text, probability,
    start_logit, end_logit}] best first; null_odds: question id -> score_null - best non-null
    score (v2.0 only, empty for v1.1; feed it to metrics.squad_v2 as na_probs)."""
    predictions: dict[str, str]
    nbest: dict[str, list[dict]]
    null_odds: dict[str, float]


_PrelimPrediction = collections.namedtuple(
    "PrelimPrediction", ["feature_index", "start_index", "end_index", "start_logit", "end_logit"])
_NbestPrediction = collections.namedtuple("NbestPrediction",
                                          ["text", "start_logit", "end_logit"])


def _get_best_indexes(logits: Sequence[float], n_best_size: int) -> list[int]:
    """Indices of the n_best_size largest logits; ties keep the lower index first."""
    index_and_score = sorted(enumerate(logits), key=lambda x: x[1], reverse=True)
    return [index for index, _ in index_and_score[:n_best_size]]


def _compute_softmax(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    max_score = max(scores)
    exp_scores = [math.exp(score - max_score) for score in scores]
    total = sum(exp_scores)
    return [score / total for score in exp_scores]


def get_final_text(pred_text: str, orig_text: str, do_lower_case: bool) -> str:
    """Projects the normalised prediction back onto the original text span.

    pred_text is the de-tokenized WordPiece answer ("steve smith"); orig_text the original words it
    came from ("Steve Smith's"). Re-tokenizing orig_text with BasicTokenizer and dropping spaces
    gives a character-for-character alignment with orig_text (when the lengths agree), through
    which pred_text's first and last characters map back ("Steve Smith"). When the alignment
    fails, orig_text is returned whole, as in the original.
    """

    def strip_spaces(text):
        non_space_chars = []
        non_space_to_space_map = collections.OrderedDict()
        for index, char in enumerate(text):
            if char == " ":
                continue
            non_space_to_space_map[len(non_space_chars)] = index
            non_space_chars.append(char)
        return "".join(non_space_chars), non_space_to_space_map

    basic_tokenizer = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    tok_text = " ".join(basic_tokenizer.tokenize(orig_text))

    start_position = tok_text.find(pred_text)
    if start_position == -1:
        logging.vlog(1, "Unable to find text: %r in %r", pred_text, orig_text)
        return orig_text
    end_position = start_position + len(pred_text) - 1

    orig_ns_text, orig_ns_to_s_map = strip_spaces(orig_text)
    tok_ns_text, tok_ns_to_s_map = strip_spaces(tok_text)
    if len(orig_ns_text) != len(tok_ns_text):
        logging.vlog(1, "Length not equal after stripping spaces: %r vs %r", orig_ns_text,
                     tok_ns_text)
        return orig_text

    tok_s_to_ns_map = {tok_index: i for i, tok_index in tok_ns_to_s_map.items()}

    orig_start_position = None
    if start_position in tok_s_to_ns_map:
        orig_start_position = orig_ns_to_s_map.get(tok_s_to_ns_map[start_position])
    if orig_start_position is None:
        logging.vlog(1, "Couldn't map start position")
        return orig_text

    orig_end_position = None
    if end_position in tok_s_to_ns_map:
        orig_end_position = orig_ns_to_s_map.get(tok_s_to_ns_map[end_position])
    if orig_end_position is None:
        logging.vlog(1, "Couldn't map end position")
        return orig_text

    return orig_text[orig_start_position:orig_end_position + 1]


def compute_predictions(examples: Sequence["SquadExample"],
                        features: Sequence["SquadFeature"],
                        unique_ids,
                        start_logits,
                        end_logits,
                        *,
                        n_best_size: int = 20,
                        max_answer_length: int = 30,
                        do_lower_case: bool = True,
                        version_2_with_negative: bool = False,
                        null_score_diff_threshold: float = 0.0) -> SquadPredictions:
    """Answer text per question from the model's span logits.

    Args:
      examples: the SquadExamples the features were built from.
      features: their SquadFeatures (data_pipelines.squad.convert_examples_to_features).
      unique_ids: [R] unique ids of the result rows; rows with an id no feature has (the -1 of
        eval-batch padding) are ignored.
      start_logits, end_logits: [R, S] logits per result row.
      n_best_size, max_answer_length: as the original's flags (20, 30).
      do_lower_case: must match the tokenizer's.
      version_2_with_negative: SQuAD v2.0: consider the null answer.
      null_score_diff_threshold: v2.0: predict "" when score_null - best non-null > threshold.
    """
    unique_ids = np.asarray(unique_ids)
    start_logits = np.asarray(start_logits)
    end_logits = np.asarray(end_logits)
    if start_logits.ndim != 2 or start_logits.shape != end_logits.shape:
        raise ValueError(
            f"start_logits {start_logits.shape} and end_logits {end_logits.shape} must "
            "both be [R, S].")
    if unique_ids.shape != start_logits.shape[:1]:
        raise ValueError(f"unique_ids {unique_ids.shape} do not match the logits' "
                         f"{start_logits.shape[0]} rows.")
    row_of_unique_id = {int(unique_id): row for row, unique_id in enumerate(unique_ids)}

    features_of_example = collections.defaultdict(list)
    for feature in features:
        features_of_example[feature.example_index].append(feature)

    all_predictions = collections.OrderedDict()
    all_nbest = collections.OrderedDict()
    null_odds = collections.OrderedDict()

    for example_index, example in enumerate(examples):
        example_features = features_of_example[example_index]
        prelim_predictions = []
        # The smallest null score (start + end logit at [CLS]) over the windows, and where it is.
        score_null = 1000000
        min_null_feature_index = 0
        null_start_logit = 0
        null_end_logit = 0
        for feature_index, feature in enumerate(example_features):
            if feature.unique_id not in row_of_unique_id:
                raise ValueError(f"No logits for feature {feature.unique_id} of question "
                                 f"{example.qas_id!r}.")
            row = row_of_unique_id[feature.unique_id]
            # Python floats, as the original reads them back from the estimator.
            feature_start_logits = start_logits[row].tolist()
            feature_end_logits = end_logits[row].tolist()
            start_indexes = _get_best_indexes(feature_start_logits, n_best_size)
            end_indexes = _get_best_indexes(feature_end_logits, n_best_size)
            if version_2_with_negative:
                feature_null_score = feature_start_logits[0] + feature_end_logits[0]
                if feature_null_score < score_null:
                    score_null = feature_null_score
                    min_null_feature_index = feature_index
                    null_start_logit = feature_start_logits[0]
                    null_end_logit = feature_end_logits[0]
            for start_index in start_indexes:
                for end_index in end_indexes:
                    # Spans in the question, in padding or across the window edge cannot be
                    # answers.
                    if start_index >= len(feature.tokens) or end_index >= len(feature.tokens):
                        continue
                    if start_index not in feature.token_to_orig_map:
                        continue
                    if end_index not in feature.token_to_orig_map:
                        continue
                    if not feature.token_is_max_context.get(start_index, False):
                        continue
                    if end_index < start_index:
                        continue
                    if end_index - start_index + 1 > max_answer_length:
                        continue
                    prelim_predictions.append(_PrelimPrediction(
                        feature_index=feature_index,
                        start_index=start_index,
                        end_index=end_index,
                        start_logit=feature_start_logits[start_index],
                        end_logit=feature_end_logits[end_index]))

        if version_2_with_negative:
            prelim_predictions.append(_PrelimPrediction(
                feature_index=min_null_feature_index,
                start_index=0,
                end_index=0,
                start_logit=null_start_logit,
                end_logit=null_end_logit))
        prelim_predictions = sorted(prelim_predictions, key=lambda x: x.start_logit + x.end_logit,
                                    reverse=True)

        seen_predictions = {}
        nbest = []
        for prediction in prelim_predictions:
            if len(nbest) >= n_best_size:
                break
            feature = example_features[prediction.feature_index]
            if prediction.start_index > 0:  # A non-null prediction.
                tok_tokens = feature.tokens[prediction.start_index:prediction.end_index + 1]
                orig_doc_start = feature.token_to_orig_map[prediction.start_index]
                orig_doc_end = feature.token_to_orig_map[prediction.end_index]
                orig_tokens = example.doc_tokens[orig_doc_start:orig_doc_end + 1]
                # De-tokenize WordPieces that have been split off, then clean whitespace.
                tok_text = " ".join(tok_tokens).replace(" ##", "").replace("##", "")
                tok_text = " ".join(tok_text.strip().split())
                orig_text = " ".join(orig_tokens)
                final_text = get_final_text(tok_text, orig_text, do_lower_case)
                if final_text in seen_predictions:
                    continue
                seen_predictions[final_text] = True
            else:
                final_text = ""
                seen_predictions[final_text] = True
            nbest.append(_NbestPrediction(final_text, prediction.start_logit, prediction.end_logit))

        # If the null answer did not make the n-best, include it.
        if version_2_with_negative and "" not in seen_predictions:
            nbest.append(_NbestPrediction("", null_start_logit, null_end_logit))
        # In rare edge cases (no valid span) there is no prediction; the original answers "empty".
        if not nbest:
            nbest.append(_NbestPrediction("empty", 0.0, 0.0))

        total_scores = [entry.start_logit + entry.end_logit for entry in nbest]
        best_non_null_entry = next((entry for entry in nbest if entry.text), None)
        probabilities = _compute_softmax(total_scores)
        all_nbest[example.qas_id] = [
            collections.OrderedDict(text=entry.text, probability=probability,
                                    start_logit=entry.start_logit, end_logit=entry.end_logit)
            for entry, probability in zip(nbest, probabilities)
        ]

        if not version_2_with_negative:
            all_predictions[example.qas_id] = nbest[0].text
        else:
            if best_non_null_entry is None:
                # Only the null answer survived (the original would crash here); predict no answer.
                null_odds[example.qas_id] = float("inf")
                all_predictions[example.qas_id] = ""
                continue
            best_non_null_score = best_non_null_entry.start_logit + best_non_null_entry.end_logit
            score_diff = score_null - best_non_null_score
            null_odds[example.qas_id] = score_diff
            if score_diff > null_score_diff_threshold:
                all_predictions[example.qas_id] = ""
            else:
                all_predictions[example.qas_id] = best_non_null_entry.text

    return SquadPredictions(all_predictions, all_nbest, null_odds)
