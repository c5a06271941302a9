"""Many fine-tuning seeds in one compiled program: the engine of the stability sweeps.

Fine-tuning BERT on a small task is unstable across random seeds (Devlin et al. 2018; Mosbach et
al. 2021; Zhang et al. 2021), so stability is measured over many seeds (25 per arm in Mosbach et
al.). Here K seeds train side by side in ONE program: the train step of bertjax.train_step is
`jax.vmap`ped over a stacked state [K, ...] and stacked batches [K, B, ...], and the seed axis is
laid over the mesh's "data" axis (each device, or group of devices, holds whole seeds). The step
is pure and draws dropout from fold_in(state.rng, state.step), so the vmapped program computes
what K separate runs compute (`SeedTrainer.run(..., vectorised=False)` runs them one at a time,
for comparison: equal to float round-off).

The K-seed run is a Program of the one training loop (bertjax.trainer): checkpoints every
`checkpoint_every_steps`, exact resume in the middle of a chunk of seeds, SIGTERM, progress bar,
metrics.jsonl (every step: each seed's loss and per-layer gradient norms, from which the
records are built), TensorBoard. A seed whose step goes non-finite is frozen and recorded
(`nonfinite_step`); the others go on.

Use: `SeedTrainer(task, tx, schedule, max_seq_length=S, mesh=seed_mesh(K)).run(pretrained_bert,
train_features, dev_features, seed_components(range(K)), batch_size=B, num_epochs=E,
score_fn=..., workdir=W)`; experiments/stability/sweep.py drives it from a config.

A run's seed has three components, as Dodge et al. 2020 ("Fine-Tuning Pretrained Language
Models: Weight Initializations, Data Orders, and Early Stopping") separate them:
  init_seed     the classifier head's initialisation (and the re-initialised top layers, if any);
  data_seed     the order of the training examples (a fresh permutation every epoch);
  dropout_seed  the dropout masks.
Each defaults to the run seed; fixing one and varying the others isolates its effect.

Per seed the engine records the training loss at every step, the per-layer gradient norms
(bertjax.grad_norms, recorded inside the step) at chosen steps, the final dev metrics, and,
when the loop's `eval_every_steps` is set, the dev metrics at every evaluation (`dev_history`:
the last-versus-best checkpoint comparison of Mosbach et al. 2021 and Dodge et al. 2020's early
stopping need them; scoring reads the params only, so it changes nothing in training).

Shape legend: K seeds in one program, B batch, S sequence length, C classes, T train steps.
"""

from __future__ import annotations

import dataclasses
import tempfile
import math
from typing import Any, Callable, Iterator, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from bertjax import (grad_norms, metric_logging, modeling, pretrained, reinit, sharding, tasks,
                     train_step)
from bertjax import trainer as trainer_lib
from data_pipelines import finetune_input, storage


@dataclasses.dataclass(frozen=True)
class SeedComponents:
    """The seed of one run and the three seeds it decomposes into (Dodge et al. 2020)."""

    run_seed: int
    init_seed: int
    data_seed: int
    dropout_seed: int


def seed_components(run_seeds: Sequence[int], *, init_seed: int | None = None,
                    data_seed: int | None = None,
                    dropout_seed: int | None = None) -> list[SeedComponents]:
    """One SeedComponents per run seed; a component given here is held fixed across runs."""
    return [SeedComponents(int(seed),
                           int(seed) if init_seed is None else int(init_seed),
                           int(seed) if data_seed is None else int(data_seed),
                           int(seed) if dropout_seed is None else int(dropout_seed))
            for seed in run_seeds]


