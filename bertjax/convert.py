"""Checkpoint interop: Hugging Face folders, original google-research/bert TF checkpoints, and
bertjax's own orbax format.

    from bertjax import convert
    config, params = convert.load_hf("path/to/hf_folder")          # config.json + weights
    config, params = convert.load_tf_checkpoint("uncased_L-12_H-768_A-12/bert_model.ckpt",
                                                "uncased_L-12_H-768_A-12/bert_config.json")
    config, params = convert.load_any(path)                        # any of the three formats
    convert.save_hf(config, params, out_dir)                       # transformers loads it
    convert.save_checkpoint(config, params, directory)             # orbax + config.json

Params with the pretraining heads ({"bert", "cls"}) are for `modeling.BertForPreTraining`; params
of the encoder alone ({"embeddings", "encoder", "pooler"}) are for `modeling.BertModel`. Every
loader returns the layout `config.scan_layers` asks for (layer_i, or one stacked `layer` under
the encoder) and checks the tree against the model's own shapes: a missing, extra or wrongly
shaped tensor is a ValueError naming the tensor and both shapes.

How the formats relate. The original TF checkpoint is the common ground: its variable names are
bertjax's param paths with "/" (bert/encoder/layer_3/attention/self/query/kernel); its dense
kernels are [in, out], where bertjax splits heads ([H, N, D] for q/k/v, [N, D, H] for the
attention output) and HF's torch Linear stores [out, in]; its LayerNorms are gamma/beta, flax's
scale/bias and HF's weight/bias; the NSP weight `cls/seq_relationship/output_weights` is [2, H],
transposed against a kernel. The MLM decoder is tied to the word embeddings in all three, so no
format stores it separately except older HF files (checked equal, then dropped).

Shape legend: H hidden, N heads, D head size, F intermediate, V vocab, L layers.
CLI: python -m bertjax.convert --from=hf|tf|bertjax --to=hf|tf|bertjax --input=... --output=...
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

import flax.linen as nn
import jax
import numpy as np

from bertjax import modeling, param_layout
from bertjax.config import BertConfig

# Re-exported: part of the convert API that finetune, feature_based and users call.
from bertjax.param_layout import (  # noqa: F401
    encoder_params,
    has_heads,
    is_scanned,
    stack_layers,
    to_layout,
    unstack_layers,
)

Params = param_layout.Params

# Tensors some checkpoints carry that are not parameters: HF's registered buffers, and the
# optimizer state and step counter of the original training checkpoints.
_HF_BUFFERS = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")
_TF_NON_PARAMS = re.compile(r"(adam_m|adam_v|Adam|Adam_1|LAMB|Momentum)$|^global_step$|"
                            r"(^|/)(beta1_power|beta2_power)$")


# ---------------------------------------------------------------------------- the name table
@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """One parameter in the three formats.

    tf_name: the original checkpoint's variable name (also bertjax's path, joined by "/", but
      for LayerNorm gamma/beta and the NSP output_weights/output_bias).
    path: bertjax's param path in the unrolled layout.
    shape: bertjax's shape. matrix_shape: the 2-D [in, out] view of a dense kernel (= shape for
      everything else), which is how TF stores kernels.
    tf_transposed: TF stores matrix_shape transposed (only the NSP output_weights).
    hf_transposed: HF stores matrix_shape transposed (every torch Linear weight).
    """

    tf_name: str
    path: tuple[str, ...]
    shape: tuple[int, ...]
    matrix_shape: tuple[int, ...]
    tf_transposed: bool = False
    hf_transposed: bool = False

    @property
    def hf_name(self) -> str:
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


def tensor_specs(config: BertConfig, with_heads: bool) -> list[TensorSpec]:
    """Every parameter of BertForPreTraining (`with_heads`) or BertModel, in a fixed order.

    With heads, the TF names start with "bert/" and the bertjax paths with ("bert",); without,
    TF names still start with "bert/" (the original never saves an encoder alone) and the
    bertjax paths start at the encoder's own modules.
    """
    H, F, N, D = (config.hidden_size, config.intermediate_size, config.num_attention_heads,
                  config.head_size)
    specs: list[TensorSpec] = []
    root = ("bert",) if with_heads else ()

    def add(tf_name, path, shape, matrix_shape=None, tf_transposed=False, hf_transposed=False):
        specs.append(TensorSpec(tf_name, tuple(path), tuple(shape),
                                tuple(matrix_shape or shape), tf_transposed, hf_transposed))

    def layer_norm(tf_scope, path):
        add(f"{tf_scope}/LayerNorm/gamma", (*path, "LayerNorm", "scale"), (H,))
        add(f"{tf_scope}/LayerNorm/beta", (*path, "LayerNorm", "bias"), (H,))

    def dense(tf_scope, path, in_shape, out_shape):
        matrix = (int(np.prod(in_shape)), int(np.prod(out_shape)))
        add(f"{tf_scope}/kernel", (*path, "kernel"), (*in_shape, *out_shape), matrix,
            hf_transposed=True)
        add(f"{tf_scope}/bias", (*path, "bias"), out_shape, (matrix[1],))

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
    dense("bert/pooler/dense", (*root, "pooler", "dense"), (H,), (H,))
    if with_heads:
        dense("cls/predictions/transform/dense", ("cls", "predictions", "transform", "dense"),
              (H,), (H,))
        layer_norm("cls/predictions/transform", ("cls", "predictions", "transform"))
        add("cls/predictions/output_bias", ("cls", "predictions", "output_bias"),
            (config.vocab_size,))
        add("cls/seq_relationship/output_weights", ("cls", "seq_relationship", "kernel"), (H, 2),
            tf_transposed=True, hf_transposed=True)
        add("cls/seq_relationship/output_bias", ("cls", "seq_relationship", "bias"), (2,))
    return specs


def expected_shapes(config: BertConfig, with_heads: bool) -> dict[tuple[str, ...], tuple]:
    """{path: shape} of the model's params, from `jax.eval_shape` (nothing allocated)."""
    model = modeling.BertForPreTraining(config) if with_heads else modeling.BertModel(config)
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                                 *modeling.dummy_inputs(1, 2)))
    return {path: tuple(leaf.shape)
            for path, leaf in param_layout.flatten(nn.meta.unbox(abstract["params"])).items()}


