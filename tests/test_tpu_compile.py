"""benchmarks/tpu_compile.py without libtpu: topology names, the HLO collective counter, and the
whole ahead-of-time path compiled for the 8 fake CPU devices (`--topology=cpu`).

The TPU compilations themselves need libtpu and minutes of CPU each: `make tpu-check` (and
.ci/run) runs them for every TPU config.
"""

import jax
import numpy as np
import pytest

from benchmarks import tpu_compile
from bertjax import flops, modeling, param_count, train
from experiments import pretrain_tiny
from experiments.stability import bert_large_glue


@pytest.mark.parametrize("name, expected", [
    ("v4-8", "v4:2x2x1"), ("v4-32", "v4:2x2x4"), ("v4-128", "v4:4x4x4"),
    ("v4-256", "v4:4x4x8"), ("v5p-16", "v5p:2x2x2"), ("v5e-16", "v5e:4x4"),
    ("v6e-8", "v6e:2x4"), ("v4:2x4x4", "v4:2x4x4"),
])
def test_slice_names_map_to_libtpu_topologies(name, expected):
    assert tpu_compile.parse_topology(name)[0] == expected


@pytest.mark.parametrize("name, message", [
    ("v4-33", "come in sizes"), ("v3-8", "expected a slice"), ("v4", "expected a slice"),
])
def test_bad_topology_names_are_refused_with_the_accepted_forms(name, message):
    with pytest.raises(ValueError, match=message):
        tpu_compile.parse_topology(name)


# Hand-written HLO: an all-gather (bf16, 8x1024 = 16 KiB) in a loop body XLA knows runs 24
# times, inside which a nested loop (3 times, known only from its condition `i < 3`, as the
# TPU compiler writes scans) holds an all-reduce of two f32[256] (2 KiB); an
# async reduce-scatter at the top level whose outputs are f32[128] (512 B); an all-reduce in a
# computation nobody calls (dead: not counted).
_HLO = """HloModule m

%inner_body (p: (s32[], f32[256])) -> (s32[], f32[256]) {
  %p = (s32[], f32[256]{0}) parameter(0)
  %ar = (f32[256]{0}, f32[256]{0}) all-reduce(%a, %b), channel_id=1, to_apply=%add
  ROOT %t = (s32[], f32[256]{0}) tuple(%i, %x)
}

%outer_body (p: (s32[], bf16[8,1024])) -> (s32[], bf16[8,1024]) {
  %p = (s32[], bf16[8,1024]{1,0}) parameter(0)
  %ag = bf16[8,1024]{1,0:T(8,128)(2,1)} all-gather(%x), channel_id=2, dimensions={0}
  %w = (s32[], f32[256]{0}) while(%t0), condition=%inner_cond, body=%inner_body
  ROOT %t = (s32[], bf16[8,1024]{1,0}) tuple(%i, %ag)
}

%inner_cond (p: (s32[], f32[256])) -> pred[] {
  %constant.7 = s32[]{:T(128)} constant(3)
  %p = (s32[], f32[256]{0}) parameter(0)
  %i = s32[]{:T(128)} get-tuple-element(%p), index=0
  ROOT %lt = pred[]{:T(512)} compare(%i, %constant.7), direction=LT
}

%dead (p: f32[64]) -> f32[64] {
  ROOT %ar = f32[64]{0} all-reduce(%p), to_apply=%add
}

ENTRY %main (a: f32[1024], /*index=1*/b: bf16[8,1024]) -> f32[128] {
  %w = (s32[], bf16[8,1024]{1,0}) while(%t), condition=%cond, body=%outer_body, backend_config={"known_trip_count":{"n":"24"}}
  %rs = (f32[1024]{0}, f32[128]{0}) reduce-scatter-start(%a), dimensions={0}
  ROOT %d = f32[128]{0} reduce-scatter-done(%rs)
}
"""


def test_collectives_are_counted_per_step_with_loop_trip_counts():
    counted = tpu_compile.collectives(_HLO)
    assert counted["all-gather"] == {"count": 24, "bytes": 24 * 8 * 1024 * 2}
    assert counted["all-reduce"] == {"count": 24 * 3, "bytes": 24 * 3 * 2 * 256 * 4}
    assert counted["reduce-scatter"] == {"count": 1, "bytes": 128 * 4}
    assert counted["all-to-all"]["count"] == counted["collective-permute"]["count"] == 0


def _size(tree) -> int:
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))


