"""The building blocks of the BERT encoder: embeddings, attention, the post-LN layer, the stack.

Parameter names follow the original google-research/bert checkpoint (embeddings/word_embeddings,
encoder/layer_N/attention/self/query, .../attention/output/LayerNorm, intermediate/dense, ...), so
converters map names one to one and the original weight-decay exclusion ("LayerNorm", "bias")
applies unchanged.

Every parameter carries logical axis names and every large activation a logical sharding
constraint; `bertjax.sharding` maps the names to mesh axes. Vocabulary:
  params:      vocab, embed, mlp, heads, kv, layers (scan axis), position, segment, classes
  activations: activation_batch, activation_length, activation_embed, activation_heads,
               activation_kv, activation_mlp, activation_vocab

Shape legend: B batch, S sequence length, H hidden size, N heads, D head size (H / N),
F intermediate size, L layers, V vocab size.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from bertjax import dropout as dropout_lib
from bertjax.config import BertConfig

LAYER_AXIS = "layers"


def truncated_normal(stddev: float) -> Callable:
    """BERT's initializer: normal with `stddev`, resampled outside 2 std (as TF's)."""
    return jax.nn.initializers.truncated_normal(stddev=stddev, lower=-2.0, upper=2.0)


def partitioned(init: Callable, axes: tuple[str | None, ...]) -> Callable:
    return nn.with_logical_partitioning(init, axes)


def gelu_erf(x: jax.Array) -> jax.Array:
    """0.5 x (1 + erf(x / sqrt(2))): the exact GELU, bertjax's default (`hidden_act="gelu"`).

    This is the form the released BERT checkpoints were trained with (google-research/bert's
    first public release, and HF's "gelu"). google-research/bert master has computed
    `modeling.gelu` with the tanh approximation since February 2019 (commit bee6030); that form
    is `hidden_act="gelu_tanh"` (HF's "gelu_new"), for parity with master's code. The two differ
    by up to about 5e-4 per activation.

    jax.nn.gelu(approximate=False) computes the same function through erfc, which XLA:CPU
    evaluates with an exp and branches; erf alone made the BERT-base step about 6% faster.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    if name == "gelu":  # the exact erf GELU of the released checkpoints
        return gelu_erf
    if name in ("gelu_new", "gelu_tanh"):  # google-research/bert master's tanh approximation
        return lambda x: nn.gelu(x, approximate=True)
    if name == "relu":
        return nn.relu
    raise ValueError(f"unsupported activation {name!r}")


def constrain(x: jax.Array, axes: tuple[str, ...]) -> jax.Array:
    """Logical sharding constraint on an activation (a no-op outside a mesh)."""
    return nn.with_logical_constraint(x, axes)


BSH = ("activation_batch", "activation_length", "activation_embed")


def gather_positions(sequence: jax.Array, positions: jax.Array) -> jax.Array:
    """Rows of `sequence` [B, S, ...] at `positions` [B, P] -> [B, P, ...] (the original's
    gather_indexes)."""
    index = positions.astype(jnp.int32).reshape(*positions.shape, *([1] * (sequence.ndim - 2)))
    return jnp.take_along_axis(sequence, index, axis=1)


def layer_norm(config: BertConfig, name: str = "LayerNorm") -> nn.LayerNorm:
    """LayerNorm with the original's epsilon; statistics in fp32 with the two-pass variance.

    flax's default `use_fast_variance` computes E[x^2] - E[x]^2, which loses digits against the
    reference implementations at epsilon 1e-12; the two-pass form matches them to ~1e-6.
    """
    return nn.LayerNorm(
        epsilon=config.layer_norm_eps,
        dtype=config.compute_dtype,
        param_dtype=config.params_dtype,
        use_fast_variance=False,
        scale_init=partitioned(nn.initializers.ones, ("embed",)),
        bias_init=partitioned(nn.initializers.zeros, ("embed",)),
        name=name,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def project(x: jax.Array, kernel: jax.Array, num_in_dims: int) -> jax.Array:
    """x [..., *in] . kernel [*in, *out] -> [..., *out], contracting the `num_in_dims` trailing
    axes of x with the leading axes of the kernel.

    Same values and gradients as the plain dot_general; only the backward pass is spelled out,
    for speed on XLA:CPU. Its GEMM library (YNNPACK) takes row-major [M, K] x [K, N] operands
    only, and the kernel gradient contracts over the tokens, the leading axis of both x and the
    output cotangent dy, so one of them must be transposed. JAX's own rule transposes dy, which
    XLA fuses with dy's producer (the LayerNorm and dropout backward) into a strided loop; here
    the smaller of the two is transposed (x for q/k/v, the attention output and the FFN
    expansion; dy for the FFN contraction, whose x is the 4H-wide GELU output). Measured on the
    BERT-base step with the rest of benchmarks/README.md's changes: about 10% of the step.
    """
    return _project(x, kernel, num_in_dims)


def _project(x, kernel, num_in_dims):
    contract = tuple(range(x.ndim - num_in_dims, x.ndim))
    return jax.lax.dot_general(x, kernel, ((contract, tuple(range(num_in_dims))), ((), ())))


def _project_fwd(x, kernel, num_in_dims):
    return _project(x, kernel, num_in_dims), (x, kernel)


def _project_bwd(num_in_dims, residuals, dy):
    x, kernel = residuals
    num_out_dims = kernel.ndim - num_in_dims
    tokens = tuple(range(x.ndim - num_in_dims))  # the axes the kernel gradient sums over
    dx = jax.lax.dot_general(dy, kernel, ((tuple(range(dy.ndim - num_out_dims, dy.ndim)),
                                           tuple(range(num_in_dims, kernel.ndim))), ((), ())))
    if x.size <= dy.size:
        dkernel = jax.lax.dot_general(x, dy, ((tokens, tokens), ((), ())))  # [*in, *out]
    else:
        dkernel_t = jax.lax.dot_general(dy, x, ((tokens, tokens), ((), ())))  # [*out, *in]
        dkernel = jnp.moveaxis(dkernel_t, tuple(range(num_out_dims)),
                               tuple(range(num_in_dims, kernel.ndim)))
    return dx.astype(x.dtype), dkernel.astype(kernel.dtype)


project.defvjp(_project_fwd, _project_bwd)


class Dense(nn.Module):
    """y = x . kernel + bias, contracting the trailing `num_in_dims` axes of x.

    Like nn.DenseGeneral, but the kernel is created in its final shape (in..., out...), so its
    logical axis names always match its rank; DenseGeneral initialises a flat 2-D kernel and
    reshapes it, which breaks logical constraints under an active mesh.
    Kernel [*in, *out] with logical axes `axes`; bias [*out].
    """

    features: tuple[int, ...]
    axes: tuple[str | None, ...]
    num_in_dims: int
    config: BertConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        in_shape = x.shape[x.ndim - self.num_in_dims:]
        kernel = self.param("kernel", partitioned(truncated_normal(cfg.initializer_range),
                                                  self.axes),
                            (*in_shape, *self.features), cfg.params_dtype)
        bias = self.param("bias", partitioned(nn.initializers.zeros,
                                              self.axes[self.num_in_dims:]),
                          self.features, cfg.params_dtype)
        x, kernel, bias = (t.astype(cfg.compute_dtype) for t in (x, kernel, bias))
        return project(x, kernel, self.num_in_dims) + bias


def dense(config: BertConfig, features, axes: tuple, name: str, num_in_dims: int = 1) -> Dense:
    """A Dense with BERT's init; `axes` names the kernel's axes (in..., out...)."""
    features = tuple(features) if isinstance(features, tuple) else (features,)
    return Dense(features, axes, num_in_dims, config, name=name)


class BertEmbeddings(nn.Module):
    """word + segment + learned absolute position embeddings, then LayerNorm and dropout.

    Inputs: input_ids, token_type_ids [B, S] int. Output [B, S, H].
    """

    config: BertConfig

    @nn.compact
    def __call__(self, input_ids, token_type_ids, deterministic: bool):
        cfg = self.config
        init = truncated_normal(cfg.initializer_range)
        embed = lambda num, axes, name: nn.Embed(  # noqa: E731
            num, cfg.hidden_size, dtype=cfg.compute_dtype, param_dtype=cfg.params_dtype,
            embedding_init=partitioned(init, axes), name=name)
        seq_len = input_ids.shape[1]
        words = embed(cfg.vocab_size, ("vocab", "embed"), "word_embeddings")(input_ids)
        segments = embed(cfg.type_vocab_size, ("segment", "embed"), "token_type_embeddings")(
            token_type_ids)
        positions = embed(cfg.max_position_embeddings, ("position", "embed"),
                          "position_embeddings")(jnp.arange(seq_len)[None, :])
        x = words + segments + positions  # [B, S, H]
        x = layer_norm(cfg)(x)
        x = dropout_lib.Dropout(cfg.hidden_dropout_prob)(x, deterministic=deterministic)
        return constrain(x, BSH)



class BertSelfAttention(nn.Module):
    """Multi-head scaled dot-product attention over the padding mask.

    Algorithm: project the input to per-head queries, keys and values [B, S, N, D]; softmax of
    q.k / sqrt(D) over keys, with padded keys masked out; probabilities dropped out in training
    (per element, as the original); weighted sum of values. Inference (and attention dropout 0)
    goes through `jax.nn.dot_product_attention`, which GPUs run as the cuDNN fused kernel; the
    training path with attention dropout needs the probabilities explicitly, which the fused API
    does not expose, so it takes flax's softmax weights and drops them with bertjax.dropout.

    Inputs: hidden [B, S, H]; mask [B, 1, 1, S] bool (True = attend); optional
    query_positions [B, Q]: attend from those rows only (keys and values still cover all S).
    Output [B, S, N, D] ([B, Q, N, D] with query_positions).
    """

    config: BertConfig

    @nn.compact
    def __call__(self, hidden, mask, deterministic: bool, query_positions=None):
        cfg = self.config
        heads = (cfg.num_attention_heads, cfg.head_size)
        axes = ("embed", "heads", "kv")
        queries_from = hidden if query_positions is None else gather_positions(
            hidden, query_positions)
        q = dense(cfg, heads, axes, "query")(queries_from)  # [B, S or Q, N, D]
        k = dense(cfg, heads, axes, "key")(hidden)
        v = dense(cfg, heads, axes, "value")(hidden)
        bsnd = ("activation_batch", "activation_length", "activation_heads", "activation_kv")
        q, k, v = (constrain(t, bsnd) for t in (q, k, v))
        rate = cfg.attention_probs_dropout_prob
        if deterministic or rate == 0.0:
            context = jax.nn.dot_product_attention(q, k, v, mask=mask)
        else:
            probs = nn.dot_product_attention_weights(q, k, mask=mask,
                                                     dtype=cfg.compute_dtype)  # [B, N, S, S]
            probs = dropout_lib.dropout(probs, rate, self.make_rng("dropout"))
            context = jnp.einsum("bnqk,bknd->bqnd", probs, v)
        return constrain(context, bsnd)  # [B, S, N, D]


class BertAttention(nn.Module):
    """Self-attention, output projection, dropout, residual add, LayerNorm (post-LN).

    Inputs: hidden [B, S, H]; mask [B, 1, 1, S]; optional query_positions [B, Q] (the rows to
    compute; see BertSelfAttention). Output [B, S, H] ([B, Q, H] with query_positions).
    """

    config: BertConfig

    @nn.compact
    def __call__(self, hidden, mask, deterministic: bool, query_positions=None):
        cfg = self.config
        context = BertSelfAttention(cfg, name="self")(  # [B, S or Q, N, D]
            hidden, mask, deterministic, query_positions)
        residual = hidden if query_positions is None else gather_positions(hidden,
                                                                           query_positions)
        out = BertProjection(cfg, in_axes=("heads", "kv"), name="output")(
            context, residual, deterministic, num_in_dims=2)
        return out


class BertProjection(nn.Module):
    """dense -> dropout -> LayerNorm(x + residual): the `output` blocks of attention and FFN.

    Input [B, S, *in] (its trailing `num_in_dims` axes contracted), residual [B, S, H].
    Output [B, S, H].
    """

    config: BertConfig
    in_axes: tuple[str, ...]

    @nn.compact
    def __call__(self, x, residual, deterministic: bool, num_in_dims: int = 1):
        cfg = self.config
        x = dense(cfg, cfg.hidden_size, (*self.in_axes, "embed"), "dense", num_in_dims)(x)
        x = dropout_lib.Dropout(cfg.hidden_dropout_prob)(x, deterministic=deterministic)
        x = layer_norm(cfg)(x + residual)
        return constrain(x, BSH)


class BertIntermediate(nn.Module):
    """The FFN's expansion: dense H -> F and the activation. Output [B, S, F]."""

    config: BertConfig

    @nn.compact
    def __call__(self, x):
        cfg = self.config
        x = dense(cfg, cfg.intermediate_size, ("embed", "mlp"), "dense")(x)
        x = activation(cfg.hidden_act)(x)
        return constrain(x, ("activation_batch", "activation_length", "activation_mlp"))


class BertLayer(nn.Module):
    """One post-LN Transformer layer: attention block, then the feed-forward block.

    Inputs: hidden [B, S, H]; mask [B, 1, 1, S] bool; optional query_positions [B, Q]: compute
    the layer's output at those rows only (keys and values still from all S rows), which is
    exact for them because every op after attention is row-wise. Output [B, S, H] ([B, Q, H]).

    `scan_outputs` adapts the layer to nn.scan's (carry, y) convention: None returns the hidden
    state; False returns (hidden, None); True returns (hidden, hidden) so the scan stacks every
    layer's output.
    """

    config: BertConfig
    scan_outputs: bool | None = None

    @nn.compact
    def __call__(self, hidden, mask, deterministic: bool, query_positions=None):
        cfg = self.config
        attended = BertAttention(cfg, name="attention")(hidden, mask, deterministic,
                                                        query_positions)
        expanded = BertIntermediate(cfg, name="intermediate")(attended)  # [B, S or Q, F]
        out = BertProjection(cfg, in_axes=("mlp",), name="output")(expanded, attended, deterministic)
        if self.scan_outputs is None:
            return out
        return out, (out if self.scan_outputs else None)


def _layer_class(config: BertConfig):
    if not config.remat:
        return BertLayer
    policy = getattr(jax.checkpoint_policies, config.remat_policy)
    # static_argnums counts `self` as 0: deterministic is argument 3.
    return nn.remat(BertLayer, policy=policy, static_argnums=(3,))


class BertEncoder(nn.Module):
    """L BertLayers, either unrolled (params layer_0 ... layer_{L-1}) or as one nn.scan
    (params stacked on a leading L axis under `layer`, logical axis "layers").

    Inputs: hidden [B, S, H]; mask [B, 1, 1, S]; optional final_layer_positions [B, Q]: the
    rows the caller reads from the last layer. Unrolled, the last layer then computes only those
    rows (BertLayer's query_positions); scanned, every layer runs in full and the rows are
    gathered (same result, no saving). Returns (final [B, S, H] or [B, Q, H], per-layer outputs
    [L, B, S, H] or None when `output_hidden_states` is False).
    """

    config: BertConfig

    @nn.compact
    def __call__(self, hidden, mask, deterministic: bool, output_hidden_states: bool = False,
                 final_layer_positions=None):
        cfg = self.config
        layer_class = _layer_class(cfg)
        if final_layer_positions is not None and output_hidden_states:
            raise ValueError("output_hidden_states needs every row of every layer; it cannot be "
                             "combined with final_layer_positions")
        if cfg.scan_layers:
            scanned = nn.scan(
                layer_class,
                variable_axes={"params": 0},
                split_rngs={"params": True, "dropout": True},
                in_axes=(nn.broadcast, nn.broadcast),
                length=cfg.num_hidden_layers,
                metadata_params={nn.PARTITION_NAME: LAYER_AXIS},
            )
            final, stacked = scanned(cfg, scan_outputs=output_hidden_states, name="layer")(
                hidden, mask, deterministic)
            if final_layer_positions is not None:
                final = gather_positions(final, final_layer_positions)
            return final, stacked
        outputs = []
        last = cfg.num_hidden_layers - 1
        for i in range(cfg.num_hidden_layers):
            positions = final_layer_positions if i == last else None
            hidden = layer_class(cfg, name=f"layer_{i}")(hidden, mask, deterministic, positions)
            outputs.append(hidden)
        return hidden, (jnp.stack(outputs) if output_hidden_states else None)
