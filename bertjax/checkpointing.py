"""Training checkpoints: an orbax CheckpointManager around the sharded train state.

Saves are asynchronous (training continues while the previous step's arrays are written), keep
the last K, and restore straight into the target shardings: each host reads only its shards, and
nothing is materialised unsharded. Beside the state, each checkpoint holds a small JSON record:
the run's identity (every config value that defines the experiment) and its kind, so a resumed
run can check that it continues the same experiment (`check_identity`) before it reads any
array: a changed batch size, step budget, seed, model or data files is refused with an error
naming each key and both values, instead of silently mixing two experiments (or failing inside
orbax with a message about partial restores).

orbax writes each step into a temporary folder and renames it when complete (on object stores
it marks completion with a commit file), so a kill mid-save leaves no step that a restart would
take for complete: the next run resumes from the last complete one. Paths go through the path
layer; relative local paths are made absolute, as orbax requires.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Mapping

import jax
import orbax.checkpoint as ocp

from data_pipelines import storage


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` with the state + JSON metadata layout."""

    def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True):
        directory = storage.absolute(directory)
        if storage.isfile(directory):
            raise storage.StorageError(f"{directory} is a file; the checkpoint folder goes there")
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save)
        self._manager = ocp.CheckpointManager(directory, options=options)
        self.directory = directory

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: Any, metadata: dict[str, Any], *, wait: bool = False) -> None:
        """Starts saving `state` at `step` (asynchronously unless `wait`)."""
        self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), metadata=ocp.args.JsonSave(metadata)), force=True)
        if wait:
            self._manager.wait_until_finished()
        logging.info("checkpoint: saving step %d to %s", step, self.directory)

    def metadata(self, step: int | None = None) -> dict[str, Any]:
        """The JSON record saved with `step` (default: the latest), without reading arrays."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self._manager.restore(step, args=ocp.args.Composite(
            metadata=ocp.args.JsonRestore()))
        return dict(restored["metadata"] or {})

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restores (state, metadata, step); `abstract_state` leaves are ShapeDtypeStructs whose
        `sharding` says where each shard goes."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                metadata=ocp.args.JsonRestore()))
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(
                f"checkpoint step {step} in {self.directory} does not fit this run's train "
                f"state (model or optimizer differ from the run that wrote it): {error}"
            ) from error
        return restored["state"], restored["metadata"], step

    def wait_until_finished(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()


def abstract_with_shardings(abstract_tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs carrying their target shardings, the restore target orbax wants."""
    return jax.tree_util.tree_map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        abstract_tree, shardings)


def flatten_config(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optimizer.learning_rate": 2e-5, ...}: dotted keys of a nested mapping."""
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, name + "."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def check_identity(saved: Mapping[str, Any], current: Mapping[str, Any],
                   allowed: Iterable[str], directory: str) -> None:
    """Raises ValueError unless the run's identity equals the checkpoint's, except for the keys
    in `allowed` (dotted config keys; "optimizer.*" every key under optimizer; "*" any change).

    The message names each differing key with the saved and the current value, and how to
    accept the change on purpose.
    """
    allowed = set(allowed)
    if "*" in allowed:
        return
    prefixes = tuple(key[:-1] for key in allowed if key.endswith(".*"))
    saved, current = flatten_config(saved), flatten_config(current)
    differences = [key for key in sorted(set(saved) | set(current))
                   if saved.get(key, "<absent>") != current.get(key, "<absent>")
                   and key not in allowed and not key.startswith(prefixes or ("\0",))]
    if differences:
        lines = [f"  {key}: checkpoint {saved.get(key, '<absent>')!r}, this run "
                 f"{current.get(key, '<absent>')!r}" for key in differences]
        raise ValueError(
            f"{directory} holds a checkpoint of a different experiment; resuming would mix "
            f"two runs. Differences:\n" + "\n".join(lines) + "\nUse another workdir, or accept "
            f"these changes explicitly with --config.allow_resume_changes="
            f"{','.join(differences)}")
