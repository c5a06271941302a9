"""BertConfig: presets, the original bert_config.json and HF config.json formats, errors."""

from __future__ import annotations

import json

import pytest
import transformers

from bertjax import convert
from bertjax.config import PAPER_PARAMS, PRESETS, BertConfig, preset

# The bert_config.json released with uncased_L-12_H-768_A-12 (google-research/bert).
ORIGINAL_BASE_UNCASED = {
    "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 512,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "type_vocab_size": 2,
    "vocab_size": 30522,
}


@pytest.mark.parametrize("name, layers, hidden, heads", [
    ("tiny", 2, 128, 2), ("mini", 4, 256, 4), ("small", 4, 512, 8), ("medium", 8, 512, 8),
    ("base", 12, 768, 12), ("large", 24, 1024, 16)])
def test_presets(name, layers, hidden, heads):
    config = preset(name)
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads,
            config.intermediate_size) == (layers, hidden, heads, 4 * hidden)
    assert config.head_size == 64  # A = H / 64 (Turc et al. 2019; both paper models)
    assert (config.vocab_size, config.max_position_embeddings, config.type_vocab_size,
            config.layer_norm_eps, config.hidden_act) == (30522, 512, 2, 1e-12, "gelu")
    assert preset(name, vocab_size=28996).vocab_size == 28996
    assert set(PRESETS) == {"tiny", "mini", "small", "medium", "base", "large"}
    assert PAPER_PARAMS == {"base": 110_000_000, "large": 340_000_000}


def test_original_bert_config_round_trip(tmp_path):
    path = tmp_path / "bert_config.json"
    path.write_text(json.dumps(ORIGINAL_BASE_UNCASED))
    config = convert.read_config(str(path))
    assert config == preset("base")
    convert.write_config(config, str(tmp_path / "written.json"), "original")
    assert json.loads((tmp_path / "written.json").read_text()) == ORIGINAL_BASE_UNCASED


def test_hf_config_round_trip(tmp_path):
    config = BertConfig(vocab_size=28996, hidden_size=256, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=1024, hidden_act="gelu_new",
                        hidden_dropout_prob=0.05, attention_probs_dropout_prob=0.0,
                        max_position_embeddings=128, type_vocab_size=3,
                        initializer_range=0.01, layer_norm_eps=1e-7, pad_token_id=1)
    convert.write_config(config, str(tmp_path / "config.json"), "hf")
    hf = transformers.BertConfig.from_pretrained(str(tmp_path))
    for field, value in config.to_original_dict().items():
        assert getattr(hf, field) == value, field
    assert (hf.layer_norm_eps, hf.pad_token_id, hf.model_type) == (1e-7, 1, "bert")
    # transformers' own config.json (with its extra keys and storage dtype) reads back the same.
    hf.dtype = "bfloat16"
    hf.save_pretrained(str(tmp_path / "saved"))
    assert "dtype" in json.loads((tmp_path / "saved" / "config.json").read_text())
    assert convert.read_config(str(tmp_path / "saved" / "config.json")) == config


def test_bertjax_json_keeps_every_field(tmp_path):
    config = preset("tiny", dtype="bfloat16", remat=True, remat_policy="dots_saveable",
                    scan_layers=True)
    convert.write_config(config, str(tmp_path / "config.json"), "bertjax")
    assert convert.read_config(str(tmp_path / "config.json")) == config


@pytest.mark.parametrize("kwargs, message", [
    (dict(hidden_size=100, num_attention_heads=12), "hidden_size 100 is not a multiple of "
                                                    "num_attention_heads 12"),
    (dict(dtype="float64"), "dtype='float64'"),
    (dict(hidden_act="swish"), "hidden_act='swish' is not supported"),
])
def test_invalid_configs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BertConfig(**kwargs)


def test_bad_files_and_names_raise(tmp_path):
    (tmp_path / "partial.json").write_text(json.dumps({"hidden_size": 768}))
    with pytest.raises(ValueError, match=r"partial\.json: missing BERT config fields "
                                         r"\['num_hidden_layers', 'num_attention_heads', "
                                         r"'vocab_size'\]"):
        convert.read_config(str(tmp_path / "partial.json"))
    (tmp_path / "broken.json").write_text("{'hidden_size': 768")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        convert.read_config(str(tmp_path / "broken.json"))
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
