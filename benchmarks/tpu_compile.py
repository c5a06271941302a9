"""Ahead-of-time compilation of a config's train step for a TPU slice, with no TPU present.

    python -m benchmarks.tpu_compile --config=experiments/bert_large_pretrain.py:phase=1 --json
    python -m benchmarks.tpu_compile --config=experiments/bert_base_pretrain.py:phase=2 \
        --topology=v5e-16 --config.batch_size=512 --json

Needs libtpu (`make tpu-check` installs it beside the venv; on a TPU VM it is there already):
libtpu describes a topology's devices without the chips, and XLA's TPU compiler then builds
the real program for them. What is compiled is the step the training loop jits, built by the
same code from the config alone: pretraining configs through `bertjax.train.build_step`
(grad accumulation, remat, scan, the optimizer, the NaN guard), stability-sweep configs
(those with a `sweep` section) through `bertjax.sweep.SeedTrainer`, the vmapped K-seed step.
The state and batch are ShapeDtypeStructs carrying their shardings: nothing is allocated.

`--topology` (default `config.tpu_topology`) is a Cloud TPU name, `v4-32` (TensorCores, as
Google names v4 and v5p slices), `v5e-16` / `v6e-8` (chips), or libtpu's own `v4:2x2x4`.
v4 and v5p run in megacore mode (one JAX device per chip, two cores), as TPU VMs do.
`--topology=cpu` compiles for this host's CPU devices instead (the tests use it).

Printed per device: bytes of params, optimizer state and batch (from the shardings), XLA's
argument / output / alias / temporary / code bytes (`compiled.memory_analysis()`), their total
against the chip's HBM with `--margin` kept free (the runtime's own buffers, fragmentation),
compiled FLOPs per step against `bertjax.flops`' model FLOPs, the step time at the chip's
data-sheet bf16 peak (a lower bound: no step runs faster), and the collectives in the compiled
HLO (count and bytes per kind, an op in a loop body counted once per iteration when XLA knows
the trip count; the TPU compiler gathers FSDP weights with all-reduces of zero-padded shards,
so they show as all-reduce). A program that cannot fit fails to compile ("RESOURCE_EXHAUSTED") and is
reported as not fitting. `--check` exits with status 1 when the config does not fit.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import time
from typing import Any

import jax
import numpy as np

from bertjax import flops, sharding, train

GIB = 1024 ** 3


@dataclasses.dataclass(frozen=True)
class Chip:
    """One TPU generation: libtpu's name, HBM per chip (bytes), and whether a chip is one JAX
    device of two cores (megacore) and its slice shapes are 3-D."""

    libtpu_name: str
    hbm_bytes: int
    megacore: bool


# Data-sheet HBM per chip. Peak FLOP/s come from bertjax.flops (the same table MFU uses).
CHIPS = {
    "v4": Chip("v4", 32 * GIB, True),
    "v5p": Chip("v5p", 95 * GIB, True),
    "v5e": Chip("v5e", 16 * GIB, False),
    "v6e": Chip("v6e", 32 * GIB, False),
}
# Slice shapes by chip count: Cloud TPU's standard 3-D (v4, v5p) and 2-D (v5e, v6e) shapes.
_SHAPES_3D = {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4", 128: "4x4x8",
              256: "4x8x8", 512: "8x8x8", 1024: "8x8x16", 2048: "8x16x16"}
_SHAPES_2D = {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8", 128: "8x16",
              256: "16x16"}


@dataclasses.dataclass(frozen=True)
class Topology:
    name: str              # as given
    libtpu_name: str       # e.g. "v4:2x2x4"; "" for the host's CPU devices
    chip: Chip | None
    devices: tuple


def parse_topology(name: str) -> tuple[str, Chip]:
    """"v4-32" / "v5e-16" / "v4:2x2x4" -> (libtpu topology name, Chip). Raises naming the
    accepted forms."""
    match = re.fullmatch(r"(v4|v5p|v5e|v6e)(?:-(\d+)|:(\d+(?:x\d+){1,2}))", name)
    if not match:
        raise ValueError(f"--topology={name!r}: expected a slice such as v4-32, v5p-16, v5e-16, "
                         f"v6e-8, libtpu's v4:2x2x4, or cpu; generations: {sorted(CHIPS)}")
    generation, count, shape = match.groups()
    chip = CHIPS[generation]
    if shape:
        return f"{chip.libtpu_name}:{shape}", chip
    chips = int(count) // 2 if chip.megacore else int(count)  # v4/v5p names count cores
    shapes = _SHAPES_3D if chip.megacore else _SHAPES_2D
    if chips not in shapes or (chip.megacore and int(count) % 2):
        sizes = sorted(2 * c if chip.megacore else c for c in shapes)
        raise ValueError(f"--topology={name!r}: {generation} slices come in sizes {sizes}")
    return f"{chip.libtpu_name}:{shapes[chips]}", chip


def topology(name: str) -> Topology:
    """The devices of a TPU slice from libtpu (no TPU needed), or the host's CPU devices."""
    if name == "cpu":
        return Topology(name, "", None, tuple(jax.devices("cpu")))
    libtpu_name, chip = parse_topology(name)
    from jax.experimental import topologies  # pylint: disable=import-outside-toplevel
    dims = libtpu_name.split(":")[1].split("x")
    # Hosts of 4 chips (2x2x1), as Cloud TPU VMs; a one-host slice of 8 v5e/v6e chips is 2x4.
    per_host = (2, 4, 1) if not chip.megacore and dims == ["2", "4"] else (2, 2, 1)
    if len(dims) == 2 and int(dims[0]) * int(dims[1]) < 4:
        per_host = (int(dims[0]), int(dims[1]), 1)
    try:
        devices = topologies.get_topology_desc(
            platform="tpu", topology_name=libtpu_name,
            chip_config_name="megacore" if chip.megacore else "default",
            chips_per_host_bounds=per_host, num_slices=1).devices
    except Exception as error:  # pylint: disable=broad-except
        raise RuntimeError(
            f"libtpu could not describe topology {libtpu_name!r} ({error}); is libtpu installed "
            "(`make tpu-check` installs it)? libtpu also allows one process per machine unless "
            "ALLOW_MULTIPLE_LIBTPU_LOAD=1 is set (safe where no TPU is attached).") from error
    return Topology(name, libtpu_name, chip, tuple(devices))


