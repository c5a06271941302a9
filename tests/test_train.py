"""The pretraining loop end to end on the embedded corpus: runs, resumes exactly, guards NaNs."""

import math
import os
import signal

import pytest

from bertjax import metric_logging, train
from experiments import pretrain_tiny


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    """The default corpus's TFRecords, built once for every test here."""
    return str(tmp_path_factory.mktemp("default_corpus"))


def _config(data_cache, **overrides):
    config = pretrain_tiny.get_config("runlocal")
    config.data.cache_dir = data_cache
    config.model.vocab_size = 30522
    config.log_every_steps = 1
    config.eval_every_steps = 0
    config.checkpoint_every_steps = 1000
    config.async_checkpoints = False
    for key, value in overrides.items():
        target = config
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return config


def _losses(workdir):
    return {r["step"]: r["loss"] for r in metric_logging.read_jsonl(
        os.path.join(workdir, "metrics.jsonl")) if r["split"] == "train"}


def test_pretrain_tiny_runs_and_logs(data_cache, tmp_path):
    config = _config(data_cache, eval_every_steps=3)
    last = train.train_and_evaluate(config, str(tmp_path))
    records = metric_logging.read_jsonl(str(tmp_path / "metrics.jsonl"))
    train_records = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train_records] == list(range(1, config.num_train_steps + 1))
    for key in ("step", "loss", "mlm_loss", "nsp_loss", "mlm_accuracy", "learning_rate",
                "grad_norm", "tokens_per_sec", "mfu"):
        assert key in train_records[-1], key
    # At init the MLM head predicts about uniformly: loss ln(V) = ln(30522) = 10.33. Six steps
    # (warm-up 2, lr 1e-3) bring it down by more than batch noise (measured: 10.36 -> 9.79).
    assert abs(train_records[0]["mlm_loss"] - math.log(30522)) < 0.1
    assert last["mlm_loss"] == train_records[-1]["mlm_loss"]
    assert last["mlm_loss"] < train_records[0]["mlm_loss"] - 0.3
    evals = [r for r in records if r["split"] == "eval"]
    assert evals and {"mlm_accuracy", "nsp_accuracy", "mlm_loss"} <= set(evals[0])
    assert os.listdir(tmp_path / "tensorboard")
    assert os.listdir(tmp_path / "checkpoints")


def test_sigterm_resume_is_bitwise_identical(data_cache, tmp_path, monkeypatch):
    uninterrupted = str(tmp_path / "straight")
    train.train_and_evaluate(_config(data_cache), uninterrupted)

    interrupted = str(tmp_path / "resumed")
    original_advance = metric_logging.MetricLogger.advance
    calls = {"n": 0}

    def advance_then_sigterm(self, steps=1):
        original_advance(self, steps)
        calls["n"] += 1
        if calls["n"] == 3:  # a real SIGTERM, delivered mid-run after step 3
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(metric_logging.MetricLogger, "advance", advance_then_sigterm)
    train.train_and_evaluate(_config(data_cache), interrupted)
    assert sorted(_losses(interrupted)) == [1, 2, 3]
    monkeypatch.setattr(metric_logging.MetricLogger, "advance", original_advance)
    train.train_and_evaluate(_config(data_cache), interrupted)  # the same command again
    assert _losses(interrupted) == _losses(uninterrupted)  # bitwise: floats compared exactly


def test_nonfinite_update_stops_naming_the_step(data_cache, tmp_path):
    train.train_and_evaluate(_config(data_cache, num_train_steps=3, checkpoint_every_steps=1),
                             str(tmp_path))
    # Resume with lr 1e30: step 3's update overflows the params (their norm is inf); the run
    # stops and step 3's state is never saved.
    config = _config(data_cache, **{"optimizer.learning_rate": 1e30, "optimizer.warmup_steps": 0,
                                    "checkpoint_every_steps": 1,
                                    "allow_resume_changes": "num_train_steps,optimizer.*"})
    # Steps are numbered from 1 in the message as in metrics and checkpoints: the 4th step.
    with pytest.raises(FloatingPointError, match=r"at step 4\b.*last good checkpoint is step 3"):
        train.train_and_evaluate(config, str(tmp_path))
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["1", "2", "3"]


