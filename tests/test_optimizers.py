"""BERT's optimizers against the originals' outputs and against torch/HF.

Oracles:
  * tests/golden/optimization.json: google-research/bert optimization.py (`create_optimizer`,
    `AdamWeightDecayOptimizer`) run on stored params and seeded gradients; params at checkpoints.
  * torch.optim.AdamW + torch.nn.utils.clip_grad_norm_ + transformers'
    get_linear_schedule_with_warmup: the Hugging Face fine-tuning recipe.
  * `NumpyLamb`: Algorithm 2 of You et al. 2019 ("Large Batch Optimization for Deep Learning").
Param trees are hand-built in the layout of bertjax.modeling (see `make_pretraining_params`).
"""


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertjax import optimizers
from bertjax.optimizers import param_name
from tests import golden
from tests.golden import golden_inputs

NUM_LAYERS = 2


def make_bert_params(rng: np.random.Generator, num_layers=NUM_LAYERS, hidden=4, heads=2, ffn=8,
                     vocab=11, positions=8, token_types=2):
    """BertModel params (layer_{i} layout) with random non-zero values everywhere."""
    head_size = hidden // heads

    def normal(*shape):
        return rng.normal(0.0, 0.5, shape).astype(np.float32)

    def layer_norm():
        return {"scale": 1.0 + normal(hidden), "bias": normal(hidden)}

    def layer():
        return {
            "attention": {
                "self": {
                    name: {
                        "kernel": normal(hidden, heads, head_size), "bias": normal(heads, head_size)
                    }
                    for name in ("query", "key", "value")
                },
                "output": {
                    "dense": {"kernel": normal(heads, head_size, hidden), "bias": normal(hidden)},
                    "LayerNorm": layer_norm(),
                },
            },
            "intermediate": {"dense": {"kernel": normal(hidden, ffn), "bias": normal(ffn)}},
            "output": {
                "dense": {"kernel": normal(ffn, hidden), "bias": normal(hidden)},
                "LayerNorm": layer_norm(),
            },
        }

    return {
        "embeddings": {
            "word_embeddings": {"embedding": normal(vocab, hidden)},
            "token_type_embeddings": {"embedding": normal(token_types, hidden)},
            "position_embeddings": {"embedding": normal(positions, hidden)},
            "LayerNorm": layer_norm(),
        },
        "encoder": {f"layer_{i}": layer() for i in range(num_layers)},
        "pooler": {"dense": {"kernel": normal(hidden, hidden), "bias": normal(hidden)}},
    }


def make_pretraining_params(seed=0, num_layers=NUM_LAYERS, hidden=4, vocab=11):
    """BertForPreTraining params: {"bert": ..., "cls": {"predictions", "seq_relationship"}}."""
    rng = np.random.default_rng(seed)
    bert = make_bert_params(rng, num_layers=num_layers, hidden=hidden, vocab=vocab)

    def normal(*shape):
        return rng.normal(0.0, 0.5, shape).astype(np.float32)

    cls = {
        "predictions": {
            "transform": {
                "dense": {"kernel": normal(hidden, hidden), "bias": normal(hidden)},
                "LayerNorm": {"scale": 1.0 + normal(hidden), "bias": normal(hidden)},
            },
            "output_bias": normal(vocab),
        },
        "seq_relationship": {"kernel": normal(hidden, 2), "bias": normal(2)},
    }
    return {"bert": bert, "cls": cls}


def stack_layers(params):
    """The scan_layers=True layout: encoder/layer_{i} leaves stacked under encoder/layer."""
    encoder = params["bert"]["encoder"]
    layers = [encoder[f"layer_{i}"] for i in range(len(encoder))]
    stacked = jax.tree.map(lambda *leaves: np.stack(leaves), *layers)
    return {**params, "bert": {**params["bert"], "encoder": {"layer": stacked}}}


def unstack_layers(params):
    stacked = params["bert"]["encoder"]["layer"]
    num_layers = jax.tree.leaves(stacked)[0].shape[0]
    encoder = {f"layer_{i}": jax.tree.map(lambda leaf: leaf[i], stacked) for i in range(num_layers)}
    return {**params, "bert": {**params["bert"], "encoder": encoder}}


def named_leaves(tree):
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {param_name(path): np.asarray(leaf) for path, leaf in flat}


def random_gradients(params, rng, scale):
    return jax.tree.map(lambda p: (scale * rng.normal(size=p.shape)).astype(np.float32), params)


