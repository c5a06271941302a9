"""Benchmark: fine-tuning examples/s with length bucketing vs padding to max_seq_length, and
the vectorised many-seed sweep step vs one seed at a time.

    python -m benchmarks.finetune --json [--steps=12] [--model=minilm|tiny]

Model: the real all-MiniLM-L6-v2 (6 layers, H=384) with a fresh classifier, fp32, AdamW; the
fine-tuning train step of bertjax.train_step (what the training loop jits). Tasks:

  docstring_topics  the offline 6-class task at its config's S=64 (paragraphs; many long);
  short_sentences   single sentences of the stdlib docstrings at S=128, GLUE's default: a
                    CoLA/SST-2-like distribution of short inputs (lengths are reported).

For each task the same training batches (B=32, shuffled as training does) run padded to S and
cut to their bucket (4 buckets, data_pipelines.finetune_input), one step of each per round,
the order alternating; examples/s over the timed rounds, and `bucketed_over_padded`, the ratio
in the same run. The sweep figure times one vmapped step of K seeds against K steps of one
seed (same batches), `vectorised_over_sequential` = examples/s ratio. Compilation (one program
per bucket) is done before timing and reported separately.
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

flags.DEFINE_integer("steps", 12, "Timed rounds per contender.")
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


def bucketing(bert_config, encoder, features, seq_len, num_classes, steps, batch_size):
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
    batches = list(finetune_input.train_batches({k: features[k] for k in keep}, batch_size,
                                                seed=0, num_epochs=None, num_steps=steps))
    buckets = finetune_input.length_buckets_of(seq_len, 4)
    trimmed = [finetune_input.trim_to_bucket(b, buckets) for b in batches]
    compile_start = time.perf_counter()
    for batch in [batches[0]] + [next(t for t in trimmed if t["input_ids"].shape[1] == b)
                                 for b in buckets if any(t["input_ids"].shape[1] == b
                                                         for t in trimmed)]:
        state, _ = _timed(step, state, [batch])
    compile_seconds = time.perf_counter() - compile_start
    padded_time, bucketed_time = 0.0, 0.0
    for index in range(steps):  # one step of each per round, the order alternating
        if index % 2:
            state, seconds = _timed(step, state, [trimmed[index]])
            bucketed_time += seconds
            state, seconds = _timed(step, state, [batches[index]])
            padded_time += seconds
        else:
            state, seconds = _timed(step, state, [batches[index]])
            padded_time += seconds
            state, seconds = _timed(step, state, [trimmed[index]])
            bucketed_time += seconds
    lengths = features["input_mask"].sum(-1)
    used = [t["input_ids"].shape[1] for t in trimmed]
    return {"seq_len": seq_len, "buckets": list(buckets), "num_examples": int(len(lengths)),
            "length_mean": float(lengths.mean()), "length_median": float(np.median(lengths)),
            "length_p95": float(np.percentile(lengths, 95)),
            "bucket_histogram": {str(b): used.count(b) for b in buckets},
            "padded_examples_per_sec": steps * batch_size / padded_time,
            "bucketed_examples_per_sec": steps * batch_size / bucketed_time,
            "bucketed_over_padded": padded_time / bucketed_time,
            "compile_seconds_all_programs": compile_seconds}


def vectorised_sweep(bert_config, encoder, features, seq_len, num_classes, steps, batch_size,
                     num_seeds):
    task = tasks.classification(bert_config, num_classes)
    opt = optimizers.create_optimizer(2e-5, 1000, 100, optimizer="adamw")
    keep = ("input_ids", "input_mask", "segment_ids", "label_ids")
    train = {k: features[k] for k in keep}
    seeds = sweep.seed_components(range(num_seeds))
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
    results["vectorised_over_sequential"] = (results["vectorised_examples_per_sec"]
                                             / results["sequential_examples_per_sec"])
    results.update(seeds=num_seeds, seq_len=seq_len, batch_size=batch_size)
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
                                       max(2, FLAGS.steps // 3), 16, FLAGS.seeds)
    print(json.dumps(report) if FLAGS.json else json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
