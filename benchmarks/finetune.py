"""Benchmark: fine-tuning examples/s padded to max_seq_length, with exact length bucketing, and
with group-by-length batching cut to buckets; the vectorised many-seed sweep step vs one seed at
a time, and the sweep's examples/s with bucketing and grouping.

    python -m benchmarks.finetune --json [--steps=5] [--model=minilm|tiny]

Model: the real all-MiniLM-L6-v2 (6 layers, H=384) with a fresh classifier, fp32, AdamW; the
fine-tuning train step of bertjax.train_step (what the training loop jits). Tasks:

  docstring_topics  the offline 6-class task at its config's S=64 (paragraphs; many long);
  short_sentences   single sentences of the stdlib docstrings at S=128, GLUE's default: a
                    CoLA/SST-2-like distribution of short inputs (lengths are reported).

Method. A step's time depends on its shape alone (dense programs; the token values change
nothing), so each bucket's step (B=32, 4 buckets, data_pipelines.finetune_input) is timed on a
real training batch cut to it: `--steps` rounds, each one step of every bucket with the order
rotating, so load on the machine falls on all of them alike; a bucket's time is its median.
The contenders are one whole training epoch (seed 0) of each batching:

  padded    every batch at S (the original);
  bucketed  the same shuffled batches, each cut to the bucket of its longest example (exact:
            the padded run's results);
  grouped   group_by_length (mega-batches of 50 x B sorted by length, batches shuffled), cut to
            buckets: other batch compositions, so not the padded run's results.

examples/s = epoch examples / sum over the epoch's batches of their bucket's step time;
`bucketed_over_padded` and `grouped_over_padded` are ratios of those (same timings). The sweep
figure times one vmapped step of K seeds against K steps of one seed (same batches, padded),
`vectorised_over_sequential` = examples/s ratio; then the vmapped step per bucket, weighted by
one epoch of the K stacked batches (cut to ONE bucket, the longest row over the seeds):
bucketed, grouped with each seed's own batch order, and grouped on the shared length-rank
schedule (bertjax.sweep.stacked_train_batches). Compilation (one program per bucket) is done
before timing and reported separately.
"""

from __future__ import annotations

import json
import platform
import time

import flax.linen as nn
import jax
import numpy as np
from absl import app, flags

from bertjax import modeling, optimizers, pretrained, sweep, tasks, train_step
from data_pipelines import corpora, docstring_topics, finetune_input, glue, tokenization

flags.DEFINE_integer("steps", 5, "Timed rounds (one step of every bucket each).")
flags.DEFINE_integer("batch_size", 32, "B.")
flags.DEFINE_integer("seeds", 4, "K seeds of the sweep comparison.")
flags.DEFINE_enum("model", "minilm", ["minilm", "tiny"], "The encoder.")
flags.DEFINE_bool("json", False, "Print compact JSON only.")
FLAGS = flags.FLAGS


def _encoder(model: str):
    if model == "minilm":
        from experiments.stability.minilm_docstrings import minilm_checkpoint
        source = pretrained.load(minilm_checkpoint())
        return source.config, source.encoder()
    from bertjax.config import preset
    config = preset("tiny", vocab_size=30522)
    params = nn.meta.unbox(modeling.BertModel(config).init(
        jax.random.PRNGKey(0), *modeling.dummy_inputs(1, 8))["params"])
    return config, jax.device_get(params)


def _tasks(tokenizer) -> dict[str, tuple[dict, int, int]]:
    """{name: (features, S, classes)}."""
    topics = docstring_topics.build()
    docstring = glue.convert_examples_to_features(topics.train, tokenizer, 64, topics.labels)
    sentences = []
    for document in corpora.stdlib_docstring_documents():
        sentences.extend(s for s in document if len(s.split()) >= 3)
    rng = np.random.default_rng(0)
    chosen = [sentences[i] for i in rng.choice(len(sentences), 2048, replace=False)]
    examples = [glue.GlueExample(f"s-{i}", text, None, str(i % 2))
                for i, text in enumerate(chosen)]
    short = glue.convert_examples_to_features(examples, tokenizer, 128, ("0", "1"))
    return {"docstring_topics": (docstring, 64, len(topics.labels)),
            "short_sentences": (short, 128, 2)}


def _timed(step, state, batches):
    start = time.perf_counter()
    for batch in batches:
        state, metrics = step(state, batch)
    jax.block_until_ready(metrics["loss"])
    return state, time.perf_counter() - start


