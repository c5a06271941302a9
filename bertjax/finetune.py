"""Fine-tuning runner: GLUE, SQuAD v1.1/v2.0 and CoNLL NER through one training loop.

    python -m bertjax.main --config=experiments/finetune/glue.py:task=rte --workdir=W \
        --config.init_checkpoint=PATH     # HF folder, original TF checkpoint or bertjax dir

The encoder comes from `init_checkpoint` (its architecture; dropout, dtype, remat and scan come
from config.model) and the task head is freshly initialised. Training uses the generic sharded
train step (bertjax.train_step) with the task's forward and loss (bertjax.tasks). After training
each eval split is predicted, scored with the official metric (bertjax.metrics) and written to
WORKDIR: predictions_<split>.json, metrics.json, metrics.jsonl and TensorBoard.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from bertjax import (finetune_data, metric_logging, modeling, optimizers, reinit, sharding,
                     tasks, train_step)
from bertjax.config import BertConfig
from data_pipelines.tokenization import FullTokenizer, bundled_uncased_vocab_file
from bertjax.train import bert_config_from, merge_pretrained

# Fields of config.model that may override a checkpoint's config (everything but architecture).
_RUNTIME_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dtype", "param_dtype",
                   "remat", "remat_policy", "scan_layers")


def load_encoder(config: ml_collections.ConfigDict) -> tuple[BertConfig, dict | None, str]:
    """(BertConfig, pretrained BertModel params or None, vocab file) for a fine-tuning run."""
    overrides = {k: v for k, v in dict(config.model).items() if k in _RUNTIME_FIELDS}
    vocab_file = config.get("vocab_file") or ""
    if not config.get("init_checkpoint"):
        logging.warning("no init_checkpoint: fine-tuning a randomly initialised encoder")
        return bert_config_from(config.model), None, vocab_file or str(
            bundled_uncased_vocab_file())
    from bertjax import convert

    bert_config, params = convert.load_any(config.init_checkpoint,
                                           scan_layers=overrides.get("scan_layers"))
    bert_config = bert_config.replace(**overrides)
    if not vocab_file:
        beside = os.path.join(config.init_checkpoint, "vocab.txt")
        vocab_file = beside if os.path.exists(beside) else str(bundled_uncased_vocab_file())
    return bert_config, convert.encoder_params(params), vocab_file


def _load_pretrained(params: dict, pretrained: dict | None, source: str) -> dict:
    """Copies the pretrained encoder into params["bert"]; pieces the task model lacks (the
    pooler of span/token models) are left out."""
    if pretrained is None:
        return params
    wanted = {k: v for k, v in pretrained.items() if k in params["bert"]}
    dropped = sorted(set(pretrained) - set(wanted))
    if dropped:
        logging.info("not used by this task model: %s", dropped)
    return merge_pretrained(params, {"bert": wanted}, source)


# Host-side bookkeeping columns of the feature dicts; never sent to the devices.
_HOST_ONLY = ("unique_ids", "example_index", "word_start_positions", "is_impossible")


def device_batch(batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    return sharding.global_batch({k: v for k, v in batch.items() if k not in _HOST_ONLY}, mesh)


def _batches_per_epoch(features: dict, batch_size: int) -> int:
    return len(next(iter(features.values()))) // batch_size


def predict_all(task: tasks.Task, params, features: dict[str, np.ndarray], batch_size: int,
                mesh) -> dict[str, np.ndarray]:
    """Runs `task.predict` over every example once (padded last batch dropped again)."""
    from data_pipelines import finetune_input

    predict = jax.jit(lambda p, b: task.predict(task.forward(task.model, p, b, None, True)))
    outputs: list[Any] = []
    weights = []
    for batch in finetune_input.eval_batches(features, batch_size):
        with jax.set_mesh(mesh), sharding.axis_rules():
            out = predict(params, device_batch(batch, mesh))
        outputs.append(jax.device_get(out))
        weights.append(batch[finetune_input.EXAMPLE_WEIGHT_KEY])
    real = np.concatenate(weights) > 0
    stacked = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[real], *outputs)
    return stacked


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, dict[str, float]]:
    """Fine-tunes and evaluates; returns {eval split: metrics}."""
    from data_pipelines import finetune_input

    os.makedirs(workdir, exist_ok=True)
    bert_config, pretrained, vocab_file = load_encoder(config)
    tokenizer = FullTokenizer(vocab_file, do_lower_case=config.do_lower_case)
    data = finetune_data.prepare(config, bert_config, tokenizer)
    task = data.task

    mesh = sharding.create_mesh(dict(config.mesh))
    batch_size = config.batch_size
    steps_per_epoch = _batches_per_epoch(data.train_features, batch_size)
    num_train_steps = int(config.num_train_epochs * steps_per_epoch)
    opt = optimizers.create_optimizer(
        config.optimizer.learning_rate, num_train_steps,
        int(config.optimizer.warmup_proportion * num_train_steps),
        optimizer=config.optimizer.name, schedule=config.optimizer.schedule,
        weight_decay_rate=config.optimizer.weight_decay_rate,
        clip_norm=config.optimizer.clip_norm,
        layerwise_lr_decay=config.optimizer.get("layerwise_lr_decay"),
        num_layers=bert_config.num_hidden_layers, eps=config.optimizer.eps)

    init_args = modeling.dummy_inputs(1, config.max_seq_length)
    state, shardings = train_step.init_train_state(task.model, opt.tx, mesh, config.seed,
                                                   init_args)
    params = _load_pretrained(jax.device_get(state.params), pretrained,
                              config.get("init_checkpoint") or "random init")
    if config.get("reinit_layers"):
        params = reinit.reinit_top_layers(params, config.reinit_layers,
                                          jax.random.PRNGKey(config.seed + 1),
                                          initializer_range=bert_config.initializer_range)
    params = jax.device_put(params, shardings.params)
    state = state.replace(params=params, opt_state=jax.jit(
        opt.tx.init, out_shardings=shardings.opt_state)(params))

    step_fn = jax.jit(train_step.make_train_step(task.model, opt.tx, opt.schedule,
                                                 forward=task.forward, loss_sums=task.loss_sums),
                      in_shardings=(shardings, None), out_shardings=(shardings, None),
                      donate_argnums=0)
    logger = metric_logging.MetricLogger(workdir, num_train_steps)
    batches: Iterator = finetune_input.train_batches(data.train_features, batch_size,
                                                     seed=config.seed,
                                                     num_epochs=int(np.ceil(
                                                         config.num_train_epochs)),
                                                     num_steps=num_train_steps)
    pending = None
    for step, batch in enumerate(batches, start=1):
        with jax.set_mesh(mesh), sharding.axis_rules():
            state, step_metrics = step_fn(state, device_batch(batch, mesh))
        pending = step_metrics if pending is None else jax.tree_util.tree_map(
            jnp.add, pending, step_metrics)
        logger.advance()
        if step % config.log_every_steps == 0 or step == num_train_steps:
            count = (step - 1) % config.log_every_steps + 1
            logger.write(step, {k: float(v) / count for k, v in pending.items()})
            pending = None
    if int(state.nonfinite_step) >= 0:
        raise FloatingPointError(f"non-finite loss or gradient at step {int(state.nonfinite_step)}")

    results = {}
    for eval_set in data.eval_sets:
        predictions = predict_all(task, state.params, eval_set.features,
                                  config.eval_batch_size, mesh)
        scores, to_write = eval_set.score(predictions)
        results[eval_set.name] = scores
        logger.write(num_train_steps, scores, split=eval_set.name)
        with open(os.path.join(workdir, f"predictions_{eval_set.name}.json"), "w") as f:
            json.dump(to_write, f, indent=1, default=_to_json)
    logger.close()
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    if config.get("save_checkpoint"):
        from bertjax import convert
        convert.save_checkpoint(bert_config, jax.device_get(state.params),
                                os.path.join(workdir, "final_checkpoint"))
    return results


def _to_json(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value)} as JSON")
