"""Checkpoint interop against the reference implementations.

Oracle: HF transformers' PyTorch BertForPreTraining with random weights (every parameter,
LayerNorms and biases included, drawn at random so a swapped or untransposed tensor shows). Its
state dict is written as an HF folder, as an original-format TF checkpoint (names and shapes from
the explicit table below, written independently of bertjax.convert's mapping), and read back by
bertjax; the outputs must match torch's within 1e-4 in fp32.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file, save_file

from bertjax import convert, modeling
from bertjax.config import BertConfig

TOL = 1e-4
TINY = dict(vocab_size=99, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=128, max_position_embeddings=32)


def _hf_config(**overrides) -> transformers.BertConfig:
    return transformers.BertConfig(**{**TINY, **overrides}, hidden_act="gelu",
                                   layer_norm_eps=1e-12)


def _randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator) * 0.2
            param.copy_(noise + (1.0 if "LayerNorm.weight" in name else 0.0))
    return model.eval()


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    return _randomize(transformers.BertForPreTraining(_hf_config()), seed=1)


@pytest.fixture(scope="module")
def hf_dir(hf_model, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("hf_pretraining"))
    hf_model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def batch():
    """A padded batch with two segments: B=3, S=12; rows 1 and 2 end in padding."""
    rng = np.random.RandomState(0)
    input_ids = rng.randint(1, TINY["vocab_size"], size=(3, 12))
    token_type_ids = np.zeros_like(input_ids)
    attention_mask = np.ones_like(input_ids)
    for row, (length, second_segment) in enumerate([(12, 6), (9, 4), (5, 3)]):
        token_type_ids[row, second_segment:length] = 1
        attention_mask[row, length:] = 0
        input_ids[row, length:] = 0
    return input_ids, token_type_ids, attention_mask


def _torch_outputs(model, batch) -> dict[str, np.ndarray]:
    input_ids, token_type_ids, attention_mask = (torch.tensor(x) for x in batch)
    with torch.no_grad():
        if isinstance(model, transformers.BertForPreTraining):
            out = model(input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask,
                        output_hidden_states=True)
            return {"sequence_output": out.hidden_states[-1].numpy(),
                    "mlm_logits": out.prediction_logits.numpy(),
                    "nsp_logits": out.seq_relationship_logits.numpy(),
                    "pooled_output": model.bert.pooler(out.hidden_states[-1]).numpy()}
        out = model(input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
        return {"sequence_output": out.last_hidden_state.numpy(),
                "pooled_output": out.pooler_output.numpy()}


def _bertjax_outputs(config, params, batch) -> dict[str, np.ndarray]:
    model_class = modeling.BertForPreTraining if "bert" in params else modeling.BertModel
    out = model_class(config).apply({"params": params}, *batch)
    return {key: np.asarray(value) for key, value in out.items()}


def _assert_outputs_close(ours, reference, tol=TOL):
    for key, expected in reference.items():
        np.testing.assert_allclose(ours[key], expected, atol=tol, rtol=0, err_msg=key)


@pytest.fixture(scope="module")
def reference(hf_model, batch):
    return _torch_outputs(hf_model, batch)


# ---------------------------------------------------------------------------- HF
def test_load_hf_pretraining_matches_torch_at_every_position(hf_dir, batch, reference):
    config, params = convert.load_hf(hf_dir)
    assert config == BertConfig(**TINY)
    assert set(params) == {"bert", "cls"}
    ours = _bertjax_outputs(config, params, batch)
    # All positions, padded ones included: both implementations compute padded queries the
    # same way (they attend to the real keys only), so there is no reason to exclude them.
    _assert_outputs_close(ours, reference)
    assert ours["mlm_logits"].shape == (3, 12, TINY["vocab_size"])


def test_load_hf_scan_layers_gives_the_stacked_layout(hf_dir, batch, reference):
    config, params = convert.load_hf(hf_dir, scan_layers=True)
    assert config.scan_layers
    assert set(params["bert"]["encoder"]) == {"layer"}
    kernel = params["bert"]["encoder"]["layer"]["attention"]["self"]["query"]["kernel"]
    assert kernel.shape == (2, 64, 4, 16)  # [L, H, N, D]
    _assert_outputs_close(_bertjax_outputs(config, params, batch), reference)


def test_load_hf_bert_model_with_and_without_prefix(hf_model, batch, tmp_path):
    encoder_only = hf_model.bert  # a transformers.BertModel sharing the random weights
    encoder_only.save_pretrained(tmp_path / "plain")
    config, params = convert.load_hf(str(tmp_path / "plain"))
    assert set(params) == {"embeddings", "encoder", "pooler"}
    expected = _torch_outputs(encoder_only, batch)
    _assert_outputs_close(_bertjax_outputs(config, params, batch), expected)
    # The same tensors named "bert.*" (as in a BertForPreTraining file without heads).
    prefixed = tmp_path / "prefixed"
    prefixed.mkdir()
    tensors = load_file(str(tmp_path / "plain" / "model.safetensors"))
    save_file({"bert." + k: v for k, v in tensors.items()}, str(prefixed / "model.safetensors"))
    (prefixed / "config.json").write_text((tmp_path / "plain" / "config.json").read_text())
    _, prefixed_params = convert.load_hf(str(prefixed))
    jax.tree_util.tree_map(np.testing.assert_array_equal, prefixed_params, params)


def test_load_hf_pytorch_bin_and_older_names(hf_model, hf_dir, tmp_path):
    """pytorch_model.bin; LayerNorm gamma/beta; an explicit (tied) decoder and decoder.bias;
    the position_ids buffer."""
    _, expected = convert.load_hf(hf_dir)
    state = {k: v.clone() for k, v in hf_model.state_dict().items()}
    state = {re.sub(r"LayerNorm\.weight$", "LayerNorm.gamma",
                    re.sub(r"LayerNorm\.bias$", "LayerNorm.beta", k)): v for k, v in state.items()}
    state["cls.predictions.decoder.weight"] = state["bert.embeddings.word_embeddings.weight"]
    state["cls.predictions.decoder.bias"] = state["cls.predictions.bias"]
    state["bert.embeddings.position_ids"] = torch.arange(32)[None]
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(open(os.path.join(hf_dir, "config.json")).read())
    _, params = convert.load_hf(str(tmp_path))
    jax.tree_util.tree_map(np.testing.assert_array_equal, params, expected)


def _rewrite_hf(hf_dir, tmp_path, edit):
    tensors = load_file(os.path.join(hf_dir, "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text(open(os.path.join(hf_dir, "config.json")).read())
    return str(tmp_path)


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("bert.encoder.layer.1.output.dense.bias"),
     r"missing tensor bert\.encoder\.layer\.1\.output\.dense\.bias: expected shape \(64,\)"),
    (lambda t: t.update({"classifier.weight": np.zeros((3, 64), np.float32)}),
     r"unexpected tensor classifier\.weight with shape \(3, 64\)"),
    (lambda t: t.update({"bert.pooler.dense.weight": np.zeros((64, 32), np.float32)}),
     r"tensor bert\.pooler\.dense\.weight: expected shape \(64, 64\), found \(64, 32\)"),
    (lambda t: t.update({"cls.predictions.decoder.weight": np.zeros((99, 64), np.float32)}),
     r"cls\.predictions\.decoder\.weight .* differs from bert\.embeddings\.word_embeddings"),
])
def test_load_hf_errors_name_the_tensor_and_shapes(hf_dir, tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        convert.load_hf(_rewrite_hf(hf_dir, tmp_path, edit))


def test_save_hf_loads_cleanly_in_transformers(hf_dir, hf_model, batch, reference, tmp_path):
    config, params = convert.load_hf(hf_dir, scan_layers=True)  # saved from the scan layout
    convert.save_hf(config, params, str(tmp_path / "pretraining"))
    reloaded, info = transformers.BertForPreTraining.from_pretrained(
        str(tmp_path / "pretraining"), output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    assert not info.get("error_msgs"), info
    _assert_outputs_close(_torch_outputs(reloaded.eval(), batch), reference)
    # The decoder really is tied to (not a copy of) the word embeddings.
    assert reloaded.cls.predictions.decoder.weight.data_ptr() == \
        reloaded.bert.embeddings.word_embeddings.weight.data_ptr()

    encoder_params = params["bert"]
    convert.save_hf(config, encoder_params, str(tmp_path / "encoder"))
    encoder, info = transformers.BertModel.from_pretrained(str(tmp_path / "encoder"),
                                                           output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    _assert_outputs_close(_torch_outputs(encoder.eval(), batch),
                          {k: reference[k] for k in ("sequence_output", "pooled_output")})


# ---------------------------------------------------------------------------- original TF
def _original_tf_variables(state: dict[str, torch.Tensor], num_layers: int) -> dict:
    """The original google-research/bert variable names and shapes, built from an HF state dict
    with an explicit table (kernels [in, out]; NSP output_weights [2, H] as the original stores
    it), independently of bertjax.convert."""
    def array(name, transpose=False):
        value = state[name].numpy()
        return np.ascontiguousarray(value.T if transpose else value)

    variables = {}

    def layer_norm(tf_scope, hf_scope):
        variables[f"{tf_scope}/LayerNorm/gamma"] = array(f"{hf_scope}.LayerNorm.weight")
        variables[f"{tf_scope}/LayerNorm/beta"] = array(f"{hf_scope}.LayerNorm.bias")

    def dense(tf_scope, hf_scope):
        variables[f"{tf_scope}/kernel"] = array(f"{hf_scope}.weight", transpose=True)
        variables[f"{tf_scope}/bias"] = array(f"{hf_scope}.bias")

    for table in ("word_embeddings", "token_type_embeddings", "position_embeddings"):
        variables[f"bert/embeddings/{table}"] = array(f"bert.embeddings.{table}.weight")
    layer_norm("bert/embeddings", "bert.embeddings")
    for i in range(num_layers):
        tf_layer, hf_layer = f"bert/encoder/layer_{i}", f"bert.encoder.layer.{i}"
        for name in ("query", "key", "value"):
            dense(f"{tf_layer}/attention/self/{name}", f"{hf_layer}.attention.self.{name}")
        dense(f"{tf_layer}/attention/output/dense", f"{hf_layer}.attention.output.dense")
        layer_norm(f"{tf_layer}/attention/output", f"{hf_layer}.attention.output")
        dense(f"{tf_layer}/intermediate/dense", f"{hf_layer}.intermediate.dense")
        dense(f"{tf_layer}/output/dense", f"{hf_layer}.output.dense")
        layer_norm(f"{tf_layer}/output", f"{hf_layer}.output")
    dense("bert/pooler/dense", "bert.pooler.dense")
    dense("cls/predictions/transform/dense", "cls.predictions.transform.dense")
    layer_norm("cls/predictions/transform", "cls.predictions.transform")
    variables["cls/predictions/output_bias"] = array("cls.predictions.bias")
    variables["cls/seq_relationship/output_weights"] = array("cls.seq_relationship.weight")
    variables["cls/seq_relationship/output_bias"] = array("cls.seq_relationship.bias")
    return variables


@pytest.fixture(scope="module")
def tf_variables(hf_model):
    return _original_tf_variables(hf_model.state_dict(), TINY["num_hidden_layers"])


@pytest.fixture(scope="module")
def bert_config_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tf_config") / "bert_config.json"
    path.write_text(json.dumps({**TINY, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
                                "attention_probs_dropout_prob": 0.1, "type_vocab_size": 2,
                                "initializer_range": 0.02}))
    return str(path)


def test_original_tf_checkpoint_matches_torch(tf_variables, bert_config_file, batch, reference,
                                              tmp_path):
    # A training checkpoint: Adam slots and the step counter beside the weights.
    slots = {f"{name}/adam_{slot}": np.zeros_like(value)
             for name, value in list(tf_variables.items())[:3] for slot in "mv"}
    prefix = str(tmp_path / "bert_model.ckpt")
    convert.write_tf_variables({**tf_variables, **slots,
                                "global_step": np.array(7, np.int64)}, prefix)
    config, params = convert.load_tf_checkpoint(prefix, bert_config_file)
    assert config == BertConfig(**TINY)
    _assert_outputs_close(_bertjax_outputs(config, params, batch), reference)

    # save_tf_checkpoint writes exactly the original names, shapes and values.
    import tensorflow as tf
    convert.save_tf_checkpoint(config, params, str(tmp_path / "again" / "bert_model.ckpt"))
    reader = tf.train.load_checkpoint(str(tmp_path / "again" / "bert_model.ckpt"))
    assert reader.get_variable_to_shape_map() == {k: list(v.shape)
                                                  for k, v in tf_variables.items()}
    for name, value in tf_variables.items():
        np.testing.assert_array_equal(reader.get_tensor(name), value, err_msg=name)


@pytest.mark.parametrize("edit, message", [
    (lambda v: v.pop("cls/predictions/output_bias"),
     r"missing tensor cls/predictions/output_bias: expected shape \(99,\), found none"),
    (lambda v: v.update({"output_weights": np.zeros((2, 64), np.float32)}),
     r"unexpected tensor output_weights with shape \(2, 64\)"),
    (lambda v: v.update({"cls/seq_relationship/output_weights": np.zeros((64, 2), np.float32)}),
     r"tensor cls/seq_relationship/output_weights: expected shape \(2, 64\), found \(64, 2\)"),
])
def test_load_tf_checkpoint_errors(tf_variables, bert_config_file, tmp_path, edit, message):
    variables = dict(tf_variables)
    edit(variables)
    convert.write_tf_variables(variables, str(tmp_path / "bert_model.ckpt"))
    with pytest.raises(ValueError, match=message):
        convert.load_tf_checkpoint(str(tmp_path / "bert_model.ckpt"), bert_config_file)


# ---------------------------------------------------------------------------- native, layouts
def test_native_checkpoint_round_trip_and_load_any(hf_dir, tmp_path, batch, reference):
    config, params = convert.load_hf(hf_dir)
    convert.save_checkpoint(config, params, str(tmp_path / "unrolled"))
    loaded_config, loaded = convert.load_checkpoint(str(tmp_path / "unrolled"))
    assert loaded_config == config
    jax.tree_util.tree_map(np.testing.assert_array_equal, loaded, params)

    stacked = convert.stack_layers(params)
    convert.save_checkpoint(config, stacked, str(tmp_path / "scanned"))
    scan_config, scan_params = convert.load_checkpoint(str(tmp_path / "scanned"))
    assert scan_config.scan_layers and convert.is_scanned(scan_params)
    jax.tree_util.tree_map(np.testing.assert_array_equal, scan_params, stacked)
    _, unrolled = convert.load_checkpoint(str(tmp_path / "scanned"), scan_layers=False)
    jax.tree_util.tree_map(np.testing.assert_array_equal, unrolled, params)

    convert.save_tf_checkpoint(config, params, str(tmp_path / "tf" / "bert_model.ckpt"))
    convert.write_config(config, str(tmp_path / "tf" / "bert_config.json"), "original")
    for path, kind in ((hf_dir, "hf"), (str(tmp_path / "scanned"), "bertjax"),
                       (str(tmp_path / "tf"), "tf"), (str(tmp_path / "tf" / "bert_model.ckpt"), "tf")):
        assert convert.detect_format(path) == kind
        any_config, any_params = convert.load_any(path, scan_layers=False)
        _assert_outputs_close(_bertjax_outputs(any_config, any_params, batch), reference)
    with pytest.raises(ValueError, match="not an HF folder"):
        convert.load_any(str(tmp_path / "nothing"))


def test_native_checkpoint_errors(hf_dir, tmp_path):
    config, params = convert.load_hf(hf_dir)
    convert.save_checkpoint(config, params, str(tmp_path))
    # A config that disagrees with the stored arrays: every layer-2 tensor is missing.
    convert.write_config(config.replace(num_hidden_layers=3), str(tmp_path / "config.json"), "bertjax")
    with pytest.raises(ValueError, match=r"missing tensor bert/encoder/layer_2/.*expected shape"):
        convert.load_checkpoint(str(tmp_path))
    convert.write_config(config.replace(intermediate_size=96), str(tmp_path / "config.json"), "bertjax")
    with pytest.raises(ValueError, match=r"tensor bert/encoder/layer_0/intermediate/dense/kernel: "
                                         r"expected shape \(64, 96\), found \(64, 128\)"):
        convert.load_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match=r"unexpected tensor bert/extra/kernel"):
        convert.save_checkpoint(config, {**params, "bert": {**params["bert"],
                                                             "extra": {"kernel": np.zeros(3)}}},
                                str(tmp_path / "bad"))


def test_stack_and_unstack_layers_are_inverse_and_scan_agrees(hf_dir, batch):
    config, params = convert.load_hf(hf_dir)
    stacked = convert.stack_layers(params)
    layer_1 = params["bert"]["encoder"]["layer_1"]["output"]["dense"]["kernel"]
    np.testing.assert_array_equal(stacked["bert"]["encoder"]["layer"]["output"]["dense"]["kernel"][1],
                                  layer_1)
    jax.tree_util.tree_map(np.testing.assert_array_equal, convert.unstack_layers(stacked), params)
    assert convert.stack_layers(stacked) is not None and convert.is_scanned(stacked)
    scanned = _bertjax_outputs(config.replace(scan_layers=True), stacked, batch)
    unrolled = _bertjax_outputs(config, params, batch)
    _assert_outputs_close(scanned, unrolled, tol=1e-5)
    assert convert.encoder_params(params) is params["bert"]
    assert convert.encoder_params(params["bert"]) is params["bert"]
    # BertModel trees (no "bert" level) convert the same way.
    encoder_stacked = convert.stack_layers(params["bert"])
    jax.tree_util.tree_map(np.testing.assert_array_equal, encoder_stacked, stacked["bert"])


def test_cli_converts_hf_to_original_tf(hf_dir, tmp_path, batch, reference):
    output = tmp_path / "tf" / "bert_model.ckpt"
    result = subprocess.run(
        [sys.executable, "-m", "bertjax.convert", "--from=hf", "--to=tf", f"--input={hf_dir}",
         f"--output={output}"],
        capture_output=True, text=True, env={**os.environ, "XLA_FLAGS": ""}, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["with_heads"] and summary["to"] == "tf"
    # torch's parameters() counts each tied tensor once, as bertjax stores it.
    assert summary["num_params"] == sum(
        p.numel() for p in transformers.BertForPreTraining(_hf_config()).parameters())
    config, params = convert.load_any(str(output))  # finds bert_config.json beside the prefix
    _assert_outputs_close(_bertjax_outputs(config, params, batch), reference)