def _tiny(mesh: dict, **overrides):
    config = pretrain_tiny.get_config()
    config.mesh.update(mesh)
    config.data.update(max_seq_length=32, max_predictions_per_seq=4)
    config.batch_size = 16
    config.update(overrides)
    return config


@pytest.fixture(scope="module")
def tiny_reports():
    return {name: tpu_compile.run(_tiny(mesh), "cpu", margin=0.1)
            for name, mesh in (("dp", {"data": 8, "fsdp": 1}), ("fsdp", {"data": 1, "fsdp": 8}))}


def test_cpu_compile_reports_bytes_flops_and_collectives(tiny_reports):
    config = _tiny({})
    bert_config = train.bert_config_from(config.model)
    param_bytes = 4 * _size(param_count.abstract_params(bert_config))
    dp, fsdp = tiny_reports["dp"], tiny_reports["fsdp"]
    assert dp["devices"] == 8 and dp["kind"] == "pretrain"
    assert dp["params_bytes"] == param_bytes  # replicated: every device holds all of it
    assert fsdp["params_bytes"] < param_bytes / 4  # split over 8 (small vectors replicated)
    assert dp["fits"] is None and dp["hbm_bytes_per_device"] is None  # no HBM figure for CPUs
    model = flops.train_flops_per_step(bert_config, config.batch_size,
                                       config.data.max_seq_length,
                                       config.data.max_predictions_per_seq)
    assert dp["model_flops_per_device"] == pytest.approx(model / 8)
    # No loop in this step (no accumulation, layers unrolled): XLA's count is the model's matmuls
    # plus the non-matmul work (large at H=128: layer norms, softmax, dropout bits, the update).
    assert 0.95 < dp["compiled_over_model_flops"] < 1.6
    assert dp["total_bytes"] >= dp["argument_bytes"] >= dp["params_bytes"] + dp["opt_state_bytes"]
    # dp all-reduces the gradients; fsdp gathers weights and reduce-scatters (or all-reduces)
    # their gradients.
    assert dp["collectives"]["all-reduce"]["bytes"] >= param_bytes
    assert dp["collectives"]["all-gather"]["count"] == 0
    assert fsdp["collectives"]["all-gather"]["count"] > 0


def test_cpu_compile_of_the_vmapped_sweep_step():
    config = bert_large_glue.get_config("task=rte")
    config.model.preset = "tiny"
    config.sweep.seeds_per_program = 8
    config.data.max_seq_length = 32
    config.batch_size = 4
    out = tpu_compile.run(config, "cpu", margin=0.1, arm="mixout")
    assert out["kind"] == "sweep" and out["arm"] == "mixout" and out["mesh"] == {"data": 8}
    bert_config = train.bert_config_from(config.model)
    per_seed = 4 * _size(jax.eval_shape(lambda: modeling.BertForSequenceClassification(
        bert_config, 2).init(jax.random.PRNGKey(0), *modeling.dummy_inputs(1, 8))["params"]))
    assert out["params_bytes"] == pytest.approx(per_seed, rel=0.01)  # one whole seed per device
    assert np.isfinite(out["compiled_flops_per_device"])
    # Each device trains whole seeds: nothing to communicate (under the pretraining axis rules
    # the step all-gathered activations and all-reduced gradients across seeds).
    assert all(c["count"] == 0 for c in out["collectives"].values()), out["collectives"]


def test_every_tpu_config_names_a_topology_that_exists():
    from experiments import bert_base_pretrain, bert_large_pretrain
    configs = [bert_base_pretrain.get_config(f"phase={p}") for p in ("1", "2", "lamb")]
    configs += [bert_large_pretrain.get_config(f"phase={p}") for p in ("1", "2", "lamb")]
    configs.append(bert_large_glue.get_config("task=rte"))
    for config in configs:
        libtpu_name, chip = tpu_compile.parse_topology(config.tpu_topology)
        dims = [int(d) for d in libtpu_name.split(":")[1].split("x")]
        devices = int(np.prod(dims))  # one JAX device per chip (megacore on v4)
        if "sweep" not in config:
            shards = [s for s in (config.mesh.data, config.mesh.fsdp, config.mesh.tensor)]
            assert shards.count(-1) == 1
            per_microbatch = config.batch_size // config.grad_accum_steps
            assert per_microbatch % devices == 0, (config.tpu_topology, per_microbatch)
        assert chip.hbm_bytes > 0
    assert jax.devices()  # the module needs no TPU
