"""Whole runs on two processes (jax.distributed over gloo on localhost), as the README launches
them (`--coordinator_address --num_processes=2 --process_id=I`), against one process with the
same two devices: pretraining with its checkpoints and export, SIGTERM sent to one process,
resume, fine-tuning with its predictions, and the stability sweep.

One process with 2 CPU devices and two processes with 1 each build the same 2-device mesh and
feed the same global batches (each host parses its rows of the same global order), so every
logged number is compared exactly: the cross-device sums add the same two values either way.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from bertjax import pretrained

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRETRAIN = ["bertjax.main", "--config=experiments/pretrain_tiny.py:runlocal",
            "--config.tensorboard=False"]
TIMING_KEYS = {"steps_per_sec", "tokens_per_sec", "mfu", "examples_per_sec"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(module_args, workdir, *, processes, log_dir, name):
    """Starts the command as `processes` processes holding 2 CPU devices between them."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={2 // processes}"
    port = _free_port()
    procs = []
    for index in range(processes):
        cluster = ([f"--coordinator_address=localhost:{port}", f"--num_processes={processes}",
                    f"--process_id={index}"] if processes > 1 else [])
        log = open(os.path.join(log_dir, f"{name}_{index}.log"), "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", *module_args, f"--workdir={workdir}", *cluster],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
    return procs


def _finish(procs, log_dir, name, timeout=400):
    for index, proc in enumerate(procs):
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        with open(os.path.join(log_dir, f"{name}_{index}.log")) as log:
            assert returncode == 0, log.read()[-4000:]


def _run(module_args, workdir, *, processes, log_dir, name):
    _finish(_start(module_args, workdir, processes=processes, log_dir=log_dir, name=name),
            log_dir, name)


def _logged(workdir):
    """metrics.jsonl without wall-clock figures."""
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING_KEYS} for line in f]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The 6-step tiny pretraining on one process and on two; shared corpus cache."""
    base = tmp_path_factory.mktemp("multihost")
    cache = f"--config.data.cache_dir={base / 'cache'}"
    workdirs = {}
    for processes in (1, 2):  # one process first: it builds the shared corpus cache
        workdirs[processes] = str(base / f"pretrain_{processes}")
        _run([*PRETRAIN, cache], workdirs[processes], processes=processes, log_dir=str(base),
             name=f"pretrain_{processes}")
    return base, cache, workdirs


def test_pretraining_on_two_processes_logs_what_one_does(runs):
    _, _, workdirs = runs
    one, two = _logged(workdirs[1]), _logged(workdirs[2])
    assert [(r["step"], r["split"]) for r in one] == [(2, "train"), (3, "eval"), (4, "train"),
                                                     (6, "train"), (6, "eval")]
    assert two == one  # every loss, accuracy and grad norm, bit for bit
    for workdir in workdirs.values():
        assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["3", "6"]
    for name in ("config.json", "vocab.txt"):
        with open(os.path.join(workdirs[2], "export", name), "rb") as a, \
                open(os.path.join(workdirs[1], "export", name), "rb") as b:
            assert a.read() == b.read(), name
    exported = [pretrained.load(os.path.join(workdirs[p], "export")).params for p in (1, 2)]
    jax.tree_util.tree_map(np.testing.assert_array_equal, *exported)


def test_sigterm_to_one_process_stops_both_at_one_step_and_resume_matches(runs):
    base, cache, _ = runs
    args = [*PRETRAIN, cache, "--config.num_train_steps=60", "--config.eval_every_steps=0",
            "--config.checkpoint_every_steps=1000", "--config.log_every_steps=2"]
    reference = str(base / "sigterm_reference")
    _run(args, reference, processes=1, log_dir=str(base), name="sigterm_reference")

    workdir = str(base / "sigterm")
    procs = _start(args, workdir, processes=2, log_dir=str(base), name="sigterm")
    metrics_file = os.path.join(workdir, "metrics.jsonl")
    deadline = time.time() + 300
    while not (os.path.exists(metrics_file) and os.path.getsize(metrics_file) > 0):
        assert time.time() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.1)
    procs[1].send_signal(signal.SIGTERM)  # one host of the two is preempted
    _finish(procs, str(base), "sigterm")  # both exit 0
    saved = os.listdir(os.path.join(workdir, "checkpoints"))
    assert len(saved) == 1 and 2 <= int(saved[0]) < 60, saved
    for index in (0, 1):
        with open(os.path.join(str(base), f"sigterm_{index}.log")) as log:
            assert f"preempted: saved step {saved[0]}" in log.read()

    _run(args, workdir, processes=2, log_dir=str(base), name="sigterm_resumed")
    assert _logged(workdir) == _logged(reference)


def test_finetuning_on_two_processes_predicts_what_one_does(runs):
    base, _, workdirs = runs
    args = ["bertjax.main", "--config=experiments/finetune/docstring_topics.py:runlocal",
            f"--config.init_checkpoint={os.path.join(workdirs[1], 'export')}",
            "--config.tensorboard=False"]
    outputs = {}
    for processes in (1, 2):
        workdir = str(base / f"finetune_{processes}")
        _run(args, workdir, processes=processes, log_dir=str(base), name=f"finetune_{processes}")
        with open(os.path.join(workdir, "metrics.json")) as f, \
                open(os.path.join(workdir, "predictions_validation.json")) as g:
            outputs[processes] = (json.load(f), json.load(g), _logged(workdir))
    assert len(outputs[1][1]) > 0
    assert outputs[2] == outputs[1]


def test_stability_sweep_on_two_processes_records_what_one_does(runs):
    base, _, workdirs = runs
    args = ["experiments.stability.sweep",
            "--config=experiments/stability/minilm_docstrings.py:arm=devlin,runlocal=true",
            f"--config.init_checkpoint={os.path.join(workdirs[1], 'export')}"]
    records = {}
    for processes in (1, 2):
        workdir = str(base / f"sweep_{processes}")
        _run(args, workdir, processes=processes, log_dir=str(base), name=f"sweep_{processes}")
        with open(os.path.join(workdir, "docstring_topics", "devlin.json")) as f:
            records[processes] = json.load(f)["records"]
    assert [r["run_seed"] for r in records[1]] == [0, 1]
    assert records[2] == records[1]
