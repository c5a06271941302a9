"""HF transformers' FlaxBertForPreTraining pretraining step, for the train-step benchmark.

Runs in a SEPARATE interpreter: FlaxBertForPreTraining was removed in transformers 5, so it needs
a throwaway virtualenv with transformers<5 (benchmarks/README.md says how to make one). This
file therefore imports nothing from bertjax; benchmarks.train_step starts it as a subprocess and
hands it the batch as an .npz file and the model as an HF config dict.

    python benchmarks/hf_flax_step.py --batch=BATCH.npz --config=CONFIG.json --serve

The step is what HF's own Flax MLM example (examples/flax/language-modeling/run_mlm_flax.py)
does, plus NSP: MLM logits at EVERY position [B, S, V], cross-entropy at the labelled positions,
NSP cross-entropy, value_and_grad, optax global-norm clipping to 1.0, optax.adamw (eps 1e-6,
weight decay 0.01), dropout on (train=True), fp32, jitted with the params donated.

Protocol with --serve (so the parent can interleave this step with its own contenders): after
compiling and --warmup steps it prints one line `@@ready {json}`; then for every `step` line on
stdin it runs one step and prints `@@step {"seconds": t}` (timed here, block_until_ready, no
IPC inside); `quit` ends it. Without --serve it times --steps steps and prints `@@result {json}`.

Batch fields (numpy, B batch, S sequence, P predictions): input_ids, segment_ids, input_mask
[B, S]; masked_lm_positions, masked_lm_ids, masked_lm_weights [B, P]; next_sentence_labels [B].
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import transformers
from transformers import BertConfig, FlaxBertForPreTraining


def labels_at_every_position(batch: dict) -> np.ndarray:
    """[B, S] MLM labels: the masked id at each real masked position, -100 elsewhere (HF's form)."""
    batch_size, seq_len = batch["input_ids"].shape
    labels = np.full((batch_size, seq_len), -100, np.int32)
    rows, cols = np.nonzero(batch["masked_lm_weights"] > 0)
    labels[rows, batch["masked_lm_positions"][rows, cols]] = batch["masked_lm_ids"][rows, cols]
    return labels


def make_step(model, tx):
    def loss_fn(params, inputs, dropout_rng):
        out = model(inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"],
                    params=params, dropout_rng=dropout_rng, train=True)
        labels = inputs["labels"]  # [B, S]
        label_mask = (labels >= 0).astype(jnp.float32)
        mlm_nll = optax.softmax_cross_entropy_with_integer_labels(
            out.prediction_logits, jnp.maximum(labels, 0))  # [B, S]: logits at every position
        mlm_loss = jnp.sum(mlm_nll * label_mask) / jnp.maximum(jnp.sum(label_mask), 1.0)
        nsp_loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(
            out.seq_relationship_logits, inputs["next_sentence_labels"]))
        return mlm_loss + nsp_loss

    def step(params, opt_state, inputs, rng):
        rng, dropout_rng = jax.random.split(rng)
        loss, grads = jax.value_and_grad(loss_fn)(params, inputs, dropout_rng)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, rng, loss

    return jax.jit(step, donate_argnums=(0, 1))


class HfFlaxStep:
    """Holds the model, optimizer state and batch on device; `run()` times one step."""

    def __init__(self, config_dict: dict, batch: dict, seed: int = 0):
        config = BertConfig(**config_dict)
        model = FlaxBertForPreTraining(config, seed=seed, dtype=jnp.float32)
        tx = optax.chain(optax.clip_by_global_norm(1.0),
                         optax.adamw(1e-4, b1=0.9, b2=0.999, eps=1e-6, weight_decay=0.01))
        self.params = model.params
        self.opt_state = tx.init(self.params)
        self.rng = jax.random.PRNGKey(seed)
        self.inputs = jax.device_put({
            "input_ids": batch["input_ids"], "input_mask": batch["input_mask"],
            "segment_ids": batch["segment_ids"], "labels": labels_at_every_position(batch),
            "next_sentence_labels": batch["next_sentence_labels"]})
        self.step = make_step(model, tx)
        self.loss = float("nan")

    def run(self) -> float:
        start = time.perf_counter()
        self.params, self.opt_state, self.rng, loss = self.step(
            self.params, self.opt_state, self.inputs, self.rng)
        jax.block_until_ready((self.params, self.opt_state, loss))
        seconds = time.perf_counter() - start
        self.loss = float(loss)
        return seconds


def emit(tag: str, payload: dict) -> None:
    print(f"@@{tag} {json.dumps(payload)}", flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", required=True, help=".npz with the batch fields")
    parser.add_argument("--config", required=True, help="JSON file of an HF BertConfig dict")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--serve", action="store_true")
    args = parser.parse_args(argv)

    with open(args.config) as f:
        config_dict = json.load(f)
    batch = dict(np.load(args.batch))
    start = time.perf_counter()
    runner = HfFlaxStep(config_dict, batch)
    runner.run()  # compiles
    compile_seconds = time.perf_counter() - start
    for _ in range(args.warmup):
        runner.run()
    info = {"transformers": transformers.__version__, "jax": jax.__version__,
            "flax": __import__("flax").__version__, "optax": optax.__version__,
            "python": sys.version.split()[0], "compile_and_first_step_s": compile_seconds,
            "loss_after_warmup": runner.loss}
    if not args.serve:
        times = [runner.run() for _ in range(args.steps)]
        emit("result", {**info, "step_seconds": times, "median_s": statistics.median(times)})
        return
    emit("ready", info)
    for line in sys.stdin:
        command = line.strip()
        if command == "step":
            emit("step", {"seconds": runner.run(), "loss": runner.loss})
        elif command == "quit":
            return
        else:
            emit("error", {"message": f"unknown command {command!r}; expected step or quit"})


if __name__ == "__main__":
    main()
