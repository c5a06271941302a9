"""Runs the stability sweep: every arm of a config, N seeds each, K seeds per compiled program.

    python -m experiments.stability.sweep \
        --config=experiments/stability/bert_large_glue.py:task=rte,arm=all,seeds=25 \
        --workdir=gs://bucket/stability --config.init_checkpoint=/path/to/bert-large

Each chunk of `sweep.seeds_per_program` seeds is one run of the training loop (bertjax.trainer,
through bertjax.sweep.SeedTrainer) in WORKDIR/<task>/<arm>/seeds_<first>-<last>/: checkpoints,
exact resume mid-chunk, SIGTERM, progress bar. For each arm it writes WORKDIR/<task>/<arm>.json:
the arm's config, the majority-class baseline, the learning-rate schedule, and one record per
seed (seed components, final dev metrics, the dev metrics after every epoch (`dev_history`,
`sweep.dev_evals_per_epoch` times per epoch; 0: none), the training loss at every step,
per-layer gradient norms at the recorded steps). The file is rewritten (atomically) after every chunk, and a rerun
skips the seeds it already holds (so an interrupted sweep resumes, raising `seeds` extends one,
and other arms can be added later). A rerun whose arm config differs in anything but
`sweep.seeds`, `sweep.seeds_per_program` and the list of arms is refused, naming the keys.

The analysis (tables and plots) is `python -m experiments.stability.analyze --workdir=WORKDIR`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

import ml_collections
import numpy as np

from bertjax import finetune_data, metrics, optimizers, pretrained, sweep, tasks, trainer
from data_pipelines import finetune_input, glue, storage, tokenization, tokenizers

# Config keys that may change between runs sharing a workdir: how many seeds, how they are
# chunked, and which other arms the command runs (plus the loop's runtime settings).
# How often dev is scored reads the params only, so it changes nothing trained either.
_RESUMABLE_KEYS = ("sweep.seeds", "sweep.seeds_per_program", "sweep.arms", "arm",
                   "sweep.dev_evals_per_epoch")


class TaskData:
    """Features, labels, metric and majority-class baseline of one classification task."""

    def __init__(self, name: str, label_list, train_examples, dev_examples, tokenizer,
                 max_seq_length: int, score_fn: Callable, majority_baseline: dict,
                 description: dict):
        self.name = name
        self.num_labels = len(label_list)
        self.train = glue.convert_examples_to_features(train_examples, tokenizer, max_seq_length,
                                                       label_list)
        self.dev = glue.convert_examples_to_features(dev_examples, tokenizer, max_seq_length,
                                                     label_list)
        self.score_fn = score_fn
        self.majority_baseline = majority_baseline
        self.description = description


def load_task(config: ml_collections.ConfigDict, tokenizer) -> TaskData:
    """An offline docstring task (finetune_data.OFFLINE_TASKS), or a GLUE task
    (config.data.glue_task) from its TSV folder (config.data.glue_dir) or TFDS."""
    data, max_seq_length = config.data, config.data.max_seq_length
    if config.task in finetune_data.OFFLINE_TASKS:
        from data_pipelines import docstring_topics  # pylint: disable=C0415
        built = finetune_data.build_offline_task(config)
        baseline = {"accuracy": docstring_topics.majority_baseline_accuracy(
            [example.label for example in built.dev])}
        return TaskData(config.task, built.labels, built.train, built.dev, tokenizer,
                        max_seq_length, lambda p, l: {"accuracy": metrics.accuracy(p, l)},
                        baseline, built.describe())
    if config.task != "glue":
        raise ValueError(f"config.task={config.task!r}; the stability sweep runs 'glue' or one "
                         f"of {finetune_data.OFFLINE_TASKS}")
    name = data.glue_task
    task = glue.get_task(name)
    if task.is_regression:
        raise ValueError(f"GLUE {name} is a regression task; the stability sweep classifies")
    if data.glue_dir:
        read = lambda split: glue.read_tsv_examples(data.glue_dir, name, split)  # noqa: E731
        source = data.glue_dir
    else:
        read = lambda split: glue.load_tfds_examples(  # noqa: E731
            name, split, data.tfds_data_dir or None)
        source = f"tfds:{task.tfds_name}"
    train_examples, dev_examples = read("train"), read("validation")
    dev_labels = glue.label_ids_of(name, dev_examples)
    description = {"name": name, "source": source, "num_train": len(train_examples),
                   "num_dev": len(dev_examples)}
    return TaskData(name, task.label_list, train_examples, dev_examples, tokenizer,
                    max_seq_length, lambda p, l: metrics.glue_metrics(name, p, l),
                    metrics.majority_class_baseline(name, dev_labels), description)


def restrict_vocabulary(pretrained_bert: dict, *feature_dicts: dict) -> tuple[dict, list[dict]]:
    """Keeps only the word-embedding rows the features use, and renumbers their input_ids.

    Exact for fine-tuning a classifier: a row that no input looks up has a zero gradient, adds
    nothing to the clipped global norm and never reaches an output; only its own weight decay
    would touch it. Dropping those rows (30,522 -> a few thousand for a small task) shrinks the
    params, gradients and Adam state of a small model by up to half (MiniLM-L6: the table is
    11.7M of 22.7M params), which matters on a CPU and not on a TPU.

    Returns (pretrained params with embeddings/word_embeddings/embedding [V', H], the feature
    dicts with input_ids mapped into [0, V')); id 0 ([PAD]) keeps id 0.
    """
    used = np.unique(np.concatenate([np.ravel(f["input_ids"]) for f in feature_dicts] + [[0]]))
    new_id = np.zeros(int(used.max()) + 1, np.int32)
    new_id[used] = np.arange(used.size, dtype=np.int32)
    table = pretrained_bert["embeddings"]["word_embeddings"]["embedding"]
    embeddings = dict(pretrained_bert["embeddings"],
                      word_embeddings={"embedding": np.asarray(table)[used]})
    remapped = [dict(f, input_ids=new_id[f["input_ids"]]) for f in feature_dicts]
    return dict(pretrained_bert, embeddings=embeddings), remapped


def arm_identity(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """What defines an arm's results: the config but the resumable and runtime keys."""
    return {key: value for key, value in trainer.identity_of(config).items()
            if key not in _RESUMABLE_KEYS}


def _load_existing(path: str, config: ml_collections.ConfigDict) -> dict:
    """The arm's file as written so far ({} if none); refuses one from another config."""
    if not storage.exists(path):
        return {}
    existing = json.loads(storage.read_text(path))
    old, new = existing.get("identity", {}), json.loads(json.dumps(arm_identity(config)))
    if old != new:
        differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise ValueError(f"{path} was written by a different config (keys {differing} differ); "
                         "use another workdir or delete the file")
    return existing


def make_trainer(config: ml_collections.ConfigDict, bert_config, num_labels: int,
                 train_features: dict, seeds_per_program: int, devices=None):
    """(SeedTrainer, T) of one arm's config: optimizer, schedule, re-init, mixout and mesh
    (over `devices`, default all)."""
    total_steps = sweep.num_train_steps(train_features, config.batch_size,
                                        int(config.num_train_epochs))
    optimizer = optimizers.from_config(config.optimizer, total_steps,
                                       bert_config.num_hidden_layers)
    trainer_ = sweep.SeedTrainer(
        tasks.classification(bert_config, num_labels), optimizer.tx, optimizer.schedule,
        max_seq_length=config.data.max_seq_length, reinit_layers=config.reinit_layers,
        initializer_range=bert_config.initializer_range, mixout_rate=config.mixout_rate,
        length_buckets=finetune_input.length_buckets_of(config.data.max_seq_length,
                                                        config.data.num_length_buckets)
        if config.data.num_length_buckets else (),
        group_by_length=finetune_input.group_by_length_of(config.data),
        mesh=sweep.seed_mesh(seeds_per_program, devices))
    return trainer_, total_steps


def run_arm(config: ml_collections.ConfigDict, data: TaskData, bert_config, pretrained_bert,
            workdir: str) -> str:
    """Trains every missing seed of one arm (config from `arms.arm_config`); returns its path."""
    arm_dir = storage.join(workdir, data.name)
    path = storage.join(arm_dir, f"{config.arm}.json")
    existing = _load_existing(path, config)
    records = existing.get("records", [])
    done = {record["run_seed"] for record in records}
    settings = config.sweep
    run_seeds = list(range(settings.first_seed, settings.first_seed + settings.seeds))
    fixed = {name: (None if settings[name] < 0 else settings[name])
             for name in ("init_seed", "data_seed", "dropout_seed")}
    todo = [seed for seed in sweep.seed_components(run_seeds, **fixed)
            if seed.run_seed not in done]

    per_program = min(settings.seeds_per_program, max(len(todo), 1))
    trainer_, total_steps = make_trainer(config, bert_config, data.num_labels, data.train,
                                         per_program)
    loop = ml_collections.ConfigDict(config.to_dict())
    if settings.get("dev_evals_per_epoch", 0) > 0:
        steps_per_epoch = total_steps // int(config.num_train_epochs)
        loop.eval_every_steps = max(1, steps_per_epoch // settings.dev_evals_per_epoch)
    header = {"task": data.name, "arm": config.arm, "config": config.to_dict(),
              "identity": arm_identity(config), "primary_metric": settings.primary_metric,
              "majority_baseline": data.majority_baseline, "task_description": data.description,
              "num_train_steps": total_steps}
    chunk_seconds = existing.get("chunk_seconds", [])
    for start in range(0, len(todo), per_program):
        chunk = todo[start:start + per_program]
        # The last chunk is padded with copies of its last seed (results dropped), so every
        # chunk has the same shapes and reuses the compiled program.
        padded = chunk + [chunk[-1]] * (per_program - len(chunk))
        chunk_dir = storage.join(arm_dir, config.arm,
                                 f"seeds_{chunk[0].run_seed}-{chunk[-1].run_seed}")
        began = time.time()
        result = trainer_.run(pretrained_bert, data.train, data.dev, padded,
                              batch_size=config.batch_size,
                              num_epochs=int(config.num_train_epochs),
                              score_fn=data.score_fn, eval_batch_size=config.eval_batch_size,
                              grad_norm_first_steps=settings.grad_norm_first_steps,
                              grad_norm_every=settings.grad_norm_every, workdir=chunk_dir,
                              config=loop, identity=arm_identity(config))
        chunk_seconds.append(time.time() - began)
        records = sorted(records + result.records[:len(chunk)], key=lambda r: r["run_seed"])
        storage.write_text(path, json.dumps({
            **header, "learning_rate": result.learning_rate,
            "grad_norm_steps": result.grad_norm_steps, "chunk_seconds": chunk_seconds,
            "records": records}))
        scores = [r["dev_metrics"][settings.primary_metric]
                  for r in result.records[:len(chunk)]]
        logging.info("%s/%s seeds %s: %s = %s (%.0f s)", data.name, config.arm,
                     [s.run_seed for s in chunk], settings.primary_metric,
                     np.round(scores, 4).tolist(), chunk_seconds[-1])
    if not todo:
        logging.info("%s: all %d seeds done", path, len(run_seeds))
    return path


def load_inputs(config: ml_collections.ConfigDict):
    """(BertConfig, pretrained BertModel params, TaskData) of a sweep config."""
    if not config.init_checkpoint:
        raise ValueError("config.init_checkpoint is empty: the sweep fine-tunes a pretrained "
                         "checkpoint (HF folder, original TF prefix or bertjax checkpoint)")
    source = pretrained.load(config.init_checkpoint)
    bert_config, pretrained_bert = source.config, source.encoder()
    vocab_file = (config.data.vocab_file or source.vocab_file
                  or str(tokenization.bundled_uncased_vocab_file()))
    tokenizer = tokenizers.from_data_config(config.data, vocab_file)
    data = load_task(config, tokenizer)
    if config.sweep.restrict_vocabulary:
        pretrained_bert, (data.train, data.dev) = restrict_vocabulary(pretrained_bert,
                                                                      data.train, data.dev)
        bert_config = bert_config.replace(vocab_size=int(
            pretrained_bert["embeddings"]["word_embeddings"]["embedding"].shape[0]))
        logging.info("vocabulary restricted to the %d ids the task uses", bert_config.vocab_size)
    return bert_config, pretrained_bert, data


def run(config: ml_collections.ConfigDict, workdir: str) -> list[str]:
    """Runs every arm of `config.sweep.arms`; returns the per-arm JSON paths."""
    from experiments.stability import arms  # pylint: disable=import-outside-toplevel
    bert_config, pretrained_bert, data = load_inputs(config)
    return [run_arm(arms.arm_config(config, arm), data, bert_config, pretrained_bert, workdir)
            for arm in config.sweep.arms]


def main(argv):
    del argv
    from absl import flags  # pylint: disable=import-outside-toplevel
    from bertjax import launch  # pylint: disable=import-outside-toplevel
    logging.getLogger().setLevel(logging.INFO)
    launch.initialize()
    run(flags.FLAGS.config, flags.FLAGS.workdir)


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    from bertjax import launch  # noqa: F401  (defines the multi-host flags)
    config_flags.DEFINE_config_file("config", None, "Stability sweep config file.")
    flags.DEFINE_string("workdir", None, "Where the per-arm JSON files go.")
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