# Gradient scales per step, cycling: large (clipped), tiny (norm < 1: not clipped), unit (clipped).
GRADIENT_SCALES = (10.0, 1e-3, 1.0)


OPTIMIZATION = golden.load("optimization")


def unflatten(named):
    """{"a/b/c": leaf} -> {"a": {"b": {"c": leaf}}} (inverse of named_leaves)."""
    tree = {}
    for name, leaf in named.items():
        *parents, key = name.split("/")
        node = tree
        for parent in parents:
            node = node.setdefault(parent, {})
        node[key] = leaf
    return tree


def golden_case(name, seed):
    """A stored optimizer case: its initial params (those of make_pretraining_params(seed)), its
    seeded gradient trees, and the original's params after each checkpoint step."""
    case = OPTIMIZATION["inputs"][name]
    initial = golden_inputs.named_arrays(case["params"])
    made = named_leaves(make_pretraining_params(seed=seed))
    assert initial.keys() == made.keys()
    for leaf_name, value in made.items():
        np.testing.assert_array_equal(initial[leaf_name], value, err_msg=leaf_name)
    steps = case.get("num_train_steps", case.get("steps"))
    gradients = [unflatten(g) for g in golden_inputs.seeded_gradients(
        case["params"], case["gradient_seed"], case["gradient_scales"], steps)]
    expected = {
        int(step): {leaf_name: np.asarray(values, np.float32).reshape(initial[leaf_name].shape)
                    for leaf_name, values in params.items()}
        for step, params in OPTIMIZATION["outputs"][name]["params"].items()
    }
    return unflatten(initial), gradients, expected


