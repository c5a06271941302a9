"""GLUE (Wang et al. 2018): the nine tasks from TFDS or the GLUE TSV folders, as BERT features.

Sources:
  * TFDS `glue/<task>` through `tfds.load` (`load_tfds_examples`).
  * The folder layout of the original download_glue_data.py (`read_tsv_examples`): one folder per
    task (CoLA, SST-2, MRPC, QQP, STS-B, MNLI, QNLI, RTE, WNLI) holding train.tsv, dev.tsv and
    test.tsv; MNLI has dev_matched/dev_mismatched and test_matched/test_mismatched. CoLA's train
    and dev files have no header; every other file has one. Columns are read by index exactly as
    the original run_classifier.py processors (CoLA, MRPC, MNLI) and HF's glue processors (the
    rest) do. Test files carry no labels.

Both sources give the same `GlueExample`s: labels are the strings of the original processors
("0"/"1", "entailment", ...) or a float score for STS-B, and None on test splits. Split names are
the TFDS ones: train, validation, test; for MNLI validation_matched, validation_mismatched,
test_matched, test_mismatched.

`convert_examples_to_features` is the original run_classifier.py `convert_single_example`:
[CLS] A [SEP] (B [SEP]), the longer segment truncated one token at a time, segment ids 0/1,
input_mask 1 for real tokens, zero padding.

Shapes: N examples, S = max_seq_length.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import os
from typing import Iterable, Mapping, Protocol, Sequence

import numpy as np
from absl import logging

from data_pipelines import storage



class WordPieceTokenizer(Protocol):
    """What feature conversion needs from a tokenizer (data_pipelines.tokenizers: either kind)."""

    def tokenize(self, text: str) -> list[str]:
        ...

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]:
        ...


@dataclasses.dataclass(frozen=True)
class GlueTask:
    """Everything task-specific about one GLUE task.

    Attributes:
      name: registry key ("cola", ...); the TFDS config name.
      label_list: class labels in id order (the original processors' get_labels); None for the
        regression task STS-B.
      tfds_text_features: TFDS feature names of segment A and B (None for single sentences).
      tfds_label_names: the canonical label of each TFDS label id (TFDS orders some classes
        differently: its MNLI id 0 is "entailment", the original's id 0 is "contradiction").
      tsv_folder: folder name in the GLUE download.
      tsv_files: split name -> file name inside tsv_folder.
      tsv_text_columns: column indices of segment A and B in train/dev files.
      tsv_test_text_columns: the same for test files (CoLA, SST-2 and QQP test files differ).
      tsv_label_column: label column index in train/dev files (-1: last).
      tsv_train_dev_have_header: False only for CoLA.
    """
    name: str
    label_list: tuple[str, ...] | None
    tfds_text_features: tuple[str, str | None]
    tfds_label_names: tuple[str, ...] | None
    tsv_folder: str
    tsv_files: Mapping[str, str]
    tsv_text_columns: tuple[int, int | None]
    tsv_test_text_columns: tuple[int, int | None]
    tsv_label_column: int
    tsv_train_dev_have_header: bool = True

    @property
    def is_regression(self) -> bool:
        return self.label_list is None

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The official GLUE metric(s), in the order the leaderboard lists them."""
        return GLUE_TASK_METRICS[self.name]

    @property
    def tfds_name(self) -> str:
        return f"glue/{self.name}"

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.tsv_files)


# Official metric(s) per GLUE task (Wang et al. 2018), in the order the leaderboard lists them;
# bertjax.metrics computes them.
GLUE_TASK_METRICS: Mapping[str, tuple[str, ...]] = {
    "cola": ("matthews_corrcoef",),
    "sst2": ("accuracy",),
    "mrpc": ("accuracy", "f1"),
    "qqp": ("accuracy", "f1"),
    "stsb": ("pearson", "spearman"),
    "mnli": ("accuracy",),
    "qnli": ("accuracy",),
    "rte": ("accuracy",),
    "wnli": ("accuracy",),
}

_STANDARD_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
_BINARY = ("0", "1")
_ENTAILMENT = ("entailment", "not_entailment")

TASKS: Mapping[str, GlueTask] = {
    task.name: task for task in (
        GlueTask("cola", _BINARY, ("sentence", None), _BINARY, "CoLA", _STANDARD_FILES,
                 (3, None), (1, None), 1, tsv_train_dev_have_header=False),
        GlueTask("sst2", _BINARY, ("sentence", None), _BINARY, "SST-2", _STANDARD_FILES,
                 (0, None), (1, None), 1),
        GlueTask("mrpc", _BINARY, ("sentence1", "sentence2"), _BINARY, "MRPC", _STANDARD_FILES,
                 (3, 4), (3, 4), 0),
        GlueTask("qqp", _BINARY, ("question1", "question2"), _BINARY, "QQP", _STANDARD_FILES,
                 (3, 4), (1, 2), 5),
        GlueTask("stsb", None, ("sentence1", "sentence2"), None, "STS-B", _STANDARD_FILES,
                 (7, 8), (7, 8), -1),
        GlueTask("mnli", ("contradiction", "entailment", "neutral"), ("premise", "hypothesis"),
                 ("entailment", "neutral", "contradiction"), "MNLI", {
                     "train": "train.tsv",
                     "validation_matched": "dev_matched.tsv",
                     "validation_mismatched": "dev_mismatched.tsv",
                     "test_matched": "test_matched.tsv",
                     "test_mismatched": "test_mismatched.tsv",
                 }, (8, 9), (8, 9), -1),
        GlueTask("qnli", _ENTAILMENT, ("question", "sentence"), _ENTAILMENT, "QNLI",
                 _STANDARD_FILES, (1, 2), (1, 2), -1),
        GlueTask("rte", _ENTAILMENT, ("sentence1", "sentence2"), _ENTAILMENT, "RTE",
                 _STANDARD_FILES, (1, 2), (1, 2), -1),
        # TFDS wnli: 0 not_entailment, 1 entailment, the same ids as the TSV's 0/1.
        GlueTask("wnli", _BINARY, ("sentence1", "sentence2"), _BINARY, "WNLI", _STANDARD_FILES,
                 (1, 2), (1, 2), -1),
    )
}


def get_task(name: str) -> GlueTask:
    if name not in TASKS:
        raise ValueError(f"Unknown GLUE task {name!r}; expected one of {sorted(TASKS)}.")
    return TASKS[name]


@dataclasses.dataclass(frozen=True)
class GlueExample:
    """One GLUE example: text_b is None for single-sentence tasks; label None on test splits."""
    guid: str
    text_a: str
    text_b: str | None
    label: str | float | None


def _is_test_split(split: str) -> bool:
    return split.startswith("test")


def _validated_label(task: GlueTask, raw_label, where: str) -> str | float:
    if task.is_regression:
        try:
            score = float(raw_label)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: STS-B score {raw_label!r} is not a number.") from None
        if not 0.0 <= score <= 5.0:
            raise ValueError(f"{where}: STS-B score {score} is outside [0, 5].")
        return score
    if raw_label not in task.label_list:
        raise ValueError(f"{where}: label {raw_label!r} is not one of {task.label_list}.")
    return raw_label


# --------------------------------------------------------------------------------------------
# GLUE TSV folders.
# --------------------------------------------------------------------------------------------


def read_tsv_examples(glue_dir: str, task_name: str, split: str) -> list[GlueExample]:
    """Reads one split of one task from the GLUE download folder `glue_dir` (holding CoLA/, ...)."""
    task = get_task(task_name)
    if split not in task.tsv_files:
        raise ValueError(f"GLUE {task.name} has no split {split!r}; expected one of {task.splits}.")
    path = os.path.join(glue_dir, task.tsv_folder, task.tsv_files[split])
    try:
        return _read_tsv(path, task, split)
    except UnicodeDecodeError as error:
        raise storage.not_utf8(path, error) from None


def _read_tsv(path: str, task: GlueTask, split: str) -> list[GlueExample]:
    is_test = _is_test_split(split)
    has_header = is_test or task.tsv_train_dev_have_header
    text_a_column, text_b_column = task.tsv_test_text_columns if is_test else task.tsv_text_columns
    examples = []
    skipped_rows = []
    # newline="": a bare \r inside a field is text, not a line break.
    with io.StringIO(storage.read_bytes(path).decode("utf-8"), newline="") as tsv_file:
        # GLUE text holds bare quote characters: they are text, never CSV quoting.
        rows = csv.reader(tsv_file, delimiter="\t", quoting=csv.QUOTE_NONE)
        header_width = None
        for line_number, row in enumerate(rows, start=1):
            if has_header and line_number == 1:
                header_width = len(row)
                continue
            where = f"{path}, line {line_number}"
            if header_width is not None and len(row) > header_width:
                # A tab inside a text field shifts every later column: the label would be read
                # from the wrong column (the last one, for RTE) and text_b cut.
                raise ValueError(f"{where}: {len(row)} tab-separated columns, the header has "
                                 f"{header_width}; a tab inside a text field?")
            needed = max(c for c in (text_a_column, text_b_column) if c is not None)
            if not is_test:
                needed = max(needed, task.tsv_label_column)
            if len(row) <= needed:
                if task.name == "qqp":
                    # QQP's train.tsv has a few broken rows; HF's processor skips them too.
                    skipped_rows.append(line_number)
                    continue
                raise ValueError(f"{where}: {len(row)} columns, expected more than {needed}.")
            text_a = row[text_a_column]
            text_b = row[text_b_column] if text_b_column is not None else None
            label = None if is_test else _validated_label(task, row[task.tsv_label_column], where)
            examples.append(GlueExample(f"{split}-{line_number}", text_a, text_b, label))
    if skipped_rows:
        logging.warning("%s: skipped %d malformed rows (first at line %d).", path,
                        len(skipped_rows), skipped_rows[0])
    return examples


# --------------------------------------------------------------------------------------------
# TFDS.
# --------------------------------------------------------------------------------------------


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def examples_from_tfds_records(task_name: str, split: str,
                               records: Iterable[Mapping]) -> list[GlueExample]:
    """GlueExamples from TFDS glue records (numpy dicts with bytes text, int or float label)."""
    task = get_task(task_name)
    is_test = _is_test_split(split)
    feature_a, feature_b = task.tfds_text_features
    examples = []
    for record in records:
        guid = f"{split}-{int(record['idx'])}"
        where = f"TFDS {task.tfds_name} split {split} idx {int(record['idx'])}"
        raw_label = record["label"]
        if is_test or (not task.is_regression and int(raw_label) == -1):
            label = None  # TFDS marks the unlabelled test splits with -1.
        elif task.is_regression:
            label = _validated_label(task, float(raw_label), where)
        else:
            label_id = int(raw_label)
            if not 0 <= label_id < len(task.tfds_label_names):
                raise ValueError(f"{where}: label id {label_id} outside "
                                 f"[0, {len(task.tfds_label_names)}).")
            label = task.tfds_label_names[label_id]
        examples.append(GlueExample(
            guid=guid,
            text_a=_decode(record[feature_a]),
            text_b=_decode(record[feature_b]) if feature_b else None,
            label=label))
    return examples


def load_tfds_examples(task_name: str, split: str,
                       data_dir: str | None = None) -> list[GlueExample]:
    """Loads `glue/<task>` (prepared beforehand: see data_pipelines.tfds_source) as GlueExamples.

    Raises tfds_source.DatasetNotPreparedError, saying how to prepare it or use the TSV files,
    when the dataset is not in `data_dir`.
    """
    from data_pipelines import tfds_source  # TF only here: TSV reading needs none.

    task = get_task(task_name)
    if split not in task.tsv_files:
        raise ValueError(f"GLUE {task.name} has no split {split!r}; expected one of {task.splits}.")
    dataset = tfds_source.load(
        task.tfds_name, split, data_dir, alternative=(
            f"Or read the GLUE TSV files: --config=experiments/finetune/glue.py:"
            f"task={task.name},source=tsv,glue_dir=GLUE_DIR."))
    return examples_from_tfds_records(task.name, split, dataset.as_numpy_iterator())


# --------------------------------------------------------------------------------------------
# Features.
# --------------------------------------------------------------------------------------------


def truncate_seq_pair(tokens_a: list[str], tokens_b: list[str], max_length: int) -> None:
    """Pops the last token of the longer segment (B on ties) until the pair fits, in place."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def example_tokens(example: GlueExample, tokenizer: WordPieceTokenizer,
                   max_seq_length: int) -> tuple[list[str], list[int]]:
    """The tokens [CLS] A [SEP] (B [SEP]) and their segment ids, before padding."""
    tokens_a = tokenizer.tokenize(example.text_a)
    # As the original: an empty text_b, or one that tokenizes to nothing, makes a single segment.
    tokens_b = tokenizer.tokenize(example.text_b) if example.text_b else None
    if tokens_b:
        truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)  # [CLS], [SEP], [SEP]
    else:
        tokens_a = tokens_a[:max_seq_length - 2]  # [CLS], [SEP]
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b:
        tokens += tokens_b + ["[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    return tokens, segment_ids


def convert_examples_to_features(examples: Sequence[GlueExample],
                                 tokenizer: WordPieceTokenizer,
                                 max_seq_length: int,
                                 label_list: Sequence[str] | None) -> dict[str, np.ndarray]:
    """BERT inputs for GLUE examples, as the original run_classifier.py builds them.

    Args:
      examples: N GlueExamples.
      tokenizer: from data_pipelines.tokenizers.make_tokenizer (tokenize, convert_tokens_to_ids).
      max_seq_length: S.
      label_list: class labels in id order; None for regression (STS-B).

    Returns:
      input_ids, input_mask, segment_ids: [N, S] int32.
      label_ids: [N] int32 class ids, or float32 scores for regression; -1 (NaN for regression)
        where the example has no label (test splits).
      example_index: [N] int32, the position of each example in `examples`.
    """
    if max_seq_length < 3:
        raise ValueError(f"max_seq_length {max_seq_length} leaves no room for [CLS] and [SEP]s.")
    num = len(examples)
    input_ids = np.zeros((num, max_seq_length), np.int32)
    input_mask = np.zeros((num, max_seq_length), np.int32)
    segment_ids = np.zeros((num, max_seq_length), np.int32)
    is_regression = label_list is None
    if is_regression:
        label_ids = np.full(num, np.nan, np.float32)
    else:
        label_ids = np.full(num, -1, np.int32)
        label_map = {label: index for index, label in enumerate(label_list)}
    for example_index, example in enumerate(examples):
        tokens, segments = example_tokens(example, tokenizer, max_seq_length)
        length = len(tokens)
        input_ids[example_index, :length] = tokenizer.convert_tokens_to_ids(tokens)
        input_mask[example_index, :length] = 1
        segment_ids[example_index, :length] = segments
        if example.label is None:
            continue
        if is_regression:
            label_ids[example_index] = float(example.label)
        elif example.label in label_map:
            label_ids[example_index] = label_map[example.label]
        else:
            raise ValueError(f"Example {example.guid}: label {example.label!r} is not in the label "
                             f"list {list(label_list)}.")
    return {
        "input_ids": input_ids,
        "input_mask": input_mask,
        "segment_ids": segment_ids,
        "label_ids": label_ids,
        "example_index": np.arange(num, dtype=np.int32),
    }


def label_ids_of(task_name: str, examples: Sequence[GlueExample]) -> np.ndarray:
    """[N] label ids (int32) or scores (float32, STS-B) of labelled examples."""
    task = get_task(task_name)
    if any(example.label is None for example in examples):
        raise ValueError(f"GLUE {task.name}: some examples have no label (a test split?).")
    if task.is_regression:
        return np.asarray([example.label for example in examples], np.float32)
    return np.asarray([task.label_list.index(example.label) for example in examples], np.int32)
