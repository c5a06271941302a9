"""Checkpoint interop: Hugging Face folders, original google-research/bert TF checkpoints, and
bertjax's own orbax format, for the encoder alone, the pretraining model and fine-tuned task
models (classification, token classification, span extraction).

    from bertjax import convert
    config, params = convert.load_hf("path/to/hf_folder")          # config.json + weights
    config, params = convert.load_tf_checkpoint("uncased_L-12_H-768_A-12/bert_model.ckpt",
                                                "uncased_L-12_H-768_A-12/bert_config.json")
    config, params = convert.load_any(path)                        # any of the three formats
    convert.save_hf(config, params, out_dir)                       # transformers loads it
    convert.save_checkpoint(config, params, directory)             # orbax + config.json

The head a param tree carries is read from its structure (bertjax.checkpoint_names.head_of):
{"embeddings", "encoder", "pooler"} is `modeling.BertModel`; {"bert", "cls"} is
BertForPreTraining; {"bert", "classifier"} a sequence- (with pooler) or token-classification
model; {"bert", "qa_outputs"} the SQuAD span model. Saved as HF, each becomes the matching
transformers architecture (BertModel, BertForPreTraining, BertForSequenceClassification,
BertForTokenClassification, BertForQuestionAnswering), so `transformers.AutoModelFor...` loads
it; class names (`labels`) travel as HF's id2label, and in bertjax's format as head.json. Every
loader returns the layout `config.scan_layers` asks for and checks the tree against the model's
own shapes: a missing, extra or wrongly shaped tensor is a ValueError naming the tensor and both
shapes; an unreadable file is an error naming the file.

How the formats relate. The original TF checkpoint is the common ground: its variable names are
bertjax's param paths with "/" (bert/encoder/layer_3/attention/self/query/kernel); its dense
kernels are [in, out], where bertjax splits heads ([H, N, D] for q/k/v, [N, D, H] for the
attention output) and HF's torch Linear stores [out, in]; its LayerNorms are gamma/beta, flax's
scale/bias and HF's weight/bias; head output weights (NSP, classifier, SQuAD) are stored [C, H],
transposed against a kernel. The MLM decoder is tied to the word embeddings in all three, so no
format stores it separately except older HF files (checked equal, then dropped). The name table
is bertjax/checkpoint_names.py. Every path goes through the path layer (data_pipelines.storage):
local folders, gs:// and the other schemes it serves.

Shape legend: H hidden, N heads, D head size, F intermediate, V vocab, L layers, C classes.
CLI: python -m bertjax.convert --from=hf|tf|bertjax --to=hf|tf|bertjax --input=... --output=...
"""

from __future__ import annotations

import json
import re
import tempfile
from typing import Any, Sequence

import jax
import numpy as np

from bertjax import param_layout
from bertjax.checkpoint_names import (  # noqa: F401  (re-exported: the convert API)
    HEADS,
    HF_ARCHITECTURES,
    Head,
    TensorSpec,
    check_params,
    compare,
    expected_shapes,
    head_of,
    tensor_specs,
)
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
from data_pipelines import storage

Params = param_layout.Params

# Tensors some checkpoints carry that are not parameters: HF's registered buffers, and the
# optimizer state and step counter of the original training checkpoints.
_HF_BUFFERS = re.compile(r"(^|\.)embeddings\.(position_ids|token_type_ids)$")
_TF_NON_PARAMS = re.compile(r"(adam_m|adam_v|Adam|Adam_1|LAMB|Momentum)$|^global_step$|"
                            r"(^|/)(beta1_power|beta2_power)$")


def read_config(path: str) -> BertConfig:
    """A BertConfig from an original bert_config.json, an HF config.json or bertjax's own."""
    return BertConfig.from_json(storage.read_text(path), path)


def write_config(config: BertConfig, path: str, flavor: str = "bertjax",
                 extra: dict | None = None) -> None:
    """Writes `config` as JSON ("original", "hf" or "bertjax" fields, plus `extra`)."""
    values = json.loads(config.to_json(flavor))
    values.update(extra or {})
    storage.write_text(path, json.dumps(values, indent=2, sort_keys=True) + "\n")


def _cast(config: BertConfig, array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=config.params_dtype)


def _default_labels(num_labels: int) -> list[str]:
    return [f"LABEL_{i}" for i in range(num_labels)]


def _checked_labels(head: Head, labels: Sequence[str] | None) -> list[str] | None:
    if labels is None:
        return None
    labels = [str(label) for label in labels]
    if head.kind in ("classification", "token_classification") and len(labels) != \
            head.num_labels:
        raise ValueError(f"{len(labels)} labels {labels} for a {head.kind} head of "
                         f"{head.num_labels} outputs")
    return labels