def run_optax(tx, params, gradients):
    """Applies `tx` to `params` with each gradient tree in turn; yields the params after each."""

    @jax.jit
    def step(params, opt_state, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for grads in gradients:
        params, opt_state = step(params, opt_state, grads)
        yield params


def _is_named(tree):
    return all(isinstance(leaf, np.ndarray) for leaf in tree.values())


def assert_trees_close(actual, expected, rtol, atol_fraction, context):
    """Per leaf: |a - e| <= rtol |e| + atol_fraction * max|e| (scale-aware for leaves near 0)."""
    actual = actual if _is_named(actual) else named_leaves(actual)
    expected = expected if _is_named(expected) else named_leaves(expected)
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_allclose(
            actual[name], expected[name], rtol=rtol,
            atol=atol_fraction * float(np.max(np.abs(expected[name]))),
            err_msg=f"{context}: {name}",
        )


def test_weight_decay_mask_excludes_layer_norm_and_every_bias():
    params = make_pretraining_params()
    mask = named_leaves(optimizers.weight_decay_mask(params))
    decayed = {name for name, is_decayed in mask.items() if is_decayed}
    # Independent of the regexes: kernels and embedding tables are decayed, nothing else.
    assert decayed == {name for name in mask if name.endswith(("/kernel", "/embedding"))}
    assert "bert/embeddings/word_embeddings/embedding" in decayed
    assert not mask["cls/predictions/output_bias"]
    assert not mask["bert/encoder/layer_1/attention/output/LayerNorm/scale"]
    assert not mask["cls/seq_relationship/bias"]
    assert mask["cls/seq_relationship/kernel"]
    # Same names through flax's logical-partitioning boxes.
    boxed = jax.tree.map(
        lambda leaf: nn.LogicallyPartitioned(leaf, names=(None,) * leaf.ndim), params
    )
    boxed_mask = optimizers.weight_decay_mask(boxed)
    assert named_leaves(nn.meta.unbox(boxed_mask)) == mask
    # Custom patterns.
    only_embeddings_kept = named_leaves(optimizers.weight_decay_mask(params, ["^(?!.*embeddings)"]))
    kept = {name for name, is_decayed in only_embeddings_kept.items() if is_decayed}
    assert kept == {name for name in mask if "embeddings" in name}


@pytest.mark.parametrize("layout", ["layer_i", "scanned"])
def test_create_optimizer_matches_original_bert_recipe(layout):
    """50 steps of the default recipe == the original's (golden), with and without clipping."""
    case = OPTIMIZATION["inputs"]["recipe"]
    original = OPTIMIZATION["outputs"]["recipe"]
    params, gradients, expected = golden_case("recipe", seed=1)
    tx, lr_fn = optimizers.create_optimizer(case["init_lr"], case["num_train_steps"],
                                            case["num_warmup_steps"])
    to_layout = stack_layers if layout == "scanned" else (lambda tree: tree)
    from_layout = unstack_layers if layout == "scanned" else (lambda tree: tree)
    actual_steps = run_optax(tx, to_layout(params), [to_layout(g) for g in gradients])
    for t, actual in enumerate(actual_steps):
        np.testing.assert_allclose(float(lr_fn(t)), original["learning_rates"][t], rtol=1e-6,
                                   atol=1e-9)
        if t + 1 in expected:
            assert_trees_close(named_leaves(from_layout(actual)), expected[t + 1], 1e-6, 1e-6,
                               f"step {t + 1}")
    assert sorted(expected) == case["checkpoints"] and max(expected) == t + 1
    # Both regimes were exercised: 2 of every 3 steps clip, the tiny-gradient steps do not.
    assert original["clipped_steps"] == 33
    # And the params moved well beyond the tolerance.
    moved = named_leaves(from_layout(actual))["bert/embeddings/word_embeddings/embedding"]
    initial = params["bert"]["embeddings"]["word_embeddings"]["embedding"]
    assert np.max(np.abs(moved - initial)) > 0.05


def test_bert_adam_constant_lr_without_decay_matches_original():
    case = OPTIMIZATION["inputs"]["constant"]
    params, gradients, expected = golden_case("constant", seed=3)
    actual_steps = run_optax(optimizers.bert_adam(case["learning_rate"], weight_decay_rate=0.0),
                             params, gradients)
    for t, actual in enumerate(actual_steps):
        if t + 1 in expected:
            assert_trees_close(named_leaves(actual), expected[t + 1], 1e-6, 1e-6, f"step {t + 1}")
    assert sorted(expected) == case["checkpoints"] and max(expected) == t + 1


def test_missing_bias_correction_enlarges_early_steps_by_the_published_factors():
    """Adam's step / BERT's step = sqrt(1 - b2^t) / (1 - b1^t): 0.316, 0.153, 0.309, 0.795."""
    num_steps = 1000
    grads = jnp.ones((num_steps, 1), jnp.float32)  # A constant gradient: m, v need no correction.

    def step_sizes(tx):
        def body(state, grad):
            updates, state = tx.update(grad, state, jnp.zeros(1))
            return state, -updates[0]

        return jax.lax.scan(body, tx.init(jnp.zeros(1)), grads)[1]

    bert_steps = step_sizes(optimizers.bert_adam(1.0, weight_decay_rate=0.0))
    adam_steps = step_sizes(optax.adamw(1.0, eps=1e-6, weight_decay=0.0))
    ratio = np.asarray(adam_steps / bert_steps)
    for t, published in [(1, 0.316), (10, 0.153), (100, 0.309), (1000, 0.795)]:
        exact = np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
        np.testing.assert_allclose(ratio[t - 1], exact, rtol=1e-4)
        assert round(float(ratio[t - 1]), 3) == published


def test_adamw_hf_recipe_matches_torch_adamw_with_hf_schedule():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    init_lr, num_train_steps, num_warmup_steps = 0.01, 30, 3
    params = make_pretraining_params(seed=5)
    rng = np.random.default_rng(6)
    gradients = [
        random_gradients(params, rng, GRADIENT_SCALES[t % 3]) for t in range(num_train_steps)
    ]

    names = named_leaves(params)
    mask = named_leaves(optimizers.weight_decay_mask(params))
    torch_params = {name: torch.nn.Parameter(torch.tensor(value)) for name, value in names.items()}
    torch_optimizer = torch.optim.AdamW(
        [
            {"params": [p for n, p in torch_params.items() if mask[n]], "weight_decay": 0.01},
            {"params": [p for n, p in torch_params.items() if not mask[n]], "weight_decay": 0.0},
        ],
        lr=init_lr, betas=(0.9, 0.999), eps=1e-6,
    )
    hf_scheduler = transformers.get_linear_schedule_with_warmup(
        torch_optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_train_steps
    )

    tx, _ = optimizers.create_optimizer(
        init_lr, num_train_steps, num_warmup_steps, optimizer="adamw", schedule="hf"
    )
    for t, (grads, actual) in enumerate(zip(gradients, run_optax(tx, params, gradients))):
        for name, grad in named_leaves(grads).items():
            torch_params[name].grad = torch.tensor(grad)
        torch.nn.utils.clip_grad_norm_(list(torch_params.values()), max_norm=1.0)
        torch_optimizer.step()
        hf_scheduler.step()
        expected = {name: p.detach().numpy() for name, p in torch_params.items()}
        # torch clips by max_norm / (norm + 1e-6), a 1e-6-relative difference from tf/optax.
        assert_trees_close(actual, expected, 2e-6, 2e-6, f"step {t}")


class NumpyLamb:
    """You et al. 2019, Algorithm 2 (LAMB), with clipping, masked decay and the BERT schedule."""

    def __init__(self, lr_fn, weight_decay_rate=0.01, b1=0.9, b2=0.999, eps=1e-6):
        self.lr_fn, self.weight_decay_rate = lr_fn, weight_decay_rate
        self.b1, self.b2, self.eps = b1, b2, eps
        self.m, self.v, self.t = {}, {}, 0

    def apply_gradients(self, grads, params, mask):
        global_norm = np.sqrt(sum(np.sum(np.square(g)) for g in grads.values()))
        grads = {n: g * min(1.0, 1.0 / global_norm) for n, g in grads.items()}
        learning_rate = float(self.lr_fn(self.t))
        self.t += 1
        new_params = {}
        for name, param in params.items():
            g = grads[name]
            self.m[name] = self.b1 * self.m.get(name, 0.0) + (1 - self.b1) * g
            self.v[name] = self.b2 * self.v.get(name, 0.0) + (1 - self.b2) * g * g
            m_hat = self.m[name] / (1 - self.b1**self.t)
            v_hat = self.v[name] / (1 - self.b2**self.t)
            r = m_hat / (np.sqrt(v_hat) + self.eps)
            if mask[name]:
                r = r + self.weight_decay_rate * param
            param_norm, r_norm = np.linalg.norm(param), np.linalg.norm(r)
            trust_ratio = param_norm / r_norm if param_norm > 0 and r_norm > 0 else 1.0
            new_params[name] = param - learning_rate * trust_ratio * r
        return new_params


def test_lamb_matches_paper_algorithm_and_is_layout_independent():
    init_lr, num_train_steps, num_warmup_steps = 0.05, 20, 2
    params = make_pretraining_params(seed=7)
    params["cls"]["seq_relationship"]["bias"] = np.zeros(2, np.float32)  # Zero norm -> ratio 1.
    rng = np.random.default_rng(8)
    gradients = [
        random_gradients(params, rng, GRADIENT_SCALES[t % 3]) for t in range(num_train_steps)
    ]
    tx, lr_fn = optimizers.create_optimizer(
        init_lr, num_train_steps, num_warmup_steps, optimizer="lamb"
    )
    oracle = NumpyLamb(lr_fn)
    mask = named_leaves(optimizers.weight_decay_mask(params))
    expected = {n: v.astype(np.float64) for n, v in named_leaves(params).items()}
    unscanned = run_optax(tx, params, gradients)
    scanned = run_optax(tx, stack_layers(params), [stack_layers(g) for g in gradients])
    for t, (grads, actual, actual_scanned) in enumerate(zip(gradients, unscanned, scanned)):
        expected = oracle.apply_gradients(
            {n: g.astype(np.float64) for n, g in named_leaves(grads).items()}, expected, mask
        )
        assert_trees_close(actual, expected, 1e-5, 1e-5, f"step {t} vs paper")
        assert_trees_close(unstack_layers(actual_scanned), named_leaves(actual), 1e-6, 1e-6,
                           f"step {t} scanned")


def test_layerwise_lr_scales_per_layer():
    decay = 0.5
    params = make_pretraining_params()
    scales = named_leaves(optimizers.layerwise_lr_scales(params, decay, NUM_LAYERS))
    for name, scale in scales.items():
        if name.startswith("bert/embeddings/"):
            expected = decay ** (NUM_LAYERS + 1)  # 1/8: below the lowest layer.
        elif name.startswith("bert/encoder/layer_"):
            layer = int(name.split("/")[2].removeprefix("layer_"))
            expected = decay ** (NUM_LAYERS - layer)  # layer 0: 1/4, top layer 1: 1/2.
        else:  # pooler, cls heads
            expected = 1.0
        assert float(scale) == expected, name
    stacked = optimizers.layerwise_lr_scales(stack_layers(params), decay, NUM_LAYERS)
    kernel_scale = stacked["bert"]["encoder"]["layer"]["attention"]["self"]["query"]["kernel"]
    assert kernel_scale.shape == (NUM_LAYERS, 1, 1, 1)
    np.testing.assert_array_equal(kernel_scale.ravel(), [0.25, 0.5])


def test_llrd_scales_each_update_by_its_layer_factor():
    """LLRD comes after the update rule in the chain, so one rule (bert_adam) shows it."""
    optimizer, decay = "bert_adam", 0.8
    params = make_pretraining_params(seed=9)
    rng = np.random.default_rng(10)
    gradients = [random_gradients(params, rng, 1.0) for _ in range(4)]
    plain, _ = optimizers.create_optimizer(0.01, 10, 0, optimizer=optimizer)
    llrd, _ = optimizers.create_optimizer(
        0.01, 10, 0, optimizer=optimizer, layerwise_lr_decay=decay, num_layers=NUM_LAYERS
    )
    scales = named_leaves(optimizers.layerwise_lr_scales(params, decay, NUM_LAYERS))
    plain_update, llrd_update = jax.jit(plain.update), jax.jit(llrd.update)
    plain_state, llrd_state = plain.init(params), llrd.init(params)
    for grads in gradients:  # Same params each time: the updates differ only by the factors.
        plain_updates, plain_state = plain_update(grads, plain_state, params)
        llrd_updates, llrd_state = llrd_update(grads, llrd_state, params)
        plain_updates, llrd_updates = named_leaves(plain_updates), named_leaves(llrd_updates)
        for name, scale in scales.items():
            np.testing.assert_allclose(llrd_updates[name], plain_updates[name] * scale, rtol=1e-6,
                                       err_msg=name)
    assert float(scales["bert/embeddings/LayerNorm/bias"]) == pytest.approx(decay**3)


def test_llrd_scanned_layout_equals_unscanned():
    params = make_pretraining_params(seed=11)
    rng = np.random.default_rng(12)
    gradients = [random_gradients(params, rng, GRADIENT_SCALES[t % 3]) for t in range(12)]
    tx, _ = optimizers.create_optimizer(0.01, 12, 2, layerwise_lr_decay=0.7, num_layers=NUM_LAYERS)
    unscanned = run_optax(tx, params, gradients)
    scanned = run_optax(tx, stack_layers(params), [stack_layers(g) for g in gradients])
    for t, (actual_unscanned, actual_scanned) in enumerate(zip(unscanned, scanned)):
        assert_trees_close(
            unstack_layers(actual_scanned), named_leaves(actual_unscanned), 1e-6, 1e-6, f"step {t}"
        )


def test_llrd_rejects_inconsistent_layers():
    params = make_pretraining_params()
    with pytest.raises(ValueError, match="needs num_layers"):
        optimizers.create_optimizer(0.01, 10, 0, layerwise_lr_decay=0.9)
    with pytest.raises(ValueError, match="has layers"):
        optimizers.layerwise_lr_scales(params, 0.9, NUM_LAYERS + 1)
    with pytest.raises(ValueError, match="belongs to layer 1"):
        optimizers.layerwise_lr_scales(params, 0.9, 1)
    with pytest.raises(ValueError, match="leading layer axis"):
        optimizers.layerwise_lr_scales(stack_layers(params), 0.9, NUM_LAYERS + 1)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        optimizers.create_optimizer(0.01, 10, 0, optimizer="sgd")


def test_bert_adam_keeps_moments_in_float32_for_bfloat16_params():
    params = jax.tree.map(lambda p: jnp.asarray(p, jnp.bfloat16), make_pretraining_params()["cls"])
    grads = jax.tree.map(jnp.ones_like, params)
    tx = optimizers.bert_adam(1e-3)
    updates, state = jax.jit(tx.update)(grads, tx.init(params), params)
    adam_state = state[0]
    assert {leaf.dtype for leaf in jax.tree.leaves(adam_state.mu)} == {jnp.dtype(jnp.float32)}
    assert {leaf.dtype for leaf in jax.tree.leaves(adam_state.nu)} == {jnp.dtype(jnp.float32)}
    assert {leaf.dtype for leaf in jax.tree.leaves(updates)} == {jnp.dtype(jnp.bfloat16)}

    compact = optimizers.bert_adam(1e-3, mu_dtype=jnp.bfloat16)
    compact_state = jax.jit(compact.update)(grads, compact.init(params), params)[1][0]
    assert {leaf.dtype for leaf in jax.tree.leaves(compact_state.mu)} == {jnp.dtype(jnp.bfloat16)}
    assert {leaf.dtype for leaf in jax.tree.leaves(compact_state.nu)} == {jnp.dtype(jnp.float32)}
