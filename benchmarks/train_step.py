"""Benchmark: the full bertjax pretraining step against HF transformers doing the same step.

    python -m benchmarks.train_step --model=base --batch_size=8 --seq_len=128 --json
    python -m benchmarks.train_step --baselines=hf_torch,all_positions,hf_flax \
        --hf_flax_python=/tmp/hf4venv/bin/python --json

The step timed (B batch, S sequence, P predictions per sequence, V vocab):
  * ours            bertjax.train_step.make_train_step: forward with dropout on, the MLM head at
                    the P gathered positions [B, P, V] (the original's design), NSP, weighted
                    losses, grads, global-norm clipping to 1.0, the bert_adam update on the
                    original schedule, the NaN guard; jitted with the state donated;
  * all_positions   the same step with MLM logits at every position [B, S, V] and the loss
                    gathered afterwards (HF's computation), so the gather's saving shows alone;
  * hf_torch        transformers' (PyTorch) BertForPreTraining, random init, labels at the
                    masked positions (-100 elsewhere), loss.backward(), clip_grad_norm_(1.0),
                    torch.optim.AdamW, model.train(), fp32, all cores;
  * hf_flax         transformers<5's FlaxBertForPreTraining (removed in transformers 5), run by
                    benchmarks/hf_flax_step.py in the interpreter given by --hf_flax_python.
Every contender uses the same config and the same synthetic batch (data_pipelines.features.synthetic_batch).

Timing: each contender is compiled and warmed up (--warmup steps, not timed); then --steps
rounds, each running ONE step of every contender in a rotating order, so the shared machine's
drift hits all of them alike. Reported per contender: the median step time, tokens/s and MFU
against a matmul peak measured in this run (bertjax.flops.measure_matmul_peak, before and after
the timed rounds; the larger is used); ratios ours / baseline compare median tokens/s of the same
run, and `paired_ratio_median` is the median of the per-round ratios. `step_ms_min` is the
least disturbed step, worth a look when another process shared the cores for part of the run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from bertjax import config as bert_config_lib
from bertjax import flops, modeling, optimizers, sharding, train_step
from data_pipelines.features import synthetic_batch as make_batch

BASELINES = ("hf_torch", "all_positions", "hf_flax")
_HF_FLAX_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_flax_step.py")


class Contender(NamedTuple):
    """One implementation of the step. run_step() runs one step and returns its seconds;
    last_loss() is the loss of the latest step; flops_per_step: the model FLOPs it actually
    computes; info: versions and settings."""

    name: str
    run_step: Callable[[], float]
    last_loss: Callable[[], float]
    close: Callable[[], None]
    flops_per_step: float
    info: dict


# ---------------------------------------------------------------------------- contenders
def bertjax_contender(config: bert_config_lib.BertConfig, batch: dict, *,
                      all_positions: bool = False, seed: int = 0) -> Contender:
    """Our train step, compiled (compile time in info); with all_positions, MLM logits at
    every position [B, S, V] then gathered to [B, P, V] for the unchanged loss."""
    model = modeling.BertForPreTraining(config)
    tx, schedule = optimizers.create_optimizer(1e-4, num_train_steps=1_000_000,
                                               num_warmup_steps=10_000, optimizer="bert_adam")
    mesh = sharding.create_mesh({"data": 1}, jax.devices()[:1])
    seq_len = batch["input_ids"].shape[1]
    state, shardings = train_step.init_train_state(model, tx, mesh, seed,
                                                   modeling.dummy_inputs(1, seq_len))
    forward = _all_positions_forward if all_positions else train_step._pretraining_forward
    step_fn = jax.jit(train_step.make_train_step(model, tx, schedule, forward=forward),
                      in_shardings=(shardings, None), out_shardings=(shardings, None),
                      donate_argnums=0)
    device_batch = sharding.global_batch(batch, mesh)
    holder = {"state": state}

    def run_step() -> float:
        start = time.perf_counter()
        with jax.set_mesh(mesh), sharding.axis_rules():
            holder["state"], metrics = step_fn(holder["state"], device_batch)
        jax.block_until_ready((holder["state"], metrics))
        seconds = time.perf_counter() - start
        holder["loss"] = float(metrics["loss"])
        return seconds

    start = time.perf_counter()
    run_step()
    info = {"compile_and_first_step_s": time.perf_counter() - start,
            "mlm_logits": "[B, S, V] then gathered" if all_positions else "[B, P, V] gathered"}
    predictions = None if all_positions else batch["masked_lm_positions"].shape[1]
    batch_size = batch["input_ids"].shape[0]
    name = "all_positions" if all_positions else "ours"
    return Contender(name, run_step, lambda: holder["loss"],
                     lambda: holder.pop("state", None),
                     flops.train_flops_per_step(config, batch_size, seq_len, predictions), info)


def _all_positions_forward(model, params, batch, rng, deterministic):
    out = model.apply(
        {"params": params}, batch["input_ids"], batch["segment_ids"], batch["input_mask"],
        masked_lm_positions=None, deterministic=deterministic,
        rngs=None if deterministic else {"dropout": rng})
    out["mlm_logits"] = modeling.gather_positions(out["mlm_logits"], batch["masked_lm_positions"])
    return out


def hf_torch_contender(config: bert_config_lib.BertConfig, batch: dict,
                       seed: int = 0) -> Contender:
    """transformers' PyTorch BertForPreTraining doing the same step (logits at every position)."""
    import torch
    import transformers

    torch.manual_seed(seed)
    torch.set_num_threads(os.cpu_count() or 1)
    model = transformers.BertForPreTraining(transformers.BertConfig(**config.to_hf_dict()))
    model.train()
    no_decay = [p for n, p in model.named_parameters() if "LayerNorm" in n or n.endswith("bias")]
    decay = [p for n, p in model.named_parameters()
             if not ("LayerNorm" in n or n.endswith("bias"))]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=1e-4, betas=(0.9, 0.999), eps=1e-6)
    inputs = {
        "input_ids": torch.from_numpy(batch["input_ids"]).long(),
        "token_type_ids": torch.from_numpy(batch["segment_ids"]).long(),
        "attention_mask": torch.from_numpy(batch["input_mask"]).long(),
        "labels": torch.from_numpy(_labels_at_every_position(batch)).long(),
        "next_sentence_label": torch.from_numpy(batch["next_sentence_labels"]).long(),
    }
    holder = {}

    def run_step() -> float:
        start = time.perf_counter()
        loss = model(**inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        holder["loss"] = float(loss.detach())
        return seconds

    start = time.perf_counter()
    run_step()
    info = {"transformers": transformers.__version__, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "attn_implementation": model.config._attn_implementation,
            "first_step_s": time.perf_counter() - start}
    batch_size, seq_len = batch["input_ids"].shape
    return Contender("hf_torch", run_step, lambda: holder["loss"], lambda: None,
                     flops.train_flops_per_step(config, batch_size, seq_len, None), info)


def _labels_at_every_position(batch: dict) -> np.ndarray:
    """[B, S]: the masked id at each real masked position, -100 elsewhere (HF's label form)."""
    labels = np.full(batch["input_ids"].shape, -100, np.int64)
    rows, cols = np.nonzero(batch["masked_lm_weights"] > 0)
    labels[rows, batch["masked_lm_positions"][rows, cols]] = batch["masked_lm_ids"][rows, cols]
    return labels


def hf_flax_contender(python: str, config: bert_config_lib.BertConfig,
                      batch: dict) -> Contender:
    """FlaxBertForPreTraining in `python` (a transformers<5 virtualenv), driven step by step."""
    if not os.path.exists(python):
        raise FileNotFoundError(f"--hf_flax_python={python} does not exist; see "
                                f"benchmarks/README.md for making the transformers<5 venv")
    workdir = tempfile.mkdtemp(prefix="hf_flax_step_")
    batch_path = os.path.join(workdir, "batch.npz")
    config_path = os.path.join(workdir, "config.json")
    np.savez(batch_path, **batch)
    with open(config_path, "w") as f:
        json.dump(config.to_hf_dict(), f)
    # The child runs at JAX's defaults: none of our XLA_FLAGS (e.g. 8 faked devices in tests),
    # JAX_* settings or path.
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "PYTHONPATH") and not k.startswith("JAX_")}
    process = subprocess.Popen(
        [python, _HF_FLAX_SCRIPT, f"--batch={batch_path}", f"--config={config_path}",
         "--warmup=0", "--serve"],  # time_interleaved warms every contender alike
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def read(tag: str) -> dict:
        for line in process.stdout:
            if line.startswith("@@"):
                got, _, payload = line[2:].partition(" ")
                if got != tag:
                    raise RuntimeError(f"hf_flax_step.py answered @@{got} {payload}")
                return json.loads(payload)
        raise RuntimeError(f"hf_flax_step.py ({python}) exited with code {process.wait()} "
                           f"before @@{tag}; its stderr is above")

    info = read("ready")
    holder = {"loss": info["loss_after_warmup"]}

    def run_step() -> float:
        process.stdin.write("step\n")
        process.stdin.flush()
        answer = read("step")
        holder["loss"] = answer["loss"]
        return answer["seconds"]

    def close() -> None:
        if process.poll() is None:
            process.stdin.write("quit\n")
            process.stdin.flush()
            process.wait(timeout=60)

    batch_size, seq_len = batch["input_ids"].shape
    return Contender("hf_flax", run_step, lambda: holder["loss"], close,
                     flops.train_flops_per_step(config, batch_size, seq_len, None),
                     {**info, "python": python})


# ---------------------------------------------------------------------------- timing
def time_interleaved(contenders: Sequence[Contender], warmup: int,
                     steps: int) -> dict[str, list[float]]:
    """Seconds of `steps` timed steps per contender, one step of each per round, the order
    rotated every round; `warmup` untimed steps each first (compilation already done)."""
    for contender in contenders:
        for _ in range(warmup):
            contender.run_step()
    times = {c.name: [] for c in contenders}
    for round_index in range(steps):
        shift = round_index % len(contenders)
        for contender in list(contenders[shift:]) + list(contenders[:shift]):
            times[contender.name].append(contender.run_step())
    return times


def benchmark_config(model: str, dtype: str = "float32", remat: bool = False,
                     scan_layers: bool = False) -> bert_config_lib.BertConfig:
    return bert_config_lib.preset(model, dtype=dtype, remat=remat, scan_layers=scan_layers)


def run_benchmark(model: str = "base", batch_size: int = 8, seq_len: int = 128,
                  num_predictions: int = 20, steps: int = 5, warmup: int = 1,
                  dtype: str = "float32", remat: bool = False, scan_layers: bool = False,
                  baselines: Sequence[str] = ("hf_torch", "all_positions"),
                  hf_flax_python: str | None = None) -> dict:
    """Builds every contender, times them interleaved, returns the JSON-ready results."""
    unknown = set(baselines) - set(BASELINES)
    if unknown:
        raise ValueError(f"unknown baselines {sorted(unknown)}; expected some of {BASELINES}")
    if "hf_flax" in baselines and not hf_flax_python:
        raise ValueError("baseline hf_flax needs --hf_flax_python (a transformers<5 venv; "
                         "see benchmarks/README.md)")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps={steps} must be >= 1 and warmup={warmup} >= 0")
    config = benchmark_config(model, dtype, remat, scan_layers)
    batch = make_batch(batch_size, seq_len, num_predictions, config.vocab_size)
    train_step.validate_pretraining_batch(config, batch, num_predictions)

    peak_before = _matmul_peak()
    contenders = [bertjax_contender(config, batch)]
    try:
        for name in baselines:
            if name == "all_positions":
                contenders.append(bertjax_contender(config, batch, all_positions=True))
            elif name == "hf_torch":
                contenders.append(hf_torch_contender(config, batch))
            elif name == "hf_flax":
                contenders.append(hf_flax_contender(hf_flax_python, config, batch))
        times = time_interleaved(contenders, warmup, steps)
    finally:
        for contender in contenders:
            contender.close()
    peak_after = _matmul_peak()
    peak = max(peak_before, peak_after)

    tokens = batch_size * seq_len
    results = {}
    for contender in contenders:
        median = statistics.median(times[contender.name])
        results[contender.name] = {
            "step_ms": 1e3 * median,
            "step_ms_min": 1e3 * min(times[contender.name]),
            "step_ms_all": [1e3 * t for t in times[contender.name]],
            "tokens_per_sec": tokens / median,
            "model_flops_per_step": contender.flops_per_step,
            "mfu": contender.flops_per_step / median / peak,
            "last_loss": contender.last_loss(),
            **contender.info,
        }
    ours = results["ours"]
    for name in baselines:
        paired = [b / a for a, b in zip(times["ours"], times[name])]
        results[name]["ratio_ours_over_baseline"] = (
            ours["tokens_per_sec"] / results[name]["tokens_per_sec"])
        results[name]["paired_ratio_median"] = statistics.median(paired)
    return {
        "benchmark": "train_step",
        "step_ms": ours["step_ms"],
        "tokens_per_sec": ours["tokens_per_sec"],
        "model_flops_per_step": ours["model_flops_per_step"],
        "mfu": ours["mfu"],
        "matmul_peak_flops": peak,
        "matmul_peak_flops_before_after": [peak_before, peak_after],
        "matmul_peak_source": ("fp32 jnp matmul measured in this run"
                               if jax.default_backend() == "cpu" else "data sheet (bf16)"),
        "ratios_ours_over": {n: results[n]["ratio_ours_over_baseline"] for n in baselines},
        "contenders": results,
        "setup": {"model": model, "batch_size": batch_size, "seq_len": seq_len,
                  "num_predictions": num_predictions, "steps": steps, "warmup": warmup,
                  "dtype": dtype, "remat": remat, "scan_layers": scan_layers,
                  "dropout": True, "optimizer": "bert_adam", "clip_norm": 1.0,
                  "config": config.to_dict()},
        "system": {"jax": jax.__version__, "backend": jax.default_backend(),
                   "device": jax.devices()[0].device_kind, "device_count": jax.device_count(),
                   "cpu_count": os.cpu_count(), "python": platform.python_version(),
                   "xla_flags": os.environ.get("XLA_FLAGS", ""),
                   "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")},
    }


