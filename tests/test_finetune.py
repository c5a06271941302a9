"""Fine-tuning runner end to end: GLUE (TSV), SQuAD (official JSON) and CoNLL NER."""

import json
import os
import signal

import numpy as np
import pytest

from bertjax import finetune, metric_logging, metrics
from data_pipelines import ner as ner_data
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
    predictions = json.load(open(tmp_path / "predictions_validation.json"))
    dataset = json.load(open(config.data.eval_file))["data"]
    questions = [qa for article in dataset for p in article["paragraphs"] for qa in p["qas"]]
    assert set(predictions) == {qa["id"] for qa in questions}
    # The reported scores are the official v2.0 scoring of the written predictions, and the
    # counts are the fixture's (answerable / unanswerable questions).
    official = metrics.squad_v2(dataset, predictions)
    for key in ("exact", "f1", "total", "HasAns_total", "NoAns_total"):
        assert results[key] == pytest.approx(official[key]), key
    assert results["total"] == len(questions)
    assert results["NoAns_total"] == sum(bool(qa.get("is_impossible")) for qa in questions)


def test_ner_runs_and_reports_entity_f1(tmp_path):
    config = ner.get_config("runlocal")
    _small(config)
    config.data.train_file = os.path.join(FIXTURES, "conll2003", "tiny.txt")
    config.data.eval_file = config.data.train_file
    results = finetune.run(config, str(tmp_path))["validation"]
    # The reported entity F1 is the CoNLL scoring of the written word-level tags against the
    # gold tags of the eval file.
    predicted = json.load(open(tmp_path / "predictions_validation.json"))
    gold = [sentence.tags for sentence in ner_data.read_conll2003(config.data.eval_file)]
    assert [len(tags) for tags in predicted] == [len(tags) for tags in gold]
    expected = metrics.entity_f1(gold, predicted)
    for key in ("precision", "recall", "f1"):
        assert results[key] == pytest.approx(expected[key]), key


def test_unknown_task_is_an_error(tmp_path):
    config = glue.get_config("task=rte")
    config.task = "summarisation"
    _small(config)
    with pytest.raises(ValueError, match="summarisation"):
        finetune.run(config, str(tmp_path))


def _losses(workdir):
    return {r["step"]: r["loss"] for r in metric_logging.read_jsonl(
        os.path.join(workdir, "metrics.jsonl")) if r["split"] == "train"}


def _resumable_glue(glue_dir):
    config = glue.get_config(f"task=sst2,source=tsv,glue_dir={glue_dir}")
    _small(config)
    config.model.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)  # dropout on
    config.data.max_seq_length = 16
    config.batch_size = 16
    config.num_train_epochs = 2
    config.log_every_steps = 1
    config.checkpoint_every_steps = 1000
    config.async_checkpoints = False
    return config


def test_finetuning_sigterm_and_resume_is_bitwise_identical(tmp_path, monkeypatch):
    _write_separable_sst2(str(tmp_path / "glue"), num_train=96, num_dev=16)
    straight = str(tmp_path / "straight")
    results = finetune.run(_resumable_glue(tmp_path / "glue"), straight)
    assert sorted(_losses(straight)) == list(range(1, 13))

    resumed = str(tmp_path / "resumed")
    original_advance = metric_logging.MetricLogger.advance
    calls = {"n": 0}

    def advance_then_sigterm(self, steps=1):
        original_advance(self, steps)
        calls["n"] += 1
        if calls["n"] == 5:  # a real SIGTERM, mid-epoch, after step 5
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(metric_logging.MetricLogger, "advance", advance_then_sigterm)
    assert finetune.run(_resumable_glue(tmp_path / "glue"), resumed) == {}  # preempted
    assert sorted(_losses(resumed)) == [1, 2, 3, 4, 5]
    assert os.listdir(os.path.join(resumed, "checkpoints")) == ["5"]
    assert not os.path.exists(os.path.join(resumed, "export"))
    monkeypatch.setattr(metric_logging.MetricLogger, "advance", original_advance)
    resumed_results = finetune.run(_resumable_glue(tmp_path / "glue"), resumed)  # same command
    assert _losses(resumed) == _losses(straight)  # bitwise: floats compared exactly
    assert resumed_results == results
    with open(os.path.join(resumed, "predictions_validation.json")) as f, \
            open(os.path.join(straight, "predictions_validation.json")) as g:
        assert json.load(f) == json.load(g)


def test_resume_with_a_changed_config_is_refused_naming_the_keys(tmp_path):
    _write_separable_sst2(str(tmp_path / "glue"), num_train=32, num_dev=8)
    config = _resumable_glue(tmp_path / "glue")
    config.num_train_epochs = 1
    finetune.run(config, str(tmp_path / "run"))
    changed = _resumable_glue(tmp_path / "glue")
    changed.num_train_epochs = 1
    changed.batch_size = 8
    changed.optimizer.learning_rate = 5e-5
    with pytest.raises(ValueError, match=r"different experiment(.|\n)*batch_size: checkpoint 16, "
                                         r"this run 8(.|\n)*optimizer.learning_rate: checkpoint "
                                         r"2e-05, this run 5e-05(.|\n)*allow_resume_changes="
                                         r"batch_size,optimizer.learning_rate"):
        finetune.run(changed, str(tmp_path / "run"))
    changed.allow_resume_changes = "batch_size,optimizer.learning_rate"
    finetune.run(changed, str(tmp_path / "run"))  # accepted on purpose: the run is complete
