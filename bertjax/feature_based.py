"""Feature-based use of BERT: features from a frozen encoder, and a light head trained on them.

Devlin et al. (2018, section 5.3, Table 7) compared fine-tuning the whole model with using it as
a fixed feature extractor, as ELMo is used: the encoder runs once over the data with no dropout
and no gradient, a chosen combination of its hidden layers is cached, and only a small model is
trained on the cache. On CoNLL-2003 NER (dev F1, BERT-base, a two-layer BiLSTM on token
features) they report: fine-tuning 96.4; embeddings 91.0, second-to-last hidden 95.6, last
hidden 94.9, weighted sum of the last four 95.9, concatenation of the last four 96.1, weighted
sum of all 12 layers 95.5. `STRATEGIES` names these layer choices (the sums here are unweighted).

    from bertjax import feature_based
    train_x = feature_based.extract_features(config, params, train_features, pooling="mean")
    probe = feature_based.train_probe(train_x, train_labels, num_classes=C)
    feature_based.evaluate(probe, dev_x, dev_labels)     # {"accuracy": ..., "loss": ...}

Here the features are per sequence (a pooled vector), for sentence classification; `pooled` is
the [CLS] position or the mean over real tokens. Pooling and the layer combination are both
linear, so pooling every layer first (`pooled_hidden_states`, one encoder pass) and combining
afterwards (`combine_layers`) gives exactly the features of combining then pooling: one pass
serves every strategy.

Shape legend: N examples, B batch, S sequence length, H hidden size, L layers (hidden_states
has L + 1 entries: the embedding output, then each Transformer layer), F feature size (H, or
H times the number of concatenated layers), C classes, U hidden units of the MLP head.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertjax import modeling
from bertjax.config import BertConfig

POOLINGS = ("cls", "mean")
COMBINES = ("concat", "sum")
ENCODER_INPUTS = ("input_ids", "segment_ids", "input_mask")


@dataclasses.dataclass(frozen=True)
class LayerStrategy:
    """Which hidden states make a feature, and how they are combined.

    layers: indices into hidden_states [L + 1, ...] (0 = embedding output, -1 = last layer,
      negative counting from the end as in Python); None means every Transformer layer (1..L).
    combine: "concat" (F = H * len(layers)) or "sum" (F = H).
    """

    layers: tuple[int, ...] | None
    combine: str = "concat"


# The layer choices of the paper's Table 7 (its sums were weighted; these are plain sums).
STRATEGIES: dict[str, LayerStrategy] = {
    "embeddings": LayerStrategy((0,)),
    "second_to_last_hidden": LayerStrategy((-2,)),
    "last_hidden": LayerStrategy((-1,)),
    "sum_last_four": LayerStrategy((-1, -2, -3, -4), "sum"),
    "concat_last_four": LayerStrategy((-1, -2, -3, -4), "concat"),
    "sum_all_layers": LayerStrategy(None, "sum"),
}


# ---------------------------------------------------------------------------- extraction
def resolve_layers(layers: Sequence[int] | None, num_hidden_layers: int) -> tuple[int, ...]:
    """Non-negative indices into hidden_states [L + 1, ...]; raises on an index out of range."""
    num_states = num_hidden_layers + 1
    if layers is None:
        return tuple(range(1, num_states))
    layers = tuple(layers)
    if not layers:
        raise ValueError("layers is empty: name at least one hidden state")
    resolved = []
    for layer in layers:
        if not -num_states <= layer < num_states:
            raise ValueError(f"layer index {layer} is out of range for hidden_states of "
                             f"{num_states} entries (embeddings + {num_hidden_layers} layers); "
                             f"expected {-num_states} <= index < {num_states}")
        resolved.append(layer % num_states)
    return tuple(resolved)


def _check_encoder_features(features: Mapping[str, np.ndarray], config: BertConfig) -> int:
    missing = [name for name in ENCODER_INPUTS if name not in features]
    if missing:
        raise ValueError(f"features lack {missing}; need {list(ENCODER_INPUTS)} [N, S]")
    shapes = {name: np.shape(features[name]) for name in ENCODER_INPUTS}
    if len(set(shapes.values())) != 1 or len(shapes["input_ids"]) != 2:
        raise ValueError(f"input_ids, segment_ids and input_mask must share one [N, S] shape; "
                         f"got {shapes}")
    num_examples = shapes["input_ids"][0]
    if num_examples == 0:
        raise ValueError("features hold no examples")
    # The model validates values only outside jit, so check them here, on the host.
    modeling.validate_inputs(config, np.asarray(features["input_ids"]),
                             np.asarray(features["segment_ids"]),
                             np.asarray(features["input_mask"]))
    empty = np.flatnonzero(np.asarray(features["input_mask"]).sum(axis=1) == 0)
    if empty.size:
        raise ValueError(f"input_mask is all zeros for example {int(empty[0])} "
                         f"({empty.size} such rows): nothing to pool")
    return num_examples


def _pool(hidden_states: jax.Array, input_mask: jax.Array, pooling: str) -> jax.Array:
    """hidden_states [L + 1, B, S, H], input_mask [B, S] -> [L + 1, B, H]."""
    if pooling == "cls":
        return hidden_states[:, :, 0]
    mask = input_mask.astype(hidden_states.dtype)[None, :, :, None]  # [1, B, S, 1]
    # Padding rows of the last eval batch have no real token: divide by 1, not 0.
    counts = jnp.maximum(mask.sum(axis=2), 1.0)  # [1, B, 1]
    return (hidden_states * mask).sum(axis=2) / counts


def pooled_hidden_states(config: BertConfig, params: Mapping, features: Mapping[str, np.ndarray],
                         *, pooling: str = "cls", batch_size: int = 32) -> np.ndarray:
    """Every hidden state of the frozen encoder, pooled per example: [L + 1, N, H] float32.

    Args:
      config: the encoder's BertConfig (its dropout is ignored: the pass is deterministic).
      params: BertModel params ({embeddings, encoder[, pooler]}; see convert.encoder_params).
      features: input_ids, segment_ids, input_mask [N, S] (other keys are ignored).
      pooling: "cls" (the first position) or "mean" (mean over positions where input_mask is 1).
      batch_size: B of the single compiled forward; the last batch is padded, then dropped.
    """
    from data_pipelines import finetune_input  # pylint: disable=import-outside-toplevel

    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; expected one of {POOLINGS}")
    num_examples = _check_encoder_features(features, config)
    # The pooler is a fine-tuning head, not a hidden state: leave it out of the frozen pass.
    encoder_params = {name: value for name, value in params.items() if name != "pooler"}
    inputs = {name: np.asarray(features[name]) for name in ENCODER_INPUTS}
    pooled = [np.asarray(_pooled_forward(config, pooling, encoder_params,
                                         *(batch[name] for name in ENCODER_INPUTS)))
              for batch in finetune_input.eval_batches(inputs, batch_size)]
    return np.concatenate(pooled, axis=1)[:, :num_examples]


@functools.partial(jax.jit, static_argnames=("config", "pooling"))
def _pooled_forward(config: BertConfig, pooling: str, encoder_params, input_ids, segment_ids,
                    input_mask) -> jax.Array:
    """One batch [B, S] -> pooled hidden states [L + 1, B, H] float32; compiled once per
    (config, pooling, shapes), so the train and dev passes share one program."""
    out = modeling.BertModel(config, add_pooling_layer=False).apply(
        {"params": encoder_params}, input_ids, segment_ids, input_mask, deterministic=True,
        output_hidden_states=True)
    return _pool(out["hidden_states"], input_mask, pooling).astype(jnp.float32)


def combine_layers(pooled: np.ndarray, layers: Sequence[int] | None = (-1, -2, -3, -4),
                   combine: str = "concat") -> np.ndarray:
    """Features [N, F] from pooled hidden states [L + 1, N, H].

    Concatenation follows the order of `layers` ((-1, -2, -3, -4): last layer first).
    """
    if combine not in COMBINES:
        raise ValueError(f"combine={combine!r}; expected one of {COMBINES}")
    if np.ndim(pooled) != 3:
        raise ValueError(f"pooled must be [L + 1, N, H]; got shape {np.shape(pooled)}")
    chosen = [pooled[index] for index in resolve_layers(layers, pooled.shape[0] - 1)]
    if combine == "sum":
        return np.sum(chosen, axis=0, dtype=np.float32)
    return np.concatenate(chosen, axis=-1)


def extract_features(config: BertConfig, params: Mapping, features: Mapping[str, np.ndarray], *,
                     layers: Sequence[int] | None = (-1, -2, -3, -4), combine: str = "concat",
                     pooling: str = "cls", batch_size: int = 32) -> np.ndarray:
    """Features [N, F] of the frozen encoder: `layers` of hidden_states combined, then pooled.

    The default is the paper's best feature-based choice, the concatenation of the last four
    layers (F = 4H). Arguments as `pooled_hidden_states` and `combine_layers`; a named strategy
    is `extract_features(..., **dataclasses.asdict(STRATEGIES[name]))`.
    """
    if combine not in COMBINES:  # fail before the encoder pass, not after it
        raise ValueError(f"combine={combine!r}; expected one of {COMBINES}")
    resolve_layers(layers, config.num_hidden_layers)
    pooled = pooled_hidden_states(config, params, features, pooling=pooling,
                                  batch_size=batch_size)
    return combine_layers(pooled, layers, combine)


# ---------------------------------------------------------------------------- the light head
class ProbeHead(nn.Module):
    """Linear softmax classifier, or one ReLU hidden layer of U units first (U > 0).

    Input [N, F] (standardised); output logits [N, C].
    """

    num_classes: int
    hidden_units: int = 0

    @nn.compact
    def __call__(self, features):
        x = features
        if self.hidden_units:
            x = nn.relu(nn.Dense(self.hidden_units, name="hidden")(x))  # [N, U]
        return nn.Dense(self.num_classes, name="output")(x)  # [N, C]


@dataclasses.dataclass(frozen=True)
class Probe:
    """A trained head and the standardisation it was trained with.

    params: ProbeHead params. feature_mean, feature_scale: [F], from the training features.
    """

    params: dict
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    num_classes: int
    hidden_units: int

    def standardize(self, features: np.ndarray) -> np.ndarray:
        features = _check_features(features, "features", self.feature_mean.shape[0])
        return (features - self.feature_mean) / self.feature_scale


def _check_features(features, name: str, expected_dim: int | None = None) -> np.ndarray:
    features = np.asarray(features, np.float32)
    if features.ndim != 2:
        raise ValueError(f"{name} must be [N, F]; got shape {features.shape}")
    if expected_dim is not None and features.shape[1] != expected_dim:
        raise ValueError(f"{name} has F={features.shape[1]}; the probe was trained on "
                         f"F={expected_dim}")
    if not np.all(np.isfinite(features)):
        row = int(np.argwhere(~np.isfinite(features))[0, 0])
        raise ValueError(f"{name} has a non-finite value in row {row}")
    return features


def _check_labels(labels, num_examples: int, num_classes: int, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.shape != (num_examples,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be [N={num_examples}] integer class ids; got shape "
                         f"{labels.shape}, dtype {labels.dtype}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError(f"{name}[{int(bad[0])}] = {int(labels[bad[0]])}; expected class ids in "
                         f"[0, {num_classes})")
    return labels.astype(np.int32)


def _mean_cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def _squared_kernels(params) -> jax.Array:
    # Biases are not decayed (as in BERT's optimizer and sklearn's unpenalised intercept).
    return sum(jnp.sum(layer["kernel"] ** 2) for layer in params.values())


def train_probe(train_features: np.ndarray, train_labels: np.ndarray, *, num_classes: int,
                hidden_units: int = 0, weight_decay: float = 1e-2, learning_rate: float = 5e-2,
                num_steps: int = 1000, seed: int = 0) -> Probe:
    """Trains a light head on cached features, full batch, deterministic for a seed.

    The features are standardised with the training set's mean and std (the layers of a
    concatenation differ in scale, and a few hidden units of BERT-style models are far larger
    than the rest: standardising lets one learning rate and weight decay fit every strategy).
    The objective is mean cross-entropy + (weight_decay / 2) * sum of squared kernels (an L2
    penalty, not Adam's decoupled decay, so the linear probe has the well-defined optimum of
    sklearn's LogisticRegression(C=1 / (weight_decay * N)) on the standardised features),
    minimised by Adam with a cosine-decayed learning rate over `num_steps` full-batch steps.

    Args:
      train_features: [N, F]. train_labels: [N] integer class ids in [0, C).
      num_classes: C.
      hidden_units: 0 for a linear (softmax regression) probe; U > 0 for one ReLU layer first.
      seed: initialises the head (nothing else is random).
    """
    train_features = _check_features(train_features, "train_features")
    labels = _check_labels(train_labels, train_features.shape[0], num_classes, "train_labels")
    if hidden_units < 0 or num_steps <= 0:
        raise ValueError(f"need hidden_units >= 0 and num_steps > 0; got {hidden_units}, "
                         f"{num_steps}")
    mean = train_features.mean(axis=0)
    scale = train_features.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0).astype(np.float32)  # constant features stay 0
    standardized = (train_features - mean) / scale

    head = ProbeHead(num_classes, hidden_units)
    params = head.init(jax.random.PRNGKey(seed), standardized[:1])["params"]
    params = jax.device_get(_fit(head, params, jnp.asarray(standardized), jnp.asarray(labels),
                                 weight_decay=weight_decay, learning_rate=learning_rate,
                                 num_steps=num_steps))
    return Probe(params, mean.astype(np.float32), scale, num_classes, hidden_units)


@functools.partial(jax.jit, static_argnames=("head", "weight_decay", "learning_rate",
                                             "num_steps"))
def _fit(head: ProbeHead, params, x, y, *, weight_decay, learning_rate, num_steps):
    """num_steps full-batch Adam steps on x [N, F], y [N]; compiled once per head, settings and
    shapes, so probes that differ only in seed or data share one program."""
    tx = optax.adam(optax.cosine_decay_schedule(learning_rate, num_steps))

    def objective(params):
        return (_mean_cross_entropy(head.apply({"params": params}, x), y)
                + 0.5 * weight_decay * _squared_kernels(params))

    def step(carry, _):
        params, opt_state = carry
        updates, opt_state = tx.update(jax.grad(objective)(params), opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=num_steps)
    return params


def train_linear_probe(train_features: np.ndarray, train_labels: np.ndarray, *,
                       num_classes: int, **kwargs) -> Probe:
    """`train_probe` with a linear head (softmax regression on the standardised features)."""
    return train_probe(train_features, train_labels, num_classes=num_classes, hidden_units=0,
                       **kwargs)


def predict_logits(probe: Probe, features: np.ndarray) -> np.ndarray:
    """Logits [N, C] of features [N, F]."""
    head = ProbeHead(probe.num_classes, probe.hidden_units)
    return np.asarray(head.apply({"params": probe.params}, probe.standardize(features)))


def predict(probe: Probe, features: np.ndarray) -> np.ndarray:
    """Predicted class ids [N]."""
    return predict_logits(probe, features).argmax(axis=-1)


def evaluate(probe: Probe, features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """{"accuracy", "loss" (mean cross-entropy)} of the probe on features [N, F], labels [N]."""
    logits = predict_logits(probe, features)
    labels = _check_labels(labels, logits.shape[0], probe.num_classes, "labels")
    return {"accuracy": float(np.mean(logits.argmax(-1) == labels)),
            "loss": float(_mean_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)))}
