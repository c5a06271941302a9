"""BERT models: the encoder with its pooler, the pretraining heads, and the task heads.

    from bertjax import modeling
    out = modeling.BertForPreTraining(config).apply(
        {"params": params}, input_ids, token_type_ids, attention_mask,
        masked_lm_positions=None, deterministic=True)
    out["sequence_output"], out["pooled_output"], out["mlm_logits"], out["nsp_logits"]

Param trees mirror the original checkpoint and HF: `BertModel` params are
{embeddings, encoder, pooler}; every model with heads nests them under "bert" and adds its head
(`cls` for pretraining, `classifier`, `qa_outputs`).

Shape legend: B batch, S sequence length, H hidden size, V vocab size, P masked positions per
sequence, C classes, L layers.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify

from bertjax.config import BertConfig
from bertjax.dropout import Dropout
from bertjax.layers import (BertEmbeddings, BertEncoder, activation, constrain, dense,
                            gather_positions, layer_norm, partitioned)


# ---------------------------------------------------------------------------- input validation
def _is_concrete(x) -> bool:
    return x is not None and not isinstance(x, jax.core.Tracer)


def _check_range(name: str, values, upper: int) -> None:
    """Raises if a concrete integer tensor has values outside [0, upper).

    JAX clamps out-of-range gather indices silently, so an id >= V would read the last embedding
    row without any error; this is the boundary where bad ids are caught.
    """
    if not _is_concrete(values):
        return
    array = np.asarray(values)
    if array.size == 0:
        return
    low, high = array.min(), array.max()
    if low < 0 or high >= upper:
        bad = int(high) if high >= upper else int(low)
        where = tuple(int(i) for i in np.argwhere(array == bad)[0])
        raise ValueError(f"{name} has value {bad} at index {where}; expected 0 <= {name} < {upper}")


def _check_range_traced(name: str, values, upper: int) -> None:
    """Under jit: a `checkify.debug_check` that ids lie in [0, upper). It costs nothing (it is
    dropped) unless the caller runs the model through `checked` (checkify), which is the cheap
    checked mode for ids that would otherwise read a clamped row or give NaN outputs."""
    if values is None or _is_concrete(values):
        return
    checkify.debug_check(jnp.all((values >= 0) & (values < upper)),
                         f"{name} has a value outside [0, {upper}) (max {{high}}, min {{low}})",
                         high=jnp.max(values), low=jnp.min(values))


def checked(function):
    """`function` (e.g. a jitted model apply) with the in-graph id range checks turned on.

        apply = modeling.checked(jax.jit(model.apply))
        apply({"params": params}, input_ids)   # checkify.JaxRuntimeError naming input_ids

    It wraps `function` with jax.experimental.checkify (user checks only) and raises the first
    failed check: one reduction per id tensor per call, for debugging bad data under jit.
    """
    checkified = checkify.checkify(function, errors=checkify.user_checks)

    def run(*args, **kwargs):
        error, out = checkified(*args, **kwargs)
        error.throw()
        return out

    return run


def validate_inputs(config: BertConfig, input_ids, token_type_ids=None, attention_mask=None,
                    masked_lm_positions=None) -> None:
    """Checks shapes and dtypes always and values when they are concrete (not under jit; under
    jit through `checked`).

    Raises ValueError naming the tensor and the offending value, dtype or shape.
    """
    # An attention mask may be 0/1 of any dtype; ids and positions index tables.
    for name, tensor in (("input_ids", input_ids), ("token_type_ids", token_type_ids),
                         ("masked_lm_positions", masked_lm_positions)):
        dtype = getattr(tensor, "dtype", None)
        if dtype is not None and not jnp.issubdtype(dtype, jnp.integer):
            raise ValueError(f"{name} has dtype {dtype}; expected integers (token ids / "
                             "positions; cast with .astype(np.int32))")
    if input_ids.ndim != 2:
        raise ValueError(f"input_ids must be [B, S]; got shape {tuple(input_ids.shape)}")
    batch, seq_len = input_ids.shape
    if seq_len > config.max_position_embeddings:
        raise ValueError(f"input_ids has sequence length {seq_len} > max_position_embeddings "
                         f"{config.max_position_embeddings}")
    for name, tensor in (("token_type_ids", token_type_ids), ("attention_mask", attention_mask)):
        if tensor is not None and tuple(tensor.shape) != (batch, seq_len):
            raise ValueError(f"{name} has shape {tuple(tensor.shape)}; input_ids has "
                             f"{(batch, seq_len)}")
    if masked_lm_positions is not None and (masked_lm_positions.ndim != 2
                                            or masked_lm_positions.shape[0] != batch):
        raise ValueError(f"masked_lm_positions must be [B={batch}, P]; got shape "
                         f"{tuple(masked_lm_positions.shape)}")
    _check_range("input_ids", input_ids, config.vocab_size)
    _check_range("token_type_ids", token_type_ids, config.type_vocab_size)
    _check_range("attention_mask", attention_mask, 2)
    _check_range("masked_lm_positions", masked_lm_positions, seq_len)
    _check_range_traced("input_ids", input_ids, config.vocab_size)
    _check_range_traced("token_type_ids", token_type_ids, config.type_vocab_size)
    _check_range_traced("masked_lm_positions", masked_lm_positions, seq_len)


# ---------------------------------------------------------------------------- the encoder
class BertModel(nn.Module):
    """Embeddings, L post-LN Transformer layers and the tanh pooler on [CLS].

    Inputs: input_ids [B, S] int; token_type_ids [B, S] (default zeros); attention_mask [B, S]
    (1 = real token, 0 = padding; default ones).
    Returns a dict: sequence_output [B, S, H], pooled_output [B, H], and with
    `output_hidden_states` also hidden_states [L + 1, B, S, H] (embedding output, then each layer),
    which feature-based use reads (e.g. the concatenation of the last four layers).

    `output_positions` [B, Q] (optional): the only rows of sequence_output the caller needs.
    The last layer then computes just those rows and [CLS] (for the pooler), with keys and values
    still from every token, and sequence_output is [B, Q, H]: the same values as the full
    sequence_output gathered at those rows (every op after attention is row-wise), for less
    work. In training the dropout masks of that layer are drawn for fewer rows, so the result is
    equal in distribution, not bit for bit, to dropout on the full layer.
    """

    config: BertConfig
    add_pooling_layer: bool = True

    @nn.compact
    def __call__(self, input_ids, token_type_ids=None, attention_mask=None, *,
                 deterministic: bool = True, output_hidden_states: bool = False,
                 output_positions=None):
        cfg = self.config
        validate_inputs(cfg, input_ids, token_type_ids, attention_mask)
        if token_type_ids is None:
            token_type_ids = jnp.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = jnp.ones_like(input_ids)
        embedded = BertEmbeddings(cfg, name="embeddings")(input_ids, token_type_ids, deterministic)
        mask = attention_mask.astype(bool)[:, None, None, :]  # [B, 1, 1, S]: keys to attend
        final_layer_positions = None
        if output_positions is not None:
            # Row 0 ([CLS]) first, for the pooler.
            cls_position = jnp.zeros((output_positions.shape[0], 1), output_positions.dtype)
            final_layer_positions = jnp.concatenate([cls_position, output_positions], axis=1)
        final, layer_outputs = BertEncoder(cfg, name="encoder")(
            embedded, mask, deterministic, output_hidden_states, final_layer_positions)
        sequence_output = final if output_positions is None else final[:, 1:]
        out = {"sequence_output": sequence_output}
        if self.add_pooling_layer:
            out["pooled_output"] = BertPooler(cfg, name="pooler")(final)
        if output_hidden_states:
            out["hidden_states"] = jnp.concatenate([embedded[None], layer_outputs], axis=0)
        return out


class BertPooler(nn.Module):
    """tanh(dense(hidden state of [CLS])). Input [B, S, H]; output [B, H]."""

    config: BertConfig

    @nn.compact
    def __call__(self, sequence_output):
        first_token = sequence_output[:, 0]  # [B, H]
        pooled = dense(self.config, self.config.hidden_size, ("embed", "mlp"), "dense")(first_token)
        return jnp.tanh(pooled)


# ---------------------------------------------------------------------------- pretraining
class BertMLMHead(nn.Module):
    """Masked-LM head: dense + activation + LayerNorm transform, then the decoder tied to the
    word embeddings plus an output bias.

    Inputs: hidden [B, P, H] (or [B, S, H]); word_embeddings [V, H]. Output logits [B, P, V] fp32.
    """

    config: BertConfig

    @nn.compact
    def __call__(self, hidden, word_embeddings):
        cfg = self.config
        transform = _MLMTransform(cfg, name="transform")(hidden)  # [B, P, H]
        logits = jnp.einsum("bph,vh->bpv", transform, word_embeddings.astype(cfg.compute_dtype))
        bias = self.param("output_bias", partitioned(nn.initializers.zeros, ("vocab",)),
                          (cfg.vocab_size,), cfg.params_dtype)
        logits = logits.astype(jnp.float32) + bias.astype(jnp.float32)
        return constrain(logits, ("activation_batch", "activation_length", "activation_vocab"))


class _MLMTransform(nn.Module):
    config: BertConfig

    @nn.compact
    def __call__(self, hidden):
        cfg = self.config
        x = dense(cfg, cfg.hidden_size, ("embed", "mlp"), "dense")(hidden)
        x = activation(cfg.hidden_act)(x)
        return layer_norm(cfg)(x)


class _Predictions(nn.Module):
    """Named `cls` in the param tree, holding `predictions` and `seq_relationship` as the
    original checkpoint does."""

    config: BertConfig

    @nn.compact
    def __call__(self, masked_hidden, word_embeddings, pooled_output):
        mlm_logits = BertMLMHead(self.config, name="predictions")(masked_hidden, word_embeddings)
        nsp_logits = dense(self.config, 2, ("embed", "classes"), "seq_relationship")(pooled_output)
        return mlm_logits, nsp_logits.astype(jnp.float32)


class BertForPreTraining(nn.Module):
    """BertModel with the masked-LM and next-sentence-prediction heads.

    Inputs as BertModel, plus masked_lm_positions [B, P] int or None. With positions, the MLM head
    runs only at those positions (the original's gather, which skips the V-wide projection at the
    unmasked tokens); with None, at every position.

    `final_layer_at_masked_only` (needs masked_lm_positions): the last encoder layer computes
    only the rows the heads read, [CLS] and the P masked positions (BertModel's
    output_positions); sequence_output is then [B, P, H]. The losses are unchanged (exactly so
    without dropout) and a BERT-base step does about 5% fewer FLOPs; the pretraining train step
    uses it.
    Returns BertModel's dict plus mlm_logits [B, P, V] (or [B, S, V]) and nsp_logits [B, 2], fp32.
    """

    config: BertConfig

    @nn.compact
    def __call__(self, input_ids, token_type_ids=None, attention_mask=None,
                 masked_lm_positions=None, *, deterministic: bool = True,
                 output_hidden_states: bool = False, final_layer_at_masked_only: bool = False):
        validate_inputs(self.config, input_ids, token_type_ids, attention_mask,
                        masked_lm_positions)
        if final_layer_at_masked_only and masked_lm_positions is None:
            raise ValueError("final_layer_at_masked_only needs masked_lm_positions")
        bert = BertModel(self.config, name="bert")
        out = bert(input_ids, token_type_ids, attention_mask, deterministic=deterministic,
                   output_hidden_states=output_hidden_states,
                   output_positions=masked_lm_positions if final_layer_at_masked_only else None)
        hidden = out["sequence_output"]
        if masked_lm_positions is not None and not final_layer_at_masked_only:
            hidden = gather_positions(hidden, masked_lm_positions)  # [B, P, H]
        word_embeddings = bert.variables["params"]["embeddings"]["word_embeddings"]["embedding"]
        word_embeddings = nn.meta.unbox(word_embeddings)
        out["mlm_logits"], out["nsp_logits"] = _Predictions(self.config, name="cls")(
            hidden, word_embeddings, out["pooled_output"])
        return out


# ---------------------------------------------------------------------------- task heads
class BertForSequenceClassification(nn.Module):
    """Pooled output -> dropout -> dense C (C = 1 for regression such as STS-B).

    Returns BertModel's dict plus logits [B, C] fp32.
    """

    config: BertConfig
    num_labels: int

    @nn.compact
    def __call__(self, input_ids, token_type_ids=None, attention_mask=None, *,
                 deterministic: bool = True, output_hidden_states: bool = False):
        cfg = self.config
        out = BertModel(cfg, name="bert")(input_ids, token_type_ids, attention_mask,
                                          deterministic=deterministic,
                                          output_hidden_states=output_hidden_states)
        pooled = Dropout(cfg.hidden_dropout_prob)(out["pooled_output"],
                                                     deterministic=deterministic)
        logits = dense(cfg, self.num_labels, ("embed", "classes"), "classifier")(pooled)
        out["logits"] = logits.astype(jnp.float32)
        return out


class BertForTokenClassification(nn.Module):
    """Sequence output -> dropout -> dense C per token. Returns logits [B, S, C] fp32."""

    config: BertConfig
    num_labels: int

    @nn.compact
    def __call__(self, input_ids, token_type_ids=None, attention_mask=None, *,
                 deterministic: bool = True):
        cfg = self.config
        out = BertModel(cfg, add_pooling_layer=False, name="bert")(
            input_ids, token_type_ids, attention_mask, deterministic=deterministic)
        hidden = Dropout(cfg.hidden_dropout_prob)(out["sequence_output"],
                                                     deterministic=deterministic)
        logits = dense(cfg, self.num_labels, ("embed", "classes"), "classifier")(hidden)
        out["logits"] = constrain(logits.astype(jnp.float32),
                                  ("activation_batch", "activation_length", None))
        return out


class BertForQuestionAnswering(nn.Module):
    """Sequence output -> dense 2 -> start and end logits (SQuAD span extraction).

    Returns start_logits, end_logits [B, S] fp32.
    """

    config: BertConfig

    @nn.compact
    def __call__(self, input_ids, token_type_ids=None, attention_mask=None, *,
                 deterministic: bool = True):
        cfg = self.config
        out = BertModel(cfg, add_pooling_layer=False, name="bert")(
            input_ids, token_type_ids, attention_mask, deterministic=deterministic)
        logits = dense(cfg, 2, ("embed", "classes"), "qa_outputs")(out["sequence_output"])
        logits = logits.astype(jnp.float32)  # [B, S, 2]
        out["start_logits"], out["end_logits"] = logits[..., 0], logits[..., 1]
        return out


def dummy_inputs(batch_size: int = 1, seq_len: int = 8) -> tuple[jax.Array, ...]:
    """Zero ids/segments and an all-ones mask [B, S], for `init` and `jax.eval_shape`."""
    ids = jnp.zeros((batch_size, seq_len), jnp.int32)
    return ids, ids, jnp.ones_like(ids)