# ------------------------------------------------------------------------------ what to compile
@dataclasses.dataclass
class Compiled:
    """A lowered-and-compiled step with what the report needs."""

    compiled: Any               # jax.stages.Compiled, or None when it did not fit
    error: str                  # the compiler's message when compilation failed
    state: Any                  # abstract state (ShapeDtypeStructs with shardings)
    batch: Any                  # abstract batch
    extra_args: Any             # other device arguments (the sweep's mixout anchor)
    model_flops: float          # bertjax.flops, whole step, all devices
    description: dict


def _compile(lowered):
    try:
        return lowered.compile(), ""
    except Exception as error:  # pylint: disable=broad-except
        message = str(error)
        if "RESOURCE_EXHAUSTED" in message or "Ran out of memory" in message:
            return None, message.split("\n")[0][:2000]
        raise


def compile_pretraining(config, devices) -> Compiled:
    parts = train.build_step(config, list(devices))
    batch = parts.abstract_batch()
    with jax.set_mesh(parts.mesh), sharding.axis_rules():
        lowered = parts.step.lower(parts.abstract_state, batch)
    compiled, error = _compile(lowered)
    model_flops = flops.train_flops_per_step(parts.bert_config, parts.batch_size,
                                             parts.max_seq_length, parts.max_predictions_per_seq)
    return Compiled(compiled, error, parts.abstract_state, batch, None, model_flops, {
        "kind": "pretrain", "mesh": dict(parts.mesh.shape),
        "batch_size": parts.batch_size, "seq_len": parts.max_seq_length,
        "grad_accum_steps": int(config.grad_accum_steps),
        "optimizer": config.optimizer.name, "dtype": config.model.dtype,
        "remat": bool(config.model.remat), "scan_layers": bool(config.model.scan_layers)})


