"""Training FLOPs of a BERT step and the accelerator's measured matmul peak, for MFU.

FLOPs follow the usual accounting (Kaplan et al. 2020; PaLM appendix B): a training step costs
6 FLOPs per matmul parameter per row it is applied to (2 forward + 4 backward) plus 12 * H * S
per query row and layer for the attention score and context matmuls. Embedding lookups are not
matmuls. The MLM head's transform and V-wide decoder run only at the P predicted positions when
they are gathered (the original's design; HF computes them at every position), adding
6 * (H^2 + H*V) per prediction, and then the last layer computes only the rows the heads read.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from bertjax.config import BertConfig


def layer_matmul_params(config: BertConfig) -> int:
    """Matmul weights of one Transformer layer: Q, K, V, O (4 H^2) and the FFN (2 H F)."""
    h, f = config.hidden_size, config.intermediate_size
    return 4 * h * h + 2 * h * f


def train_flops_per_step(config: BertConfig, batch_size: int, seq_len: int,
                         predictions_per_seq: int | None) -> float:
    """Model FLOPs of one forward+backward pretraining step (MLM at P positions or all S).

    With P positions the last layer also runs only at its Q = P + 1 read rows ([CLS] and the
    masked tokens; `BertForPreTraining(final_layer_at_masked_only=True)`, what the train step
    does): its K and V projections at all S rows, Q, O, the FFN and the attention at Q rows.
    The pooler runs at [CLS] only.
    """
    h, v, layers = config.hidden_size, config.vocab_size, config.num_hidden_layers
    per_layer = layer_matmul_params(config)

    def layer_flops(query_rows: int) -> int:  # per sequence: matmuls + scores and context
        kv = 2 * h * h
        return 6 * (kv * seq_len + (per_layer - kv) * query_rows) + 12 * h * seq_len * query_rows

    if predictions_per_seq is None:
        per_sequence = layers * layer_flops(seq_len)
        predicted = seq_len
    else:
        per_sequence = (layers - 1) * layer_flops(seq_len) + layer_flops(predictions_per_seq + 1)
        predicted = predictions_per_seq
    pooler = 6 * h * h
    mlm_head = 6 * (h * h + h * v) * predicted
    nsp_head = 6 * 2 * h
    return float(batch_size * (per_sequence + pooler + mlm_head + nsp_head))


def finetune_flops_per_step(config: BertConfig, batch_size: int, seq_len: int,
                            num_outputs: int, per_token: bool) -> float:
    """Model FLOPs of one forward+backward fine-tuning step: every layer at all S rows, the
    pooler and a C-way head on [CLS] (`per_token=False`: classification), or the head at every
    token and no pooler (token classification, span extraction)."""
    h = config.hidden_size
    per_layer = 6 * layer_matmul_params(config) * seq_len + 12 * h * seq_len * seq_len
    head = 6 * h * num_outputs * (seq_len if per_token else 1)
    pooler = 0 if per_token else 6 * h * h
    return float(batch_size * (config.num_hidden_layers * per_layer + pooler + head))


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


def peak_flops_of_kind(device_kind: str) -> float | None:
    """The data-sheet dense bf16 peak of a device kind ("TPU v4", ...), None if unknown."""
    for name, peak in _PEAK_FLOPS.items():
        if device_kind.startswith(name):
            return peak
    return None


def peak_flops_per_device(measure_if_unknown: bool = True) -> float:
    """The data-sheet peak of device 0, or a measured matmul peak where none is known (CPU)."""
    peak = peak_flops_of_kind(jax.devices()[0].device_kind)
    if peak is not None:
        return peak
    return measure_matmul_peak() if measure_if_unknown else float("nan")
