"""One strict parser for config-file arguments, and the one config schema across run kinds."""

import importlib
import pathlib
import subprocess
import sys

import pytest

from experiments import base_config, config_args, pretrain_defaults
from experiments.finetune import defaults as finetune_defaults
from experiments.finetune import glue
from experiments.stability import arms

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_values_are_typed_like_their_defaults():
    args = config_args.parse("task=mrpc,seeds=5,lr=3e-5,runlocal,arm=devlin+mosbach",
                             task="rte", seeds=25, lr=2e-5, runlocal=False, arm=("adamw",))
    assert args == {"task": "mrpc", "seeds": 5, "lr": 3e-5, "runlocal": True,
                    "arm": ("devlin", "mosbach")}
    assert config_args.parse("", task="rte") == {"task": "rte"}
    assert config_args.parse("flag=false", flag=True) == {"flag": False}


@pytest.mark.parametrize("arg, message", [
    ("sourc=tsv", r"unknown config argument 'sourc'.*valid arguments .*source=tfds"),
    ("seeds=many", r"seeds='many': expected an integer"),
    ("lr=fast", r"lr='fast': expected a number"),
    ("runlocal=maybe", r"runlocal='maybe': expected true or false"),
    ("seeds", r"'seeds' needs a value"),
    ("seeds=1,seeds=2", r"'seeds' is given twice"),
])
def test_bad_arguments_fail_naming_the_key(arg, message):
    with pytest.raises(config_args.ConfigArgumentError, match=message):
        config_args.parse(arg, source="tfds", seeds=25, lr=2e-5, runlocal=False)


def test_misspelt_glue_argument_is_refused_not_ignored():
    # Before: `glue.py:task=rte,sourc=tsv` silently ran TFDS instead of the TSV folder.
    with pytest.raises(config_args.ConfigArgumentError, match=r"'sourc'.*source=tfds"):
        glue.get_config("task=rte,sourc=tsv")
    with pytest.raises(config_args.ConfigArgumentError, match=r"task='rtee'"):
        glue.get_config("task=rtee")
    assert glue.get_config("task=rte,source=tsv,glue_dir=/data/glue").data.source == "tsv"


def test_misspelt_argument_fails_on_the_command_line(tmp_path):
    # What a user types: the error comes before any work, naming the key.
    result = subprocess.run(
        [sys.executable, "-m", "bertjax.main", "--config=experiments/finetune/glue.py:task=rte,"
         "sourc=tsv", f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert result.returncode != 0
    assert "unknown config argument 'sourc'" in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "bertjax.main", "--config=experiments/pretrain_tiny.py",
         "--config.optimizer.learnin_rate=1e-3", f"--workdir={tmp_path}"], cwd=ROOT,
        capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "learnin_rate" in result.stderr


def _keys(config, prefix=""):
    keys = set()
    for key, value in config.items():
        if hasattr(value, "items"):
            keys |= _keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


@pytest.mark.parametrize("module, arg", [
    ("experiments.pretrain_tiny", ""), ("experiments.bert_base_pretrain", "phase=2"),
    ("experiments.bert_large_pretrain", "phase=1"), ("experiments.finetune.glue", "task=rte"),
    ("experiments.finetune.squad", "version=v2.0"), ("experiments.finetune.ner", ""),
    ("experiments.finetune.docstring_topics", ""), ("experiments.finetune.docstring_pairs", ""),
    ("experiments.stability.bert_large_glue", "task=mrpc"),
    ("experiments.stability.minilm_docstrings", "runlocal"),
    ("experiments.stability.minilm_pairs", "runlocal"),
])
def test_every_config_has_the_one_schema(module, arg):
    """Every experiment config carries every key of experiments/base_config.py, under the same
    name (steps, epochs, warm-up, logging, checkpointing, eval mean the same everywhere)."""
    config = importlib.import_module(module).get_config(arg)
    missing = _keys(base_config.get_config()) - _keys(config)
    assert not missing, missing
    steps, epochs = config.num_train_steps, config.num_train_epochs
    assert (steps > 0) != (epochs > 0), "exactly one of num_train_steps / num_train_epochs"
    warmup = config.optimizer.warmup_steps, config.optimizer.warmup_proportion
    assert sum(bool(w) for w in warmup) == 1


def test_run_kinds_share_defaults_and_differ_where_they_say():
    pre, fine, sweep = (pretrain_defaults.get_config(), finetune_defaults.get_config(),
                        arms.base_config())
    assert pre.optimizer.warmup_steps == 10_000 and pre.optimizer.warmup_proportion == 0.0
    assert fine.optimizer.warmup_proportion == 0.1 and fine.optimizer.warmup_steps == 0
    assert sweep.optimizer.warmup_proportion == 0.1
    for config in (pre, fine, sweep):
        assert config.optimizer.b1 == 0.9 and config.optimizer.eps == 1e-6
    # Sweeps log every step of every seed to metrics.jsonl instead of TensorBoard events.
    assert (pre.tensorboard, fine.tensorboard, sweep.tensorboard) == (True, True, False)
