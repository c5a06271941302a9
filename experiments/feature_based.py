"""Fine-tuning vs feature-based use of a pretrained encoder, on one task (the paper's Table 7).

Devlin et al. (2018, section 5.3) fine-tuned BERT on CoNLL-2003 NER and, separately, froze it
and trained a light model on its hidden layers; the concatenation of the last four layers came
within 0.3 F1 of fine-tuning. This runs the same comparison on the offline docstring-topic task
(data_pipelines/docstring_topics.py: 6 classes of standard-library docstring paragraphs,
dev split by module) with the real pretrained all-MiniLM-L6-v2 weights:

  * fine-tuning: the whole model through the project's runner (bertjax.finetune.run, the
    docstring_topics config), one row per recipe in `FINETUNE_RECIPES`;
  * feature-based: one frozen encoder pass per pooling (bertjax.feature_based), then every layer
    strategy of the paper's Table 7 with a linear and an MLP head trained on the cached features.

Both read the same examples, tokenized the same way (finetune_data.prepare).

    python -m experiments.feature_based --output=experiments/feature_based_results.md

`--init_checkpoint=` (empty) uses a randomly initialised encoder of `config.model`'s preset,
for tests; everything else about the run is the same.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import sys
import time
from collections.abc import Sequence

from absl import app, flags, logging

from data_pipelines import storage

# (name, optimizer, learning rate, epochs): the paper's recipe (A.3: the largest of its rates,
# 3 epochs) with the original optimizer, and a longer bias-corrected run, which Mosbach et al.
# (2021) found fine-tuning on small sets needs.
FINETUNE_RECIPES: tuple[tuple[str, str, float, float], ...] = (
    ("bert_adam lr 5e-5, 3 epochs", "bert_adam", 5e-5, 3.0),
    ("adamw lr 5e-5, 10 epochs", "adamw", 5e-5, 10.0),
)
NOTES_MARKER = "<!-- notes: kept when the table is regenerated -->"


@dataclasses.dataclass
class Row:
    method: str            # "fine-tuning", "feature-based" or "majority class"
    detail: str            # recipe, or layer strategy
    pooling: str = ""
    head: str = ""
    feature_size: int = 0
    dev_accuracy: float = float("nan")
    seconds: float = 0.0   # wall time of this row's training (feature rows: the head only)


def finetune_config(init_checkpoint: str, max_seq_length: int, seed: int,
                    config_overrides: dict | None = None):
    """The docstring_topics fine-tuning config; `config_overrides` is merged in recursively."""
    from experiments.finetune import docstring_topics
    config = docstring_topics.get_config()
    config.init_checkpoint = init_checkpoint
    config.data.max_seq_length = max_seq_length
    config.seed = seed
    config.update(config_overrides or {})
    return config


def _encoder(config):
    """(BertConfig, BertModel params, vocab file): the checkpoint's, or a random init."""
    import flax.linen as nn
    import jax

    from bertjax import finetune, modeling

    bert_config, source, vocab_file = finetune.load_encoder(config)
    if source is not None:
        return bert_config, source.encoder(), vocab_file
    variables = jax.jit(modeling.BertModel(bert_config).init)(
        jax.random.PRNGKey(config.seed), *modeling.dummy_inputs(1, config.data.max_seq_length))
    return bert_config, jax.device_get(nn.meta.unbox(variables["params"])), vocab_file


