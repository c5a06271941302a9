"""SQuAD v1.1 / v2.0 (Rajpurkar et al. 2016, 2018): official JSON or TFDS -> BERT span features.

Reading and feature conversion follow the original run_squad.py step by step:
  * A paragraph is split on whitespace (space, tab, CR, LF, U+202F) into doc tokens, with
    char_to_word_offset mapping each character to its word. In training, the character answer
    span becomes a word span; an answer whose words do not contain the cleaned answer text is
    skipped with a warning (weird Unicode), as in the original.
  * Each word is WordPiece-tokenized (tok_to_orig_index, orig_to_tok_index); the answer's
    sub-token span is tightened by `_improve_answer_span` ("(1895-1943)." -> "1895").
  * The question is cut to max_query_length tokens; the document is cut into windows ("doc
    spans") of up to max_seq_length - len(query) - 3 tokens, each starting doc_stride tokens after
    the previous one, the last one reaching the document's end.
  * Each window becomes one feature: [CLS] query [SEP] window [SEP] with segment ids 0/1,
    token_to_orig_map (feature position -> word index) and token_is_max_context (whether this
    window gives the token the most context on both sides, `_check_is_max_context`).
  * Training targets: the answer's feature positions, or 0 ([CLS]) when the window does not
    contain the whole answer or the question is impossible.

Both sources end up as the official JSON's "data" list, so the same reader, and the official
scorer (bertjax.metrics.squad_v1 / squad_v2), see the same thing.

Shapes: F features (windows), S = max_seq_length.
"""
from __future__ import annotations

import collections
import dataclasses
import json
from typing import Iterable, Mapping, Protocol, Sequence

import numpy as np
from absl import logging

from data_pipelines import storage

FIRST_UNIQUE_ID = 1000000000  # As the original: feature ids stay clear of example indices.


class WordPieceTokenizer(Protocol):
    """What feature conversion needs from a tokenizer (data_pipelines.tokenizers: either kind)."""

    def tokenize(self, text: str) -> list[str]:
        ...

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        ...


@dataclasses.dataclass
class SquadExample:
    """One question over one paragraph.

    start_position / end_position are word indices into doc_tokens (training only; -1 for
    impossible questions, None at prediction time).
    """
    qas_id: str
    question_text: str
    doc_tokens: list[str]
    orig_answer_text: str | None = None
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False


@dataclasses.dataclass
class SquadFeature:
    """Host-side bookkeeping of one window, needed to turn logits back into answer text.

    token_to_orig_map / token_is_max_context are keyed by feature position and cover only the
    document tokens of the window.
    """
    unique_id: int
    example_index: int
    doc_span_index: int
    tokens: list[str]
    token_to_orig_map: dict[int, int]
    token_is_max_context: dict[int, bool]
    start_position: int | None = None
    end_position: int | None = None
    is_impossible: bool = False


DocSpan = collections.namedtuple("DocSpan", ["start", "length"])

# --------------------------------------------------------------------------------------------
# Sources.
# --------------------------------------------------------------------------------------------