def check_params(config: BertConfig, params: Params, source: str = "params") -> None:
    """Raises ValueError unless `params` has exactly the model's tensors with the model's shapes
    (BertForPreTraining's when `params` has heads, BertModel's otherwise)."""
    expected = expected_shapes(config, has_heads(params))
    found = {path: tuple(np.shape(v)) for path, v in param_layout.flatten(params).items()}
    _compare(expected, found, source, separator="/")


def _compare(expected: dict, found: dict, source: str, separator: str) -> None:
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


def _cast(config: BertConfig, array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=config.params_dtype)


# ---------------------------------------------------------------------------- Hugging Face
def _read_hf_tensors(path: str) -> tuple[dict[str, np.ndarray], str]:
    """{name: array} from model.safetensors (preferred) or pytorch_model.bin in `path`."""
    safetensors_file = os.path.join(path, "model.safetensors")
    torch_file = os.path.join(path, "pytorch_model.bin")
    if os.path.exists(safetensors_file):
        from safetensors import safe_open
        tensors = {}
        try:
            with safe_open(safetensors_file, framework="numpy") as f:
                for key in f.keys():
                    tensors[key] = f.get_tensor(key)
        except TypeError:  # numpy has no bfloat16: such files are read through torch
            with safe_open(safetensors_file, framework="pt") as f:
                for key in f.keys():
                    tensors[key] = f.get_tensor(key).float().numpy()
        return tensors, safetensors_file
    if os.path.exists(torch_file):
        import torch  # only .bin checkpoints need torch
        state = torch.load(torch_file, map_location="cpu", weights_only=True)
        return {k: v.float().numpy() if v.is_floating_point() else v.numpy()
                for k, v in state.items()}, torch_file
    raise FileNotFoundError(f"{path}: neither model.safetensors nor pytorch_model.bin")


