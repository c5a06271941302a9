"""Whole runs with their workdir in a GCS bucket (an emulator on loopback, tests/gcs_emulator.py).

The commands are the README's, shortened only by `--config` flags, run as subprocesses that see
the emulator through the standard variables alone (`STORAGE_EMULATOR_HOST`,
`TENSORSTORE_GCS_HTTP_URL`). The pretraining data cache stays local (`--config.data.cache_dir`):
tf.data reads it with TensorFlow's own GCS client, which cannot be pointed at an emulator
(TensorFlow's IO on a non-local scheme is tested on ram:// in tests/test_cloud_storage.py).
Slow (a few minutes): `make test-slow`, which .ci/run runs.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests import gcs_emulator

BUCKET = "bertjax-runs"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN = ["--config=experiments/pretrain_tiny.py:runlocal", "--config.tensorboard=False",
            "--config.num_train_steps=4", "--config.checkpoint_every_steps=2",
            "--config.eval_every_steps=4", "--config.num_eval_steps=1"]


def _main(env, workdir, *flags):
    result = subprocess.run([sys.executable, "-m", "bertjax.main", f"--workdir={workdir}", *flags],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-5000:]
    return result


@pytest.mark.slow
def test_pretrain_resume_phase2_and_finetune_in_a_bucket(tmp_path, monkeypatch):
    import gcsfs  # pylint: disable=import-outside-toplevel

    from bertjax import convert  # pylint: disable=import-outside-toplevel
    from bertjax.metric_logging import read_jsonl  # pylint: disable=import-outside-toplevel
    from data_pipelines import storage  # pylint: disable=import-outside-toplevel

    with gcs_emulator.running(BUCKET, str(tmp_path / "emulator.log")) as url:
        for key, value in gcs_emulator.client_environment(url).items():
            monkeypatch.setenv(key, value)
        gcsfs.GCSFileSystem.clear_instance_cache()
        env = {**os.environ, "PYTHONPATH": REPO_ROOT}
        cache = f"--config.data.cache_dir={tmp_path / 'data'}"
        run = f"gs://{BUCKET}/run"

        # Pretraining: checkpoints, metrics.jsonl and the export all land in the bucket.
        _main(env, run, *PRETRAIN, cache)
        assert storage.listdir(f"{run}/checkpoints") == ["2", "4"]
        assert "commit_success.txt" in storage.listdir(f"{run}/checkpoints/4")
        assert {"config.json", "vocab.txt", "params"} <= set(storage.listdir(f"{run}/export"))
        records = read_jsonl(f"{run}/metrics.jsonl")
        assert [r["step"] for r in records if r["split"] == "train"] == [2, 4]
        assert not os.path.exists(os.path.join(REPO_ROOT, "gs:"))

        # The same command again resumes from the bucket: nothing is retrained or lost.
        again = _main(env, run, *PRETRAIN, cache)
        assert f"resumed from step 4 ({run}/checkpoints)" in again.stderr
        assert read_jsonl(f"{run}/metrics.jsonl") == records

        # Phase 2 initialises from the export in the bucket (learning rate 0: its own export
        # must then hold exactly the phase-1 weights).
        phase2 = f"gs://{BUCKET}/phase2"
        _main(env, phase2, *PRETRAIN, cache, f"--config.init_checkpoint={run}/export",
              "--config.num_train_steps=1", "--config.checkpoint_every_steps=0",
              "--config.optimizer.learning_rate=0.0", "--config.optimizer.warmup_steps=0",
              "--config.eval_every_steps=0")
        _, phase1_params = convert.load_any(f"{run}/export")
        _, phase2_params = convert.load_any(f"{phase2}/export")
        leaves1, tree1 = jax.tree_util.tree_flatten(phase1_params)
        leaves2, tree2 = jax.tree_util.tree_flatten(phase2_params)
        assert tree1 == tree2
        for a, b in zip(leaves1, leaves2):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

        # Fine-tuning from the bucket's export writes its outputs to the bucket.
        finetune = f"gs://{BUCKET}/finetune"
        _main(env, finetune, "--config=experiments/finetune/docstring_topics.py:runlocal",
              "--config.tensorboard=False", f"--config.init_checkpoint={run}/export",
              "--config.num_train_steps=2")
        names = set(storage.listdir(finetune))
        assert {"metrics.json", "metrics.jsonl", "export", "checkpoints"} <= names, names
        assert any(n.startswith("predictions_") for n in names), names
        metrics = json.loads(storage.read_text(f"{finetune}/metrics.json"))
        assert 0.0 <= metrics["validation"]["accuracy"] <= 1.0
        assert {"config.json", "head.json"} <= set(storage.listdir(f"{finetune}/export"))
    gcsfs.GCSFileSystem.clear_instance_cache()
