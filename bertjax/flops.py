"""Training FLOPs of a BERT step and the accelerator's measured matmul peak, for MFU.

FLOPs follow the usual accounting (Kaplan et al. 2020; PaLM appendix B): a training step costs
6 FLOPs per matmul parameter per token (2 forward + 4 backward) plus 12 * L * H * S per token for
the attention score and context matmuls. Embedding lookups are not matmuls. The MLM head's
transform and V-wide decoder run only at the P predicted positions when they are gathered (the
original's design; HF computes them at every position), adding 6 * (H^2 + H*V) per prediction.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from bertjax.config import BertConfig


def encoder_matmul_params(config: BertConfig) -> int:
    """N: matmul weights of the L layers and the pooler (no embeddings, no biases)."""
    h, f = config.hidden_size, config.intermediate_size
    return config.num_hidden_layers * (4 * h * h + 2 * h * f) + h * h


def train_flops_per_step(config: BertConfig, batch_size: int, seq_len: int,
                         predictions_per_seq: int | None) -> float:
    """Model FLOPs of one forward+backward pretraining step (MLM at P positions or all S)."""
    tokens = batch_size * seq_len
    h, v, layers = config.hidden_size, config.vocab_size, config.num_hidden_layers
    encoder = 6 * encoder_matmul_params(config) * tokens + 12 * layers * h * seq_len * tokens
    predicted = batch_size * (seq_len if predictions_per_seq is None else predictions_per_seq)
    mlm_head = 6 * (h * h + h * v) * predicted
    nsp_head = 6 * 2 * h * batch_size
    return float(encoder + mlm_head + nsp_head)


# Dense bf16 peaks per chip from vendor data sheets, for MFU on accelerators.
_PEAK_FLOPS = {
    "TPU v4": 275e12, "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5": 459e12,
    "TPU v5p": 459e12, "TPU v6 lite": 918e12, "TPU v6e": 918e12,
    "NVIDIA A100-SXM4-40GB": 312e12, "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H200": 989e12,
}


def measure_matmul_peak(dtype=jnp.float32, size: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of a jitted square matmul on the default device, measured now.

    On CPUs there is no data-sheet peak worth quoting, so MFU is reported against this
    measurement taken in the same run (the machine is shared and its speed drifts).
    """
    a = jnp.ones((size, size), dtype)
    matmul = jax.jit(lambda x, y: (x @ y) * 0.5)
    matmul(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best


def peak_flops_per_device(measure_if_unknown: bool = True) -> float:
    """The data-sheet peak of device 0, or a measured matmul peak where none is known (CPU)."""
    kind = jax.devices()[0].device_kind
    for name, peak in _PEAK_FLOPS.items():
        if kind.startswith(name):
            return peak
    return measure_matmul_peak() if measure_if_unknown else float("nan")
