"""Smoke test of benchmarks.train_step: its functions run the real steps on a tiny config.

No speed assertion (speed claims come from running the benchmark, see benchmarks/README.md);
this checks that every in-process contender trains, that the JSON has the promised keys and
positive numbers, and that the interleaving and the FLOP accounting are what they claim.
"""

import json

import numpy as np
import pytest

from benchmarks import train_step as bench
from bertjax import flops
from data_pipelines.features import synthetic_batch as make_batch

TINY = dict(model="tiny", batch_size=2, seq_len=16, num_predictions=3, steps=2, warmup=1)


@pytest.fixture(scope="module")
def result():
    return bench.run_benchmark(**TINY, baselines=("hf_torch", "all_positions"))


def test_json_keys_and_positive_numbers(result):
    json.dumps(result)  # JSON-ready
    for key in ("step_ms", "tokens_per_sec", "model_flops_per_step", "mfu", "matmul_peak_flops"):
        assert result[key] > 0, key
    assert set(result["contenders"]) == {"ours", "hf_torch", "all_positions"}
    for name, row in result["contenders"].items():
        assert len(row["step_ms_all"]) == TINY["steps"], name
        for key in ("step_ms", "tokens_per_sec", "model_flops_per_step", "mfu"):
            assert row[key] > 0, (name, key)
    for name in ("hf_torch", "all_positions"):
        assert result["ratios_ours_over"][name] > 0
        assert result["contenders"][name]["paired_ratio_median"] > 0
    assert result["setup"]["config"]["num_hidden_layers"] == 2
    assert result["system"]["jax"] and result["system"]["backend"] == "cpu"
    # tokens/s is B * S over the median step.
    ours = result["contenders"]["ours"]
    assert ours["tokens_per_sec"] == pytest.approx(2 * 16 / (ours["step_ms"] / 1e3))


def test_flops_follow_where_the_mlm_head_runs(result):
    config = bench.benchmark_config("tiny")
    rows = result["contenders"]
    assert rows["ours"]["model_flops_per_step"] == flops.train_flops_per_step(config, 2, 16, 3)
    assert rows["all_positions"]["model_flops_per_step"] == flops.train_flops_per_step(
        config, 2, 16, None)
    assert rows["hf_torch"]["model_flops_per_step"] == rows["all_positions"][
        "model_flops_per_step"]


def test_contenders_really_train(result):
    """Every contender's loss is near ln(V) + ln(2) at the start (the learning rate is still
    warming up, so the loss barely moves in 3 steps); ours and all_positions compute the same
    function (tests/test_modeling.py checks that without dropout) under different dropout draws
    in the last layer, so they agree to the dropout noise."""
    rows = result["contenders"]
    initial_loss = np.log(30522) + np.log(2)
    assert rows["ours"]["last_loss"] == pytest.approx(rows["all_positions"]["last_loss"],
                                                      abs=0.1)
    for name in ("ours", "all_positions", "hf_torch"):
        assert rows[name]["last_loss"] == pytest.approx(initial_loss, abs=1.0), name


def test_labels_at_every_position_marks_only_real_predictions():
    batch = make_batch(3, 16, 4, 100, seed=1)
    labels = bench._labels_at_every_position(batch)
    assert labels.shape == (3, 16)
    for row in range(3):
        real = batch["masked_lm_weights"][row] > 0
        expected = np.full(16, -100)
        expected[batch["masked_lm_positions"][row][real]] = batch["masked_lm_ids"][row][real]
        np.testing.assert_array_equal(labels[row], expected)


def test_interleaving_rotates_and_counts():
    order = []

    def fake(name):
        return bench.Contender(name, lambda: order.append(name) or 1.0, lambda: 0.0, lambda: None,
                               1.0, {})

    times = bench.time_interleaved([fake("a"), fake("b"), fake("c")], warmup=1, steps=3)
    assert times == {"a": [1.0] * 3, "b": [1.0] * 3, "c": [1.0] * 3}
    assert order == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown baselines"):
        bench.run_benchmark(**TINY, baselines=("tf1",))
    with pytest.raises(ValueError, match="hf_flax_python"):
        bench.run_benchmark(**TINY, baselines=("hf_flax",))


def test_finetune_benchmark_smoke():
    """benchmarks.finetune on the tiny model, 2 rounds: every figure present and positive."""
    from benchmarks import finetune as finetune_benchmark
    from data_pipelines import tokenization

    config, encoder = finetune_benchmark._encoder("tiny")
    tokenizer = tokenization.FullTokenizer(str(tokenization.bundled_uncased_vocab_file()))
    features, seq_len, classes = finetune_benchmark._tasks(tokenizer)["short_sentences"]
    row = finetune_benchmark.bucketing(config, encoder, features, seq_len, classes, 2, 8)
    assert row["buckets"] == [32, 64, 96, 128] and row["length_median"] < 64
    assert row["padded_examples_per_sec"] > 0 and row["bucketed_over_padded"] > 0
    assert row["grouped_over_padded"] > 0
    # One whole epoch of 2,048 examples in batches of 8, every batch in one bucket; grouped
    # batches are no longer than shuffled ones, so the bucket histogram shifts down.
    assert sum(row["bucket_histogram"].values()) == 256
    assert sum(row["grouped_bucket_histogram"].values()) == 256
    assert row["grouped_bucket_histogram"]["32"] > row["bucket_histogram"]["32"]