# ---------------------------------------------------------------------------- Hugging Face
def _read_safetensors(path: str) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError, safe_open  # pylint: disable=import-outside-toplevel

    try:
        local = path if not storage.is_remote(path) else None
        if local is None:  # safetensors reads local files: bring a remote one over first
            with tempfile.NamedTemporaryFile(suffix=".safetensors") as copy:
                copy.write(storage.read_bytes(path))
                copy.flush()
                return _read_safetensors(copy.name)
        tensors = {}
        try:
            with safe_open(local, framework="numpy") as f:
                for key in f.keys():
                    tensors[key] = f.get_tensor(key)
        except TypeError:  # numpy has no bfloat16: such files are read through torch
            with safe_open(local, framework="pt") as f:
                for key in f.keys():
                    tensors[key] = f.get_tensor(key).float().numpy()
        return tensors
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error


def _read_hf_tensors(path: str) -> tuple[dict[str, np.ndarray], str]:
    """{name: array} from model.safetensors (preferred) or pytorch_model.bin in `path`."""
    safetensors_file = storage.join(path, "model.safetensors")
    torch_file = storage.join(path, "pytorch_model.bin")
    if storage.exists(safetensors_file):
        return _read_safetensors(safetensors_file), safetensors_file
    if storage.exists(torch_file):
        import io

        import torch  # only .bin checkpoints need torch
        try:
            state = torch.load(io.BytesIO(storage.read_bytes(torch_file)), map_location="cpu",
                               weights_only=True)
        except Exception as error:  # torch raises many kinds for a damaged file
            raise ValueError(f"{torch_file}: not a readable PyTorch state dict ({error})") \
                from error
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


def _hf_head(tensors: dict[str, np.ndarray]) -> Head:
    """The head of an HF state dict, from its tensor names."""
    if any(key.startswith("cls.") for key in tensors):
        return Head("pretraining")
    if "qa_outputs.weight" in tensors:
        return Head("span", 2)
    if "classifier.weight" in tensors:
        kind = ("classification" if "bert.pooler.dense.weight" in tensors
                else "token_classification")
        return Head(kind, int(tensors["classifier.weight"].shape[0]))
    return Head("encoder")


def load_hf(path: str, scan_layers: bool | None = None) -> tuple[BertConfig, Params]:
    """Reads an HF BERT folder: config.json + model.safetensors or pytorch_model.bin.

    The head comes from the tensor names: BertForPreTraining (bert.*, cls.*), BertModel
    (embeddings.*, encoder.*, pooler.*, with or without the "bert." prefix), or a fine-tuned
    sequence classifier (classifier.* with a pooler), token classifier (classifier.*, no
    pooler) or QA model (qa_outputs.*). Any other tensor is an error naming it.
    `scan_layers` (default: False) sets config.scan_layers and the layout to match.
    """
    config_path = storage.join(path, "config.json")
    config = read_config(config_path)
    position_type = json.loads(storage.read_text(config_path)).get("position_embedding_type",
                                                                    "absolute")
    if position_type != "absolute":
        raise ValueError(f"{config_path}: position_embedding_type={position_type!r}; "
                         "bertjax implements only learned absolute positions")
    if scan_layers is not None:
        config = config.replace(scan_layers=scan_layers)
    tensors, source = _read_hf_tensors(path)
    tensors = _normalise_hf_names(tensors, source)
    head = _hf_head(tensors)
    if head.kind == "encoder":  # BertModel files are saved with or without the "bert." prefix
        tensors = {key.removeprefix("bert."): value for key, value in tensors.items()}
    by_name = {spec.hf_name: spec for spec in tensor_specs(config, head)}
    compare({name: spec.hf_shape for name, spec in by_name.items()},
            {key: value.shape for key, value in tensors.items()}, source, separator=".")
    params: Params = {}
    for name, spec in by_name.items():
        param_layout.set_path(params, spec.path, _cast(config, spec.from_hf(tensors[name])))
    params = to_layout(config, params)
    check_params(config, params, source)
    return config, params