def compile_sweep(config, devices, arm: str) -> Compiled:
    """The stability sweep's vmapped step for `arm`, K = sweep.seeds_per_program seeds."""
    import flax.linen as nn  # pylint: disable=import-outside-toplevel
    from bertjax import modeling, sweep  # pylint: disable=import-outside-toplevel
    from data_pipelines import glue  # pylint: disable=import-outside-toplevel
    from experiments.stability import arms  # pylint: disable=import-outside-toplevel
    from experiments.stability import sweep as sweep_run  # pylint: disable=C0415

    config = arms.arm_config(config, arm or config.sweep.arms[0])
    bert_config = train.bert_config_from(config.model)
    seq_len, batch_size = int(config.data.max_seq_length), int(config.batch_size)
    num_labels = len(glue.get_task(config.data.glue_task).label_list)
    num_seeds = int(config.sweep.seeds_per_program)
    # The number of training examples only sets the schedule's constants, not the program.
    placeholder = {"input_ids": np.zeros((batch_size, seq_len), np.int32)}
    trainer, _ = sweep_run.make_trainer(config, bert_config, num_labels, placeholder, num_seeds,
                                        list(devices))
    encoder = jax.eval_shape(lambda: nn.meta.unbox(trainer.task.model.init(
        {"params": jax.random.PRNGKey(0)}, *modeling.dummy_inputs(1, seq_len))["params"]))["bert"]
    seeds = sweep.seed_components(range(num_seeds))
    state = trainer.abstract_state(encoder, seeds)
    lowered = trainer.lower_step(state, batch_size, encoder)
    compiled, error = _compile(lowered)
    batch, anchor = lowered.args_info[0][1], lowered.args_info[0][2]
    model_flops = num_seeds * flops.finetune_flops_per_step(bert_config, batch_size, seq_len,
                                                             num_labels, per_token=False)
    return Compiled(compiled, error, state, batch, anchor, model_flops, {
        "kind": "sweep", "arm": config.arm, "seeds_per_program": num_seeds,
        "mesh": {"data": int(sweep.seed_mesh(num_seeds, list(devices)).shape["data"])},
        "batch_size": batch_size, "seq_len": seq_len, "optimizer": config.optimizer.name,
        "dtype": config.model.dtype, "mixout_rate": float(config.mixout_rate)})