# ------------------------------------------------------------------------------------- meshes
def seed_mesh(seeds_per_program: int, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh whose "data" axis holds the seed axis: as many devices as divide K evenly.

    With D devices, gcd(K, D) of them are used, each holding K / gcd(K, D) whole seeds: 8 seeds
    on a v3-8 put one seed on each core; 6 seeds on 8 devices use 2 devices with 3 seeds each.
    Pick K a multiple of the device count to use them all.
    """
    devices = list(jax.devices() if devices is None else devices)
    size = math.gcd(int(seeds_per_program), len(devices))
    return jax.make_mesh((size, 1, 1), ("data", "fsdp", "tensor"),
                         axis_types=(jax.sharding.AxisType.Auto,) * 3, devices=devices[:size])


# The K-seed step runs under these rules: every logical axis unsplit. The seed axis alone is
# split (over "data", by the shardings of the stacked state and batches); the pretraining rules
# would also constrain each seed's batch to "data" inside the vmap, turning independent seeds
# into all-gathers and a gradient all-reduce across devices (benchmarks/tpu_compile.py shows it).
SEED_AXIS_RULES = tuple((name, None) for name, _ in sharding.LOGICAL_AXIS_RULES)


def _seed_sharding(mesh: Mesh | None, tree: Any) -> Any:
    """Every leaf [K, ...] split over "data" on its leading (seed) axis."""
    if mesh is None:
        return None
    return jax.tree.map(lambda _: NamedSharding(mesh, P("data")), tree)


# ----------------------------------------------------------------------------------- init
def _init_keys(seed: SeedComponents) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(head init key, re-init key, dropout key) of one run."""
    head_key = jax.random.PRNGKey(seed.init_seed)
    return head_key, jax.random.fold_in(head_key, 1), train_step.dropout_key(seed.dropout_seed)


def make_init_fn(task: tasks.Task, tx: optax.GradientTransformation, max_seq_length: int, *,
                 reinit_layers: int = 0, initializer_range: float = 0.02) -> Callable:
    """init(head_key, reinit_key, dropout_key, pretrained_bert) -> TrainState of one run.

    The head (e.g. "classifier") comes from the model's own initialiser with `head_key`; the
    encoder is `pretrained_bert` (BertModel params), with the top `reinit_layers` layers and the
    pooler re-initialised from `reinit_key` when reinit_layers > 0 (Zhang et al. 2021). The
    random encoder that `model.init` also draws is discarded (XLA removes it under jit).
    """
    dummy = modeling.dummy_inputs(1, max_seq_length)

    def init(head_key, reinit_key, dropout_key, pretrained_bert):
        params = nn.meta.unbox(task.model.init({"params": head_key}, *dummy)["params"])
        if "bert" not in params:
            raise ValueError(f"task model params have no 'bert' subtree: {sorted(params)}")
        params = dict(params, bert=jax.tree.map(
            lambda new, old: jnp.asarray(new, old.dtype), pretrained_bert, params["bert"]))
        if reinit_layers:
            params = reinit.reinit_top_layers(params, reinit_layers, reinit_key,
                                              initializer_range=initializer_range)
        return train_step.TrainState(
            step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
            rng=dropout_key, nonfinite_step=jnp.full((), -1, jnp.int32))

    return init


def check_pretrained(task: tasks.Task, pretrained_bert: Any, max_seq_length: int) -> None:
    """Raises ValueError naming the first tensor whose shape the model does not expect."""
    abstract = jax.eval_shape(lambda: nn.meta.unbox(task.model.init(
        {"params": jax.random.PRNGKey(0)}, *modeling.dummy_inputs(1, max_seq_length))["params"]))
    pretrained.merge_into(abstract, pretrained_bert, "pretrained encoder")


# ----------------------------------------------------------------------------------- data
# Grouped by length, every seed's batches follow the length-rank schedule of this seed.
LENGTH_SCHEDULE_SEED = 0


def stacked_train_batches(features: Mapping[str, np.ndarray], batch_size: int,
                          data_seeds: Sequence[int], num_epochs: int, start_step: int = 0,
                          group_by_length: int = 0, shared_length_schedule: bool = True
                          ) -> Iterator[dict[str, np.ndarray]]:
    """Yields {name: [K, B, ...]}: batch t of each seed's own shuffled order, stacked, from batch
    `start_step` on.

    Seed k's rows are exactly `finetune_input.train_batches(features, B, seed=data_seeds[k],
    num_epochs=num_epochs, group_by_length=...)`, so a seed trains on the same batches
    vectorised or alone. Grouped by length (M > 0), each seed groups its own permutation into
    batches of similar length; with `shared_length_schedule` (default) the batches of every
    seed are then ordered by one schedule of length ranks (LENGTH_SCHEDULE_SEED), so at step t
    all K seeds train on a batch of the same length rank and the stacked batch, cut to ONE
    bucket for its longest row, stays short. Each seed keeps its own batch composition; only
    WHEN a batch comes is shared (by its length rank). Without it, each seed shuffles its batch
    order with its own seed and the K-seed maximum is usually a long batch.
    """
    schedule = LENGTH_SCHEDULE_SEED if group_by_length and shared_length_schedule else None
    streams = [finetune_input.train_batches(features, batch_size, seed=int(seed),
                                            num_epochs=num_epochs, start_step=start_step,
                                            group_by_length=group_by_length,
                                            length_schedule_seed=schedule)
               for seed in data_seeds]
    for batches in zip(*streams):
        yield {name: np.stack([batch[name] for batch in batches]) for name in batches[0]}


def num_train_steps(features: Mapping[str, np.ndarray], batch_size: int, num_epochs: int) -> int:
    """T = epochs x floor(N / B) (the remainder of each epoch is dropped)."""
    num_examples = finetune_input.num_examples(features)
    steps = num_epochs * (num_examples // batch_size)
    if steps <= 0:
        raise ValueError(f"{num_epochs} epoch(s) of {num_examples} training examples in batches "
                         f"of {batch_size} is no step: the training set is smaller than one "
                         "batch (lower the batch size) or num_epochs < 1")
    return steps


def _training_features(features: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Only what the model and loss read travel to the device.
    keep = ("input_ids", "input_mask", "segment_ids", "label_ids")
    missing = [name for name in keep if name not in features]
    if missing:
        raise ValueError(f"training features lack {missing}; have {sorted(features)}")
    return {name: features[name] for name in keep}


# ----------------------------------------------------------------------------------- runs
@dataclasses.dataclass
class SeedsResult:
    """What `SeedTrainer.run` returns: the final stacked state and one record per seed."""

    state: train_step.TrainState  # leaves [K, ...]
    records: list[dict]
    learning_rate: list[float]  # [T], shared by every seed
    grad_norm_steps: list[int]


def grad_norm_steps(total_steps: int, first_steps: int, every: int) -> list[int]:
    """Steps whose gradient norms are kept: all of the first `first_steps`, then every `every`."""
    if every <= 0:
        raise ValueError(f"grad_norm_every must be positive, got {every}")
    return [t for t in range(total_steps) if t < first_steps or t % every == 0
            or t == total_steps - 1]


def loop_config(**overrides) -> ml_collections.ConfigDict:
    """The trainer settings of a sweep chunk: metrics every step (the records need each step's
    loss and gradient norms), a checkpoint every 100 steps, no export."""
    values = dict(log_every_steps=1, eval_every_steps=0, checkpoint_every_steps=100,
                  keep_checkpoints=1, async_checkpoints=True, nan_policy="stop",
                  tensorboard=False, allow_resume_changes="")
    values.update(overrides)
    return ml_collections.ConfigDict(values)


class SeedTrainer:
    """Compiles once, then fine-tunes any number of K-seed chunks from a pretrained encoder.

    Args:
      task: a bertjax.tasks Task (e.g. `tasks.classification(config, C)`).
      tx, schedule: the optimizer (WITHOUT grad-norm recording: it is added here) and its
        learning-rate schedule, e.g. from `optimizers.from_config`.
      max_seq_length: S of the features.
      reinit_layers: re-initialise the pooler and this many top layers (0: none).
      mixout_rate: mixout of the encoder towards the pretrained weights (0: none).
      length_buckets: static lengths batches are cut to (data_pipelines.finetune_input); ()
        pads every batch to max_seq_length.
      group_by_length: 0 (default) off; M > 0 groups each seed's training examples into
        batches of similar length in mega-batches of M batches, on the shared length-rank
        schedule (`stacked_train_batches`). Changes which examples share a batch.
      mesh: a mesh from `seed_mesh`; the seed axis is split over "data". None: default device.
    """

    def __init__(self, task: tasks.Task, tx: optax.GradientTransformation, schedule: Callable,
                 *, max_seq_length: int, reinit_layers: int = 0,
                 initializer_range: float = 0.02, mixout_rate: float = 0.0,
                 length_buckets: Sequence[int] = (), group_by_length: int = 0,
                 mesh: Mesh | None = None):
        self.task, self.schedule = task, schedule
        self.length_buckets = tuple(length_buckets)
        self.group_by_length = int(group_by_length)
        self.mesh = mesh if mesh is not None else seed_mesh(1)
        self.max_seq_length = max_seq_length
        self.mixout_rate = float(mixout_rate)
        tx = grad_norms.with_gradient_norms(tx)
        self._init_fn = make_init_fn(task, tx, max_seq_length, reinit_layers=reinit_layers,
                                     initializer_range=initializer_range)

        def step_one(state, batch, anchor):
            forward = tasks.with_mixout(task.forward, anchor, self.mixout_rate)
            step_fn = train_step.make_train_step(task.model, tx, schedule, forward=forward,
                                                 loss_sums=task.loss_sums)
            new_state, metrics = step_fn(state, batch)
            return new_state, {**metrics,
                               "grad_norms": grad_norms.read_gradient_norms(new_state.opt_state)}

        def predict_one(params, batch):
            return task.predict(task.forward(task.model, params, batch, None, True))

        self._init_many = {}  # per mesh
        self._step_many = jax.jit(jax.vmap(step_one, in_axes=(0, 0, None)), donate_argnums=0)
        self._predict_many = jax.jit(jax.vmap(predict_one, in_axes=(0, None)))

    def _mesh_for(self, num_seeds: int) -> Mesh:
        """The trainer's mesh, or (for fewer seeds than it splits, e.g. one at a time) a mesh
        over as many devices as divide them."""
        if num_seeds % self.mesh.shape["data"] == 0:
            return self.mesh
        return seed_mesh(num_seeds, list(self.mesh.devices.flat))

    def init_states(self, pretrained_bert: Any, seeds: Sequence[SeedComponents]
                    ) -> train_step.TrainState:
        """The stacked initial state [K, ...] of the seeds, placed on the mesh."""
        keys = [jnp.stack(parts) for parts in zip(*(_init_keys(seed) for seed in seeds))]
        mesh = self._mesh_for(len(seeds))
        if mesh not in self._init_many:  # built once per mesh: shardings need the structure
            init_many = jax.vmap(self._init_fn, in_axes=(0, 0, 0, None))
            abstract = jax.eval_shape(init_many, *keys, pretrained_bert)
            self._init_many[mesh] = jax.jit(init_many,
                                            out_shardings=_seed_sharding(mesh, abstract))
        return self._init_many[mesh](*keys, pretrained_bert)

    def program(self, pretrained_bert: Any, train_features: Mapping[str, np.ndarray],
                seeds: Sequence[SeedComponents], *, batch_size: int, num_epochs: int,
                identity: Mapping[str, Any] | None = None,
                dev_features: Mapping[str, np.ndarray] | None = None,
                score_fn: Callable[[np.ndarray, np.ndarray], dict] | None = None,
                eval_batch_size: int = 64) -> trainer_lib.Program:
        """The K seeds' training as a trainer.Program (see the module docstring). With
        `dev_features` and `score_fn`, its evaluation scores every seed on the dev set and logs
        one vector [K] per metric under split "dev"."""
        check_pretrained(self.task, pretrained_bert, self.max_seq_length)
        if np.shape(train_features["input_ids"])[1] != self.max_seq_length:
            raise ValueError(f"train input_ids have S={np.shape(train_features['input_ids'])[1]}"
                             f"; the trainer was built for max_seq_length={self.max_seq_length}")
        features = _training_features(train_features)
        mesh = self._mesh_for(len(seeds))
        abstract = self.abstract_state(pretrained_bert, seeds)
        anchor = jax.device_put(pretrained_bert, NamedSharding(mesh, P()))
        data_seeds = [seed.data_seed for seed in seeds]
        batch_sharding = NamedSharding(mesh, P("data"))
        seed_list = [dataclasses.asdict(seed) for seed in seeds]

        def evaluate(state, step):
            del step
            predictions, labels = self.predict(state.params, dev_features, eval_batch_size)
            scores = [score_fn(seed_predictions, labels) for seed_predictions in predictions]
            return {"dev": {name: np.asarray([float(score[name]) for score in scores])
                            for name in scores[0]}}
        return trainer_lib.Program(
            kind="sweep", mesh=mesh,
            num_train_steps=num_train_steps(features, batch_size, num_epochs),
            init_state=lambda: self.init_states(pretrained_bert, seeds),
            abstract_state=abstract,
            step=lambda state, batch: self._step_many(state, batch, anchor),
            batches=lambda start: self._bucketed(stacked_train_batches(
                features, batch_size, data_seeds, num_epochs, start, self.group_by_length)),
            to_device=lambda batch: jax.device_put(batch, batch_sharding),
            identity={**dict(identity or {}), "seeds": seed_list, "batch_size": batch_size,
                      "num_epochs": num_epochs,
                      **({"group_by_length": self.group_by_length}
                         if self.group_by_length else {})},
            tokens_per_step=len(seeds) * batch_size * self.max_seq_length,
            evaluate=evaluate if dev_features is not None and score_fn is not None else None,
            stop_on_nonfinite=False, axis_rules=SEED_AXIS_RULES)

    def abstract_state(self, pretrained_bert: Any, seeds: Sequence[SeedComponents]
                       ) -> train_step.TrainState:
        """The stacked state [K, ...] as ShapeDtypeStructs with their seed shardings, nothing
        allocated; `pretrained_bert` may itself be ShapeDtypeStructs."""
        keys = [jnp.stack(parts) for parts in zip(*(_init_keys(seed) for seed in seeds))]
        abstract = jax.eval_shape(jax.vmap(self._init_fn, in_axes=(0, 0, 0, None)), *keys,
                                  pretrained_bert)
        return jax.tree.map(lambda leaf, placement: jax.ShapeDtypeStruct(
            leaf.shape, leaf.dtype, sharding=placement), abstract,
            _seed_sharding(self._mesh_for(len(seeds)), abstract))

    def lower_step(self, abstract_state: train_step.TrainState, batch_size: int,
                   abstract_anchor: Any):
        """The vmapped K-seed train step (the one `program` runs) lowered for ahead-of-time
        compilation: stacked batches [K, B, S] of the training features, split over seeds, and
        the mixout anchor (BertModel params) replicated, as `program` places them."""
        num_seeds = jax.tree.leaves(abstract_state)[0].shape[0]
        mesh = self._mesh_for(num_seeds)
        shape = (num_seeds, batch_size, self.max_seq_length)
        batch = {name: jax.ShapeDtypeStruct(shape[:2] if name == "label_ids" else shape,
                                            jnp.int32, sharding=NamedSharding(mesh, P("data")))
                 for name in ("input_ids", "input_mask", "segment_ids", "label_ids")}
        anchor = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(
            leaf.shape, leaf.dtype, sharding=NamedSharding(mesh, P())), abstract_anchor)
        with jax.set_mesh(mesh), sharding.axis_rules(SEED_AXIS_RULES):  # as the loop runs it
            return self._step_many.lower(abstract_state, batch, anchor)

    def _bucketed(self, batches: Iterator[dict]) -> Iterator[dict]:
        for batch in batches:  # [K, B, S]: the sequence axis is 2
            yield (finetune_input.trim_to_bucket(batch, self.length_buckets, seq_axis=2)
                   if self.length_buckets else batch)

    def run(self, pretrained_bert: Any, train_features: Mapping[str, np.ndarray],
            dev_features: Mapping[str, np.ndarray] | None, seeds: Sequence[SeedComponents], *,
            batch_size: int, num_epochs: int,
            score_fn: Callable[[np.ndarray, np.ndarray], dict], eval_batch_size: int = 64,
            vectorised: bool = True, grad_norm_first_steps: int = 50,
            grad_norm_every: int = 10, workdir: str | None = None,
            config: ml_collections.ConfigDict | None = None,
            identity: Mapping[str, Any] | None = None) -> SeedsResult:
        """Fine-tunes the K `seeds` through the training loop and scores each on the dev set.

        Args:
          pretrained_bert: BertModel params {embeddings, encoder, pooler}.
          train_features, dev_features: {input_ids, input_mask, segment_ids: [N, S],
            label_ids: [N]}; dev_features None skips scoring (dev_metrics {}).
          seeds: the K runs.
          batch_size, num_epochs: B and epochs; every seed takes T = epochs x floor(N / B) steps.
          score_fn: (predictions [N], labels [N]) -> {metric: value} on the real dev examples.
          vectorised: True runs the K seeds in one vmapped program; False one after another
            (K programs of one seed; same results; used to check the vectorisation).
          grad_norm_first_steps, grad_norm_every: which steps' gradient norms are recorded.
          workdir: where checkpoints and metrics.jsonl go; rerunning with the same workdir
            resumes (default: a temporary folder, removed afterwards).
          config: the loop's settings (default `loop_config()`); its `eval_every_steps` (> 0)
            scores every seed on the dev set that often (and at the end) into `dev_history`.
          identity: the values that define this sweep (checked on resume).
        """
        if not seeds:
            raise ValueError("SeedTrainer.run needs at least one seed")
        config = config or loop_config()
        if workdir is None:
            with tempfile.TemporaryDirectory() as temporary:
                return self.run(pretrained_bert, train_features, dev_features, seeds,
                                batch_size=batch_size, num_epochs=num_epochs, score_fn=score_fn,
                                eval_batch_size=eval_batch_size, vectorised=vectorised,
                                grad_norm_first_steps=grad_norm_first_steps,
                                grad_norm_every=grad_norm_every, workdir=temporary,
                                config=config, identity=identity)
        if vectorised:
            groups = [list(seeds)]
        else:
            groups = [[seed] for seed in seeds]
        states, histories, dev_histories = [], [], []
        for index, group in enumerate(groups):
            folder = workdir if vectorised else storage.join(workdir, f"seed_{index}")
            program = self.program(pretrained_bert, train_features, group,
                                   batch_size=batch_size, num_epochs=num_epochs,
                                   identity=identity, dev_features=dev_features,
                                   score_fn=score_fn, eval_batch_size=eval_batch_size)
            captured = {}
            program.finish = lambda state, captured=captured: captured.update(state=state) or {}
            trainer_lib.train(program, config, folder)
            if "state" not in captured:  # preempted: the caller reruns to resume
                raise InterruptedError(f"sweep chunk in {folder} was preempted; rerun to resume")
            states.append(captured["state"])
            logged = metric_logging.read_jsonl(storage.join(folder, "metrics.jsonl"))
            histories.append(_history(logged, folder, program.num_train_steps))
            dev_histories.append(_dev_history(logged))
        state = states[0] if vectorised else jax.tree.map(
            lambda *leaves: jnp.concatenate(leaves), *states)
        history = histories[0] if vectorised else {
            key: np.concatenate([h[key] for h in histories], axis=1) for key in histories[0]}
        dev_history = dev_histories[0] if vectorised else {
            key: (dev_histories[0][key] if key == "steps" else
                  np.concatenate([h[key] for h in dev_histories], axis=1))
            for key in dev_histories[0]}
        total_steps = num_train_steps(_training_features(train_features), batch_size, num_epochs)
        kept_steps = grad_norm_steps(total_steps, grad_norm_first_steps, grad_norm_every)
        if dev_features is not None:
            predictions, labels = self.predict(state.params, dev_features, eval_batch_size)
        one_seed = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype),
                                state.params)
        groups_names = grad_norms.group_names(one_seed)  # bottom to top
        nonfinite = sharding.to_host(state.nonfinite_step)  # seeds may span several hosts
        records = []
        for k, seed in enumerate(seeds):
            records.append({
                **dataclasses.asdict(seed),
                "dev_metrics": {} if dev_features is None else {
                    name: float(value) for name, value in score_fn(predictions[k], labels).items()},
                "train_loss": [float(x) for x in history["loss"][:, k]],
                "grad_norms": {group: [float(history[f"grad_norms/{group}"][t, k])
                                       for t in kept_steps] for group in groups_names},
                "nonfinite_step": int(nonfinite[k]),
                "dev_history": {key: (list(values) if key == "steps" else
                                      [float(x) for x in values[:, k]])
                                for key, values in dev_history.items()},
            })
        learning_rate = [float(x) for x in np.asarray(self.schedule(jnp.arange(total_steps)))]
        return SeedsResult(state, records, learning_rate, kept_steps)

    def predict(self, stacked_params: Any, dev_features: Mapping[str, np.ndarray],
                batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(predictions [K, N], labels [N]) of K stacked param sets on every dev example once."""
        labels = np.asarray(dev_features["label_ids"])
        dev = _training_features(dev_features)
        # The batch goes, whole, to every device that holds some of the params.
        devices = sorted(jax.tree.leaves(stacked_params)[0].sharding.device_set,
                         key=lambda device: device.id)
        replicated = NamedSharding(Mesh(np.asarray(devices), ("data",)), P())
        chunks, positions = [], []
        for batch in finetune_input.eval_batches(dev, batch_size, self.length_buckets):
            weight = batch.pop(finetune_input.EXAMPLE_WEIGHT_KEY)
            position = batch.pop(finetune_input.EXAMPLE_POSITION_KEY, None)
            batch = jax.device_put(batch, replicated)
            chunks.append(sharding.to_host(self._predict_many(stacked_params, batch))[:, weight > 0])
            if position is not None:
                positions.append(position[weight > 0])
        predictions = np.concatenate(chunks, axis=1)
        if positions:  # bucketed: back to file order
            predictions = predictions[:, np.argsort(np.concatenate(positions), kind="stable")]
        return predictions, labels


def _dev_history(logged: list[dict]) -> dict[str, Any]:
    """{"steps": [E], metric: [E, K]} of a chunk's dev evaluations ({} when none ran), from
    its metrics.jsonl records."""
    records = [r for r in logged if r["split"] == "dev"]
    if not records:
        return {}
    keys = [k for k in records[0] if k not in ("step", "split")]
    return {"steps": [int(r["step"]) for r in records],
            **{key: np.asarray([np.atleast_1d(r[key]) for r in records]) for key in keys}}


def _history(logged: list[dict], workdir: str, total_steps: int) -> dict[str, np.ndarray]:
    """Per-step metrics [T, K] of a chunk, from its metrics.jsonl records (one train record a
    step; `workdir` names the file in errors)."""
    records = [r for r in logged if r["split"] == "train"]
    steps = [r["step"] for r in records]
    if steps != list(range(1, total_steps + 1)):
        raise ValueError(f"{workdir}/metrics.jsonl has train records for steps {steps[:3]}..."
                         f"{steps[-3:]}; expected every step 1..{total_steps}")
    keys = [k for k in records[0] if k == "loss" or k.startswith("grad_norms/")]
    return {key: np.asarray([np.atleast_1d(r[key]) for r in records]) for key in keys}