def test_nonfinite_steps_skipped_by_policy(data_cache, tmp_path):
    config = _config(data_cache, **{"optimizer.learning_rate": 1e30, "optimizer.warmup_steps": 0,
                                    "nan_policy": "skip"})
    # lr 1e30: every update (about 3e30 per param) overflows the params' global norm, so every
    # step is skipped. The run goes to the end, logging each skip, then refuses to call that a
    # result: an error, and no export.
    with pytest.raises(FloatingPointError, match=r"ended on 6 non-finite steps in a row "
                                                 r"\(steps 1 to 6"):
        train.train_and_evaluate(config, str(tmp_path))
    records = [r for r in metric_logging.read_jsonl(str(tmp_path / "metrics.jsonl"))
               if r["split"] == "train"]
    assert len(records) == config.num_train_steps
    assert all(r["nonfinite"] == 1.0 for r in records)
    assert not os.path.exists(tmp_path / "export")


def test_dynamic_masking_source_trains_and_resumes_exactly(data_cache, tmp_path, monkeypatch):
    config = _config(data_cache, **{"data.source": "dynamic", "num_train_steps": 4})
    train.train_and_evaluate(config, str(tmp_path / "straight"))
    resumed = str(tmp_path / "resumed")
    train.train_and_evaluate(_config(data_cache, **{"data.source": "dynamic",
                                                    "num_train_steps": 2,
                                                    "checkpoint_every_steps": 2}), resumed)
    # Continues from step 2 to 4: a longer budget, accepted explicitly (warm-up lies inside the
    # first two steps, and the original schedule's decay does not depend on T before that).
    config.allow_resume_changes = "num_train_steps"
    train.train_and_evaluate(config, resumed)
    assert _losses(resumed) == _losses(str(tmp_path / "straight"))


def test_preemption_inside_a_logging_interval_resumes_to_the_same_logged_means(tmp_path):
    """SIGTERM at step 5 of a run logging every 4 steps: the checkpoint carries the sums of
    steps 5's interval, so the resumed run logs at step 8 the mean an uninterrupted run logs."""
    import jax
    import jax.numpy as jnp
    import ml_collections
    import numpy as np

    from bertjax import trainer

    mesh = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("data",))

    def program(kill_at_batch=None):
        def batches(start):
            for index in range(start, 8):
                if index == kill_at_batch:  # the handler is armed after the first step
                    os.kill(os.getpid(), signal.SIGTERM)
                yield {"x": np.full([2], 0.1 * (index + 1), np.float32)}

        return trainer.Program(
            kind="pretrain", mesh=mesh, num_train_steps=8,
            init_state=lambda: {"w": jnp.zeros([2])}, abstract_state={"w": jnp.zeros([2])},
            step=jax.jit(lambda s, b: ({"w": s["w"] * 1.1 + b["x"]},
                                       {"loss": jnp.sum(s["w"] ** 2) / 3.0})),
            batches=batches, to_device=lambda b: b, identity={}, stop_on_nonfinite=False)

    config = ml_collections.ConfigDict(dict(
        log_every_steps=4, eval_every_steps=0, checkpoint_every_steps=0, keep_checkpoints=2,
        async_checkpoints=False, nan_policy="stop", tensorboard=False, allow_resume_changes=""))

    def train_losses(workdir):
        return [(r["step"], r["loss"]) for r in
                metric_logging.read_jsonl(os.path.join(workdir, "metrics.jsonl"))]

    trainer.train(program(), config, str(tmp_path / "straight"))
    interrupted = str(tmp_path / "interrupted")
    assert trainer.train(program(kill_at_batch=4), config, interrupted)["preempted"]
    assert os.listdir(os.path.join(interrupted, "checkpoints")) == ["5"]
    assert train_losses(interrupted) == train_losses(tmp_path / "straight")[:1]
    trainer.train(program(), config, interrupted)
    assert train_losses(interrupted) == train_losses(tmp_path / "straight")  # steps 4 and 8