def _cut(batch: dict, length: int, seq_axis: int = 1) -> dict:
    """`batch` with its sequence arrays cut to `length` (a timing stand-in of that shape)."""
    full = batch["input_ids"].shape[seq_axis]
    cut = (slice(None),) * seq_axis + (slice(0, length),)
    return {k: v[cut] if v.ndim > seq_axis and v.shape[seq_axis] == full else v
            for k, v in batch.items()}


def _bucket_times(step, state, batch, buckets, rounds, seq_axis=1):
    """({bucket: median step seconds}, compile seconds): each bucket once to compile, then
    `rounds` rounds of one step per bucket, the order rotating."""
    shaped = {b: _cut(batch, b, seq_axis) for b in buckets}
    compile_start = time.perf_counter()
    for b in buckets:
        state, _ = _timed(step, state, [shaped[b]])
    compile_seconds = time.perf_counter() - compile_start
    times = {b: [] for b in buckets}
    for index in range(rounds):
        order = buckets[index % len(buckets):] + buckets[:index % len(buckets)]
        for b in order:
            state, seconds = _timed(step, state, [shaped[b]])
            times[b].append(seconds)
    return {b: float(np.median(t)) for b, t in times.items()}, compile_seconds


def _epoch_buckets(features, batch_size, buckets, **grouping) -> list[int]:
    """The bucket of every batch of one training epoch (seed 0)."""
    lengths = features["input_mask"].sum(-1)
    indexed = {"input_mask": features["input_mask"], "row": np.arange(len(lengths))}
    return [finetune_input.bucket_of(int(lengths[b["row"]].max()), buckets)
            for b in finetune_input.train_batches(indexed, batch_size, seed=0, num_epochs=1,
                                                  **grouping)]


def _rate(epoch_buckets, times, examples_per_step) -> float:
    return len(epoch_buckets) * examples_per_step / sum(times[b] for b in epoch_buckets)


def _histogram(epoch_buckets, buckets) -> dict[str, int]:
    return {str(b): epoch_buckets.count(b) for b in buckets}


def bucketing(bert_config, encoder, features, seq_len, num_classes, rounds, batch_size,
              megabatches=50):
    task = tasks.classification(bert_config, num_classes)
    opt = optimizers.create_optimizer(2e-5, 1000, 100, optimizer="adamw")
    mesh = sweep.seed_mesh(1)
    state, shardings = train_step.init_train_state(task.model, opt.tx, mesh, 0,
                                                   modeling.dummy_inputs(1, seq_len))
    params = pretrained.merge_into(jax.device_get(state.params), encoder)
    state = state.replace(params=jax.device_put(params, shardings.params))
    step = train_step.jit_train_step(train_step.make_train_step(
        task.model, opt.tx, opt.schedule, forward=task.forward, loss_sums=task.loss_sums),
        shardings, donate=False)
    keep = ("input_ids", "input_mask", "segment_ids", "label_ids")
    train = {k: features[k] for k in keep}
    buckets = finetune_input.length_buckets_of(seq_len, 4)
    batch = next(finetune_input.train_batches(train, batch_size, seed=0))
    times, compile_seconds = _bucket_times(step, state, batch, list(buckets), rounds)
    plain = _epoch_buckets(train, batch_size, buckets)
    grouped = _epoch_buckets(train, batch_size, buckets, group_by_length=megabatches)
    padded_rate = _rate([seq_len] * len(plain), times, batch_size)
    bucketed_rate = _rate(plain, times, batch_size)
    grouped_rate = _rate(grouped, times, batch_size)
    lengths = features["input_mask"].sum(-1)
    return {"seq_len": seq_len, "buckets": list(buckets), "num_examples": int(len(lengths)),
            "length_mean": float(lengths.mean()), "length_median": float(np.median(lengths)),
            "length_p95": float(np.percentile(lengths, 95)),
            "step_seconds_per_bucket": {str(b): t for b, t in times.items()},
            "bucket_histogram": _histogram(plain, buckets),
            "grouped_bucket_histogram": _histogram(grouped, buckets),
            "group_by_length_megabatches": megabatches,
            "padded_examples_per_sec": padded_rate,
            "bucketed_examples_per_sec": bucketed_rate,
            "grouped_examples_per_sec": grouped_rate,
            "bucketed_over_padded": bucketed_rate / padded_rate,
            "grouped_over_padded": grouped_rate / padded_rate,
            "compile_seconds_all_programs": compile_seconds}


