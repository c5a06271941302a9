"""Fine-tuned models are kept and portable: every head to and from HF and the original TF format.

Oracle: HF transformers (PyTorch) AutoModelForSequenceClassification / TokenClassification /
QuestionAnswering loading what bertjax wrote, on the real all-MiniLM-L6-v2 weights (6 layers,
H=384) with freshly drawn heads: the logits must agree within 1e-4. The other way, an HF model
fine-tuned elsewhere (transformers' own save_pretrained) is read by bertjax and evaluated by the
fine-tuning runner with the same predictions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest
import torch
import transformers

from bertjax import convert, finetune, modeling, pretrained
from bertjax.checkpoint_names import Head
from experiments.finetune import docstring_topics, glue
from experiments.stability.minilm_docstrings import minilm_checkpoint

TOL = 1e-4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AUTO_CLASSES = {"classification": transformers.AutoModelForSequenceClassification,
                "token_classification": transformers.AutoModelForTokenClassification,
                "span": transformers.AutoModelForQuestionAnswering}


@pytest.fixture(scope="module")
def minilm():
    return pretrained.load(minilm_checkpoint())


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 20000, (3, 24)).astype(np.int32)
    ids[:, 0] = 101
    mask = np.ones_like(ids)
    mask[1, 15:] = 0
    segments = np.zeros_like(ids)
    segments[:, 12:] = 1
    return ids * mask, segments * mask, mask


def _task_params(source, head: Head, seed: int = 0):
    """MiniLM's encoder under a freshly drawn head (a random head makes a wrong transpose or a
    swapped tensor show)."""
    model = head.model(source.config)
    fresh = jax.device_get(nn.meta.unbox(model.init(
        jax.random.PRNGKey(seed), *modeling.dummy_inputs(1, 8))["params"]))
    params = pretrained.merge_into(fresh, source)
    head_name = "qa_outputs" if head.kind == "span" else "classifier"
    rng = np.random.default_rng(seed + 1)
    params[head_name] = {k: rng.normal(0, 0.5, np.shape(v)).astype(np.float32)
                         for k, v in params[head_name].items()}
    return model, params


def _bertjax_logits(model, params, batch, head: Head):
    ids, segments, mask = batch
    out = model.apply({"params": params}, ids, segments, mask)
    if head.kind == "span":
        return np.stack([out["start_logits"], out["end_logits"]], -1)
    return np.asarray(out["logits"])


def _torch_logits(model, batch, head: Head):
    ids, segments, mask = (torch.tensor(np.asarray(x), dtype=torch.long) for x in batch)
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=segments, attention_mask=mask)
    if head.kind == "span":
        return np.stack([out.start_logits.numpy(), out.end_logits.numpy()], -1)
    return out.logits.numpy()


@pytest.mark.parametrize("head", [Head("classification", 3), Head("classification", 1),
                                  Head("token_classification", 5), Head("span", 2)],
                         ids=["classifier", "regression", "tokens", "span"])
def test_export_to_hf_loads_in_transformers_with_equal_logits(minilm, batch, head, tmp_path):
    model, params = _task_params(minilm, head)
    labels = [f"class_{i}" for i in range(head.num_labels)] if head.kind != "span" else None
    convert.save_checkpoint(minilm.config, params, str(tmp_path / "export"), labels=labels)
    # What a user types: the CLI from the bertjax export to an HF folder.
    result = subprocess.run(
        [sys.executable, "-m", "bertjax.convert", "--from=bertjax", "--to=hf",
         f"--input={tmp_path / 'export'}", f"--output={tmp_path / 'hf'}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert (summary["head"], summary["num_labels"]) == (head.kind, head.num_labels)

    hf_model = AUTO_CLASSES[head.kind].from_pretrained(str(tmp_path / "hf")).eval()
    ours = _bertjax_logits(model, params, batch, head)
    theirs = _torch_logits(hf_model, batch, head)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=TOL, rtol=0)
    if labels:
        assert [hf_model.config.id2label[i] for i in range(head.num_labels)] == labels
    if head.kind == "classification":
        expected = "regression" if head.num_labels == 1 else "single_label_classification"
        assert hf_model.config.problem_type == expected

    # And back: the HF folder reads into the same params (and labels).
    config, again = convert.load_hf(str(tmp_path / "hf"))
    assert convert.head_of(again) == head and config.hidden_size == minilm.config.hidden_size
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), again, params)
    assert convert.labels_of(str(tmp_path / "hf")) == (labels or None)


@pytest.mark.parametrize("head", [Head("classification", 2), Head("span", 2),
                                  Head("token_classification", 4)],
                         ids=["classifier", "span", "tokens"])
def test_task_heads_round_trip_through_the_original_tf_format(minilm, batch, head, tmp_path):
    model, params = _task_params(minilm, head, seed=3)
    prefix = str(tmp_path / "tf" / "model.ckpt")
    convert.save_any("tf", minilm.config, params, prefix)
    import tensorflow as tf
    names = dict(tf.train.list_variables(prefix))
    if head.kind == "classification":  # run_classifier.py's names and [C, H] layout
        assert names["output_weights"] == [2, 384] and names["output_bias"] == [2]
    if head.kind == "span":  # run_squad.py's
        assert names["cls/squad/output_weights"] == [2, 384]
    _, again = convert.load_any(prefix)
    assert convert.head_of(again) == head
    np.testing.assert_allclose(_bertjax_logits(model, again, batch, head),
                               _bertjax_logits(model, params, batch, head), atol=1e-6)


def _write_two_class_tsv(folder, rows=24, seed=0):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(folder, "SST-2"))
    words = "the of and to in is that for it as was with be by on not this are".split()
    for split in ("train", "dev"):
        with open(os.path.join(folder, "SST-2", f"{split}.tsv"), "w") as f:
            f.write("sentence\tlabel\n")
            for _ in range(rows):
                label = int(rng.integers(2))
                sentence = " ".join(rng.choice(words, 8)) + (" excellent" if label else " awful")
                f.write(f"{sentence}\t{label}\n")


def test_hf_fine_tuned_model_is_evaluated_by_bertjax(tmp_path):
    """A classifier fine-tuned (here: drawn) in transformers, saved by transformers, is loaded
    with its head and evaluated without training (num_train_epochs=0): bertjax's predictions
    are transformers' argmax."""
    hf_config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, intermediate_size=64,
                                        max_position_embeddings=64, num_labels=2)
    torch.manual_seed(0)
    hf_model = transformers.BertForSequenceClassification(hf_config).eval()
    with torch.no_grad():
        hf_model.classifier.weight.normal_(0, 2.0)
    hf_model.save_pretrained(str(tmp_path / "hf"))
    _write_two_class_tsv(str(tmp_path / "glue"))

    config = glue.get_config(f"task=sst2,source=tsv,glue_dir={tmp_path / 'glue'}")
    config.init_checkpoint = str(tmp_path / "hf")
    config.num_train_epochs = 0.0
    config.mesh.data = 1
    config.data.max_seq_length = 16
    config.eval_batch_size = 8
    results = finetune.run(config, str(tmp_path / "run"))
    with open(tmp_path / "run" / "predictions_validation.json") as f:
        predictions = json.load(f)

    from data_pipelines import glue as glue_data, tokenization
    tokenizer = tokenization.FullTokenizer(str(tokenization.bundled_uncased_vocab_file()))
    examples = glue_data.read_tsv_examples(str(tmp_path / "glue"), "sst2", "validation")
    features = glue_data.convert_examples_to_features(examples, tokenizer, 16, ("0", "1"))
    logits = _torch_logits(hf_model, (features["input_ids"], features["segment_ids"],
                                      features["input_mask"]), Head("classification", 2))
    assert predictions == np.argmax(logits, -1).tolist()  # one label index per example
    assert results["validation"]["accuracy"] == pytest.approx(
        np.mean(np.argmax(logits, -1) == features["label_ids"]))
    # The run's own export keeps the same head.
    _, exported = convert.load_checkpoint(str(tmp_path / "run" / "export"))
    assert convert.head_of(exported) == Head("classification", 2)


def test_every_fine_tuning_run_ends_with_an_export(tmp_path):
    config = docstring_topics.get_config("runlocal")
    config.model.update(preset="tiny", vocab_size=30522)
    config.data.max_train_per_topic = 6
    config.data.max_dev_per_topic = 4
    config.batch_size = 8
    config.mesh.data = 1
    finetune.run(config, str(tmp_path))
    export = tmp_path / "export"
    assert sorted(os.listdir(export)) == ["config.json", "head.json", "params", "vocab.txt"]
    head = json.loads((export / "head.json").read_text())
    assert head["head"] == "classification" and head["num_labels"] == 6
    assert len(head["labels"]) == 6 and len(set(head["labels"])) == 6
    with open(tmp_path / "predictions_validation.json") as f:
        predictions = json.load(f)
    assert all(isinstance(p, int) and 0 <= p < 6 for p in predictions)
