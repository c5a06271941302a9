"""Length bucketing: every example's results are those of padding to max_seq_length.

Oracle: the same run padded to the maximum (the original's way), with dropout off so the two
draw nothing different: losses, predictions and metrics must agree (float round-off only).
"""

import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from bertjax import config as bert_config_lib
from bertjax import finetune, metric_logging, modeling, optimizers, sweep, tasks
from data_pipelines import finetune_input
from experiments.finetune import glue, squad
from tests.test_finetune import FIXTURES, _small, _write_separable_sst2


def _features(lengths, seq_len=32):
    n = len(lengths)
    mask = (np.arange(seq_len)[None] < np.asarray(lengths)[:, None]).astype(np.int32)
    ids = (np.arange(n * seq_len).reshape(n, seq_len) % 50 + 5) * mask
    return {"input_ids": ids.astype(np.int32), "input_mask": mask,
            "segment_ids": np.zeros_like(mask), "label_ids": np.arange(n) % 3,
            "label_weights": mask.astype(np.float32)}


def test_buckets_trim_and_eval_order():
    assert finetune_input.length_buckets_of(128, 4) == (32, 64, 96, 128)
    assert finetune_input.length_buckets_of(128, 0) == (128,)
    assert finetune_input.bucket_of(33, (32, 64)) == 64
    with pytest.raises(ValueError, match="longer than every bucket"):
        finetune_input.bucket_of(65, (32, 64))
    features = _features([3, 30, 7, 17, 9, 2, 31])
    trimmed = finetune_input.trim_to_bucket({k: v[[0, 2, 4]] for k, v in features.items()},
                                            (8, 16, 32))
    assert trimmed["input_ids"].shape == (3, 16) and trimmed["label_weights"].shape == (3, 16)
    assert trimmed["label_ids"].shape == (3,)  # not a sequence array: untouched
    np.testing.assert_array_equal(trimmed["input_ids"], features["input_ids"][[0, 2, 4], :16])
    batches = list(finetune_input.eval_batches(features, 2, (8, 16, 32)))
    shapes = [b["input_ids"].shape[1] for b in batches]
    assert shapes == [8, 8, 16, 32, 32]  # bucket 8: rows 0, 2, 5; 16: row 4; 32: rows 1, 3, 6
    positions = np.concatenate([b[finetune_input.EXAMPLE_POSITION_KEY] for b in batches])
    weights = np.concatenate([b[finetune_input.EXAMPLE_WEIGHT_KEY] for b in batches])
    assert sorted(positions[weights > 0].tolist()) == list(range(7))
    assert (positions[weights == 0] == -1).all()


def _glue_config(glue_dir, buckets):
    config = glue.get_config(f"task=sst2,source=tsv,glue_dir={glue_dir}")
    _small(config)
    config.data.max_seq_length = 64
    config.data.num_length_buckets = buckets
    config.batch_size = 16
    config.num_train_epochs = 2
    config.log_every_steps = 1
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    return config


def _losses(workdir):
    return [r["loss"] for r in metric_logging.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
            if r["split"] == "train"]


def test_bucketed_fine_tuning_equals_padding_to_the_maximum(tmp_path):
    _write_separable_sst2(str(tmp_path / "glue"), num_train=64, num_dev=40)
    padded = finetune.run(_glue_config(tmp_path / "glue", 0), str(tmp_path / "padded"))
    bucketed = finetune.run(_glue_config(tmp_path / "glue", 4), str(tmp_path / "bucketed"))
    np.testing.assert_allclose(_losses(tmp_path / "bucketed"), _losses(tmp_path / "padded"),
                               rtol=1e-4)
    assert bucketed == padded
    predictions = {}
    for name in ("padded", "bucketed"):
        with open(tmp_path / name / "predictions_validation.json") as f:
            predictions[name] = json.load(f)
    assert predictions["bucketed"] == predictions["padded"]
    assert len(predictions["padded"]) == 40


def test_bucketed_squad_predictions_equal_padded(tmp_path):
    runs = {}
    for buckets in (0, 3):
        config = squad.get_config("version=v2.0,runlocal")
        _small(config)
        config.data.train_file = os.path.join(FIXTURES, "squad", "tiny-v2.0.json")
        config.data.eval_file = config.data.train_file
        config.data.num_length_buckets = buckets
        runs[buckets] = finetune.run(config, str(tmp_path / str(buckets)))
        with open(tmp_path / str(buckets) / "predictions_validation.json") as f:
            runs[buckets] = (runs[buckets], json.load(f))
    assert runs[3][1] == runs[0][1]  # the same answer text for every question
    for key in ("exact", "f1"):
        assert runs[3][0]["validation"][key] == pytest.approx(runs[0][0]["validation"][key])


def test_bucketed_sweep_equals_padded_sweep():
    config = bert_config_lib.preset("tiny", vocab_size=64, hidden_size=32, intermediate_size=64,
                                    max_position_embeddings=32, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0)
    pretrained = jax.device_get(nn.meta.unbox(modeling.BertModel(config).init(
        jax.random.PRNGKey(7), *modeling.dummy_inputs(1, 32))["params"]))
    rng = np.random.default_rng(0)
    features = _features(rng.integers(3, 20, 48), 32)
    features["label_ids"] = (features["input_ids"][:, 1] % 3).astype(np.int32)
    features.pop("label_weights")
    opt = optimizers.create_optimizer(5e-3, 2 * 3, 1, optimizer="adamw")
    seeds = sweep.seed_components([0, 1])
    results = {}
    for buckets in ((), (8, 16, 32)):
        trainer = sweep.SeedTrainer(tasks.classification(config, 3), opt.tx, opt.schedule,
                                    max_seq_length=32, length_buckets=buckets,
                                    mesh=sweep.seed_mesh(2))
        results[buckets] = trainer.run(
            pretrained, features, features, seeds, batch_size=16, num_epochs=2,
            score_fn=lambda p, l: {"accuracy": float(np.mean(p == l))})
    for a, b in zip(results[()].records, results[(8, 16, 32)].records):
        assert a["dev_metrics"] == b["dev_metrics"]
        np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-4)
