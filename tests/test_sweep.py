"""The vectorised many-seed engine (bertjax.sweep) and per-layer gradient norms (grad_norms).

Oracles: the same seeds run one at a time with the unvmapped step; finetune_input.train_batches
for each seed's data order; plain numpy norms of the gradient subtrees.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertjax import config as bert_config_lib
from bertjax import convert, grad_norms, modeling, optimizers, sweep, tasks
from data_pipelines import finetune_input

S = 16
NUM_LABELS = 3


@pytest.fixture(scope="module")
def tiny():
    config = bert_config_lib.preset("tiny", vocab_size=64, hidden_size=32, intermediate_size=64,
                                    max_position_embeddings=S)
    pretrained = nn.meta.unbox(modeling.BertModel(config).init(
        jax.random.PRNGKey(7), *modeling.dummy_inputs(1, S))["params"])
    return config, jax.device_get(pretrained)


def _features(num_examples, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_LABELS, num_examples).astype(np.int32)
    ids = rng.integers(5, 64, (num_examples, S)).astype(np.int32)
    ids[:, 0] = 2
    ids[:, 1] = 10 + labels  # a learnable cue
    mask = np.ones((num_examples, S), np.int32)
    mask[:, 12:] = 0
    return {"input_ids": ids * mask, "input_mask": mask,
            "segment_ids": np.zeros((num_examples, S), np.int32), "label_ids": labels}


def _accuracy(predictions, labels):
    return {"accuracy": float(np.mean(predictions == labels))}


def test_vectorised_seeds_equal_seeds_run_one_by_one(tiny):
    config, pretrained = tiny
    train, dev = _features(24, 0), _features(20, 1)
    opt = optimizers.create_optimizer(5e-3, 2 * 3, 1, optimizer="bert_adam")
    mesh = sweep.seed_mesh(4)
    assert mesh.shape["data"] == 4  # conftest fakes 8 CPU devices: one seed per device
    trainer = sweep.SeedTrainer(tasks.classification(config, NUM_LABELS), opt.tx, opt.schedule,
                                max_seq_length=S, mesh=mesh)
    seeds = sweep.seed_components([0, 1, 2, 3])
    kwargs = dict(batch_size=8, num_epochs=2, score_fn=_accuracy, eval_batch_size=8,
                  grad_norm_first_steps=2, grad_norm_every=3)
    together = trainer.run(pretrained, train, dev, seeds, **kwargs)
    alone = trainer.run(pretrained, train, dev, seeds, vectorised=False, **kwargs)

    leaf = together.state.params["classifier"]["kernel"]
    assert leaf.shape[0] == 4 and leaf.sharding.spec[0] == "data"
    for a, b in zip(jax.tree.leaves(together.state.params), jax.tree.leaves(alone.state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5, rtol=1e-5)
    assert together.grad_norm_steps == [0, 1, 3, 5]
    for a, b in zip(together.records, alone.records):
        assert a["dev_metrics"] == b["dev_metrics"]
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)
        assert list(a["grad_norms"]) == ["embeddings", "layer_0", "layer_1", "pooler",
                                         "classifier"]
        for group in a["grad_norms"]:
            np.testing.assert_allclose(a["grad_norms"][group], b["grad_norms"][group], rtol=1e-4)
        assert len(a["train_loss"]) == 6 and a["nonfinite_step"] == -1
    # Different seeds really are different runs (dropout, order and head all differ).
    assert together.records[0]["train_loss"] != together.records[1]["train_loss"]


def test_dev_history_scores_every_epoch_without_changing_training(tiny):
    config, pretrained = tiny
    train, dev = _features(24, 0), _features(20, 1)
    opt = optimizers.create_optimizer(5e-3, 3 * 3, 1, optimizer="bert_adam")
    trainer = sweep.SeedTrainer(tasks.classification(config, NUM_LABELS), opt.tx, opt.schedule,
                                max_seq_length=S, mesh=sweep.seed_mesh(2))
    seeds = sweep.seed_components([0, 1])
    kwargs = dict(batch_size=8, num_epochs=3, score_fn=_accuracy, eval_batch_size=8)
    plain = trainer.run(pretrained, train, dev, seeds, **kwargs)
    scored = trainer.run(pretrained, train, dev, seeds,
                         config=sweep.loop_config(eval_every_steps=3), **kwargs)
    alone = trainer.run(pretrained, train, dev, seeds, vectorised=False,
                        config=sweep.loop_config(eval_every_steps=3), **kwargs)
    for a, b, c in zip(plain.records, scored.records, alone.records):
        assert a["train_loss"] == b["train_loss"]  # scoring reads the params only
        assert a["dev_history"] == {}
        history = b["dev_history"]
        assert history["steps"] == [3, 6, 9] and len(history["accuracy"]) == 3
        # The last evaluation is the final model, scored as dev_metrics is.
        assert history["accuracy"][-1] == b["dev_metrics"]["accuracy"]
        assert c["dev_history"] == history


def test_seed_components_vary_what_they_should(tiny):
    config, pretrained = tiny
    assert sweep.seed_components([3, 4], data_seed=9) == [
        sweep.SeedComponents(3, 3, 9, 3), sweep.SeedComponents(4, 4, 9, 4)]
    task = tasks.classification(config, NUM_LABELS)
    init = jax.jit(sweep.make_init_fn(task, optimizers.create_optimizer(1e-3, 10, 1).tx, S))

    def state_of(seed):
        return init(*sweep._init_keys(seed), pretrained)

    a = state_of(sweep.SeedComponents(0, init_seed=5, data_seed=0, dropout_seed=0))
    b = state_of(sweep.SeedComponents(1, init_seed=5, data_seed=1, dropout_seed=1))
    c = state_of(sweep.SeedComponents(2, init_seed=6, data_seed=1, dropout_seed=1))
    np.testing.assert_array_equal(a.params["classifier"]["kernel"],
                                  b.params["classifier"]["kernel"])
    assert not np.allclose(a.params["classifier"]["kernel"], c.params["classifier"]["kernel"])
    assert not np.array_equal(a.rng, b.rng) and np.array_equal(b.rng, c.rng)
    for state in (a, c):  # the encoder is the pretrained one, whatever the seed
        for x, y in zip(jax.tree.leaves(state.params["bert"]), jax.tree.leaves(pretrained)):
            np.testing.assert_array_equal(x, y)

    train = _features(24, 0)
    stacked = list(sweep.stacked_train_batches(train, 8, [0, 0, 1], num_epochs=2))
    assert len(stacked) == 6 and stacked[0]["input_ids"].shape == (3, 8, S)
    for k, data_seed in enumerate([0, 0, 1]):
        alone = list(finetune_input.train_batches(train, 8, seed=data_seed, num_epochs=2))
        for together, single in zip(stacked, alone):
            np.testing.assert_array_equal(together["input_ids"][k], single["input_ids"])
    np.testing.assert_array_equal(stacked[0]["input_ids"][0], stacked[0]["input_ids"][1])
    assert not np.array_equal(stacked[0]["input_ids"][0], stacked[0]["input_ids"][2])


def test_layer_gradient_norms_match_numpy_on_both_layouts(tiny):
    config, _ = tiny
    model = modeling.BertForSequenceClassification(config, NUM_LABELS)
    grads = jax.device_get(nn.meta.unbox(model.init(jax.random.PRNGKey(3),
                                                    *modeling.dummy_inputs(1, S))["params"]))
    norms = jax.jit(grad_norms.layer_gradient_norms)(grads)
    assert grad_norms.group_names(grads) == ["embeddings", "layer_0", "layer_1", "pooler",
                                             "classifier"]
    assert set(norms) == set(grad_norms.group_names(grads))

    def numpy_norm(tree):
        return np.sqrt(sum(np.sum(np.square(x)) for x in jax.tree.leaves(tree)))

    expected = {"embeddings": grads["bert"]["embeddings"], "pooler": grads["bert"]["pooler"],
                "classifier": grads["classifier"],
                "layer_0": grads["bert"]["encoder"]["layer_0"],
                "layer_1": grads["bert"]["encoder"]["layer_1"]}
    for group, tree in expected.items():
        np.testing.assert_allclose(norms[group], numpy_norm(tree), rtol=1e-6)
    scanned = dict(grads, bert=convert.stack_layers(grads["bert"]))
    assert "layer" in scanned["bert"]["encoder"]
    for group, value in jax.jit(grad_norms.layer_gradient_norms)(scanned).items():
        np.testing.assert_allclose(value, norms[group], rtol=1e-6)

    tx = grad_norms.with_gradient_norms(optimizers.create_optimizer(1e-3, 10, 0).tx)
    _, state = jax.jit(lambda g: tx.update(g, tx.init(g), g))(grads)
    for group, value in grad_norms.read_gradient_norms(state).items():
        np.testing.assert_allclose(value, norms[group], rtol=1e-6)  # before clipping
    with pytest.raises(ValueError, match="with_gradient_norms"):
        grad_norms.read_gradient_norms(optimizers.create_optimizer(1e-3, 10, 0).tx.init(grads))


def test_grad_norm_steps_and_errors(tiny):
    assert sweep.grad_norm_steps(12, 3, 4) == [0, 1, 2, 4, 8, 11]
    with pytest.raises(ValueError, match="grad_norm_every"):
        sweep.grad_norm_steps(5, 1, 0)
    config, pretrained = tiny
    wrong = jax.tree.map(lambda x: x, pretrained)
    wrong["pooler"] = {"dense": {"kernel": jnp.zeros((32, 31)), "bias": jnp.zeros(32)}}
    with pytest.raises(ValueError, match="bert/pooler/dense/kernel"):
        sweep.check_pretrained(tasks.classification(config, NUM_LABELS), wrong, S)
