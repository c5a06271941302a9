"""The one training loop: pretraining, fine-tuning and the stability sweeps all run through it.

A kind of run describes itself as a `Program` (bertjax.pretraining, bertjax.finetune and
bertjax.sweep build them): its initial state, its jitted step, its batches and what happens
at evaluation and at the end. `train(program, config, workdir)` then does everything else the
same way for all of them:

  * resume: the newest complete checkpoint under WORKDIR/checkpoints is restored straight into
    its shardings after its identity (the config values that define the experiment) was
    checked against this run's (bertjax.checkpointing.check_identity); the state holds the step
    (= the data position: every input stream is a pure function of its seed and step) and the
    dropout key, so a resumed run logs bit for bit what an uninterrupted one logs;
  * orbax checkpoints every `checkpoint_every_steps` (0: only at the end) and at the end;
  * SIGTERM (TPU maintenance, SLURM preemption) saves at the next step and returns normally, all
    hosts at the same step; before the first step completes SIGTERM keeps its default action
    (the process ends with a non-zero status; nothing has been written yet), so a run stuck in
    start-up can always be stopped;
  * `nan_policy`: "stop" raises naming the first non-finite step (numbered from 1, as metrics and
    checkpoints are) before anything after it is saved; "skip" drops such steps, warns at each
    log with the count, and raises after MAX_CONSECUTIVE_SKIPS skipped steps in a row, or when
    the run ends on skipped steps (nothing is exported from a run that stopped learning);
  * metrics.jsonl, TensorBoard (`config.tensorboard`), a progress bar, steps/s, tokens/s and
    MFU (bertjax.metric_logging, bertjax.flops).

Config keys read here (one schema for every kind of run; see experiments/base_config.py):
log_every_steps, eval_every_steps, checkpoint_every_steps, keep_checkpoints, async_checkpoints,
nan_policy, tensorboard, allow_resume_changes.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from typing import Any, Callable, Iterator, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from bertjax import checkpointing, flops, metric_logging, sharding
from data_pipelines import storage

# Config keys a resumed run may change freely: how it logs, saves, evaluates and is laid out
# on devices, not what it computes. Everything else belongs to the run's identity.
RUNTIME_KEYS = ("log_every_steps", "eval_every_steps", "num_eval_steps",
                "checkpoint_every_steps", "keep_checkpoints", "async_checkpoints", "tensorboard",
                "allow_resume_changes", "eval_batch_size", "init_checkpoint", "export",
                "mesh.data", "mesh.fsdp", "mesh.tensor", "data.cache_dir", "model.remat",
                "model.remat_policy", "tpu_topology")
# nan_policy="skip" gives up after this many non-finite steps in a row (counted at log
# boundaries: a log interval counts only when every one of its steps was skipped).
MAX_CONSECUTIVE_SKIPS = 100


@dataclasses.dataclass
class Program:
    """One kind of run, as the loop sees it.

    Attributes:
      kind: "pretrain", "finetune" or "sweep" (recorded with each checkpoint).
      mesh: the device mesh every step runs under.
      num_train_steps: T, the steps of the run.
      init_state: builds the fresh train state on the mesh (pretrained weights loaded).
      abstract_state: ShapeDtypeStructs with shardings: the restore target.
      step: the jitted train step, (state, device batch) -> (state, metrics).
      batches: start_step -> iterator of host-local numpy batches from that step on.
      to_device: host-local batch -> global device arrays.
      identity: the values that define the experiment (checked on resume).
      tokens_per_step, flops_per_step: for tokens/s and MFU (0: not reported).
      evaluate: (state, step) -> {split: metrics}, run every `eval_every_steps` (> 0) and at
        the last step.
      finish: state -> results, after the last step (predictions, exports); its "metrics"
        ({split: metrics}) are logged at the last step.
      stop_on_nonfinite: False where a non-finite step is a result, not an error (a seed of a
        stability sweep that diverges is recorded and the others go on).
      axis_rules: the logical-axis rules the step runs under (bertjax.sharding); the sweep's
        are its own (whole seeds per device, nothing inside a seed split).
    """

    kind: str
    mesh: Any
    num_train_steps: int
    init_state: Callable[[], Any]
    abstract_state: Any
    step: Callable[[Any, Any], tuple[Any, dict]]
    batches: Callable[[int], Iterator[dict]]
    to_device: Callable[[dict], Any]
    identity: Mapping[str, Any]
    tokens_per_step: int = 0
    flops_per_step: float = 0.0
    evaluate: Callable[[Any, int], dict[str, dict[str, Any]]] | None = None
    finish: Callable[[Any], dict] | None = None
    stop_on_nonfinite: bool = True
    axis_rules: tuple = sharding.LOGICAL_AXIS_RULES


# Opt-in keys that change nothing while off ({key: its off value, the keys it governs}):
# left out of the identity then, so checkpoints and sweep results written before these keys
# existed still resume.
_INERT_WHEN_OFF = {"data.group_by_length": (False, ("data.group_by_length_megabatches",))}


def identity_of(config) -> dict[str, Any]:
    """The run-defining part of a config: every key but RUNTIME_KEYS (dotted names) and the
    opt-in keys that are off (_INERT_WHEN_OFF)."""
    flat = checkpointing.flatten_config(config.to_dict() if hasattr(config, "to_dict")
                                        else dict(config))
    inert = set()
    for key, (off, governed) in _INERT_WHEN_OFF.items():
        if key in flat and flat[key] == off:
            inert.update((key, *governed))
    return {key: value for key, value in flat.items()
            if key not in RUNTIME_KEYS and key not in inert}


def validate_loop_config(config) -> None:
    """Clear errors for loop settings that would otherwise fail mid-run."""
    if int(config.log_every_steps) < 1:
        raise ValueError(f"config.log_every_steps={config.log_every_steps}: must be >= 1")
    for key in ("checkpoint_every_steps", "eval_every_steps"):
        if int(config.get(key, 0) or 0) < 0:
            raise ValueError(f"config.{key}={config[key]}: must be >= 0 (0: only at the end)")
    if config.nan_policy not in ("stop", "skip"):
        raise ValueError(f"config.nan_policy={config.nan_policy!r}; expected 'stop' or 'skip'")


class PreemptionWatcher:
    """Turns SIGTERM into a flag checked at step boundaries, agreed across hosts.

    Installed only once the first step has completed (`arm`): before that SIGTERM keeps its
    default action, so a run that hangs in start-up (reading input, compiling) still ends.
    """

    def __init__(self):
        self._signalled = False
        self._previous = None

    def arm(self) -> None:
        # Several processes: jax.distributed's preemption service catches SIGTERM itself and
        # agrees on a step (reached_preemption_sync_point); a Python handler would hide it.
        if self._previous is None and jax.process_count() == 1:
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        del signum, frame
        logging.warning("SIGTERM received: checkpointing at the next step boundary")
        self._signalled = True

    def should_stop(self, step: int) -> bool:
        if jax.process_count() == 1:
            return self._signalled
        # Every host must stop at the same step; jax's preemption service agrees on one.
        return multihost_utils.reached_preemption_sync_point(step)

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _mean_over_interval(pending: dict, steps: int) -> dict[str, Any]:
    host = sharding.to_host(pending)  # sweeps' per-seed metrics span several hosts
    return {key: np.asarray(value) / steps for key, value in _flat_metrics(host).items()}


def _metrics_to_json(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """A metrics tree as JSON: each leaf {"dtype", "value"} (float32 values round-trip exactly)."""
    return jax.tree_util.tree_map(
        lambda leaf: {"dtype": str(leaf.dtype), "value": leaf.tolist()},
        sharding.to_host(dict(metrics)))


def _metrics_from_json(tree: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if tree is None:
        return None
    return {key: np.asarray(value["value"], dtype=value["dtype"])
            if set(value) == {"dtype", "value"} else _metrics_from_json(value)
            for key, value in tree.items()}


def _flat_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            flat.update(_flat_metrics(value, f"{prefix}{key}/"))
        else:
            flat[prefix + key] = value
    return flat


def _nonfinite_steps(state) -> np.ndarray:
    return np.atleast_1d(sharding.to_host(state.nonfinite_step))


def _check_finite(state, checkpointer) -> None:
    """Raises naming the first non-finite step before anything after it is saved."""
    bad = _nonfinite_steps(state)
    if (bad >= 0).any():
        checkpointer.wait_until_finished()
        step = int(bad[bad >= 0].min()) + 1  # state counts from 0; logs count steps from 1
        raise FloatingPointError(
            f"non-finite loss, gradient norm or updated params at step {step}; stopped, and "
            f"nothing after it was saved. The last good checkpoint is step "
            f"{checkpointer.latest_step()}. Set config.nan_policy='skip' to drop such steps "
            f"instead.")


def train(program: Program, config, workdir: str) -> dict[str, Any]:
    """Runs `program` to its last step (resuming if WORKDIR holds a checkpoint).

    Returns {"train": last logged train metrics, "eval": {split: metrics} of the last
    evaluation, "results": what `program.finish` returned, "preempted": bool}.
    """
    validate_loop_config(config)
    workdir = storage.absolute(workdir)
    storage.check_writable(workdir)  # a bad workdir fails now, naming it, not at a save
    checkpointer = checkpointing.Checkpointer(
        storage.join(workdir, "checkpoints"), max_to_keep=config.keep_checkpoints,
        async_save=config.async_checkpoints)
    metadata = {"kind": program.kind, "identity": dict(program.identity),
                "num_train_steps": program.num_train_steps}
    allowed = [key.strip() for key in str(config.get("allow_resume_changes", "")).split(",")
               if key.strip()]
    if checkpointer.latest_step() is not None:
        saved = checkpointer.metadata()
        checkpointing.check_identity(saved.get("identity", {}), program.identity, allowed,
                                     checkpointer.directory)
        state, restored_metadata, start_step = checkpointer.restore(program.abstract_state)
        logging.warning("resumed from step %d (%s)", start_step, checkpointer.directory)
    else:
        state, start_step, restored_metadata = program.init_state(), 0, {}
    total = program.num_train_steps
    logger = metric_logging.MetricLogger(workdir, total, start_step,
                                         tensorboard=config.get("tensorboard", True))
    peak = flops.peak_flops_per_device() * jax.device_count()
    watcher = PreemptionWatcher()
    outcome: dict[str, Any] = {"train": {}, "eval": {}, "results": {}, "preempted": False}
    pending, interval_start, interval_steps = None, time.perf_counter(), 0
    # A checkpoint taken inside a logging interval carries the interval's metric sums, so the
    # resumed run logs the very numbers an uninterrupted run logs (same float32 additions).
    carried = _metrics_from_json(restored_metadata.get("pending_metrics"))
    interval_steps = int(restored_metadata.get("pending_steps", 0)) if carried else 0
    skipped_total, trailing_skipped = 0, 0
    try:
        batches = program.batches(start_step)
        for step in range(start_step, total):
            device_batch = program.to_device(next(batches))
            with jax.set_mesh(program.mesh), sharding.axis_rules(program.axis_rules):
                state, metrics = program.step(state, device_batch)
            if carried is not None:
                pending = jax.tree_util.tree_map(
                    lambda sums, m: jax.device_put(sums, m.sharding), carried, metrics)
                carried = None
            pending = metrics if pending is None else jax.tree_util.tree_map(
                jnp.add, pending, metrics)
            interval_steps += 1
            logger.advance()
            watcher.arm()
            done = step + 1
            if done % config.log_every_steps == 0 or done == total:
                if program.stop_on_nonfinite and config.nan_policy == "stop":
                    _check_finite(state, checkpointer)
                elapsed = time.perf_counter() - interval_start
                logged = _mean_over_interval(pending, interval_steps)
                skipped = int(round(float(np.sum(logged.get("nonfinite", 0.0))) *
                                    interval_steps)) if program.stop_on_nonfinite else 0
                skipped_total += skipped
                steps_per_sec = interval_steps / elapsed
                logged["steps_per_sec"] = steps_per_sec
                if program.tokens_per_step:
                    logged["tokens_per_sec"] = steps_per_sec * program.tokens_per_step
                if program.flops_per_step:
                    logged["mfu"] = steps_per_sec * program.flops_per_step / peak
                logger.write(done, logged)
                outcome["train"] = logged
                trailing_skipped = trailing_skipped + skipped if skipped == interval_steps else 0
                if skipped:
                    logging.warning("nan_policy=skip: %d of the last %d steps were non-finite "
                                    "and skipped (%d in all)", skipped, interval_steps,
                                    skipped_total)
                if trailing_skipped >= MAX_CONSECUTIVE_SKIPS:
                    checkpointer.wait_until_finished()
                    raise FloatingPointError(
                        f"steps {done - trailing_skipped + 1} to {done} were all non-finite and "
                        f"skipped: the run is not learning; stopped. The last checkpoint is "
                        f"step {checkpointer.latest_step()}.")
                pending, interval_start, interval_steps = None, time.perf_counter(), 0
            if program.evaluate and config.get("eval_every_steps") and (
                    done % config.eval_every_steps == 0 or done == total):
                outcome["eval"] = program.evaluate(state, done)
                for split, values in outcome["eval"].items():
                    logger.write(done, values, split=split)
            preempted = watcher.should_stop(done)
            if preempted or done == total or (config.checkpoint_every_steps and
                                              done % config.checkpoint_every_steps == 0):
                if program.stop_on_nonfinite and config.nan_policy == "stop":
                    _check_finite(state, checkpointer)
                saved_metadata = metadata if pending is None else {
                    **metadata, "pending_metrics": _metrics_to_json(pending),
                    "pending_steps": interval_steps}
                checkpointer.save(done, state, saved_metadata, wait=preempted)
            if preempted:
                logging.warning("preempted: saved step %d; rerun the command to resume", done)
                outcome["preempted"] = True
                return outcome
        checkpointer.wait_until_finished()
        if skipped_total:
            logging.warning("nan_policy=skip: %d of %d steps were non-finite and skipped",
                            skipped_total, total)
        if trailing_skipped:
            raise FloatingPointError(
                f"the run ended on {trailing_skipped} non-finite steps in a row (steps "
                f"{total - trailing_skipped + 1} to {total}, skipped; {skipped_total} of {total} "
                f"in all): its params stopped changing, so nothing is exported. Lower the "
                f"learning rate or look at the data of those steps.")
        if program.finish is not None:
            outcome["results"] = program.finish(state)
            for split, values in outcome["results"].get("metrics", {}).items():
                logger.write(total, values, split=split)
        return outcome
    finally:
        checkpointer.wait_until_finished()
        watcher.restore()
        logger.close()
