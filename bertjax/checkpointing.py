"""Training checkpoints: an orbax CheckpointManager around the sharded train state.

Saves are asynchronous (training continues while the previous step's arrays are written), keep
the last K, and restore straight into the target shardings: each host reads only its shards, and
nothing is materialised unsharded. Beside the state, each checkpoint holds a small JSON record
(the config and where the data stream stands) so a resumed run can check it continues the same
experiment.
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpointer:
    """Thin wrapper over `ocp.CheckpointManager` with the state + JSON metadata layout."""

    def __init__(self, directory: str, *, max_to_keep: int = 3, async_save: bool = True):
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

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict, int]:
        """Restores (state, metadata, step); `abstract_state` leaves are ShapeDtypeStructs whose
        `sharding` says where each shard goes."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), metadata=ocp.args.JsonRestore()))
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
