"""Re-initialising the top layers and pooler (Zhang et al. 2021) on both layouts; Mixout."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from bertjax.optimizers import param_name
from bertjax.reinit import mixout, reinit_top_layers

NUM_LAYERS = 4
HIDDEN, HEADS, FFN, VOCAB = 32, 4, 128, 50


def make_bert_params(seed=0, num_layers=NUM_LAYERS):
    """BertModel params (layer_{i} layout) with "pretrained" values far from BERT's init."""
    rng = np.random.default_rng(seed)
    head_size = HIDDEN // HEADS

    def normal(*shape):
        return rng.normal(0.3, 1.0, shape).astype(np.float32)

    def layer_norm():
        return {"scale": normal(HIDDEN), "bias": normal(HIDDEN)}

    def layer():
        return {
            "attention": {
                "self": {
                    name: {
                        "kernel": normal(HIDDEN, HEADS, head_size), "bias": normal(HEADS, head_size)
                    }
                    for name in ("query", "key", "value")
                },
                "output": {
                    "dense": {"kernel": normal(HEADS, head_size, HIDDEN), "bias": normal(HIDDEN)},
                    "LayerNorm": layer_norm(),
                },
            },
            "intermediate": {"dense": {"kernel": normal(HIDDEN, FFN), "bias": normal(FFN)}},
            "output": {
                "dense": {"kernel": normal(FFN, HIDDEN), "bias": normal(HIDDEN)},
                "LayerNorm": layer_norm(),
            },
        }

    return {
        "embeddings": {
            "word_embeddings": {"embedding": normal(VOCAB, HIDDEN)},
            "token_type_embeddings": {"embedding": normal(2, HIDDEN)},
            "position_embeddings": {"embedding": normal(16, HIDDEN)},
            "LayerNorm": layer_norm(),
        },
        "encoder": {f"layer_{i}": layer() for i in range(num_layers)},
        "pooler": {"dense": {"kernel": normal(HIDDEN, HIDDEN), "bias": normal(HIDDEN)}},
    }


def stack_layers(bert):
    layers = [bert["encoder"][f"layer_{i}"] for i in range(len(bert["encoder"]))]
    return {**bert, "encoder": {"layer": jax.tree.map(lambda *leaves: np.stack(leaves), *layers)}}


def named_leaves(tree):
    return {param_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def is_reinitialised(name, num_layers_to_reinit, reinit_pooler=True):
    parts = name.split("/")
    if "pooler" in parts:
        return reinit_pooler
    if "encoder" in parts:
        layer = int(parts[parts.index("encoder") + 1].removeprefix("layer_"))
        return layer >= NUM_LAYERS - num_layers_to_reinit
    return False


def test_reinit_changes_exactly_the_top_layers_and_pooler_with_bert_init():
    params = make_bert_params()
    new_params = reinit_top_layers(params, 2, jax.random.key(0))
    old, new = named_leaves(params), named_leaves(new_params)
    assert old.keys() == new.keys()
    kernels = []
    for name in old:
        assert new[name].shape == old[name].shape and new[name].dtype == old[name].dtype, name
        if not is_reinitialised(name, 2):
            assert new[name] is old[name], name  # Bit-identical: the very same array.
            continue
        value = np.asarray(new[name])
        leaf = name.split("/")[-1]
        if name.endswith("LayerNorm/scale"):
            np.testing.assert_array_equal(value, 1.0, err_msg=name)
        elif leaf == "bias":
            np.testing.assert_array_equal(value, 0.0, err_msg=name)
        else:
            assert leaf == "kernel", name
            assert np.max(np.abs(value)) <= 0.04, name  # Truncated at 2 std.
            kernels.append(value.ravel())
    # 2 layers x (3 q/k/v + attention output + 2 FFN kernels) + the pooler kernel.
    assert len(kernels) == 2 * 6 + 1
    samples = np.concatenate(kernels)
    truncated = scipy.stats.truncnorm(-2.0, 2.0, scale=0.02)  # TF's truncated_normal_initializer.
    assert abs(samples.mean()) < 3 * truncated.std() / np.sqrt(samples.size)
    np.testing.assert_allclose(samples.std(), truncated.std(), rtol=0.02)  # ~0.0176 = 0.88 * 0.02
    assert scipy.stats.kstest(samples, truncated.cdf).pvalue > 1e-3


def test_reinit_under_a_task_model_leaves_the_head_and_respects_reinit_pooler():
    classifier = {"kernel": np.ones((HIDDEN, 3), np.float32), "bias": np.ones(3, np.float32)}
    params = {"bert": make_bert_params(seed=1), "classifier": classifier}
    new_params = reinit_top_layers(params, 1, jax.random.key(1), reinit_pooler=False)
    old, new = named_leaves(params), named_leaves(new_params)
    for name in old:
        changed = name.startswith("bert/") and is_reinitialised(name, 1, reinit_pooler=False)
        if changed:
            assert not np.array_equal(new[name], old[name]), name
        else:
            assert new[name] is old[name], name
    assert new_params["classifier"] is params["classifier"]


def test_reinit_nothing_returns_the_same_leaves():
    params = make_bert_params()
    new_params = reinit_top_layers(params, 0, jax.random.key(0), reinit_pooler=False)
    assert all(a is b for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(new_params)))


