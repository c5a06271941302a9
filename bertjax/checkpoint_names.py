"""The table of parameter names and shapes in bertjax, the original TF checkpoints and HF.

Every converter (bertjax.convert) reads and writes through `tensor_specs`, one row per tensor:
bertjax's param path and shape, the original TF variable name, the HF (torch) name, and how each
format lays the tensor out. A model is the encoder plus one head:

  head                  bertjax params                    TF (original)            HF architecture
  encoder               embeddings, encoder, pooler       bert/...                 BertModel
  pretraining           bert, cls                          bert/..., cls/...         BertForPreTraining
  classification        bert, classifier (C classes)       bert/..., output_weights  BertForSequenceClassification
  token_classification  bert (no pooler), classifier       bert/..., output_weights  BertForTokenClassification
  span                  bert (no pooler), qa_outputs       bert/..., cls/squad/...   BertForQuestionAnswering

The classification names are the original run_classifier.py's (`output_weights` [C, H] and
`output_bias` [C] at the top level), the span names run_squad.py's (`cls/squad/output_weights`
[2, H]); the original has no token-classification model, so its head takes run_classifier's names.
HF's token-classification and QA models have no pooler, nor do bertjax's (the original
run_squad.py builds one and never uses it: it is dropped on import).

Shape legend: H hidden, N heads, D head size, F intermediate, V vocab, C classes.
"""

from __future__ import annotations

import dataclasses
import re

import flax.linen as nn
import jax
import numpy as np

from bertjax import modeling, param_layout
from bertjax.config import BertConfig

Params = param_layout.Params

HEADS = ("encoder", "pretraining", "classification", "token_classification", "span")
# The HF architecture of each head, and back.
HF_ARCHITECTURES = {"encoder": "BertModel", "pretraining": "BertForPreTraining",
                    "classification": "BertForSequenceClassification",
                    "token_classification": "BertForTokenClassification",
                    "span": "BertForQuestionAnswering"}
_NO_POOLER = ("token_classification", "span")


@dataclasses.dataclass(frozen=True)
class Head:
    """Which head a param tree carries: `kind` (one of HEADS) and its number of outputs."""

    kind: str = "encoder"
    num_labels: int = 0

    def __post_init__(self):
        if self.kind not in HEADS:
            raise ValueError(f"unknown head {self.kind!r}; expected one of {HEADS}")

    @property
    def has_pooler(self) -> bool:
        return self.kind not in _NO_POOLER

    def model(self, config: BertConfig) -> nn.Module:
        """The flax module whose params this head's tree is."""
        if self.kind == "encoder":
            return modeling.BertModel(config)
        if self.kind == "pretraining":
            return modeling.BertForPreTraining(config)
        if self.kind == "classification":
            return modeling.BertForSequenceClassification(config, self.num_labels)
        if self.kind == "token_classification":
            return modeling.BertForTokenClassification(config, self.num_labels)
        return modeling.BertForQuestionAnswering(config)


