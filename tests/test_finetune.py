"""Fine-tuning runner end to end: GLUE (TSV), SQuAD (official JSON) and CoNLL NER."""

import json
import os

import numpy as np
import pytest

from bertjax import finetune
from experiments.finetune import glue, ner, squad

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
TINY_MODEL = dict(preset="tiny", vocab_size=30522, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0)


def _small(config):
    """A tiny random-init encoder on one device (the fixtures make batches smaller than 8)."""
    config.model.update(TINY_MODEL)
    config.mesh.data = 1
    return config


def _write_separable_sst2(folder, num_train=256, num_dev=64, seed=0):
    """An SST-2-format task that a model can solve perfectly: the label is which of two marker
    words the sentence contains, among random filler words."""
    rs = np.random.RandomState(seed)
    filler = ("the of and to in is that for it as was with be by on not this are or from an "
              "which have one can all were when there more been if no out so up time".split())
    os.makedirs(os.path.join(folder, "SST-2"))
    for split, count in (("train", num_train), ("dev", num_dev)):
        with open(os.path.join(folder, "SST-2", f"{split}.tsv"), "w") as f:
            f.write("sentence\tlabel\n")
            for _ in range(count):
                label = rs.randint(2)
                words = list(rs.choice(filler, rs.randint(4, 12)))
                words.insert(rs.randint(len(words) + 1), ("terrible", "excellent")[label])
                f.write(" ".join(words) + f"\t{label}\n")


def test_glue_tiny_model_learns_a_separable_task(tmp_path):
    _write_separable_sst2(str(tmp_path / "glue"))
    config = glue.get_config(f"task=sst2,source=tsv,glue_dir={tmp_path / 'glue'}")
    _small(config)
    config.data.max_seq_length = 32
    config.batch_size = 32
    config.num_train_epochs = 8
    config.optimizer.name = "adamw"
    config.optimizer.learning_rate = 1e-3
    config.log_every_steps = 8
    results = finetune.run(config, str(tmp_path / "run"))
    assert results["validation"]["accuracy"] >= 0.95
    with open(tmp_path / "run" / "metrics.json") as f:
        assert json.load(f)["validation"]["accuracy"] == results["validation"]["accuracy"]
    predictions = json.load(open(tmp_path / "run" / "predictions_validation.json"))
    assert len(predictions) == 64  # every dev example exactly once, padding dropped


def test_squad_runs_and_scores_officially(tmp_path):
    config = squad.get_config("version=v2.0,runlocal")
    _small(config)
    config.data.train_file = os.path.join(FIXTURES, "squad", "tiny-v2.0.json")
    config.data.eval_file = config.data.train_file
    results = finetune.run(config, str(tmp_path))["validation"]
    assert {"exact", "f1", "HasAns_exact", "NoAns_exact", "total"} <= set(results)
    predictions = json.load(open(tmp_path / "predictions_validation.json"))
    dataset = json.load(open(config.data.eval_file))["data"]
    question_ids = {qa["id"] for article in dataset for p in article["paragraphs"]
                    for qa in p["qas"]}
    assert set(predictions) == question_ids


def test_ner_runs_and_reports_entity_f1(tmp_path):
    config = ner.get_config("runlocal")
    _small(config)
    config.data.train_file = os.path.join(FIXTURES, "conll2003", "tiny.txt")
    config.data.eval_file = config.data.train_file
    results = finetune.run(config, str(tmp_path))["validation"]
    assert {"precision", "recall", "f1"} <= set(results)
    assert 0.0 <= results["f1"] <= 1.0


def test_unknown_task_is_an_error(tmp_path):
    config = glue.get_config("task=rte")
    config.task = "summarisation"
    _small(config)
    with pytest.raises(ValueError, match="summarisation"):
        finetune.run(config, str(tmp_path))
