"""Device meshes, logical-axis rules, and the shardings of params, optimizer state and batches.

The model names every parameter and key activation with logical axes (see bertjax.layers); this
module is the one place that maps them to mesh axes ("data", "fsdp", "tensor"):

  data    pure data parallelism: batch split, params replicated.
  fsdp    batch split AND every parameter's `embed` dimension split (ZeRO-3 style; XLA gathers
          each weight just before use and reduce-scatters its gradient).
  tensor  Megatron-style tensor parallelism: heads, mlp and vocab dimensions split.

A mesh axis of size 1 is a no-op, so the same rules serve dp, fsdp, tp and any combination: the
mesh shape alone picks the strategy. A dimension that the mesh axis does not divide (e.g. V=30,522
over 4 tensor shards) is replicated instead, with a log line, rather than failing to compile.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")  # the global batch is split over both

# Logical name -> mesh axis (or None: replicated). Params use plain names, activations the
# `activation_` ones (MaxText's vocabulary).
LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("activation_batch", BATCH_AXES),
    ("activation_length", None),
    ("activation_embed", None),
    ("activation_heads", "tensor"),
    ("activation_kv", None),
    ("activation_mlp", "tensor"),
    ("activation_vocab", "tensor"),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("layers", None),
    ("position", None),
    ("segment", None),
    ("classes", None),
)


def create_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A mesh over `devices` (default: all) with axes data, fsdp, tensor.

    `shape` maps each axis to its size; one size may be -1 to take the remaining devices,
    e.g. {"data": -1, "fsdp": 1, "tensor": 2}. A shape needing fewer devices than given uses
    the first ones (with a warning); one needing more is an error.
    """
    devices = list(jax.devices() if devices is None else devices)
    unknown = set(shape) - set(MESH_AXES)
    if unknown:
        raise ValueError(f"mesh has unknown axes {sorted(unknown)}; expected {MESH_AXES}")
    sizes = [int(shape.get(axis, 1)) for axis in MESH_AXES]
    if sizes.count(-1) > 1:
        raise ValueError(f"mesh shape {dict(shape)}: at most one axis may be -1")
    known = int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if len(devices) % known:
            raise ValueError(f"mesh shape {dict(shape)} does not divide {len(devices)} devices")
        sizes[sizes.index(-1)] = len(devices) // known
    needed = int(np.prod(sizes))
    if needed > len(devices):
        raise ValueError(f"mesh shape {dict(zip(MESH_AXES, sizes))} needs {needed} "
                         f"devices; {len(devices)} are available")
    if needed < len(devices):
        # An explicit smaller shape (e.g. {"data": 1} for a quick run) uses the first devices.
        logging.warning("mesh %s uses %d of %d devices", dict(zip(MESH_AXES, sizes)), needed,
                        len(devices))
        devices = devices[:needed]
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=auto, devices=devices)


def axis_rules(rules=LOGICAL_AXIS_RULES):
    """Context manager activating the logical rules for activation constraints inside jit."""
    return nn.logical_axis_rules(rules)


def _fit_to_shape(spec: P, shape: Sequence[int], mesh: Mesh, name: str) -> P:
    """Drops mesh axes from dimensions they do not divide (replicating those dimensions)."""
    fitted = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        if axes is None:
            fitted.append(None)
            continue
        names = (axes,) if isinstance(axes, str) else tuple(axes)
        size = int(np.prod([mesh.shape[a] for a in names]))
        if dim % size:
            logging.info("sharding: %s dim %d not divisible by %s=%d; replicated", name, dim,
                         names, size)
            fitted.append(None)
        else:
            fitted.append(axes)
    return P(*fitted)


