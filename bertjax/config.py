"""BertConfig: the architecture hyper-parameters, presets, and the two JSON formats.

`BertConfig` is a frozen dataclass so flax modules can hold it as an attribute and jit can hash it.
It reads and writes both the original google-research/bert `bert_config.json` and Hugging Face
`config.json`; the two share field names, HF adds `model_type`, `architectures` and a few extras
which are ignored on read.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax.numpy as jnp

# Fields of the original bert_config.json, in the original's order.
_ORIGINAL_FIELDS = (
    "attention_probs_dropout_prob",
    "hidden_act",
    "hidden_dropout_prob",
    "hidden_size",
    "initializer_range",
    "intermediate_size",
    "max_position_embeddings",
    "num_attention_heads",
    "num_hidden_layers",
    "type_vocab_size",
    "vocab_size",
)

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Hyper-parameters of a BERT encoder.

    Attributes:
      vocab_size: V, rows of the word-embedding table (uncased WordPiece 30,522; cased 28,996).
      hidden_size: H, width of every residual-stream activation.
      num_hidden_layers: L, number of Transformer layers.
      num_attention_heads: N, attention heads per layer; head size D = H / N.
      intermediate_size: F, width of the feed-forward layer (4H in all released models).
      hidden_act: activation of the feed-forward layer and the MLM transform. "gelu" is the exact
        erf form the released checkpoints were trained with (google-research/bert's first
        release; HF's "gelu"); "gelu_tanh"/"gelu_new" is the tanh approximation that
        google-research/bert master's modeling.gelu computes since Feb 2019; "relu".
      hidden_dropout_prob: dropout on embeddings, attention output, FFN output and pooler input.
      attention_probs_dropout_prob: dropout on the attention probabilities.
      max_position_embeddings: number of learned absolute positions (512); the longest sequence.
      type_vocab_size: number of segment (token type) ids, 2 for sentence A / B.
      initializer_range: std of the truncated-normal (2 std) initializer, 0.02.
      layer_norm_eps: LayerNorm epsilon, 1e-12 as in the original.
      dtype: compute dtype of activations ("float32" or "bfloat16"); params stay `param_dtype`.
        LayerNorm statistics and softmax are computed in float32 whatever this is.
      param_dtype: storage dtype of the parameters ("float32").
      remat: wrap each Transformer layer in `nn.remat` (recompute activations in backward).
      remat_policy: name of a `jax.checkpoint_policies` policy used with remat, e.g.
        "nothing_saveable" (full recompute) or "dots_with_no_batch_dims_saveable".
      scan_layers: run the L layers with `nn.scan` (params stacked on a leading L axis), which
        compiles once per model instead of once per layer: far faster compiles for 24 layers.
      pad_token_id: id of [PAD]; only used when building the attention mask from ids.
    """

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False
    remat_policy: str = "nothing_saveable"
    scan_layers: bool = False
    pad_token_id: int = 0

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}")
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in _DTYPES:
                raise ValueError(f"{name}={getattr(self, name)!r}; expected one of {sorted(_DTYPES)}")
        if self.hidden_act not in ("gelu", "gelu_new", "gelu_tanh", "relu"):
            raise ValueError(f"hidden_act={self.hidden_act!r} is not supported")

    @property
    def head_size(self) -> int:
        """D, the width of one attention head."""
        return self.hidden_size // self.num_attention_heads

    @property
    def compute_dtype(self):
        return _DTYPES[self.dtype]

    @property
    def params_dtype(self):
        return _DTYPES[self.param_dtype]

    def replace(self, **changes) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    # ---------------------------------------------------------------- JSON formats
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "BertConfig":
        """Builds a config from an original or HF dict; unknown keys are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in known}
        # HF calls the tanh GELU "gelu_new"; older HF configs say "gelu_python" for the erf one.
        if kwargs.get("hidden_act") == "gelu_python":
            kwargs["hidden_act"] = "gelu"
        if "model_type" in values:
            # HF's dtype/torch_dtype describe how weights were stored, not our compute dtype.
            kwargs.pop("dtype", None)
        return cls(**kwargs)

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> "BertConfig":
        """Parses an original `bert_config.json` or an HF `config.json` (text read by the
        caller through the path layer); errors name `source`."""
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{source}: not valid JSON ({e})") from e
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(values).__name__}")
        missing = [k for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                               "vocab_size") if k not in values]
        if missing:
            raise ValueError(f"{source}: missing BERT config fields {missing}")
        return cls.from_dict(values)

    def to_original_dict(self) -> dict[str, Any]:
        """The original bert_config.json fields only."""
        return {k: getattr(self, k) for k in _ORIGINAL_FIELDS}

    def to_hf_dict(self) -> dict[str, Any]:
        """An HF `config.json` for transformers.BertForPreTraining / BertModel."""
        values = self.to_original_dict()
        values.update(
            architectures=["BertForPreTraining"],
            model_type="bert",
            layer_norm_eps=self.layer_norm_eps,
            pad_token_id=self.pad_token_id,
            position_embedding_type="absolute",
        )
        return values

    def to_dict(self) -> dict[str, Any]:
        """Every field, for bertjax's own checkpoints."""
        return dataclasses.asdict(self)

    def to_json(self, flavor: str = "bertjax") -> str:
        """The config as JSON text: "original" (bert_config.json), "hf" or "bertjax" fields."""
        values = {"original": self.to_original_dict, "hf": self.to_hf_dict,
                  "bertjax": self.to_dict}[flavor]()
        return json.dumps(values, indent=2, sort_keys=True) + "\n"


# Turc et al. 2019 miniatures (A = H/64, F = 4H) and the two paper models.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2, intermediate_size=512),
    "mini": dict(num_hidden_layers=4, hidden_size=256, num_attention_heads=4, intermediate_size=1024),
    "small": dict(num_hidden_layers=4, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "medium": dict(num_hidden_layers=8, hidden_size=512, num_attention_heads=8, intermediate_size=2048),
    "base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "large": dict(num_hidden_layers=24, hidden_size=1024, num_attention_heads=16, intermediate_size=4096),
}

# The paper's rounded totals (Devlin et al. 2018, section 3).
PAPER_PARAMS = {"base": 110_000_000, "large": 340_000_000}


def preset(name: str, **overrides) -> BertConfig:
    """A named preset (tiny, mini, small, medium, base, large) with optional overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return BertConfig(**{**PRESETS[name], **overrides})