# ------------------------------------------------------------------------------------ analysis
def per_device_bytes(tree) -> int:
    """Bytes one device holds of a tree of ShapeDtypeStructs / ArgInfos with shardings (the
    largest shard, where shards differ)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shape, dtype = tuple(leaf.shape), np.dtype(leaf.dtype)
        placement = getattr(leaf, "sharding", None)
        if placement is not None:
            shape = placement.shard_shape(shape)
        total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return total


_DTYPE_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2,
                "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8}
COLLECTIVES = ("all-gather", "reduce-scatter", "all-reduce", "all-to-all", "collective-permute")
_OP = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*?)\s+(" + "|".join(COLLECTIVES) +
                 r")(-start)?\(")
_SHAPE = re.compile(r"\b(" + "|".join(_DTYPE_BYTES) + r")\[([0-9,]*)\]")
_COMPUTATION = re.compile(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_CALLS = re.compile(r"\b(body|condition|to_apply|calls|true_computation|false_computation|"
                    r"branch_computations)=\{?([^}\s,]+(?:,\s*%[\w.\-]+)*)\}?")
_TRIP = re.compile(r'"known_trip_count":\{"n":"(\d+)"')
_CONDITION = re.compile(r"\bcondition=%?([\w.\-]+)")
_BOUND = re.compile(r"\bs32\[\][^=]*?constant\((\d+)\)")


def _shape_bytes(text: str) -> list[int]:
    return [int(np.prod([int(d) for d in dims.split(",") if d], dtype=np.int64)) *
            _DTYPE_BYTES[dtype] for dtype, dims in _SHAPE.findall(text)]


def collectives(hlo_text: str) -> dict[str, dict[str, int]]:
    """{kind: {"count", "bytes"}} of the collectives a compiled module runs per step.

    Bytes are the result sizes per device (for an async "-start" op, the second half of its
    tuple: the outputs). An op in a while body counts once per iteration: XLA's
    `known_trip_count`, else the bound N of a counting loop `i < N` (what scans compile to on
    TPU), else once; nested loops multiply.
    """
    computations: dict[str, list[str]] = {}
    entry, current = None, None
    for line in hlo_text.splitlines():
        # Computation headers start at column 0 ("%name (...) -> ... {"); instructions are
        # indented.
        header = None if line[:1].isspace() else _COMPUTATION.match(line)
        if header:
            current = header.group(2)
            computations[current] = []
            if header.group(1):
                entry = current
            continue
        if current is not None:
            computations[current].append(line)
    multiplier: dict[str, int] = {}

    def trip_count(line: str) -> int:
        known = _TRIP.search(line)
        if known:
            return int(known.group(1))
        # The TPU compiler leaves no known_trip_count; a scan's loop is `i < N` from 0 by 1,
        # with N the condition's one s32 constant.
        condition = _CONDITION.search(line)
        lines = computations.get(condition.group(1), []) if condition else []
        bounds = [int(b) for text in lines for b in _BOUND.findall(text)]
        if len(bounds) == 1 and any("direction=LT" in text for text in lines):
            return bounds[0]
        return 1

    def visit(name: str, times: int):
        if name not in computations or multiplier.get(name, 0) >= times:
            return
        multiplier[name] = times
        for line in computations[name]:
            trip = trip_count(line) if " while(" in line else 1
            for role, names in _CALLS.findall(line):
                factor = trip if role == "body" else 1
                for callee in re.findall(r"[\w.\-]+", names):
                    visit(callee.lstrip("%"), times * factor)

    visit(entry or next(iter(computations), ""), 1)
    totals = {kind: {"count": 0, "bytes": 0} for kind in COLLECTIVES}
    for name, lines in computations.items():
        times = multiplier.get(name, 0)
        for line in lines:
            op = _OP.match(line)
            if not op or not times:
                continue
            sizes = _shape_bytes(op.group(1))
            if op.group(3):  # async start: (operands..., outputs...)
                sizes = sizes[len(sizes) // 2:]
            totals[op.group(2)]["count"] += times
            totals[op.group(2)]["bytes"] += times * sum(sizes)
    return totals


def _cost(compiled) -> dict[str, float]:
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return dict(cost or {})


def report(result: Compiled, topo: Topology, margin: float) -> dict[str, Any]:
    """The figures of one compilation (see the module docstring), JSON-ready."""
    devices = len(topo.devices)
    kind = topo.devices[0].device_kind
    hbm = topo.chip.hbm_bytes if topo.chip else None
    peak = flops.peak_flops_of_kind(kind)
    state = result.state
    out: dict[str, Any] = {
        **result.description, "topology": topo.name, "libtpu_topology": topo.libtpu_name,
        "devices": devices, "device_kind": kind, "hbm_bytes_per_device": hbm,
        "margin": margin,
        "params_bytes": per_device_bytes(state.params),
        "opt_state_bytes": per_device_bytes(state.opt_state),
        "batch_bytes": per_device_bytes(result.batch),
        "model_flops_per_device": result.model_flops / devices,
    }
    if result.compiled is None:
        out.update(fits=False, compile_error=result.error)
        return out
    memory = result.compiled.memory_analysis()
    total = (memory.argument_size_in_bytes + memory.output_size_in_bytes
             - memory.alias_size_in_bytes + memory.temp_size_in_bytes
             + memory.generated_code_size_in_bytes)
    compiled_flops = float(_cost(result.compiled).get("flops", float("nan")))
    out.update({
        "argument_bytes": memory.argument_size_in_bytes,
        "output_bytes": memory.output_size_in_bytes,
        "alias_bytes": memory.alias_size_in_bytes,
        "temp_bytes": memory.temp_size_in_bytes,
        "code_bytes": memory.generated_code_size_in_bytes,
        "total_bytes": total,
        "fits": None if hbm is None else bool(total <= (1 - margin) * hbm),
        "hbm_used_fraction": None if hbm is None else total / hbm,
        "compiled_flops_per_device": compiled_flops,
        "compiled_over_model_flops": compiled_flops / (result.model_flops / devices),
        "peak_flops_per_device": peak,
        "step_seconds_at_peak": None if peak is None else result.model_flops / devices / peak,
        "collectives": collectives(result.compiled.as_text()),
    })
    return out


def _gib(value) -> str:
    return "n/a" if value is None else f"{value / GIB:.2f} GiB"


def format_report(out: dict[str, Any]) -> str:
    lines = [f"{out['kind']} on {out['topology']} ({out['devices']} x {out['device_kind']}), "
             f"mesh {out['mesh']}, batch {out['batch_size']} x {out['seq_len']}"]
    lines.append(f"  per device: params {_gib(out['params_bytes'])}, optimizer state "
                 f"{_gib(out['opt_state_bytes'])}, batch {_gib(out['batch_bytes'])}")
    if "total_bytes" not in out:
        lines.append(f"  DOES NOT FIT: {out['compile_error']}")
        return "\n".join(lines)
    lines.append(f"  XLA: arguments {_gib(out['argument_bytes'])}, outputs "
                 f"{_gib(out['output_bytes'])} (aliased {_gib(out['alias_bytes'])}), "
                 f"temporaries {_gib(out['temp_bytes'])}, code {_gib(out['code_bytes'])}")
    verdict = {True: "fits", False: "DOES NOT FIT", None: "capacity unknown"}[out["fits"]]
    lines.append(f"  total {_gib(out['total_bytes'])} of {_gib(out['hbm_bytes_per_device'])} "
                 f"HBM: {verdict} (keeping {out['margin']:.0%} free)")
    lines.append(f"  FLOPs per device per step: model {out['model_flops_per_device']:.4g}, "
                 f"XLA's cost analysis {out['compiled_flops_per_device']:.4g} (ratio "
                 f"{out['compiled_over_model_flops']:.3f}; it counts a loop body once)")
    if out["step_seconds_at_peak"] is not None:
        lines.append(f"  step time at peak bf16 ({out['peak_flops_per_device'] / 1e12:.0f} "
                     f"TFLOP/s): >= {out['step_seconds_at_peak'] * 1e3:.1f} ms")
    lines.append("  collectives: " + ", ".join(
        f"{kind} {c['count']} ({c['bytes'] / 2**20:.1f} MiB)"
        for kind, c in out["collectives"].items() if c["count"]))
    return "\n".join(lines)


def run(config, topology_name: str, margin: float, arm: str = "",
        dump_hlo: str = "") -> dict[str, Any]:
    """Compiles `config` for `topology_name` and returns the report dict (and writes the
    compiled HLO text to `dump_hlo`, if given)."""
    topo = topology(topology_name)
    began = time.perf_counter()
    if "sweep" in config:
        result = compile_sweep(config, topo.devices, arm)
    else:
        result = compile_pretraining(config, topo.devices)
    out = report(result, topo, margin)
    if dump_hlo and result.compiled is not None:
        from data_pipelines import storage  # pylint: disable=import-outside-toplevel
        storage.write_text(dump_hlo, result.compiled.as_text())
    out["compile_seconds"] = time.perf_counter() - began
    return out


def main(argv):
    del argv
    from absl import flags  # pylint: disable=import-outside-toplevel
    config = flags.FLAGS.config
    name = flags.FLAGS.topology or config.get("tpu_topology", "")
    if not name:
        raise SystemExit("no --topology and the config names no tpu_topology")
    out = run(config, name, flags.FLAGS.margin, flags.FLAGS.arm, flags.FLAGS.dump_hlo)
    from ml_collections import config_flags  # pylint: disable=import-outside-toplevel
    out["config"] = config_flags.get_config_filename(flags.FLAGS["config"])
    print(json.dumps(out, indent=1, default=float) if flags.FLAGS.json else format_report(out))
    if flags.FLAGS.check and out["fits"] is False:
        sys.exit(1)


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags
    config_flags.DEFINE_config_file("config", None, "Experiment config file (FILE.py:args).")
    flags.DEFINE_string("topology", "", "TPU slice (v4-32, v5e-16, v4:2x2x4) or cpu; default: "
                        "the config's tpu_topology.")
    flags.DEFINE_float("margin", 0.1, "Fraction of HBM to keep free for the fit verdict.")
    flags.DEFINE_string("arm", "", "Stability sweeps: the arm to compile (default: the first "
                        "of config.sweep.arms).")
    flags.DEFINE_string("dump_hlo", "", "Also write the compiled HLO text to this path.")
    flags.DEFINE_bool("json", False, "Print the report as JSON.")
    flags.DEFINE_bool("check", False, "Exit with status 1 when the config does not fit.")
    flags.mark_flags_as_required(["config"])
    app.run(main)
