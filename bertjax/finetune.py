"""Fine-tuning as a Program of the one training loop: GLUE, SQuAD v1.1/v2.0, CoNLL NER and the
offline docstring-topic task.

    python -m bertjax.main --config=experiments/finetune/glue.py:task=rte --workdir=W \
        --config.init_checkpoint=PATH     # HF folder, original TF checkpoint or bertjax export
        [--config.data.num_length_buckets=4 [--config.data.group_by_length=True]]

The encoder comes from `init_checkpoint` (its architecture; dropout, dtype, remat and scan come
from config.model) through the one loader (bertjax.pretrained), and the task head is freshly
initialised unless the checkpoint already has this head (a fine-tuned model to evaluate or train
on: with num_train_steps = num_train_epochs = 0 the run only evaluates). Training is the loop's
(bertjax.trainer): checkpoints, exact resume (the data order is a pure function of the seed and
the step, grouped by length or not; dropout of the step), SIGTERM, nan_policy, metrics and
progress, like pretraining.
At the end every eval split is predicted, scored with the official metric (bertjax.metrics) and
written to WORKDIR: predictions_<split>.json, metrics.json; and the model with its head, its
config, its class names and its vocab is exported to WORKDIR/export, which
`python -m bertjax.convert --from=bertjax --to=hf` turns into a transformers model.

num_length_buckets cuts each batch to a few static lengths (the padded run's results);
group_by_length also batches examples of similar length together (faster on short-sentence
tasks, but other batches: data_pipelines.finetune_input).

Every process feeds its own rows of each global batch and gathers the predictions of all.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import jax
import ml_collections
import numpy as np

from bertjax import (finetune_data, flops, modeling, optimizers, pretrained, reinit, sharding,
                     tasks, train_step, trainer)
from bertjax.config import BertConfig
from bertjax.train import bert_config_from, export_params
from data_pipelines import finetune_input, storage, tokenization, tokenizers

# Fields of config.model that may override a checkpoint's config (everything but architecture).
_RUNTIME_FIELDS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "dtype", "param_dtype",
                   "remat", "remat_policy", "scan_layers")

# Host-side bookkeeping columns of the feature dicts; never sent to the devices.
_HOST_ONLY = ("unique_ids", "example_index", "word_start_positions", "is_impossible")


def load_encoder(config: ml_collections.ConfigDict
                 ) -> tuple[BertConfig, pretrained.Pretrained | None, str]:
    """(BertConfig, the loaded checkpoint or None, vocab file) of a fine-tuning run."""
    overrides = {k: v for k, v in dict(config.model).items() if k in _RUNTIME_FIELDS}
    if not config.init_checkpoint:
        logging.warning("no init_checkpoint: fine-tuning a randomly initialised encoder")
        return (bert_config_from(config.model), None,
                config.data.vocab_file or str(tokenization.bundled_uncased_vocab_file()))
    source = pretrained.load(config.init_checkpoint, scan_layers=overrides.get("scan_layers"))
    bert_config = source.config.replace(**overrides)
    vocab_file = (config.data.vocab_file or source.vocab_file
                  or str(tokenization.bundled_uncased_vocab_file()))
    return bert_config, source, vocab_file


def device_features(features: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in features.items() if k not in _HOST_ONLY}


def num_train_steps_of(config, num_examples: int) -> int:
    """T from config.num_train_steps, else num_train_epochs x floor(N / B); 0 evaluates only."""
    steps_per_epoch = num_examples // config.batch_size
    if config.num_train_steps:
        return int(config.num_train_steps)
    if not config.num_train_epochs:
        return 0
    if steps_per_epoch == 0:
        raise ValueError(f"the training set has {num_examples} examples, fewer than one batch "
                         f"(config.batch_size={config.batch_size}): lower the batch size")
    steps = int(config.num_train_epochs * steps_per_epoch)
    if steps == 0:
        raise ValueError(f"config.num_train_epochs={config.num_train_epochs} x {steps_per_epoch} "
                         f"steps per epoch ({num_examples} examples, config.batch_size="
                         f"{config.batch_size}) is less than one step: raise num_train_epochs "
                         "or set num_train_steps")
    return steps


def predict_all(task: tasks.Task, params, features: dict[str, np.ndarray], batch_size: int,
                mesh, length_buckets: tuple[int, ...] = ()) -> dict[str, np.ndarray]:
    """Runs `task.predict` over every example once (the padding of the last batch dropped), in
    file order; the result is whole on every process. With `length_buckets` the batches are
    cut to their bucket and per-token outputs padded back to S (logits with -1e9 there: no
    span can start or end in padding)."""
    predict = jax.jit(lambda p, b: task.predict(task.forward(task.model, p, b, None, True)))
    rows = sharding.process_rows(mesh, batch_size)
    full = np.shape(features["input_ids"])[1]
    outputs, weights, positions = [], [], []
    for batch in finetune_input.eval_batches(device_features(features), batch_size,
                                             length_buckets):
        position = batch.pop(finetune_input.EXAMPLE_POSITION_KEY, None)
        local = {k: v[rows] for k, v in batch.items()}
        with jax.set_mesh(mesh), sharding.axis_rules():
            out = predict(params, sharding.global_batch(local, mesh))
        outputs.append(jax.tree_util.tree_map(lambda x: _pad_to(x, full),
                                              sharding.to_host(out)))
        weights.append(batch[finetune_input.EXAMPLE_WEIGHT_KEY])
        if position is not None:
            positions.append(position)
    real = np.concatenate(weights) > 0
    stacked = jax.tree_util.tree_map(lambda *xs: np.concatenate(xs)[real], *outputs)
    if positions:
        order = np.argsort(np.concatenate(positions)[real], kind="stable")
        stacked = jax.tree_util.tree_map(lambda x: x[order], stacked)
    return stacked


def _pad_to(array: np.ndarray, length: int) -> np.ndarray:
    """[B, L, ...] -> [B, S, ...]: floats padded with -1e9, integers with 0."""
    if array.ndim < 2 or array.shape[1] >= length:
        return array
    fill = -1e9 if np.issubdtype(array.dtype, np.floating) else 0
    widths = [(0, 0), (0, length - array.shape[1])] + [(0, 0)] * (array.ndim - 2)
    return np.pad(array, widths, constant_values=fill)


def build_program(config: ml_collections.ConfigDict, workdir: str) -> trainer.Program:
    """The fine-tuning run of `config` as a trainer.Program."""
    bert_config, source, vocab_file = load_encoder(config)
    tokenizer = tokenizers.from_data_config(config.data, vocab_file)
    tokenizers.check_vocab_size(tokenizer, bert_config.vocab_size)
    data = finetune_data.prepare(config, bert_config, tokenizer)
    task = data.task
    mesh = sharding.create_mesh(dict(config.mesh))
    sharding.per_host_batch_size(config.batch_size, mesh)  # checks the batch divides evenly
    rows = sharding.process_rows(mesh, config.batch_size)
    train_features = device_features(data.train_features)
    buckets = (finetune_input.length_buckets_of(config.data.max_seq_length,
                                                config.data.num_length_buckets)
               if config.data.num_length_buckets else ())
    group_by_length = finetune_input.group_by_length_of(config.data)
    num_steps = num_train_steps_of(config, finetune_input.num_examples(train_features))
    opt = optimizers.from_config(config.optimizer, max(num_steps, 1),
                                 bert_config.num_hidden_layers)
    init_args = modeling.dummy_inputs(1, config.data.max_seq_length)
    abstract, shardings = train_step.abstract_train_state(task.model, opt.tx, mesh, config.seed,
                                                          init_args)

    def initial_params():
        state, _ = train_step.init_train_state(task.model, opt.tx, mesh, config.seed, init_args)
        params = state.params
        if source is not None:
            params = pretrained.merge_into(params, source)
        if config.reinit_layers:
            params = reinit.reinit_top_layers(sharding.to_host(params), config.reinit_layers,
                                              jax.random.PRNGKey(config.seed + 1),
                                              initializer_range=bert_config.initializer_range)
        return state, jax.device_put(params, shardings.params)

    def init_state():
        state, params = initial_params()
        opt_state = jax.jit(opt.tx.init, out_shardings=shardings.opt_state)(params)
        return state.replace(params=params, opt_state=opt_state)

    step = _train_step(config, task, opt, shardings, lambda: initial_params()[1]["bert"])

    def batches(start_step: int):
        for batch in finetune_input.train_batches(train_features, config.batch_size,
                                                  seed=config.seed, num_epochs=None,
                                                  num_steps=num_steps, start_step=start_step,
                                                  group_by_length=group_by_length):
            if buckets:
                batch = finetune_input.trim_to_bucket(batch, buckets)
            yield {k: v[rows] for k, v in batch.items()}

    def evaluate(state, step_number: int) -> dict[str, dict[str, float]]:
        del step_number
        return {eval_set.name: eval_set.score(predict_all(
            task, state.params, eval_set.features, config.eval_batch_size, mesh, buckets))[0]
            for eval_set in data.eval_sets}

    def finish(state) -> dict[str, Any]:
        results = {}
        for eval_set in data.eval_sets:
            predictions = predict_all(task, state.params, eval_set.features,
                                      config.eval_batch_size, mesh, buckets)
            scores, to_write = eval_set.score(predictions)
            results[eval_set.name] = scores
            if jax.process_index() == 0:
                storage.write_text(storage.join(workdir, f"predictions_{eval_set.name}.json"),
                                   json.dumps(to_write, indent=1, default=_to_json))
        if jax.process_index() == 0:
            storage.write_text(storage.join(workdir, "metrics.json"),
                               json.dumps(results, indent=2))
        export_dir = None
        if config.get("export", True):
            export_dir = storage.join(storage.absolute(workdir), "export")
            export_params(bert_config, state.params, export_dir, vocab_file=vocab_file,
                          labels=data.labels)
        return {"metrics": results, "export": export_dir}

    return trainer.Program(
        kind="finetune", mesh=mesh, num_train_steps=num_steps, init_state=init_state,
        abstract_state=abstract, step=step, batches=batches,
        to_device=lambda local: sharding.global_batch(local, mesh),
        identity=trainer.identity_of(config),
        tokens_per_step=config.batch_size * config.data.max_seq_length,
        flops_per_step=flops.finetune_flops_per_step(
            bert_config, config.batch_size, config.data.max_seq_length,
            getattr(task.model, "num_labels", 2), per_token=task.kind != "classification"),
        evaluate=evaluate if config.eval_every_steps else None, finish=finish)


def _train_step(config, task: tasks.Task, opt, shardings, initial_encoder):
    """The jitted step. With mixout the encoder's initial params (the pretrained weights, after
    any re-initialisation: a pure function of the checkpoint and the seed, so a resumed run
    rebuilds the same) ride along as a device argument: not a compiled-in constant, and not
    part of the checkpointed state."""
    make = lambda forward: train_step.make_train_step(  # noqa: E731
        task.model, opt.tx, opt.schedule, grad_accum_steps=config.grad_accum_steps,
        nan_policy=config.nan_policy, forward=forward, loss_sums=task.loss_sums)
    rate = float(config.mixout_rate or 0.0)
    if not rate:
        return train_step.jit_train_step(make(task.forward), shardings)
    if not config.init_checkpoint:
        raise ValueError("config.mixout_rate needs an init_checkpoint to mix towards")
    anchor = initial_encoder()
    jitted = jax.jit(lambda state, batch, anchor: make(tasks.with_mixout(
        task.forward, anchor, rate))(state, batch),
        in_shardings=(shardings, None, shardings.params["bert"]),
        out_shardings=(shardings, None), donate_argnums=0)
    return lambda state, batch: jitted(state, batch, anchor)


def run(config: ml_collections.ConfigDict, workdir: str) -> dict[str, dict[str, float]]:
    """Fine-tunes and evaluates; returns {eval split: metrics}."""
    outcome = trainer.train(build_program(config, workdir), config, workdir)
    return outcome["results"].get("metrics", {})


def _to_json(value):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value)} as JSON")