def load_squad_json(path: str) -> list[dict]:
    """The "data" list of an official SQuAD JSON file."""
    try:
        contents = json.loads(storage.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a UTF-8 JSON file ({error})") from None
    if not isinstance(contents, dict) or "data" not in contents:
        raise ValueError(f"{path}: no 'data' key; is this an official SQuAD JSON file?")
    return contents["data"]


def validate_dataset(dataset: Sequence[Mapping], source: str, *, needs_answers: bool,
                     version_2_with_negative: bool = False) -> None:
    """Checks the structure of a SQuAD "data" list before anything is trained on it.

    Every paragraph needs a string "context" and a "qas" list; every question an "id" and a
    "question"; with `needs_answers` (training files, and evaluation files, which are scored)
    an "answers" list of {"text", "answer_start"} (v2.0: empty for impossible questions).
    Raises ValueError naming `source`, the question id (or article and paragraph index) and
    the missing or malformed field.
    """
    if not isinstance(dataset, Sequence) or isinstance(dataset, (str, bytes)):
        raise ValueError(f"{source}: 'data' must be a list of articles")
    for a, article in enumerate(dataset):
        paragraphs = article.get("paragraphs") if isinstance(article, Mapping) else None
        if not isinstance(paragraphs, Sequence):
            raise ValueError(f"{source}: article {a} has no 'paragraphs' list")
        for p, paragraph in enumerate(paragraphs):
            where = f"{source}: article {a}, paragraph {p}"
            if not isinstance(paragraph, Mapping) or not isinstance(paragraph.get("context"), str):
                raise ValueError(f"{where} has no 'context' string")
            if not isinstance(paragraph.get("qas"), Sequence):
                raise ValueError(f"{where} has no 'qas' list")
            for q, qa in enumerate(paragraph["qas"]):
                if not isinstance(qa, Mapping) or "id" not in qa:
                    raise ValueError(f"{where}, question {q} has no 'id'")
                name = f"{source}: question {qa['id']!r}"
                if not isinstance(qa.get("question"), str):
                    raise ValueError(f"{name} has no 'question' string")
                if not needs_answers:
                    continue
                answers = qa.get("answers")
                if not isinstance(answers, Sequence):
                    raise ValueError(f"{name} has no 'answers' list (needed to train on or "
                                     "score this file)")
                for answer in answers:
                    if (not isinstance(answer, Mapping) or not isinstance(answer.get("text"), str)
                            or not isinstance(answer.get("answer_start"), int)):
                        raise ValueError(f"{name}: each answer needs 'text' (string) and "
                                         f"'answer_start' (integer); got {answer!r}")
                impossible = version_2_with_negative and qa.get("is_impossible", False)
                if not answers and not impossible:
                    raise ValueError(f"{name} has an empty 'answers' list and is not marked "
                                     "is_impossible")


def dataset_from_tfds_records(records: Iterable[Mapping]) -> list[dict]:
    """Regroups TFDS squad records (one per question) into the official JSON "data" list.

    Questions of the same (title, context) become one paragraph, in first-seen order. v2.0
    records carry is_impossible; v1.1 records do not.
    """
    articles: dict[str, dict] = {}
    paragraphs: dict[tuple[str, str], dict] = {}
    for record in records:
        title = _decode(record["title"])
        context = _decode(record["context"])
        qas_id = _decode(record["id"])
        texts = [_decode(text) for text in record["answers"]["text"]]
        starts = [int(start) for start in record["answers"]["answer_start"]]
        if len(texts) != len(starts):
            raise ValueError(f"TFDS squad record {qas_id!r}: {len(texts)} answer texts but "
                             f"{len(starts)} answer starts.")
        qa = {
            "id": qas_id,
            "question": _decode(record["question"]),
            "answers": [{
                "text": text,
                "answer_start": start
            } for text, start in zip(texts, starts)],
        }
        if "is_impossible" in record:
            qa["is_impossible"] = bool(record["is_impossible"])
        if title not in articles:
            articles[title] = {"title": title, "paragraphs": []}
        if (title, context) not in paragraphs:
            paragraphs[(title, context)] = {"context": context, "qas": []}
            articles[title]["paragraphs"].append(paragraphs[(title, context)])
        paragraphs[(title, context)]["qas"].append(qa)
    return list(articles.values())


def load_tfds_dataset(version: str, split: str, data_dir: str | None = None) -> list[dict]:
    """`squad/v1.1` or `squad/v2.0` via tfds.load, as the official JSON "data" list."""
    from data_pipelines import tfds_source  # TF only here: JSON reading needs none.

    if version not in ("v1.1", "v2.0"):
        raise ValueError(f"SQuAD version must be 'v1.1' or 'v2.0', got {version!r}.")
    dataset = tfds_source.load(
        f"squad/{version}", split, data_dir, alternative=(
            "Or read the official JSON files: --config.data.train_file=... "
            "--config.data.eval_file=..."))
    return dataset_from_tfds_records(dataset.as_numpy_iterator())


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


# --------------------------------------------------------------------------------------------
# Examples.
# --------------------------------------------------------------------------------------------


def _is_whitespace(char: str) -> bool:
    return char in (" ", "\t", "\r", "\n") or ord(char) == 0x202F


def split_paragraph(paragraph_text: str) -> tuple[list[str], list[int]]:
    """Whitespace doc tokens and, per character, the index of its word (the original's loop)."""
    doc_tokens: list[str] = []
    char_to_word_offset: list[int] = []
    previous_is_whitespace = True
    for char in paragraph_text:
        if _is_whitespace(char):
            previous_is_whitespace = True
        else:
            if previous_is_whitespace:
                doc_tokens.append(char)
            else:
                doc_tokens[-1] += char
            previous_is_whitespace = False
        char_to_word_offset.append(len(doc_tokens) - 1)
    return doc_tokens, char_to_word_offset


def _training_example(qa: Mapping, doc_tokens: list[str], char_to_word_offset: list[int],
                      version_2_with_negative: bool) -> SquadExample | None:
    """A training SquadExample with its answer's word span; None if the answer text is lost."""
    qas_id = qa["id"]
    is_impossible = False
    if version_2_with_negative:
        if "is_impossible" not in qa:
            raise ValueError(f"SQuAD question {qas_id!r} has no 'is_impossible' field, needed "
                             "for v2.0 training.")
        is_impossible = bool(qa["is_impossible"])
    if is_impossible:
        return SquadExample(qas_id, qa["question"], doc_tokens, "", -1, -1, True)
    if len(qa["answers"]) != 1:
        raise ValueError(f"SQuAD question {qas_id!r}: for training, each question should have "
                         f"exactly 1 answer, it has {len(qa['answers'])}.")
    answer = qa["answers"][0]
    orig_answer_text = answer["text"]
    answer_offset = answer["answer_start"]
    answer_end = answer_offset + len(orig_answer_text) - 1
    if not orig_answer_text or not 0 <= answer_offset <= answer_end < len(char_to_word_offset):
        raise ValueError(f"SQuAD question {qas_id!r}: answer {orig_answer_text!r} at "
                         f"{answer_offset} lies outside its {len(char_to_word_offset)}-character "
                         "context.")
    start_position = char_to_word_offset[answer_offset]
    end_position = char_to_word_offset[answer_end]
    # Only keep answers whose text can be recovered from the document; the rare misses come from
    # odd Unicode, and the original skips them too.
    actual_text = " ".join(doc_tokens[start_position:end_position + 1])
    cleaned_answer_text = " ".join(orig_answer_text.split())
    if actual_text.find(cleaned_answer_text) == -1:
        logging.warning("Could not find answer of %s: %r vs. %r", qas_id, actual_text,
                        cleaned_answer_text)
        return None
    return SquadExample(qas_id, qa["question"], doc_tokens, orig_answer_text, start_position,
                        end_position, False)


def read_squad_examples(dataset: Sequence[Mapping], is_training: bool,
                        version_2_with_negative: bool) -> list[SquadExample]:
    """SquadExamples from the official JSON "data" list (original read_squad_examples).

    At prediction time an example is just the question and the paragraph's words. In training
    each answerable question must have exactly one answer, mapped to a word span; questions whose
    answer text cannot be found in those words are skipped (logged); v2.0 impossible questions
    get the span (-1, -1) and answer "".
    """
    examples = []
    num_skipped = 0
    for article in dataset:
        for paragraph in article["paragraphs"]:
            doc_tokens, char_to_word_offset = split_paragraph(paragraph["context"])
            for qa in paragraph["qas"]:
                if not is_training:
                    examples.append(SquadExample(qa["id"], qa["question"], doc_tokens))
                    continue
                example = _training_example(qa, doc_tokens, char_to_word_offset,
                                            version_2_with_negative)
                if example is None:
                    num_skipped += 1
                else:
                    examples.append(example)
    if num_skipped:
        logging.warning("Skipped %d training questions whose answer text is not in the context.",
                        num_skipped)
    return examples


# --------------------------------------------------------------------------------------------
# Features.
# --------------------------------------------------------------------------------------------


def _improve_answer_span(doc_tokens: Sequence[str], input_start: int, input_end: int,
                         tokenizer: WordPieceTokenizer,
                         orig_answer_text: str) -> tuple[int, int]:
    """The sub-token span inside [input_start, input_end] that spells the tokenized answer.

    The character annotation projects to whole words ("(1895-1943)."), but after WordPiece the
    answer ("1895") may match a tighter span. If nothing matches (the annotator picked "Japan"
    out of "Japanese"), the word span stays.
    """
    tokenized_answer_text = " ".join(tokenizer.tokenize(orig_answer_text))
    for new_start in range(input_start, input_end + 1):
        for new_end in range(input_end, new_start - 1, -1):
            if " ".join(doc_tokens[new_start:new_end + 1]) == tokenized_answer_text:
                return new_start, new_end
    return input_start, input_end


def _check_is_max_context(doc_spans: Sequence[DocSpan], current_span_index: int,
                          position: int) -> bool:
    """Whether `current_span_index` is the window giving token `position` the most context.

    A token in several windows is scored by min(left context, right context) + 0.01 * window
    length; the first window with the best score wins.
    """
    best_score = None
    best_span_index = None
    for span_index, doc_span in enumerate(doc_spans):
        end = doc_span.start + doc_span.length - 1
        if position < doc_span.start or position > end:
            continue
        num_left_context = position - doc_span.start
        num_right_context = end - position
        score = min(num_left_context, num_right_context) + 0.01 * doc_span.length
        if best_score is None or score > best_score:
            best_score = score
            best_span_index = span_index
    return current_span_index == best_span_index


def doc_spans_of(num_doc_tokens: int, max_tokens_for_doc: int, doc_stride: int) -> list[DocSpan]:
    """Sliding windows over the document: stride doc_stride, the last one reaching the end."""
    doc_spans = []
    start_offset = 0
    while start_offset < num_doc_tokens:
        length = min(num_doc_tokens - start_offset, max_tokens_for_doc)
        doc_spans.append(DocSpan(start=start_offset, length=length))
        if start_offset + length == num_doc_tokens:
            break
        start_offset += min(length, doc_stride)
    return doc_spans


def convert_examples_to_features(
    examples: Sequence[SquadExample],
    tokenizer: WordPieceTokenizer,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    is_training: bool = False) -> tuple[dict[str, np.ndarray], list[SquadFeature]]:
    """Windows every example into fixed-length features (original convert_examples_to_features).

    Returns:
      arrays: unique_ids [F] int64; example_index [F] int32; input_ids, input_mask, segment_ids
        [F, S] int32; in training also start_positions, end_positions, is_impossible [F] int32.
      features: the F SquadFeatures (tokens and maps) for post-processing, in the same order.
    """
    if max_seq_length <= max_query_length + 3:
        raise ValueError(f"max_seq_length ({max_seq_length}) must be greater than max_query_length "
                         f"({max_query_length}) + 3.")
    if doc_stride <= 0:
        raise ValueError(f"doc_stride must be positive, got {doc_stride}.")
    features: list[SquadFeature] = []
    # Per feature: its input ids and where segment 1 starts (after [CLS] query [SEP]).
    input_id_rows: list[tuple[list[int], int]] = []
    unique_id = FIRST_UNIQUE_ID
    for example_index, example in enumerate(examples):
        query_tokens = tokenizer.tokenize(example.question_text)[:max_query_length]

        tok_to_orig_index: list[int] = []
        orig_to_tok_index: list[int] = []
        all_doc_tokens: list[str] = []
        for word_index, word in enumerate(example.doc_tokens):
            orig_to_tok_index.append(len(all_doc_tokens))
            for sub_token in tokenizer.tokenize(word):
                tok_to_orig_index.append(word_index)
                all_doc_tokens.append(sub_token)

        tok_start_position = tok_end_position = None
        if is_training and example.is_impossible:
            tok_start_position = tok_end_position = -1
        if is_training and not example.is_impossible:
            tok_start_position = orig_to_tok_index[example.start_position]
            if example.end_position < len(example.doc_tokens) - 1:
                tok_end_position = orig_to_tok_index[example.end_position + 1] - 1
            else:
                tok_end_position = len(all_doc_tokens) - 1
            tok_start_position, tok_end_position = _improve_answer_span(
                all_doc_tokens, tok_start_position, tok_end_position, tokenizer,
                example.orig_answer_text)

        max_tokens_for_doc = max_seq_length - len(query_tokens) - 3  # [CLS], [SEP], [SEP]
        doc_spans = doc_spans_of(len(all_doc_tokens), max_tokens_for_doc, doc_stride)

        for doc_span_index, doc_span in enumerate(doc_spans):
            tokens = ["[CLS]"] + query_tokens + ["[SEP]"]
            token_to_orig_map: dict[int, int] = {}
            token_is_max_context: dict[int, bool] = {}
            for i in range(doc_span.length):
                split_token_index = doc_span.start + i
                token_to_orig_map[len(tokens)] = tok_to_orig_index[split_token_index]
                token_is_max_context[len(tokens)] = _check_is_max_context(doc_spans, doc_span_index,
                                                                          split_token_index)
                tokens.append(all_doc_tokens[split_token_index])
            tokens.append("[SEP]")

            start_position = end_position = None
            if is_training and not example.is_impossible:
                doc_start = doc_span.start
                doc_end = doc_span.start + doc_span.length - 1
                if tok_start_position >= doc_start and tok_end_position <= doc_end:
                    doc_offset = len(query_tokens) + 2
                    start_position = tok_start_position - doc_start + doc_offset
                    end_position = tok_end_position - doc_start + doc_offset
                else:
                    # The window misses (part of) the answer: the target is [CLS].
                    start_position = end_position = 0
            if is_training and example.is_impossible:
                start_position = end_position = 0

            input_id_rows.append((tokenizer.convert_tokens_to_ids(tokens), len(query_tokens) + 2))
            features.append(SquadFeature(
                unique_id=unique_id,
                example_index=example_index,
                doc_span_index=doc_span_index,
                tokens=tokens,
                token_to_orig_map=token_to_orig_map,
                token_is_max_context=token_is_max_context,
                start_position=start_position,
                end_position=end_position,
                is_impossible=example.is_impossible))
            unique_id += 1

    return _features_to_arrays(features, input_id_rows, max_seq_length, is_training), features


def _features_to_arrays(features: Sequence[SquadFeature],
                        input_id_rows: Sequence[tuple[list[int], int]],
                        max_seq_length: int, is_training: bool) -> dict[str, np.ndarray]:
    num = len(features)
    input_ids = np.zeros((num, max_seq_length), np.int32)
    input_mask = np.zeros((num, max_seq_length), np.int32)
    segment_ids = np.zeros((num, max_seq_length), np.int32)
    for row, (ids, document_start) in enumerate(input_id_rows):
        length = len(ids)
        input_ids[row, :length] = ids
        input_mask[row, :length] = 1
        segment_ids[row, document_start:length] = 1  # The window and its closing [SEP].
    arrays = {
        "unique_ids": np.asarray([f.unique_id for f in features], np.int64),
        "example_index": np.asarray([f.example_index for f in features], np.int32),
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
    }
    if is_training:
        arrays["start_positions"] = np.asarray([f.start_position for f in features], np.int32)
        arrays["end_positions"] = np.asarray([f.end_position for f in features], np.int32)
        arrays["is_impossible"] = np.asarray([int(f.is_impossible) for f in features], np.int32)
    return arrays