def _stacked_epoch_buckets(features, batch_size, buckets, num_seeds, **grouping) -> list[int]:
    """The bucket of every stacked K-seed batch of one epoch (seeds 0..K-1)."""
    lengths = features["input_mask"].sum(-1)
    indexed = {"input_mask": features["input_mask"], "row": np.arange(len(lengths))}
    return [finetune_input.bucket_of(int(lengths[b["row"]].max()), buckets)
            for b in sweep.stacked_train_batches(indexed, batch_size, range(num_seeds), 1,
                                                 **grouping)]


def vectorised_sweep(bert_config, encoder, features, seq_len, num_classes, steps, batch_size,
                     num_seeds, rounds, megabatches=50):
    task = tasks.classification(bert_config, num_classes)
    opt = optimizers.create_optimizer(2e-5, 1000, 100, optimizer="adamw")
    keep = ("input_ids", "input_mask", "segment_ids", "label_ids")
    train = {k: features[k] for k in keep}
    seeds = sweep.seed_components(range(num_seeds))
    buckets = finetune_input.length_buckets_of(seq_len, 4)
    results = {}
    for name, groups in (("vectorised", [seeds]), ("sequential", [[s] for s in seeds])):
        trainer = sweep.SeedTrainer(task, opt.tx, opt.schedule, max_seq_length=seq_len,
                                    mesh=sweep.seed_mesh(len(groups[0])))
        total = 0.0
        for group in groups:
            program = trainer.program(encoder, train, group, batch_size=batch_size,
                                      num_epochs=100)
            state = program.init_state()
            batches = program.batches(0)
            device = [program.to_device(next(batches)) for _ in range(steps + 1)]
            state, _ = _timed(program.step, state, device[:1])  # compile
            state, seconds = _timed(program.step, state, device[1:])
            total += seconds
        results[f"{name}_examples_per_sec"] = steps * batch_size * num_seeds / total
        if name == "vectorised":  # the K-seed step at every bucket
            batch = next(program.batches(0))
            times, compile_seconds = _bucket_times(
                lambda st, b: program.step(st, program.to_device(b)), state, batch,
                list(buckets), rounds, seq_axis=2)
    results["vectorised_over_sequential"] = (results["vectorised_examples_per_sec"]
                                             / results["sequential_examples_per_sec"])
    epochs = {"padded": None,
              "bucketed": _stacked_epoch_buckets(train, batch_size, buckets, num_seeds),
              "grouped_own_order": _stacked_epoch_buckets(
                  train, batch_size, buckets, num_seeds, group_by_length=megabatches,
                  shared_length_schedule=False),
              "grouped_shared_schedule": _stacked_epoch_buckets(
                  train, batch_size, buckets, num_seeds, group_by_length=megabatches)}
    epochs["padded"] = [seq_len] * len(epochs["bucketed"])
    for name, epoch in epochs.items():
        results[f"{name}_vmapped_examples_per_sec"] = _rate(epoch, times,
                                                            batch_size * num_seeds)
        results[f"{name}_bucket_histogram"] = _histogram(epoch, buckets)
    for name in ("bucketed", "grouped_own_order", "grouped_shared_schedule"):
        results[f"{name}_over_padded"] = (results[f"{name}_vmapped_examples_per_sec"]
                                          / results["padded_vmapped_examples_per_sec"])
    results.update(seeds=num_seeds, seq_len=seq_len, batch_size=batch_size,
                   step_seconds_per_bucket={str(b): t for b, t in times.items()},
                   compile_seconds_bucket_programs=compile_seconds)
    return results


def main(argv):
    del argv
    bert_config, encoder = _encoder(FLAGS.model)
    tokenizer = tokenization.FullTokenizer(str(tokenization.bundled_uncased_vocab_file()))
    report = {"model": FLAGS.model, "batch_size": FLAGS.batch_size, "steps": FLAGS.steps,
              "system": {"jax": jax.__version__, "backend": jax.default_backend(),
                         "cpu_count": __import__("os").cpu_count(),
                         "python": platform.python_version()}}
    task_data = _tasks(tokenizer)
    for name, (features, seq_len, classes) in task_data.items():
        report[name] = bucketing(bert_config, encoder, features, seq_len, classes, FLAGS.steps,
                                 FLAGS.batch_size)
    features, seq_len, classes = task_data["docstring_topics"]
    report["sweep"] = vectorised_sweep(bert_config, encoder, features, seq_len, classes,
                                       max(2, FLAGS.steps // 2), 16, FLAGS.seeds,
                                       max(2, FLAGS.steps // 2))
    print(json.dumps(report) if FLAGS.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