def _normalise_hf_names(tensors: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """Drops buffers; renames older checkpoints' LayerNorm gamma/beta to weight/bias; checks the
    tied MLM decoder against the word embeddings and folds decoder.bias into the output bias."""
    out = {}
    for key, value in tensors.items():
        if _HF_BUFFERS.search(key):
            continue
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        out[key] = value
    decoder = out.pop("cls.predictions.decoder.weight", None)
    if decoder is not None:
        words = out.get("bert.embeddings.word_embeddings.weight")
        if words is None or words.shape != decoder.shape or not np.array_equal(words, decoder):
            raise ValueError(
                f"{source}: cls.predictions.decoder.weight (shape {decoder.shape}) differs from "
                f"bert.embeddings.word_embeddings.weight (shape "
                f"{None if words is None else words.shape}); bertjax ties the MLM decoder to the "
                "word embeddings")
    decoder_bias = out.pop("cls.predictions.decoder.bias", None)
    if decoder_bias is not None:
        bias = out.setdefault("cls.predictions.bias", decoder_bias)
        if bias.shape != decoder_bias.shape or not np.array_equal(bias, decoder_bias):
            raise ValueError(f"{source}: cls.predictions.decoder.bias (shape "
                             f"{decoder_bias.shape}) differs from cls.predictions.bias (shape "
                             f"{bias.shape}); they are one tied tensor")
    return out


def load_hf(path: str, scan_layers: bool | None = None) -> tuple[BertConfig, Params]:
    """Reads an HF BERT folder: config.json + model.safetensors or pytorch_model.bin.

    A BertForPreTraining checkpoint (bert.*, cls.predictions.*, cls.seq_relationship.*) gives
    params for `modeling.BertForPreTraining`; a BertModel one (embeddings.*, encoder.*, pooler.*,
    with or without the "bert." prefix) gives params for `modeling.BertModel`. Any other tensor
    (e.g. a fine-tuned classifier) is an error.
    `scan_layers` (default: False) sets config.scan_layers and the layout to match.
    """
    config = BertConfig.from_json_file(os.path.join(path, "config.json"))
    with open(os.path.join(path, "config.json")) as f:
        position_type = json.load(f).get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"{path}/config.json: position_embedding_type={position_type!r}; "
                         "bertjax implements only learned absolute positions")
    if scan_layers is not None:
        config = config.replace(scan_layers=scan_layers)
    tensors, source = _read_hf_tensors(path)
    tensors = _normalise_hf_names(tensors, source)
    with_heads = any(key.startswith("cls.") for key in tensors)
    if not with_heads:  # BertModel files are saved with or without the "bert." prefix
        tensors = {key.removeprefix("bert."): value for key, value in tensors.items()}
    specs = tensor_specs(config, with_heads)
    by_name = {}
    for spec in specs:
        name = spec.hf_name if with_heads else spec.hf_name.removeprefix("bert.")
        by_name[name] = spec
    _compare({name: spec.hf_shape for name, spec in by_name.items()},
             {key: value.shape for key, value in tensors.items()}, source, separator=".")
    params: Params = {}
    for name, spec in by_name.items():
        param_layout.set_path(params, spec.path, _cast(config, spec.from_hf(tensors[name])))
    params = to_layout(config, params)
    check_params(config, params, source)
    return config, params


def save_hf(config: BertConfig, params: Params, out_dir: str) -> None:
    """Writes config.json + model.safetensors for transformers.

    Params with heads become a BertForPreTraining checkpoint (the MLM decoder is left out, as
    transformers itself saves it: it is tied to bert.embeddings.word_embeddings.weight); params of
    the encoder alone become a BertModel checkpoint (no "bert." prefix, architectures
    ["BertModel"]), which `transformers.BertModel.from_pretrained` loads.
    """
    from safetensors.numpy import save_file

    params = unstack_layers(params)
    with_heads = has_heads(params)
    check_params(config.replace(scan_layers=False), params)
    flat = param_layout.flatten(params)
    tensors = {}
    for spec in tensor_specs(config, with_heads):
        name = spec.hf_name if with_heads else spec.hf_name.removeprefix("bert.")
        tensors[name] = np.asarray(spec.to_hf(flat[spec.path]), dtype=np.float32)
    os.makedirs(out_dir, exist_ok=True)
    hf_config = config.to_hf_dict()
    hf_config.update(architectures=["BertForPreTraining" if with_heads else "BertModel"],
                     tie_word_embeddings=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config, f, indent=2, sort_keys=True)
        f.write("\n")
    # transformers refuses safetensors files without the "format" metadata.
    save_file(tensors, os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})


# ---------------------------------------------------------------------------- original TF
def _tensorflow():
    import tensorflow as tf
    try:  # TF only reads files here; it must never claim the accelerators JAX uses.
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices were initialised already (hidden by whoever did it)
        pass
    return tf


