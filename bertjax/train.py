"""Pretraining as a Program of the one training loop (bertjax.trainer).

    python -m bertjax.main --config=experiments/pretrain_tiny.py --workdir=/tmp/tiny

The model is BertForPreTraining (MLM + NSP) from `config.model` (a preset plus overrides); its
batches come from data_pipelines.pretraining_data (`config.data`); `config.init_checkpoint`
(phase 2, continued pretraining) starts it from any checkpoint format, heads included when the
checkpoint has them. Every `eval_every_steps` the MLM/NSP loss and accuracy over
`num_eval_steps` batches of the eval files are logged. At the end the params are exported in
bertjax's checkpoint format to WORKDIR/export (with the vocab), which fine-tuning and the next
phase read with `--config.init_checkpoint=WORKDIR/export`. Resume, preemption, NaN handling
and logging are the loop's (see bertjax/trainer.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import jax
import jax.numpy as jnp
import ml_collections

from bertjax import (flops, modeling, optimizers, pretrained, sharding, train_step, trainer)
from bertjax.config import BertConfig, preset
from data_pipelines import features, storage


def bert_config_from(model_config: ml_collections.ConfigDict) -> BertConfig:
    """BertConfig from `config.model`: a preset name plus field overrides."""
    values = dict(model_config)
    name = values.pop("preset", None)
    return preset(name, **values) if name else BertConfig(**values)


def _data_spec(config, workdir: str):
    from data_pipelines import pretraining_data  # tf.data is imported lazily

    values = dict(config.data)
    # Shared schema keys for fine-tuning batches; pretraining records are all S long.
    for key in ("num_length_buckets", "group_by_length", "group_by_length_megabatches"):
        values.pop(key, None)
    values["cache_dir"] = values.get("cache_dir") or storage.join(workdir, "data")
    return pretraining_data.PretrainingDataSpec(**values)


def pretraining_batches(config: ml_collections.ConfigDict, workdir: str, rows: slice,
                        start_step: int, *, is_training: bool = True) -> Iterator[dict]:
    """This host's `rows` of every global batch from `config.data` (data_pipelines.pretraining_data).

    The data layer numbers a host's share by its rows (rows.start // B), not by
    jax.process_index(): the mesh decides which rows a process's devices hold.
    """
    from data_pipelines import pretraining_data

    per_host_batch = rows.stop - rows.start
    return pretraining_data.pretraining_batches(
        _data_spec(config, workdir), per_host_batch_size=per_host_batch, start_step=start_step,
        is_training=is_training, process_index=rows.start // per_host_batch,
        process_count=config.batch_size // per_host_batch)


@dataclasses.dataclass
class StepParts:
    """What a pretraining run compiles, built from its config alone (no data, no arrays).

    `step` is the jitted train step exactly as the loop runs it (grad accumulation, remat,
    scan, the optimizer, the NaN guard); `abstract_state` and `abstract_batch()` are its
    ShapeDtypeStruct inputs with their shardings, so `step.lower(...)` compiles it ahead of time
    for any devices (benchmarks/tpu_compile.py: a TPU topology with no TPU present).
    """

    bert_config: BertConfig
    model: modeling.BertForPreTraining
    mesh: Any
    optimizer: optimizers.OptimizerAndSchedule
    init_args: tuple
    abstract_state: Any
    state_shardings: Any
    step: Any
    batch_size: int
    max_seq_length: int
    max_predictions_per_seq: int

    def abstract_batch(self) -> dict[str, jax.ShapeDtypeStruct]:
        """The global batch [B, S] / [B, P] / [B] as the loop feeds it, split over the batch
        axes of the mesh."""
        shapes = features.batch_shapes(self.batch_size, self.max_seq_length,
                                       self.max_predictions_per_seq)
        return {name: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding.batch_sharding(
            self.mesh, len(shape))) for name, (shape, dtype) in shapes.items()}


def build_step(config: ml_collections.ConfigDict, devices=None) -> StepParts:
    """The model, mesh (over `devices`, default all), optimizer, abstract state and jitted
    train step of a pretraining config: the part of `build_program` that needs no data."""
    bert_config = bert_config_from(config.model)
    if config.data.get("source") in ("dynamic", "default_corpus"):  # ids made from text here
        from data_pipelines import tokenizers  # pylint: disable=import-outside-toplevel

        tokenizers.check_vocab_size(tokenizers.from_data_config(config.data),
                                    bert_config.vocab_size)
    model = modeling.BertForPreTraining(bert_config)
    mesh = sharding.create_mesh(dict(config.mesh), devices)
    num_train_steps = int(config.num_train_steps)
    if num_train_steps <= 0:
        raise ValueError(f"config.num_train_steps={num_train_steps}: pretraining needs a "
                         "positive step budget")
    opt = optimizers.from_config(config.optimizer, num_train_steps,
                                 bert_config.num_hidden_layers)
    init_args = modeling.dummy_inputs(1, config.data.max_seq_length)
    abstract, shardings = train_step.abstract_train_state(model, opt.tx, mesh, config.seed,
                                                          init_args)
    step = train_step.jit_train_step(
        train_step.make_train_step(model, opt.tx, opt.schedule,
                                   grad_accum_steps=config.grad_accum_steps,
                                   nan_policy=config.nan_policy), shardings)
    return StepParts(bert_config, model, mesh, opt, init_args, abstract, shardings, step,
                     int(config.batch_size), int(config.data.max_seq_length),
                     int(config.data.max_predictions_per_seq))


def build_program(config: ml_collections.ConfigDict, workdir: str) -> trainer.Program:
    """The pretraining run of `config` as a trainer.Program."""
    parts = build_step(config)
    bert_config, model, mesh, opt = parts.bert_config, parts.model, parts.mesh, parts.optimizer
    sharding.per_host_batch_size(config.batch_size, mesh)  # checks the batch divides evenly
    rows = sharding.process_rows(mesh, config.batch_size)
    num_train_steps = int(config.num_train_steps)
    data = config.data
    init_args, abstract, shardings = parts.init_args, parts.abstract_state, parts.state_shardings

    def init_state():
        state, _ = train_step.init_train_state(model, opt.tx, mesh, config.seed, init_args)
        if not config.get("init_checkpoint"):
            return state
        source = pretrained.load(config.init_checkpoint, scan_layers=bert_config.scan_layers)
        params = jax.device_put(pretrained.merge_into(state.params, source),
                                shardings.params)
        opt_state = jax.jit(opt.tx.init, out_shardings=shardings.opt_state)(params)
        return state.replace(params=params, opt_state=opt_state)

    step = parts.step

    def batches(start_step: int):
        for local in pretraining_batches(config, workdir, rows, start_step):
            train_step.validate_pretraining_batch(bert_config, local,
                                                  data.max_predictions_per_seq)
            yield local

    eval_fn = jax.jit(train_step.make_eval_step(model))

    def evaluate(state, step_number: int) -> dict[str, dict[str, float]]:
        del step_number
        totals = None
        stream = pretraining_batches(config, workdir, rows, 0, is_training=False)
        for _ in range(config.num_eval_steps):
            local = next(stream, None)
            if local is None:
                break
            with jax.set_mesh(mesh), sharding.axis_rules():
                sums = eval_fn(state.params, sharding.global_batch(local, mesh))
            totals = sums if totals is None else jax.tree_util.tree_map(jnp.add, totals, sums)
        if totals is None:
            return {}
        return {"eval": {k: float(v) for k, v in train_step.summarise(totals).items()}}

    def finish(state) -> dict[str, Any]:
        if not config.get("export", True):
            return {}
        export_dir = storage.join(storage.absolute(workdir), "export")
        export_params(bert_config, state.params, export_dir, vocab_file=data.get("vocab_file"))
        return {"export": export_dir}

    return trainer.Program(
        kind="pretrain", mesh=mesh, num_train_steps=num_train_steps, init_state=init_state,
        abstract_state=abstract, step=step, batches=batches,
        to_device=lambda local: sharding.global_batch(local, mesh),
        identity=trainer.identity_of(config),
        tokens_per_step=config.batch_size * data.max_seq_length,
        flops_per_step=flops.train_flops_per_step(bert_config, config.batch_size,
                                                  data.max_seq_length,
                                                  data.max_predictions_per_seq),
        evaluate=evaluate if config.get("eval_every_steps") else None, finish=finish)


def export_params(bert_config: BertConfig, params, export_dir: str, *,
                  vocab_file: str | None = None, labels=None) -> None:
    """Writes params (gathered from every host) in bertjax's checkpoint format, with the vocab
    (default: the bundled bert-base-uncased one) beside them, as the original releases ship."""
    from bertjax import convert  # checkpoint formats are only needed here
    from data_pipelines import corpora

    host_params = sharding.to_host(params)
    convert.save_checkpoint(bert_config, host_params, export_dir, labels=labels)
    if jax.process_index() == 0:
        storage.copy(vocab_file or corpora.default_vocab_file(),
                     storage.join(export_dir, "vocab.txt"))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Runs pretraining to `config.num_train_steps`; returns the last logged train metrics."""
    return trainer.train(build_program(config, workdir), config, workdir)["train"]