def compare(init_checkpoint: str, workdir: str, *, max_seq_length: int = 64, seed: int = 0,
            recipes: Sequence[tuple[str, str, float, float]] = FINETUNE_RECIPES,
            strategies: Sequence[str] | None = None, poolings: Sequence[str] = ("cls", "mean"),
            mlp_hidden_units: int = 256, probe_kwargs: dict | None = None,
            config_overrides: dict | None = None) -> dict:
    """Runs every row; returns a dict: rows [Row] (fine-tuning, feature-based, majority class),
    encoder_seconds {pooling: s}, num_train, num_dev, bert_config, max_seq_length,
    python_version, probe_kwargs, seed.

    Args:
      init_checkpoint: HF folder, TF or bertjax checkpoint; "" for a random init (tests).
      workdir: the fine-tuning runs write here (finetune_<i>_<optimizer> per recipe).
      recipes: (name, optimizer, learning rate, epochs) of each fine-tuning row.
      strategies: names in feature_based.STRATEGIES (default: all).
      mlp_hidden_units: U of the MLP head; 0 leaves the MLP rows out.
      probe_kwargs: passed to feature_based.train_probe (weight_decay, learning_rate, ...).
      config_overrides: merged into the fine-tuning config (experiments/finetune/
        docstring_topics.py), e.g. {"model": {"preset": "tiny"}} for a random init; the
        feature-based rows read the same encoder and data.
    """
    from bertjax import feature_based, finetune, finetune_data
    from data_pipelines import tokenizers
    from data_pipelines import docstring_topics

    strategies = list(strategies or feature_based.STRATEGIES)
    unknown = sorted(set(strategies) - set(feature_based.STRATEGIES))
    if unknown:  # before minutes of fine-tuning, not after
        raise ValueError(f"unknown strategies {unknown}; known: {list(feature_based.STRATEGIES)}")
    probe_kwargs = dict(probe_kwargs or {})
    rows: list[Row] = []

    for index, (name, optimizer, learning_rate, epochs) in enumerate(recipes):
        config = finetune_config(init_checkpoint, max_seq_length, seed, config_overrides)
        config.optimizer.name = optimizer
        config.optimizer.learning_rate = learning_rate
        config.num_train_epochs = epochs
        logging.warning("fine-tuning: %s", name)
        start = time.perf_counter()
        results = finetune.run(config, os.path.join(workdir, f"finetune_{index}_{optimizer}"))
        rows.append(Row("fine-tuning", name, "cls (pooler)", "linear",
                        dev_accuracy=results["validation"]["accuracy"],
                        seconds=time.perf_counter() - start))

    config = finetune_config(init_checkpoint, max_seq_length, seed, config_overrides)
    bert_config, params, vocab_file = _encoder(config)
    data = finetune_data.prepare(config, bert_config,
                                 tokenizers.from_data_config(config.data, vocab_file))
    train, dev = data.train_features, data.eval_sets[0].features
    num_classes = int(data.task.model.num_labels)
    encoder_seconds = {}
    heads = [("linear", 0)] + ([(f"MLP {mlp_hidden_units}", mlp_hidden_units)]
                               if mlp_hidden_units else [])
    for pooling in poolings:
        logging.warning("feature-based: one frozen pass over train and dev, %s pooling", pooling)
        start = time.perf_counter()
        pooled_train = feature_based.pooled_hidden_states(bert_config, params, train,
                                                          pooling=pooling)
        pooled_dev = feature_based.pooled_hidden_states(bert_config, params, dev, pooling=pooling)
        encoder_seconds[pooling] = time.perf_counter() - start
        for strategy_name in strategies:
            strategy = feature_based.STRATEGIES[strategy_name]
            train_x = feature_based.combine_layers(pooled_train, strategy.layers,
                                                   strategy.combine)
            dev_x = feature_based.combine_layers(pooled_dev, strategy.layers, strategy.combine)
            for head_name, hidden_units in heads:
                start = time.perf_counter()
                probe = feature_based.train_probe(train_x, train["label_ids"],
                                                  num_classes=num_classes,
                                                  hidden_units=hidden_units, seed=seed,
                                                  **probe_kwargs)
                seconds = time.perf_counter() - start
                accuracy = feature_based.evaluate(probe, dev_x, dev["label_ids"])["accuracy"]
                rows.append(Row("feature-based", strategy_name, pooling, head_name,
                                train_x.shape[1], accuracy, seconds))

    majority = docstring_topics.majority_baseline_accuracy(dev["label_ids"])
    rows.append(Row("majority class", "", dev_accuracy=majority))
    return {"rows": rows, "encoder_seconds": encoder_seconds,
            "num_train": len(train["label_ids"]), "num_dev": len(dev["label_ids"]),
            "bert_config": bert_config, "max_seq_length": max_seq_length,
            "python_version": sys.version.split()[0], "probe_kwargs": probe_kwargs,
            "seed": seed}


def format_table(result: dict) -> str:
    """The rows as a markdown table, plus the shared encoder-pass times."""
    lines = ["| method | recipe / layers | pooling | head | F | dev accuracy | train time (s) |",
             "|---|---|---|---|---:|---:|---:|"]
    for row in result["rows"]:
        size = str(row.feature_size) if row.feature_size else ""
        seconds = f"{row.seconds:.1f}" if row.seconds else ""
        lines.append(f"| {row.method} | {row.detail} | {row.pooling} | {row.head} | {size} | "
                     f"{100 * row.dev_accuracy:.1f} | {seconds} |")
    passes = ", ".join(f"{pooling} {seconds:.1f} s"
                       for pooling, seconds in result["encoder_seconds"].items())
    lines.append("")
    lines.append(f"Frozen encoder pass over train + dev, once per pooling and shared by every "
                 f"feature-based row of that pooling: {passes}.")
    return "\n".join(lines)