def save_hf(config: BertConfig, params: Params, out_dir: str,
            labels: Sequence[str] | None = None) -> None:
    """Writes config.json + model.safetensors for transformers.

    The architecture follows the head (see the module docstring): pretraining params become a
    BertForPreTraining checkpoint (the MLM decoder is left out, as transformers itself saves it:
    it is tied to bert.embeddings.word_embeddings.weight), the encoder alone a BertModel (no
    "bert." prefix), task params the matching BertFor... model, which the corresponding
    `transformers.AutoModelFor...` loads; `labels` become id2label (a 1-output classifier is a
    regression model, problem_type "regression").
    """
    from safetensors.numpy import save  # pylint: disable=import-outside-toplevel

    params = unstack_layers(params)
    head = head_of(params)
    check_params(config.replace(scan_layers=False), params)
    labels = _checked_labels(head, labels)
    flat = param_layout.flatten(params)
    tensors = {spec.hf_name: np.asarray(spec.to_hf(flat[spec.path]), dtype=np.float32)
               for spec in tensor_specs(config, head)}
    extra: dict[str, Any] = {"architectures": [HF_ARCHITECTURES[head.kind]],
                             "tie_word_embeddings": True}
    if head.kind in ("classification", "token_classification"):
        names = labels or _default_labels(head.num_labels)
        extra.update(id2label={str(i): name for i, name in enumerate(names)},
                     label2id={name: i for i, name in enumerate(names)})
        if head.kind == "classification":
            extra["problem_type"] = ("regression" if head.num_labels == 1
                                     else "single_label_classification")
    storage.makedirs(out_dir)
    write_config(config, storage.join(out_dir, "config.json"), "hf", extra)
    # transformers refuses safetensors files without the "format" metadata.
    storage.write_bytes(storage.join(out_dir, "model.safetensors"),
                        save(tensors, metadata={"format": "pt"}))


# ---------------------------------------------------------------------------- original TF
def _tensorflow():
    import tensorflow as tf
    try:  # TF only reads files here; it must never claim the accelerators JAX uses.
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # devices were initialised already (hidden by whoever did it)
        pass
    return tf


def _tf_head(shapes: dict[str, tuple]) -> Head:
    """The head of an original checkpoint, from its variable names."""
    if "cls/squad/output_weights" in shapes:
        return Head("span", 2)
    if any(name.startswith("cls/") for name in shapes):
        return Head("pretraining")
    if "output_weights" in shapes:
        kind = ("classification" if "bert/pooler/dense/kernel" in shapes
                else "token_classification")
        return Head(kind, int(shapes["output_weights"][0]))
    return Head("encoder")


def load_tf_checkpoint(ckpt_prefix: str, bert_config_file: str,
                       scan_layers: bool | None = None) -> tuple[BertConfig, Params]:
    """Reads an original google-research/bert checkpoint (bert_model.ckpt.{index,data-*}) and
    its bert_config.json: pretraining (cls/...), encoder only, run_classifier's classifier
    (output_weights/output_bias) or run_squad's span model (cls/squad/...; its unused pooler is
    dropped). Optimizer slots (adam_m, adam_v) and global_step are skipped; any other unknown
    variable is an error.
    """
    tf = _tensorflow()
    config = read_config(bert_config_file)
    if scan_layers is not None:
        config = config.replace(scan_layers=scan_layers)
    try:
        reader = tf.train.load_checkpoint(ckpt_prefix)
        shapes = {name: tuple(shape) for name, shape in
                  reader.get_variable_to_shape_map().items() if not _TF_NON_PARAMS.search(name)}
    except (tf.errors.OpError, ValueError) as error:
        raise ValueError(f"{ckpt_prefix}: not a readable TF checkpoint "
                         f"({getattr(error, 'message', error)})") from error
    head = _tf_head(shapes)
    if head.kind == "span":  # run_squad.py builds a pooler it never uses
        shapes = {name: shape for name, shape in shapes.items()
                  if not name.startswith("bert/pooler/")}
    specs = tensor_specs(config, head)
    compare({spec.tf_name: spec.tf_shape for spec in specs}, shapes, ckpt_prefix, separator="/")
    params: Params = {}
    for spec in specs:
        try:
            value = reader.get_tensor(spec.tf_name)
        except (tf.errors.OpError, IndexError) as error:  # a truncated .data file gives
            # IndexError("Read less bytes than requested"), without any file name
            raise ValueError(f"{ckpt_prefix}: cannot read variable {spec.tf_name}; the "
                             f".data file is damaged or truncated "
                             f"({getattr(error, 'message', error)})") from error
        param_layout.set_path(params, spec.path, _cast(config, spec.from_tf(value)))
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
              for spec in tensor_specs(config, head_of(params))}
    write_tf_variables(arrays, ckpt_prefix)


def write_tf_variables(arrays: dict[str, np.ndarray], ckpt_prefix: str) -> None:
    """Saves {variable name: array} as a TF1 checkpoint at `ckpt_prefix`.

    Values go in through placeholders, not graph constants, so BERT-large stays under the 2 GB
    graph limit.
    """
    tf = _tensorflow()
    ckpt_prefix = storage.absolute(ckpt_prefix)
    storage.makedirs(storage.dirname(ckpt_prefix))
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
_HEAD_FILE = "head.json"


