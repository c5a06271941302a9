"""Fine-tuning data per task family: features for training, eval splits with their scorers.

`prepare(config, bert_config, tokenizer)` reads `config.data` and returns a FinetuneData whose
task (bertjax.tasks) matches the labels, with one EvalSet per dev split whose `score` turns the
model's predictions into the official metrics and a predictions file:

  glue   TFDS `glue/<task>` (config.data.source="tfds") or the GLUE TSV folder ("tsv",
         config.data.glue_dir); MNLI scores matched and mismatched separately.
  squad  official JSON files (config.data.train_file / eval_file) or TFDS `squad/v1.1|v2.0`;
         predictions via the original n-best / null-threshold post-processing, scored as the
         official evaluate-v1.1 / v2.0 scripts.
  ner    CoNLL-2003 files (config.data.train_file / eval_file); entity-level F1.
  docstring_topics  the offline real-text tasks of experiments/stability, built from the stdlib's
  docstring_pairs   docstrings (data_pipelines.docstring_topics / docstring_pairs); accuracy.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from bertjax import metrics, squad_postprocess, tasks


@dataclasses.dataclass
class EvalSet:
    """One eval split: its features and how to turn predictions into metrics and a file."""

    name: str
    features: dict[str, np.ndarray]
    score: Callable[[dict[str, np.ndarray]], tuple[dict[str, float], Any]]


@dataclasses.dataclass
class FinetuneData:
    """A task's model kind, its training features, its eval splits and its class names (None for
    regression and span extraction), which exports carry as the head's labels."""

    task: tasks.Task
    train_features: dict[str, np.ndarray]
    eval_sets: list[EvalSet]
    labels: list[str] | None = None


def glue_score(task_name: str, labels: np.ndarray) -> Callable:
    """Scorer of a GLUE split: the official metrics of the predicted ids (or scores)."""

    def score(predictions):
        return metrics.glue_metrics(task_name, predictions, labels), predictions

    return score




def prepare(config, bert_config, tokenizer) -> FinetuneData:
    family = config.task
    if family == "glue":
        return _glue(config, bert_config, tokenizer)
    if family == "squad":
        return _squad(config, bert_config, tokenizer)
    if family == "ner":
        return _ner(config, bert_config, tokenizer)
    if family in OFFLINE_TASKS:
        return _offline(config, bert_config, tokenizer)
    raise ValueError(f"config.task={family!r}; expected 'glue', 'squad', 'ner' or one of "
                     f"{OFFLINE_TASKS}")


OFFLINE_TASKS = ("docstring_topics", "docstring_pairs")


def build_offline_task(config):
    """The docstring task config.task names (a data_pipelines.docstring_topics.DocstringTask:
    train, dev, labels, describe()), sized by config.data."""
    # Imported here: building them imports many stdlib packages that other tasks do not need.
    from data_pipelines import docstring_pairs, docstring_topics  # pylint: disable=C0415

    data = config.data
    if config.task == "docstring_topics":
        return docstring_topics.build(max_train_per_topic=data.max_train_per_topic,
                                      max_dev_per_topic=data.max_dev_per_topic)
    if config.task == "docstring_pairs":
        return docstring_pairs.build(max_train_examples=data.max_train_examples,
                                     max_dev_examples=data.max_dev_examples)
    raise ValueError(f"config.task={config.task!r} is not one of {OFFLINE_TASKS}")


def _glue(config, bert_config, tokenizer) -> FinetuneData:
    from data_pipelines import glue

    data = config.data
    task_info = glue.get_task(data.glue_task)

    def examples(split):
        if data.source == "tsv":
            return glue.read_tsv_examples(data.glue_dir, task_info.name, split)
        return glue.load_tfds_examples(task_info.name, split, data.get("tfds_data_dir") or None)

    def features(split):
        return glue.convert_examples_to_features(examples(split), tokenizer,
                                                 config.data.max_seq_length, task_info.label_list)

    num_labels = 1 if task_info.is_regression else len(task_info.label_list)
    eval_sets = []
    for split in data.eval_splits:
        split_features = features(split)
        eval_sets.append(EvalSet(split, split_features,
                                 glue_score(task_info.name, split_features["label_ids"])))
    return FinetuneData(tasks.classification(bert_config, num_labels), features("train"),
                        eval_sets, None if task_info.is_regression else list(task_info.label_list))


