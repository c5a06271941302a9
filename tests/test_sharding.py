"""Sharded train steps on 8 fake CPU devices equal the single-device step (dp, fsdp, tp, dp x tp).

One SGD step with learning rate 1 makes the param change equal to minus the gradient, so comparing
params after the step compares every gradient leaf.
"""

import jax
import numpy as np
import optax
import pytest

from bertjax import config as bert_config, modeling, sharding, train_step
from data_pipelines.features import synthetic_batch as make_batch

VOCAB, SEQ, PREDS, BATCH = 128, 16, 4, 8


def _config(**kw):
    kw = {"vocab_size": VOCAB, **kw}
    return bert_config.preset("tiny", max_position_embeddings=32, hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0, **kw)


def _one_step(mesh_shape, devices=None, grad_accum_steps=1, **config_kw):
    model = modeling.BertForPreTraining(_config(**config_kw))
    tx = optax.sgd(1.0)
    mesh = sharding.create_mesh(mesh_shape, devices=devices)
    state, shardings = train_step.init_train_state(model, tx, mesh, seed=0,
                                                   init_args=modeling.dummy_inputs(1, SEQ))
    before = jax.device_get(state.params)
    step = jax.jit(train_step.make_train_step(model, tx, lambda s: 1.0,
                                              grad_accum_steps=grad_accum_steps),
                   in_shardings=(shardings, None), out_shardings=(shardings, None))
    with jax.set_mesh(mesh), sharding.axis_rules():
        state, metrics = step(state, sharding.global_batch(make_batch(BATCH, SEQ, PREDS, VOCAB),
                                                           mesh))
    grads = jax.tree_util.tree_map(lambda b, a: b - a, before, jax.device_get(state.params))
    return float(metrics["loss"]), grads, state


@pytest.fixture(scope="module")
def single_device():
    return _one_step({"data": 1}, devices=jax.devices()[:1])


@pytest.mark.parametrize("mesh_shape", [
    {"data": 8}, {"fsdp": 8}, {"tensor": 2}, {"data": 4, "tensor": 2},
], ids=["dp", "fsdp", "tp", "dp_tp"])
def test_sharded_step_matches_single_device(single_device, mesh_shape):
    assert jax.device_count() == 8, "conftest fakes 8 CPU devices"
    size = int(np.prod(list(mesh_shape.values())))
    loss, grads, state = _one_step(mesh_shape, devices=jax.devices()[:size])
    ref_loss, ref_grads, _ = single_device
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, atol=1e-6)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                           grads, ref_grads)
    # The params really are laid out as the rules say (not silently replicated).
    query = state.params["bert"]["encoder"]["layer_0"]["attention"]["self"]["query"]["kernel"]
    spec = tuple(query.sharding.spec) + (None,) * 3
    if mesh_shape.get("fsdp", 1) > 1:
        assert spec[0] == "fsdp"
    if mesh_shape.get("tensor", 1) > 1:
        assert spec[1] == "tensor"  # the heads axis of [H, N, D]


def test_grad_accumulation_equals_large_batch(single_device):
    loss, grads, _ = _one_step({"data": 1}, devices=jax.devices()[:1], grad_accum_steps=4)
    ref_loss, ref_grads, _ = single_device
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                           grads, ref_grads)


def test_scanned_layers_shard_and_match():
    # Scanned init draws other random weights than the unrolled one: compare scan with scan.
    ref_loss, ref_grads, _ = _one_step({"data": 1}, devices=jax.devices()[:1], scan_layers=True)
    loss, grads, state = _one_step({"fsdp": 4, "tensor": 2}, scan_layers=True)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                           grads, ref_grads)
    kernel = state.params["bert"]["encoder"]["layer"]["attention"]["self"]["query"]["kernel"]
    assert kernel.shape[0] == 2 and kernel.sharding.spec[:2] == (None, "fsdp")


def test_mesh_shapes_and_errors():
    mesh = sharding.create_mesh({"data": -1, "tensor": 2})
    assert dict(mesh.shape) == {"data": 4, "fsdp": 1, "tensor": 2}
    with pytest.raises(ValueError, match="needs 16 devices"):
        sharding.create_mesh({"data": 8, "tensor": 2})
    assert sharding.create_mesh({"data": 2}).devices.size == 2  # explicit subsets are allowed
    with pytest.raises(ValueError, match="unknown axes"):
        sharding.create_mesh({"model": 2})
    with pytest.raises(ValueError, match="not divisible"):
        sharding.per_host_batch_size(12, sharding.create_mesh({"data": 8}))


def test_indivisible_dimension_is_replicated_not_an_error():
    mesh = sharding.create_mesh({"tensor": 8})
    model = modeling.BertForPreTraining(_config(vocab_size=30522 - 2))  # 30520 % 8 == 0
    boxed = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                              *modeling.dummy_inputs())["params"])
    shardings = sharding.param_shardings(boxed, mesh)
    assert shardings["bert"]["embeddings"]["word_embeddings"]["embedding"].spec[0] == "tensor"
    model = modeling.BertForPreTraining(_config(vocab_size=30522))  # 30522 % 8 != 0
    boxed = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                              *modeling.dummy_inputs())["params"])
    shardings = sharding.param_shardings(boxed, mesh)
    assert shardings["bert"]["embeddings"]["word_embeddings"]["embedding"].spec[0] is None