def summary_lines(result: dict) -> list[str]:
    """Best fine-tuning vs best feature-based row, with the sampling error of a dev accuracy."""
    rows = result["rows"]
    tuned = max((r for r in rows if r.method == "fine-tuning"), key=lambda r: r.dev_accuracy,
                default=None)
    features = max((r for r in rows if r.method == "feature-based"),
                   key=lambda r: r.dev_accuracy, default=None)
    if tuned is None or features is None:
        return []
    n = result["num_dev"]
    p = (tuned.dev_accuracy + features.dev_accuracy) / 2
    # One accuracy on n examples has binomial standard error sqrt(p(1-p)/n).
    error = 100 * math.sqrt(p * (1 - p) / n)
    gap = 100 * (tuned.dev_accuracy - features.dev_accuracy)
    best = (f"- Best fine-tuning: {100 * tuned.dev_accuracy:.1f} ({tuned.detail}); best "
            f"feature-based: {100 * features.dev_accuracy:.1f} ({features.detail}, "
            f"{features.pooling} pooling, {features.head} head); fine-tuning minus features: "
            f"{gap:+.1f} points.")
    noise = (f"- One dev accuracy on {n} examples has a binomial standard error of about "
             f"{error:.1f} points, so gaps of a few points are within noise; the best row of "
             f"many is also an optimistic pick.")
    return [best, noise]


def write_markdown(result: dict, path: str, command: str) -> None:
    """Writes the results file; text after NOTES_MARKER in an existing file is kept."""
    notes = ""
    if storage.exists(path):
        _, marker, notes = storage.read_text(path).partition(NOTES_MARKER)
        notes = notes if marker else ""
    cfg = result["bert_config"]
    probe = result["probe_kwargs"] or "the defaults of feature_based.train_probe"
    text = f"""# Fine-tuning vs feature-based use: all-MiniLM-L6-v2 on docstring topics

Measured {datetime.date.today().isoformat()} on a 2-core CPU shared with other jobs (times are
wall-clock and include compilation) with:

```
{command}
```

- Encoder: L={cfg.num_hidden_layers}, H={cfg.hidden_size}, vocab {cfg.vocab_size}; sequences
  cut at {result['max_seq_length']} word pieces.
- Task: data_pipelines/docstring_topics.py on Python {result['python_version']}'s
  standard library: 6 classes, {result['num_train']} training and {result['num_dev']} dev
  paragraphs, the dev ones from other modules than the training ones.
- Fine-tuning: the whole model and a fresh classifier on the pooled [CLS] output, through
  bertjax.finetune.run (batch 16, 10% warmup, weight decay 0.01, clipping at 1.0, dropout 0.1,
  seed {result['seed']}). The time covers the whole run: loading, compilation, training and the
  dev pass.
- Feature-based: the frozen encoder runs once per pooling (cls = the [CLS] position, mean = the
  mean over real tokens); each layer strategy of the paper's Table 7 (sums unweighted) feeds a
  linear or a one-hidden-layer MLP head trained full-batch on the standardised features
  ({probe}). The time is the head's training only, compilation included.

{format_table(result)}

{chr(10).join(summary_lines(result))}

{NOTES_MARKER}{notes}"""
    storage.write_text(path, text.rstrip() + "\n")


def _define_flags():
    # Defined only when run as a program, so importing this module (tests) defines no flags.
    flags.DEFINE_string("workdir", "/tmp/feature_based", "Where the fine-tuning runs write.")
    flags.DEFINE_string("output", "", "Markdown file for the table (e.g. "
                        "experiments/feature_based_results.md); empty prints only.")
    flags.DEFINE_string("init_checkpoint", None, "Encoder checkpoint (default: the installed "
                        "all-MiniLM-L6-v2); empty for a random init.")
    flags.DEFINE_integer("max_seq_length", 64, "Word pieces per paragraph.")
    flags.DEFINE_integer("seed", 0, "Seeds fine-tuning (head, data order, dropout) and the "
                         "probes.")


def main(argv):
    del argv
    FLAGS = flags.FLAGS
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # orbax, clu and TF are chatty at INFO
    import tensorflow as tf
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass
    from experiments.stability.minilm_docstrings import minilm_checkpoint
    init_checkpoint = (minilm_checkpoint() if FLAGS.init_checkpoint is None
                       else FLAGS.init_checkpoint)
    start = time.perf_counter()
    result = compare(init_checkpoint, FLAGS.workdir, max_seq_length=FLAGS.max_seq_length,
                     seed=FLAGS.seed)
    print(format_table(result))
    print("\n".join(summary_lines(result)))
    print(f"total wall time {time.perf_counter() - start:.0f} s")
    if FLAGS.output:
        command = "python -m experiments.feature_based " + " ".join(sys.argv[1:])
        write_markdown(result, FLAGS.output, command.strip())


if __name__ == "__main__":
    _define_flags()
    app.run(main)