def test_scanned_layout_gets_the_same_new_weights():
    params = make_bert_params(seed=2)
    rng = jax.random.key(3)
    unscanned = reinit_top_layers({"bert": params}, 3, rng)
    scanned = reinit_top_layers({"bert": stack_layers(params)}, 3, rng)
    expected = named_leaves({"bert": stack_layers(unscanned["bert"])})
    actual = named_leaves(scanned)
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(
            np.asarray(actual[name]), np.asarray(expected[name]), err_msg=name
        )
    # The bottom layer's slice is untouched, bit for bit.
    old_query = stack_layers(params)["encoder"]["layer"]["attention"]["self"]["query"]["kernel"]
    new_query = scanned["bert"]["encoder"]["layer"]["attention"]["self"]["query"]["kernel"]
    np.testing.assert_array_equal(np.asarray(new_query[0]), old_query[0])
    assert not np.array_equal(np.asarray(new_query[1]), old_query[1])


def test_reinit_is_deterministic_in_rng_and_keeps_dtype():
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.bfloat16), make_bert_params(num_layers=2))
    first = reinit_top_layers(params, 1, jax.random.key(5))
    again = reinit_top_layers(params, 1, jax.random.key(5))
    other = reinit_top_layers(params, 1, jax.random.key(6))
    def kernel(tree):
        return np.asarray(tree["encoder"]["layer_1"]["output"]["dense"]["kernel"], np.float32)

    np.testing.assert_array_equal(kernel(first), kernel(again))
    assert not np.array_equal(kernel(first), kernel(other))
    assert {leaf.dtype for leaf in jax.tree.leaves(first)} == {jnp.dtype(jnp.bfloat16)}
    # Different layers and param names draw different values from the same key.
    assert not np.array_equal(
        np.asarray(first["encoder"]["layer_1"]["attention"]["self"]["query"]["kernel"]),
        np.asarray(first["encoder"]["layer_1"]["attention"]["self"]["key"]["kernel"]),
    )


def test_reinit_rejects_bad_input():
    params = make_bert_params()
    with pytest.raises(ValueError, match=r"num_layers_to_reinit must be in \[0, 4\]"):
        reinit_top_layers(params, 5, jax.random.key(0))
    with pytest.raises(ValueError, match=r"num_layers_to_reinit must be in \[0, 4\]"):
        reinit_top_layers({"bert": stack_layers(params)}, -1, jax.random.key(0))
    with pytest.raises(ValueError, match="no 'pooler'"):
        reinit_top_layers({k: v for k, v in params.items() if k != "pooler"}, 1, jax.random.key(0))
    with pytest.raises(ValueError, match="'bert' subtree"):
        reinit_top_layers({"classifier": {}}, 1, jax.random.key(0))
    broken = {**params, "encoder": {**params["encoder"], "extra": {}}}
    with pytest.raises(ValueError, match="unexpected encoder entry 'extra'"):
        reinit_top_layers(broken, 1, jax.random.key(0))