def load_tf_checkpoint(ckpt_prefix: str, bert_config_file: str,
                       scan_layers: bool | None = None) -> tuple[BertConfig, Params]:
    """Reads an original google-research/bert checkpoint (bert_model.ckpt.{index,data-*}) and
    its bert_config.json.

    With cls/predictions and cls/seq_relationship the params are for BertForPreTraining, without
    them for BertModel. Optimizer slots (adam_m, adam_v) and global_step are skipped; any other
    unknown variable is an error.
    """
    tf = _tensorflow()
    config = BertConfig.from_json_file(bert_config_file)
    if scan_layers is not None:
        config = config.replace(scan_layers=scan_layers)
    reader = tf.train.load_checkpoint(ckpt_prefix)
    shapes = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()
              if not _TF_NON_PARAMS.search(name)}
    with_heads = any(name.startswith("cls/") for name in shapes)
    specs = tensor_specs(config, with_heads)
    _compare({spec.tf_name: spec.tf_shape for spec in specs}, shapes, ckpt_prefix, separator="/")
    params: Params = {}
    for spec in specs:
        tensor = spec.from_tf(reader.get_tensor(spec.tf_name))
        param_layout.set_path(params, spec.path, _cast(config, tensor))
    params = to_layout(config, params)
    check_params(config, params, ckpt_prefix)
    return config, params


def save_tf_checkpoint(config: BertConfig, params: Params, ckpt_prefix: str) -> None:
    """Writes an original-format checkpoint (`ckpt_prefix`.index/.data-*) with the original
    variable names and shapes, through a TF1 graph and tf.compat.v1.train.Saver as the original
    code saved them, so the original run_*.py scripts and `tf.train.load_checkpoint` read it."""
    params = unstack_layers(params)
    check_params(config.replace(scan_layers=False), params)
    flat = param_layout.flatten(params)
    arrays = {spec.tf_name: np.asarray(spec.to_tf(flat[spec.path]), np.float32)
              for spec in tensor_specs(config, has_heads(params))}
    write_tf_variables(arrays, ckpt_prefix)


def write_tf_variables(arrays: dict[str, np.ndarray], ckpt_prefix: str) -> None:
    """Saves {variable name: array} as a TF1 checkpoint at `ckpt_prefix`.

    Values go in through placeholders, not graph constants, so BERT-large stays under the 2 GB
    graph limit.
    """
    tf = _tensorflow()
    os.makedirs(os.path.dirname(os.path.abspath(ckpt_prefix)), exist_ok=True)
    with tf.Graph().as_default():
        feeds, variables = {}, {}
        for name, array in arrays.items():
            placeholder = tf.compat.v1.placeholder(tf.as_dtype(array.dtype), array.shape)
            variables[name] = tf.compat.v1.Variable(placeholder, name=name)
            feeds[placeholder] = array
        saver = tf.compat.v1.train.Saver(var_list=variables)
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer(), feed_dict=feeds)
            saver.save(session, ckpt_prefix, write_meta_graph=False, write_state=False)


# ---------------------------------------------------------------------------- native (orbax)
_PARAMS_DIR = "params"


def save_checkpoint(config: BertConfig, params: Params, directory: str) -> None:
    """bertjax's format: `directory`/config.json (every BertConfig field) and
    `directory`/params (an orbax StandardCheckpointer tree, in the layout of `params`)."""
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    config = config.replace(scan_layers=is_scanned(params))
    check_params(config, params)
    config.write_json(os.path.join(directory, "config.json"), "bertjax")
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(os.path.join(directory, _PARAMS_DIR), params, force=True)
        checkpointer.wait_until_finished()


def load_checkpoint(directory: str, scan_layers: bool | None = None
                    ) -> tuple[BertConfig, Params]:
    """Reads what `save_checkpoint` wrote; `scan_layers` (default: as saved) picks the layout."""
    import orbax.checkpoint as ocp

    directory = os.path.abspath(directory)
    config = BertConfig.from_json_file(os.path.join(directory, "config.json"))
    with ocp.StandardCheckpointer() as checkpointer:
        path = os.path.join(directory, _PARAMS_DIR)
        metadata = checkpointer.metadata(path)
        tree = getattr(metadata, "item_metadata", metadata)
        # Restore every array onto one device as plain host arrays: the caller shards them.
        device = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
        target = jax.tree_util.tree_map(
            lambda leaf: jax.ShapeDtypeStruct(tuple(leaf.shape), leaf.dtype, sharding=device),
            tree.tree if hasattr(tree, "tree") else tree)
        restored = checkpointer.restore(path, target)
    params = jax.tree_util.tree_map(np.asarray, restored)
    params = _plain_dict(params)
    check_params(config, params, path)
    if scan_layers is not None and scan_layers != config.scan_layers:
        config = config.replace(scan_layers=scan_layers)
        params = to_layout(config, params)
    return config, params


