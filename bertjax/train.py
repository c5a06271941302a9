"""The pretraining loop: data in, sharded steps, metrics, checkpoints, preemption, resume.

    python -m bertjax.main --config=experiments/pretrain_tiny.py --workdir=/tmp/tiny

Rerunning the same command resumes from the newest checkpoint in WORKDIR/checkpoints. The state
holds the step, and the input pipelines are pure functions of (seed, step), and dropout draws
from fold_in(seed, step): so a resumed run logs exactly what an uninterrupted run logs.
SIGTERM (TPU VM maintenance, SLURM preemption) saves a checkpoint at the next step boundary and
returns normally (exit code 0).
"""

from __future__ import annotations

import logging
import os
import signal
import time
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.experimental import multihost_utils

from bertjax import (checkpointing, flops, metric_logging, modeling, optimizers, sharding,
                     train_step)
from bertjax.config import BertConfig, preset


def bert_config_from(model_config: ml_collections.ConfigDict) -> BertConfig:
    """BertConfig from `config.model`: a preset name plus field overrides."""
    values = dict(model_config)
    name = values.pop("preset", None)
    return preset(name, **values) if name else BertConfig(**values)


def create_optimizer(config: ml_collections.ConfigDict, num_layers: int):
    """The optax transformation and schedule from `config.optimizer` and the step budget."""
    opt = config.optimizer
    return optimizers.create_optimizer(
        opt.learning_rate, config.num_train_steps, opt.warmup_steps, optimizer=opt.name,
        schedule=opt.schedule, weight_decay_rate=opt.weight_decay_rate, clip_norm=opt.clip_norm,
        layerwise_lr_decay=opt.get("layerwise_lr_decay"), num_layers=num_layers,
        b1=opt.b1, b2=opt.b2, eps=opt.eps)


class PreemptionWatcher:
    """Turns SIGTERM into a flag checked at step boundaries, agreed across hosts."""

    def __init__(self):
        self._signalled = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del signum, frame
        logging.warning("SIGTERM received: checkpointing at the next step boundary")
        self._signalled = True

    def should_stop(self, step: int) -> bool:
        if jax.process_count() == 1:
            return self._signalled
        # Every host must stop at the same step; jax's preemption service agrees on one.
        return self._signalled or multihost_utils.reached_preemption_sync_point(step)

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


def pretraining_batches(config: ml_collections.ConfigDict, workdir: str, per_host_batch: int,
                        start_step: int, *, is_training: bool = True) -> Iterator[dict]:
    """Host-local numpy batches from `config.data` (data_pipelines.pretraining_data)."""
    from data_pipelines import pretraining_data  # tf.data is imported lazily

    values = dict(config.data)
    values["cache_dir"] = values.get("cache_dir") or os.path.join(workdir, "data")
    return pretraining_data.pretraining_batches(
        pretraining_data.PretrainingDataSpec(**values), per_host_batch_size=per_host_batch,
        start_step=start_step, is_training=is_training, process_index=jax.process_index(),
        process_count=jax.process_count())


def _restore_or_init(config, workdir, model, tx, mesh, checkpointer):
    init_args = modeling.dummy_inputs(1, config.data.max_seq_length)
    state, shardings = train_step.init_train_state(model, tx, mesh, config.seed, init_args)
    if checkpointer.latest_step() is not None:
        abstract = checkpointing.abstract_with_shardings(state, shardings)
        del state  # free the fresh params before reading the checkpoint's
        state, metadata, step = checkpointer.restore(abstract)
        logging.warning("resumed from step %d (%s)", step, checkpointer.directory)
    elif config.get("init_checkpoint"):
        from bertjax import convert  # checkpoint formats are only needed here
        _, pretrained = convert.load_any(config.init_checkpoint)
        params = merge_pretrained(state.params, pretrained, config.init_checkpoint)
        state = state.replace(params=jax.device_put(params, shardings.params))
        logging.warning("initialised params from %s", config.init_checkpoint)
    return state, shardings