def save_checkpoint(config: BertConfig, params: Params, directory: str,
                    labels: Sequence[str] | None = None) -> None:
    """bertjax's format: `directory`/config.json (every BertConfig field), `directory`/params
    (an orbax StandardCheckpointer tree, in the layout of `params`) and, for task models,
    `directory`/head.json (the head kind, its outputs and the class names)."""
    import orbax.checkpoint as ocp

    directory = storage.absolute(directory)
    storage.makedirs(directory)
    config = config.replace(scan_layers=is_scanned(params))
    check_params(config, params)
    head = head_of(params)
    write_config(config, storage.join(directory, "config.json"))
    if head.kind not in ("encoder", "pretraining"):
        names = _checked_labels(head, labels)
        storage.write_text(storage.join(directory, _HEAD_FILE), json.dumps(
            {"head": head.kind, "num_labels": head.num_labels, "labels": names}, indent=1))
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(storage.join(directory, _PARAMS_DIR), params, force=True)
        checkpointer.wait_until_finished()


def load_checkpoint(directory: str, scan_layers: bool | None = None
                    ) -> tuple[BertConfig, Params]:
    """Reads what `save_checkpoint` wrote; `scan_layers` (default: as saved) picks the layout."""
    import orbax.checkpoint as ocp

    directory = storage.absolute(directory)
    config = read_config(storage.join(directory, "config.json"))
    path = storage.join(directory, _PARAMS_DIR)
    try:
        with ocp.StandardCheckpointer() as checkpointer:
            metadata = checkpointer.metadata(path)
            tree = getattr(metadata, "item_metadata", metadata)
            # Restore every array onto one device as plain host arrays: the caller shards them.
            device = jax.sharding.SingleDeviceSharding(jax.local_devices(backend="cpu")[0])
            target = jax.tree_util.tree_map(
                lambda leaf: jax.ShapeDtypeStruct(tuple(leaf.shape), leaf.dtype,
                                                  sharding=device),
                tree.tree if hasattr(tree, "tree") else tree)
            restored = checkpointer.restore(path, target)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable bertjax checkpoint ({error})") from error
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


def labels_of(path: str) -> list[str] | None:
    """The class names a task checkpoint carries (HF id2label, bertjax head.json), if any."""
    if storage.isdir(path):
        head_file = storage.join(path, _HEAD_FILE)
        if storage.exists(head_file):
            return json.loads(storage.read_text(head_file)).get("labels")
        config_file = storage.join(path, "config.json")
        if storage.exists(config_file):
            id2label = json.loads(storage.read_text(config_file)).get("id2label")
            if id2label:
                return [id2label[key] for key in sorted(id2label, key=int)]
    return None


# ---------------------------------------------------------------------------- any format
def detect_format(path: str) -> str:
    """"hf", "tf" or "bertjax" for a checkpoint path (see `load_any`)."""
    if storage.isdir(path):
        if storage.isdir(storage.join(path, _PARAMS_DIR)):
            return "bertjax"
        if any(storage.exists(storage.join(path, name))
               for name in ("model.safetensors", "pytorch_model.bin")):
            return "hf"
        if storage.exists(storage.join(path, "bert_model.ckpt.index")):
            return "tf"
    elif storage.exists(path + ".index"):
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
    prefix = storage.join(path, "bert_model.ckpt") if storage.isdir(path) else path
    if bert_config_file is None:
        bert_config_file = storage.join(storage.dirname(prefix), "bert_config.json")
    return load_tf_checkpoint(prefix, bert_config_file, scan_layers)


def save_any(kind: str, config: BertConfig, params: Params, output: str,
             labels: Sequence[str] | None = None) -> None:
    """Writes `params` as "hf" (folder), "tf" (prefix, with bert_config.json beside it) or
    "bertjax" (folder)."""
    if kind == "hf":
        save_hf(config, params, output, labels)
    elif kind == "bertjax":
        save_checkpoint(config, params, output, labels)
    elif kind == "tf":
        save_tf_checkpoint(config, params, output)
        write_config(config, storage.join(storage.dirname(storage.absolute(output)),
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
    save_any(target, config, params, FLAGS.output, labels_of(FLAGS.input))
    num_params = sum(int(np.size(v)) for v in param_layout.flatten(params).values())
    head = head_of(params)
    print(json.dumps({"from": source, "to": target, "input": FLAGS.input, "output": FLAGS.output,
                      "head": head.kind, "num_labels": head.num_labels,
                      "with_heads": head.kind != "encoder", "num_params": num_params}))


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