def _key_strings(path) -> tuple[str, ...]:
    return tuple(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def logical_to_shardings(logical_specs, abstract_tree, mesh: Mesh, rules=LOGICAL_AXIS_RULES):
    """NamedShardings for a tree from its logical PartitionSpecs and shapes."""
    mesh_specs = nn.logical_to_mesh(logical_specs, rules)

    def one(path, spec, leaf):
        spec = spec if isinstance(spec, P) else P()
        name = "/".join(_key_strings(path))
        return NamedSharding(mesh, _fit_to_shape(spec, leaf.shape, mesh, name))

    return jax.tree_util.tree_map_with_path(
        one, mesh_specs, abstract_tree, is_leaf=lambda x: isinstance(x, P) or x is None)


def param_shardings(abstract_boxed_params, mesh: Mesh, rules=LOGICAL_AXIS_RULES):
    """Shardings for an `eval_shape`d, still-boxed (LogicallyPartitioned) param tree."""
    logical = nn.get_partition_spec(abstract_boxed_params)
    return logical_to_shardings(logical, nn.meta.unbox(abstract_boxed_params), mesh, rules)


def follow_params(abstract_tree, params_abstract, params_sharding, mesh: Mesh):
    """Shardings for a tree (e.g. an optimizer state) whose leaves mirror params.

    A leaf whose key path ends with a param's full path and has that param's shape (Adam's
    mu/nu, LAMB's moments, ...) gets the param's sharding; any other leaf (counts, scalars) is
    replicated. Matching by path suffix works for every optax state without knowing its layout.
    """
    by_path = {}
    for path, sharding in jax.tree_util.tree_leaves_with_path(params_sharding):
        by_path[_key_strings(path)] = sharding
    shapes = {_key_strings(path): leaf.shape
              for path, leaf in jax.tree_util.tree_leaves_with_path(params_abstract)}
    lengths = sorted({len(k) for k in by_path}, reverse=True)
    replicated = NamedSharding(mesh, P())

    def one(path, leaf):
        keys = _key_strings(path)
        for n in lengths:
            suffix = keys[-n:]
            if len(keys) >= n and suffix in by_path and shapes[suffix] == getattr(leaf, "shape",
                                                                                  None):
                return by_path[suffix]
        return replicated

    return jax.tree_util.tree_map_with_path(one, abstract_tree)


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    """Batch-major arrays: dim 0 over (data, fsdp), the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXES, *([None] * (ndim - 1))))


def global_batch(local_batch: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Host-local numpy batch (this host's slice of the global batch) -> global jax.Arrays.

    Every host calls this with its own rows; the result is one array over the whole mesh.
    """
    return {name: jax.make_array_from_process_local_data(batch_sharding(mesh, np.ndim(x)),
                                                         np.asarray(x))
            for name, x in local_batch.items()}


def per_host_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """This host's share of the global batch, checking that it divides evenly."""
    shards = mesh.shape["data"] * mesh.shape["fsdp"]
    if global_batch_size % shards:
        raise ValueError(f"batch_size {global_batch_size} is not divisible by the {shards} "
                         f"data x fsdp shards of the mesh {dict(mesh.shape)}")
    if global_batch_size % jax.process_count():
        raise ValueError(f"batch_size {global_batch_size} is not divisible by "
                         f"{jax.process_count()} processes")
    return global_batch_size // jax.process_count()


def process_rows(mesh: Mesh, global_batch_size: int) -> slice:
    """The rows of a global batch that this process feeds: those its devices hold.

    They are contiguous (devices are laid out process by process); each process passes exactly
    these rows to `global_batch`. Raises if the layout gives a process scattered rows.
    """
    indices = batch_sharding(mesh, 1).addressable_devices_indices_map((global_batch_size,))
    rows = sorted({row for index in indices.values()
                   for row in range(global_batch_size)[index[0]]})
    if rows != list(range(rows[0], rows[-1] + 1)):
        raise ValueError(f"process {jax.process_index()} holds scattered batch rows {rows} on "
                         f"mesh {dict(mesh.shape)}; expected a contiguous block")
    return slice(rows[0], rows[-1] + 1)


def to_host(tree: Any) -> Any:
    """Numpy copies of a tree of (possibly multi-host) arrays, whole on every process."""
    from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel

    def one(leaf):
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(leaf, tiled=True))
        return np.asarray(jax.device_get(leaf))

    return jax.tree_util.tree_map(one, tree)