def _plain_dict(tree: Any) -> Any:
    if hasattr(tree, "items"):
        return {str(k): _plain_dict(v) for k, v in tree.items()}
    return tree


# ---------------------------------------------------------------------------- any format
def detect_format(path: str) -> str:
    """"hf", "tf" or "bertjax" for a checkpoint path (see `load_any`)."""
    if os.path.isdir(path):
        if os.path.isdir(os.path.join(path, _PARAMS_DIR)):
            return "bertjax"
        if any(os.path.exists(os.path.join(path, name))
               for name in ("model.safetensors", "pytorch_model.bin")):
            return "hf"
        if os.path.exists(os.path.join(path, "bert_model.ckpt.index")):
            return "tf"
    elif os.path.exists(path + ".index"):
        return "tf"
    raise ValueError(f"{path}: not an HF folder (config.json + model.safetensors or "
                     "pytorch_model.bin), an original TF checkpoint (prefix with .index, or a "
                     "folder with bert_model.ckpt.index) or a bertjax checkpoint (config.json + "
                     "params/)")


def load_any(path: str, scan_layers: bool | None = None,
             bert_config_file: str | None = None) -> tuple[BertConfig, Params]:
    """Loads an HF folder, an original TF checkpoint or a bertjax checkpoint.

    A TF checkpoint is a prefix (path/bert_model.ckpt) or the released folder holding
    bert_model.ckpt.*; its config is `bert_config_file`, by default bert_config.json beside it.
    """
    kind = detect_format(path)
    if kind == "hf":
        return load_hf(path, scan_layers)
    if kind == "bertjax":
        return load_checkpoint(path, scan_layers)
    prefix = os.path.join(path, "bert_model.ckpt") if os.path.isdir(path) else path
    if bert_config_file is None:
        bert_config_file = os.path.join(os.path.dirname(prefix), "bert_config.json")
    return load_tf_checkpoint(prefix, bert_config_file, scan_layers)


def save_any(kind: str, config: BertConfig, params: Params, output: str) -> None:
    """Writes `params` as "hf" (folder), "tf" (prefix, with bert_config.json beside it) or
    "bertjax" (folder)."""
    if kind == "hf":
        save_hf(config, params, output)
    elif kind == "bertjax":
        save_checkpoint(config, params, output)
    elif kind == "tf":
        save_tf_checkpoint(config, params, output)
        config.write_json(os.path.join(os.path.dirname(os.path.abspath(output)),
                                       "bert_config.json"), "original")
    else:
        raise ValueError(f"unknown checkpoint format {kind!r}; expected hf, tf or bertjax")


def main(argv):
    from absl import app, flags
    del argv
    FLAGS = flags.FLAGS
    source, target = FLAGS["from"].value, FLAGS["to"].value
    if detect_format(FLAGS.input) != source:
        raise app.UsageError(f"--input={FLAGS.input} is a {detect_format(FLAGS.input)} "
                             f"checkpoint, not --from={source}")
    config, params = load_any(FLAGS.input, FLAGS.scan_layers, FLAGS.bert_config_file)
    save_any(target, config, params, FLAGS.output)
    num_params = sum(int(np.size(v)) for v in param_layout.flatten(params).values())
    print(json.dumps({"from": source, "to": target, "input": FLAGS.input, "output": FLAGS.output,
                      "with_heads": has_heads(params), "num_params": num_params}))


def _define_flags():
    from absl import flags
    flags.DEFINE_enum("from", None, ["hf", "tf", "bertjax"], "Format of --input.", required=True)
    flags.DEFINE_enum("to", None, ["hf", "tf", "bertjax"], "Format of --output.", required=True)
    flags.DEFINE_string("input", None, "HF folder, TF checkpoint prefix or bertjax folder.",
                        required=True)
    flags.DEFINE_string("output", None, "Folder (hf, bertjax) or checkpoint prefix (tf).",
                        required=True)
    flags.DEFINE_string("bert_config_file", None,
                        "bert_config.json of a TF checkpoint (default: beside --input).")
    flags.DEFINE_bool("scan_layers", None, "Write the stacked (nn.scan) layout; bertjax only.")


if __name__ == "__main__":
    from absl import app
    _define_flags()
    app.run(main)