def merge_pretrained(params: dict, pretrained: dict, source: str) -> dict:
    """`params` with every subtree that `pretrained` has replaced by it (shapes checked).

    A BertModel-only checkpoint fills the "bert" subtree of a model with heads; heads absent from
    the checkpoint keep their fresh initialisation.
    """
    if "bert" in params and "bert" not in pretrained:
        pretrained = {"bert": pretrained}

    def merge(ours, theirs, path):
        if isinstance(ours, dict):
            unknown = set(theirs) - set(ours)
            if unknown:
                raise ValueError(f"{source}: tensors {sorted(unknown)} under '{path}' do not "
                                 f"exist in the model")
            return {k: merge(v, theirs[k], f"{path}/{k}") if k in theirs else v
                    for k, v in ours.items()}
        if tuple(ours.shape) != tuple(np.shape(theirs)):
            raise ValueError(f"{source}: tensor '{path}' has shape {tuple(np.shape(theirs))}; "
                             f"the model expects {tuple(ours.shape)}")
        return jnp.asarray(theirs, ours.dtype)

    return merge(params, pretrained, "")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs pretraining to `config.num_train_steps`; returns the last logged train metrics."""
    bert_config = bert_config_from(config.model)
    model = modeling.BertForPreTraining(bert_config)
    mesh = sharding.create_mesh(dict(config.mesh))
    per_host_batch = sharding.per_host_batch_size(config.batch_size, mesh)
    opt = create_optimizer(config, bert_config.num_hidden_layers)
    checkpointer = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints,
        async_save=config.get("async_checkpoints", True))
    state, shardings = _restore_or_init(config, workdir, model, opt.tx, mesh, checkpointer)
    start_step = int(state.step)
    data = config.data
    seq_len, num_predictions = data.max_seq_length, data.max_predictions_per_seq

    step_fn = jax.jit(
        train_step.make_train_step(model, opt.tx, opt.schedule,
                                   grad_accum_steps=config.grad_accum_steps,
                                   nan_policy=config.nan_policy),
        in_shardings=(shardings, None), out_shardings=(shardings, None), donate_argnums=0)
    eval_fn = jax.jit(train_step.make_eval_step(model))

    flops_per_step = flops.train_flops_per_step(bert_config, config.batch_size, seq_len,
                                                num_predictions)
    peak = flops.peak_flops_per_device() * jax.device_count()
    logger = metric_logging.MetricLogger(workdir, config.num_train_steps, start_step)
    watcher = PreemptionWatcher()
    metadata = {"config": config.to_dict()}
    batches = pretraining_batches(config, workdir, per_host_batch, start_step)
    last_metrics: dict[str, float] = {}
    pending, interval_start, interval_steps = None, time.perf_counter(), 0
    try:
        for step in range(start_step, config.num_train_steps):
            local = next(batches)
            train_step.validate_pretraining_batch(bert_config, local, num_predictions)
            with jax.set_mesh(mesh), sharding.axis_rules():
                state, metrics = step_fn(state, sharding.global_batch(local, mesh))
            pending = metrics if pending is None else jax.tree_util.tree_map(
                jnp.add, pending, metrics)
            interval_steps += 1
            logger.advance()
            done = step + 1
            if done % config.log_every_steps == 0 or done == config.num_train_steps:
                _check_finite(state, config, checkpointer)
                elapsed = time.perf_counter() - interval_start
                last_metrics = {k: float(v) / interval_steps for k, v in pending.items()}
                steps_per_sec = interval_steps / elapsed
                last_metrics.update(
                    steps_per_sec=steps_per_sec,
                    tokens_per_sec=steps_per_sec * config.batch_size * seq_len,
                    mfu=steps_per_sec * flops_per_step / peak)
                logger.write(done, last_metrics)
                pending, interval_start, interval_steps = None, time.perf_counter(), 0
            if config.eval_every_steps and (done % config.eval_every_steps == 0
                                            or done == config.num_train_steps):
                logger.write(done, evaluate(config, workdir, eval_fn, state.params, mesh,
                                            per_host_batch), split="eval")
            preempted = watcher.should_stop(done)
            if preempted or done % config.checkpoint_every_steps == 0 or \
                    done == config.num_train_steps:
                _check_finite(state, config, checkpointer)
                checkpointer.save(done, state, metadata, wait=preempted)
            if preempted:
                logging.warning("preempted: saved step %d; rerun the command to resume", done)
                break
        else:
            # Finished: also export the params in bertjax's checkpoint format, which fine-tuning
            # and the next pretraining phase read with --config.init_checkpoint=WORKDIR/export.
            from bertjax import convert
            convert.save_checkpoint(bert_config, state.params, os.path.join(workdir, "export"))
    finally:
        checkpointer.wait_until_finished()
        watcher.restore()
        logger.close()
    return last_metrics


def _check_finite(state, config, checkpointer) -> None:
    """Raises naming the first non-finite step (policy "stop") before anything later is saved."""
    bad = int(state.nonfinite_step)
    if bad >= 0 and config.nan_policy == "stop":
        checkpointer.wait_until_finished()
        raise FloatingPointError(
            f"non-finite loss, gradient norm or updated params at step {bad}; stopped, and "
            f"nothing after it was saved. The last good checkpoint is step "
            f"{checkpointer.latest_step()}. Set config.nan_policy='skip' to drop such steps "
            f"instead.")


def evaluate(config, workdir, eval_fn, params, mesh, per_host_batch) -> dict[str, float]:
    """MLM and NSP loss/accuracy over `config.num_eval_steps` batches of the eval files."""
    totals = None
    batches = pretraining_batches(config, workdir, per_host_batch, 0, is_training=False)
    for _ in range(config.num_eval_steps):
        local = next(batches, None)
        if local is None:
            break
        with jax.set_mesh(mesh), sharding.axis_rules():
            sums = eval_fn(params, sharding.global_batch(local, mesh))
        totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
    if totals is None:
        return {}
    return {k: float(v) for k, v in train_step.summarise(totals).items()}