def test_mixout_swaps_a_rate_fraction_for_the_target_and_rescales_the_rest():
    rate = 0.7
    rng = np.random.default_rng(7)
    target = {  # Pretrained values u.
        "bert": {"pooler": {"dense": {"kernel": rng.normal(size=(64, 64)).astype(np.float32),
                                      "bias": rng.normal(size=64).astype(np.float32)}},
                 "embeddings": {"LayerNorm": {"scale": rng.normal(size=64).astype(np.float32)}}},
        "classifier": {"kernel": rng.normal(size=(64, 3)).astype(np.float32)},
    }
    params = jax.tree.map(lambda u: u + np.float32(0.5), target)  # Fine-tuned away from u.
    mixed = mixout(params, target, rate, jax.random.key(8))
    old, pretrained, new = named_leaves(params), named_leaves(target), named_leaves(mixed)
    swapped_fraction = []
    for name, w in old.items():
        out, u = np.asarray(new[name]), pretrained[name]
        if not name.endswith("/kernel"):
            np.testing.assert_array_equal(out, w, err_msg=name)  # Only kernels are mixed.
            continue
        is_swapped = np.isclose(out, u, rtol=1e-5, atol=1e-6)
        is_kept = np.isclose(out, (w - rate * u) / (1 - rate), rtol=1e-5, atol=1e-6)
        assert np.all(is_swapped ^ is_kept), name  # Every element is one or the other.
        swapped_fraction.append(is_swapped.ravel())
    swapped = np.concatenate(swapped_fraction)
    assert abs(swapped.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / swapped.size)


def test_mixout_is_unbiased_and_its_gradient_is_the_rescaled_mask():
    rate = 0.3
    weight = {"dense": {"kernel": jnp.linspace(-1.0, 1.0, 64).reshape(8, 8)}}
    target = {"dense": {"kernel": jnp.full((8, 8), 0.25)}}
    keys = jax.random.split(jax.random.key(9), 4000)
    def mixed_kernel(key):
        return mixout(weight, target, rate, key)["dense"]["kernel"]

    samples = jax.jit(jax.vmap(mixed_kernel))(keys)
    # E[out] = w; the per-element std of out is |w - u| sqrt(rate / (1 - rate)) <= 1.25 * 0.65.
    np.testing.assert_allclose(
        samples.mean(0), weight["dense"]["kernel"], atol=4 * 0.82 / np.sqrt(keys.shape[0])
    )

    key = jax.random.key(10)
    mix_and_sum = lambda w: jnp.sum(mixout(w, target, rate, key)["dense"]["kernel"])
    grad = jax.jit(jax.grad(mix_and_sum))(weight)
    out = mixout(weight, target, rate, key)["dense"]["kernel"]
    kept = ~np.isclose(out, 0.25, atol=1e-7)
    np.testing.assert_allclose(grad["dense"]["kernel"], kept / (1 - rate), rtol=1e-6)


def test_mixout_rate_zero_and_bad_input():
    params = {"dense": {"kernel": jnp.ones((2, 2))}}
    assert mixout(params, params, 0.0, jax.random.key(0)) is params
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        mixout(params, params, 1.0, jax.random.key(0))
    with pytest.raises(ValueError, match="structure of params"):
        mixout(params, {"other": {"kernel": jnp.ones((2, 2))}}, 0.5, jax.random.key(0))
    with pytest.raises(ValueError, match="has shape"):
        mixout(params, {"dense": {"kernel": jnp.ones((3, 2))}}, 0.5, jax.random.key(0))
