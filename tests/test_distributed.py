"""Two processes joined by jax.distributed on localhost (CPU, gloo collectives) compute the
same train step as one process: the multi-host code path of pods and GPU clusters."""

import json
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import optax

from bertjax import config as bert_config, modeling, sharding, train_step
from data_pipelines.features import synthetic_batch as make_batch

BATCH, SEQ, PREDS, VOCAB = 8, 16, 4, 128


def _process_rows(mesh, global_rows: int) -> np.ndarray:
    """The global batch rows that this process's devices hold, in order."""
    indices = sharding.batch_sharding(mesh).addressable_devices_indices_map((global_rows, 1))
    rows = sorted({r for index in indices.values() for r in range(global_rows)[index[0]]})
    return np.asarray(rows)


def one_step(sharding_mesh, devices=None) -> tuple[float, float]:
    cfg = bert_config.preset("tiny", vocab_size=VOCAB, hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0)
    model = modeling.BertForPreTraining(cfg)
    tx = optax.sgd(0.1)
    mesh = sharding.create_mesh(sharding_mesh, devices=devices)
    state, shardings = train_step.init_train_state(model, tx, mesh, seed=0,
                                                   init_args=modeling.dummy_inputs(1, SEQ))
    step = jax.jit(train_step.make_train_step(model, tx, lambda s: 0.1),
                   in_shardings=(shardings, None), out_shardings=(shardings, None))
    full = make_batch(BATCH, SEQ, PREDS, VOCAB)
    rows = _process_rows(mesh, BATCH)
    local = {k: v[rows] for k, v in full.items()}
    with jax.set_mesh(mesh), sharding.axis_rules():
        _, metrics = step(state, sharding.global_batch(local, mesh))
    return float(metrics["loss"]), float(metrics["grad_norm"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_match_one():
    port = _free_port()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.distributed_worker", str(port),
                               str(i)], cwd=root, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    loss, grad_norm = one_step({"data": 1}, devices=jax.devices()[:1])
    assert {r["process"] for r in results} == {0, 1}
    for r in results:
        np.testing.assert_allclose(r["loss"], loss, rtol=1e-5)
        np.testing.assert_allclose(r["grad_norm"], grad_norm, rtol=1e-5)
