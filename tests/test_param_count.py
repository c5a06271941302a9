"""Exact parameter counts: the published figures (Devlin et al. 2018: 110M / 340M), HF
transformers' own models as an independent oracle (built on torch's meta device: nothing
allocated), and the `python -m experiments.param_count` command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
import transformers

from bertjax import param_count
from bertjax.config import PRESETS, BertConfig, preset
from experiments import param_count as param_count_cli

UNCASED, CASED = 30522, 28996


@pytest.mark.parametrize("name, vocab_size, encoder, with_pooler, pretraining", [
    ("base", UNCASED, 108_891_648, 109_482_240, 110_106_428),
    ("large", UNCASED, 334_092_288, 335_141_888, 336_226_108),
    ("base", CASED, None, 108_310_272, None),
    ("large", CASED, None, 333_579_264, None),
])
def test_published_exact_counts(name, vocab_size, encoder, with_pooler, pretraining):
    row = param_count.count_params(name, preset(name, vocab_size=vocab_size))
    assert row["with_pooler"] == with_pooler
    if encoder is not None:
        assert row["encoder"] == encoder
        assert row["pretraining"] == pretraining


def test_base_breakdown_and_estimates():
    row = param_count.count_params("base", preset("base"))
    parts = row["components"]
    assert row["embeddings"] == 23_837_184 and parts["layer"] == 7_087_872
    assert parts["layers"] == 12 * 7_087_872
    assert parts["attention_qkv"] + parts["attention_output"] == 4 * 768 ** 2 + 4 * 768
    assert parts["pooler"] == parts["mlm_transform"] == 768 ** 2 + 768
    assert parts["mlm_output_bias"] == UNCASED and parts["nsp"] == 2 * 768 + 2
    assert row["formula"] == UNCASED * 768 + 12 * 12 * 768 ** 2 == 108_375_552
    assert row["formula_rel_error"] == pytest.approx((108_375_552 - 109_482_240) / 109_482_240)
    assert row["formula_rel_error"] == pytest.approx(-0.0101, abs=1e-4)
    assert row["paper"] == 110_000_000
    assert row["paper_rel_error"] == pytest.approx(0.0047, abs=1e-4)
    assert param_count.count_params("large", preset("large"))["paper_rel_error"] == \
        pytest.approx((340e6 - 335_141_888) / 335_141_888)


@pytest.mark.parametrize("name", list(PRESETS))
def test_counts_match_transformers_models(name):
    config = preset(name)
    hf_config = transformers.BertConfig(**config.to_original_dict())
    with torch.device("meta"):  # shapes only
        encoder = transformers.BertModel(hf_config)
        pretraining = transformers.BertForPreTraining(hf_config)
    row = param_count.count_params(name, config)
    # torch's parameters() yields a tied tensor once, as bertjax stores the MLM decoder.
    assert row["with_pooler"] == sum(p.numel() for p in encoder.parameters())
    assert row["pretraining"] == sum(p.numel() for p in pretraining.parameters())


def test_tree_and_formulas_agree_off_the_presets():
    config = BertConfig(vocab_size=1000, hidden_size=96, num_hidden_layers=3,
                        num_attention_heads=3, intermediate_size=200,
                        max_position_embeddings=64, type_vocab_size=4)
    assert param_count.components_from_tree(config) == \
        param_count.components_from_formulas(config)
    row = param_count.count_params("custom", config)
    assert row["paper"] is None and row["paper_rel_error"] is None
    assert row["components"]["position_embeddings"] == 64 * 96
    assert row["components"]["segment_embeddings"] == 4 * 96


def test_table_lists_every_component_and_total():
    [row] = param_count_cli.rows("base", CASED)
    table = param_count_cli.format_table(row)
    assert "L=12, H=768, A=12, V=28,996" in table
    for label, _ in param_count_cli._BREAKDOWN:
        assert f"| {label} |" in table
    assert "| **encoder + pooler** (BertModel) | 108,310,272 |" in table
    assert "| paper's figure (rel. error) | 110,000,000 (+1.56%) |" in table


def test_json_command_prints_every_preset():
    result = subprocess.run([sys.executable, "-m", "experiments.param_count", "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == list(PRESETS)
    required = {"name", "num_layers", "hidden_size", "num_heads", "vocab_size", "formula",
                "encoder", "with_pooler", "pretraining"}
    assert all(required <= set(row) for row in rows)
    by_name = {row["name"]: row for row in rows}
    assert (by_name["base"]["with_pooler"], by_name["large"]["with_pooler"],
            by_name["base"]["pretraining"]) == (109_482_240, 335_141_888, 110_106_428)
    assert (by_name["tiny"]["num_layers"], by_name["tiny"]["hidden_size"],
            by_name["tiny"]["num_heads"], by_name["tiny"]["vocab_size"]) == (2, 128, 2, UNCASED)

    bad = subprocess.run([sys.executable, "-m", "experiments.param_count", "--model=huge"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "--model='huge'" in bad.stderr