def _offline(config, bert_config, tokenizer) -> FinetuneData:
    """An offline task of stdlib docstrings (build_offline_task): real text, no download; topic
    classification or sentence pairs, through GLUE's features; scored by accuracy."""
    from data_pipelines import glue

    built = build_offline_task(config)

    def features(examples):
        return glue.convert_examples_to_features(examples, tokenizer, config.data.max_seq_length,
                                                 built.labels)

    dev = features(built.dev)

    def score(predictions):
        return {"accuracy": metrics.accuracy(predictions, dev["label_ids"])}, predictions

    return FinetuneData(tasks.classification(bert_config, len(built.labels)),
                        features(built.train), [EvalSet("validation", dev, score)],
                        list(built.labels))


def _squad(config, bert_config, tokenizer) -> FinetuneData:
    from data_pipelines import squad

    data = config.data
    v2 = data.version == "v2.0"

    def dataset(split, path):
        if path:
            return squad.load_squad_json(path)
        return squad.load_tfds_dataset(data.version, split, data.get("tfds_data_dir") or None)

    def convert(examples, is_training):
        return squad.convert_examples_to_features(
            examples, tokenizer, config.data.max_seq_length, data.doc_stride, data.max_query_length,
            is_training=is_training)

    train_json = dataset("train", data.train_file)
    eval_json = dataset("validation", data.eval_file)
    # Both files are checked before any work: the evaluation file is scored after training,
    # so a question without answers there must fail now, not after the run.
    squad.validate_dataset(train_json, data.train_file or "SQuAD train split", needs_answers=True,
                           version_2_with_negative=v2)
    squad.validate_dataset(eval_json, data.eval_file or "SQuAD validation split",
                           needs_answers=True, version_2_with_negative=v2)
    train_examples = squad.read_squad_examples(train_json, True, v2)
    train_arrays, _ = convert(train_examples, True)
    eval_examples = squad.read_squad_examples(eval_json, False, v2)
    eval_arrays, eval_features = convert(eval_examples, False)

    def score(predictions):
        answers = squad_postprocess.compute_predictions(
            eval_examples, eval_features, eval_arrays["unique_ids"],
            predictions["start_logits"], predictions["end_logits"],
            n_best_size=data.n_best_size, max_answer_length=data.max_answer_length,
            do_lower_case=config.data.do_lower_case, version_2_with_negative=v2,
            null_score_diff_threshold=data.null_score_diff_threshold)
        if v2:
            scores = metrics.squad_v2(eval_json, answers.predictions, answers.null_odds)
        else:
            scores = metrics.squad_v1(eval_json, answers.predictions)
        return scores, answers.predictions

    return FinetuneData(tasks.span(bert_config), train_arrays,
                        [EvalSet("validation", eval_arrays, score)])


def _ner(config, bert_config, tokenizer) -> FinetuneData:
    from data_pipelines import ner

    data = config.data
    train_sentences = ner.read_conll2003(data.train_file)
    eval_sentences = ner.read_conll2003(data.eval_file)
    label_list = ner.CONLL2003_LABELS
    train = ner.convert_sentences_to_features(train_sentences, tokenizer, config.data.max_seq_length,
                                              label_list)
    evaluation = ner.convert_sentences_to_features(eval_sentences, tokenizer,
                                                   config.data.max_seq_length, label_list)

    def score(predicted_ids):
        tags = ner.predictions_to_word_tags(np.asarray(predicted_ids),
                                            evaluation["word_start_positions"], eval_sentences,
                                            label_list)
        result = metrics.entity_f1([s.tags for s in eval_sentences], tags)
        flat = {k: v for k, v in result.items() if isinstance(v, float)}
        return flat, tags

    return FinetuneData(tasks.token_classification(bert_config, len(label_list)), train,
                        [EvalSet("validation", evaluation, score)], list(label_list))