def _matmul_peak() -> float:
    """CPU: an fp32 matmul measured now (no data-sheet peak; the shared machine drifts).
    Accelerators: the data-sheet bf16 peak where bertjax.flops knows the chip."""
    if jax.default_backend() == "cpu":
        return flops.measure_matmul_peak(jnp.float32)
    return flops.peak_flops_per_device()


def _print_table(result: dict) -> None:
    setup = result["setup"]
    print(f"BERT-{setup['model']} pretraining step, batch {setup['batch_size']}, seq "
          f"{setup['seq_len']}, {setup['num_predictions']} predictions, {setup['dtype']}, "
          f"median of {setup['steps']} interleaved steps; matmul peak "
          f"{result['matmul_peak_flops'] / 1e9:.0f} GFLOP/s")
    for name, row in result["contenders"].items():
        ratio = row.get("ratio_ours_over_baseline")
        print(f"  {name:14s} {row['step_ms']:9.1f} ms/step (min {row['step_ms_min']:7.1f}) "
              f"{row['tokens_per_sec']:8.1f} tok/s "
              f"MFU {100 * row['mfu']:5.1f}%" + (f"  ours/this {ratio:.2f}x" if ratio else ""))


def main(argv) -> None:
    del argv
    result = run_benchmark(
        model=FLAGS.model, batch_size=FLAGS.batch_size, seq_len=FLAGS.seq_len,
        num_predictions=FLAGS.num_predictions, steps=FLAGS.steps, warmup=FLAGS.warmup,
        dtype=FLAGS.dtype, remat=FLAGS.remat, scan_layers=FLAGS.scan_layers,
        baselines=[b for b in FLAGS.baselines.split(",") if b],
        hf_flax_python=FLAGS.hf_flax_python)
    if FLAGS.json:
        print(json.dumps(result))
    else:
        _print_table(result)


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_string("model", "base", f"Preset: {sorted(bert_config_lib.PRESETS)}.")
    flags.DEFINE_integer("batch_size", 8, "B, sequences per step.")
    flags.DEFINE_integer("seq_len", 128, "S, tokens per sequence.")
    flags.DEFINE_integer("num_predictions", 20, "P, masked positions per sequence.")
    flags.DEFINE_integer("steps", 5, "Timed rounds (one step of every contender each).")
    flags.DEFINE_integer("warmup", 1, "Untimed steps per contender after compilation.")
    flags.DEFINE_string("dtype", "float32", "Our compute dtype (baselines stay fp32).")
    flags.DEFINE_bool("remat", False, "Rematerialise each layer in our step.")
    flags.DEFINE_bool("scan_layers", False, "nn.scan over our layers.")
    flags.DEFINE_string("baselines", "hf_torch,all_positions",
                        f"Comma list from {BASELINES}; empty for ours alone.")
    flags.DEFINE_string("hf_flax_python", "", "Interpreter of a transformers<5 venv (hf_flax).")
    flags.DEFINE_bool("json", False, "Print JSON only.")
    FLAGS = flags.FLAGS
    app.run(main)