def head_of(params: Params) -> Head:
    """The head of a param tree, read from its structure (see the module docstring)."""
    if "embeddings" in params:
        return Head("encoder")
    if "bert" not in params:
        raise ValueError(f"not BERT params: top-level keys {sorted(params)}")
    if "cls" in params:
        return Head("pretraining")
    if "qa_outputs" in params:
        return Head("span", 2)
    if "classifier" in params:
        num_labels = int(np.shape(params["classifier"]["bias"])[-1])
        kind = "classification" if "pooler" in params["bert"] else "token_classification"
        return Head(kind, num_labels)
    extra = sorted(set(params) - {"bert"})
    raise ValueError(f"params have an unknown head {extra}; expected one of cls, classifier, "
                     "qa_outputs")


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One parameter in the three formats.

    tf_name: the original checkpoint's variable name (also bertjax's path, joined by "/", but
      for LayerNorm gamma/beta and the head tensors).
    path: bertjax's param path in the unrolled layout.
    shape: bertjax's shape. matrix_shape: the 2-D [in, out] view of a dense kernel (= shape for
      everything else), which is how TF stores kernels.
    tf_transposed: TF stores matrix_shape transposed (the NSP and task-head output_weights).
    hf_transposed: HF stores matrix_shape transposed (every torch Linear weight).
    hf: the HF name where it is not derived from tf_name (task heads).
    """

    tf_name: str
    path: tuple[str, ...]
    shape: tuple[int, ...]
    matrix_shape: tuple[int, ...]
    tf_transposed: bool = False
    hf_transposed: bool = False
    hf: str | None = None

    @property
    def hf_name(self) -> str:
        if self.hf:
            return self.hf
        name = self.tf_name
        name = {"cls/predictions/output_bias": "cls/predictions/bias",
                "cls/seq_relationship/output_weights": "cls/seq_relationship/weight",
                "cls/seq_relationship/output_bias": "cls/seq_relationship/bias"}.get(name, name)
        name = re.sub(r"/layer_(\d+)/", r"/layer/\1/", name)
        name = re.sub(r"/(gamma|kernel)$", "/weight", name)
        name = re.sub(r"/beta$", "/bias", name)
        if name.endswith("_embeddings"):
            name += "/weight"
        return name.replace("/", ".")

    @property
    def tf_shape(self) -> tuple[int, ...]:
        return self.matrix_shape[::-1] if self.tf_transposed else self.matrix_shape

    @property
    def hf_shape(self) -> tuple[int, ...]:
        return self.matrix_shape[::-1] if self.hf_transposed else self.matrix_shape

    def from_tf(self, array: np.ndarray) -> np.ndarray:
        array = array.T if self.tf_transposed else array
        return np.reshape(array, self.shape)

    def from_hf(self, array: np.ndarray) -> np.ndarray:
        array = array.T if self.hf_transposed else array
        return np.reshape(array, self.shape)

    def to_tf(self, value) -> np.ndarray:
        array = np.reshape(np.asarray(value), self.matrix_shape)
        return np.ascontiguousarray(array.T if self.tf_transposed else array)

    def to_hf(self, value) -> np.ndarray:
        array = np.reshape(np.asarray(value), self.matrix_shape)
        return np.ascontiguousarray(array.T if self.hf_transposed else array)


def tensor_specs(config: BertConfig, head: Head | str = "encoder") -> list[TensorSpec]:
    """Every parameter of the encoder plus `head`, in a fixed order.

    For the encoder alone the bertjax paths start at its own modules and the HF names carry no
    "bert." prefix; with any head they start with ("bert",) / "bert.". TF names always start
    with "bert/" (the original never saves an encoder alone).
    """
    head = Head(head) if isinstance(head, str) else head
    H, F, N, D = (config.hidden_size, config.intermediate_size, config.num_attention_heads,
                  config.head_size)
    specs: list[TensorSpec] = []
    root = () if head.kind == "encoder" else ("bert",)
    hf_prefix = "" if head.kind == "encoder" else "bert."

    def add(tf_name, path, shape, matrix_shape=None, tf_transposed=False, hf_transposed=False,
            hf=None):
        spec = TensorSpec(tf_name, tuple(path), tuple(shape), tuple(matrix_shape or shape),
                          tf_transposed, hf_transposed, hf)
        if hf is None and tf_name.startswith("bert/"):
            spec = dataclasses.replace(spec, hf=hf_prefix + spec.hf_name.removeprefix("bert."))
        specs.append(spec)

    def layer_norm(tf_scope, path):
        add(f"{tf_scope}/LayerNorm/gamma", (*path, "LayerNorm", "scale"), (H,))
        add(f"{tf_scope}/LayerNorm/beta", (*path, "LayerNorm", "bias"), (H,))

    def dense(tf_scope, path, in_shape, out_shape):
        matrix = (int(np.prod(in_shape)), int(np.prod(out_shape)))
        add(f"{tf_scope}/kernel", (*path, "kernel"), (*in_shape, *out_shape), matrix,
            hf_transposed=True)
        add(f"{tf_scope}/bias", (*path, "bias"), out_shape, (matrix[1],))

    def output_layer(tf_scope, hf_scope, path, num_outputs):
        # A head's [H, C] kernel, stored [C, H] by both the original and HF.
        add(f"{tf_scope}output_weights", (*path, "kernel"), (H, num_outputs),
            tf_transposed=True, hf_transposed=True, hf=f"{hf_scope}.weight")
        add(f"{tf_scope}output_bias", (*path, "bias"), (num_outputs,), hf=f"{hf_scope}.bias")

    for table, rows in (("word_embeddings", config.vocab_size),
                        ("token_type_embeddings", config.type_vocab_size),
                        ("position_embeddings", config.max_position_embeddings)):
        add(f"bert/embeddings/{table}", (*root, "embeddings", table, "embedding"), (rows, H))
    layer_norm("bert/embeddings", (*root, "embeddings"))
    for i in range(config.num_hidden_layers):
        scope, path = f"bert/encoder/layer_{i}", (*root, "encoder", f"layer_{i}")
        for name in ("query", "key", "value"):
            dense(f"{scope}/attention/self/{name}", (*path, "attention", "self", name), (H,), (N, D))
        dense(f"{scope}/attention/output/dense", (*path, "attention", "output", "dense"),
              (N, D), (H,))
        layer_norm(f"{scope}/attention/output", (*path, "attention", "output"))
        dense(f"{scope}/intermediate/dense", (*path, "intermediate", "dense"), (H,), (F,))
        dense(f"{scope}/output/dense", (*path, "output", "dense"), (F,), (H,))
        layer_norm(f"{scope}/output", (*path, "output"))
    if head.has_pooler:
        dense("bert/pooler/dense", (*root, "pooler", "dense"), (H,), (H,))
    if head.kind == "pretraining":
        dense("cls/predictions/transform/dense", ("cls", "predictions", "transform", "dense"),
              (H,), (H,))
        layer_norm("cls/predictions/transform", ("cls", "predictions", "transform"))
        add("cls/predictions/output_bias", ("cls", "predictions", "output_bias"),
            (config.vocab_size,))
        add("cls/seq_relationship/output_weights", ("cls", "seq_relationship", "kernel"), (H, 2),
            tf_transposed=True, hf_transposed=True)
        add("cls/seq_relationship/output_bias", ("cls", "seq_relationship", "bias"), (2,))
    elif head.kind in ("classification", "token_classification"):
        output_layer("", "classifier", ("classifier",), head.num_labels)
    elif head.kind == "span":
        output_layer("cls/squad/", "qa_outputs", ("qa_outputs",), 2)
    return specs


def expected_shapes(config: BertConfig, head: Head | str = "encoder"
                    ) -> dict[tuple[str, ...], tuple]:
    """{path: shape} of the model's params, from `jax.eval_shape` (nothing allocated)."""
    head = Head(head) if isinstance(head, str) else head
    model = head.model(config)
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                                 *modeling.dummy_inputs(1, 2)))
    return {path: tuple(leaf.shape)
            for path, leaf in param_layout.flatten(nn.meta.unbox(abstract["params"])).items()}


def check_params(config: BertConfig, params: Params, source: str = "params") -> None:
    """Raises ValueError unless `params` has exactly the tensors, with the shapes, of the model
    its head (`head_of`) names."""
    expected = expected_shapes(config, head_of(params))
    found = {path: tuple(np.shape(v)) for path, v in param_layout.flatten(params).items()}
    compare(expected, found, source, separator="/")


def compare(expected: dict, found: dict, source: str, separator: str) -> None:
    """Raises ValueError naming every missing, unexpected or wrongly shaped tensor."""
    name = lambda key: key if isinstance(key, str) else separator.join(key)  # noqa: E731
    problems = []
    for key in expected:
        if key not in found:
            problems.append(f"missing tensor {name(key)}: expected shape {expected[key]}, "
                            "found none")
        elif tuple(found[key]) != tuple(expected[key]):
            problems.append(f"tensor {name(key)}: expected shape {tuple(expected[key])}, "
                            f"found {tuple(found[key])}")
    for key in found:
        if key not in expected:
            problems.append(f"unexpected tensor {name(key)} with shape {tuple(found[key])} "
                            "(expected none)")
    if problems:
        raise ValueError(f"{source}: " + "; ".join(problems))

