"""The offline sentence-pair task (data_pipelines.docstring_pairs) and its wiring.

Oracles: two hand-written packages whose every consecutive sentence pair is listed here by hand;
the standard library's own docstrings read back with inspect.getdoc (a `next` pair is A, a
space, then B in its source docstring); the pair features' segment ids counted from the
tokenizer's own word pieces; the files a sweep and a fine-tuning run write.
"""

import importlib
import json
import os
import shutil
import sys

import flax.linen as nn
import jax
import numpy as np
import pytest

from bertjax import config as bert_config_lib
from bertjax import convert, finetune, finetune_data, modeling
from data_pipelines import docstring_pairs, docstring_topics, glue, tokenization
from experiments.finetune import docstring_pairs as finetune_config
from experiments.stability import minilm_pairs
from experiments.stability import sweep as stability_sweep

# Two packages of three modules each: the package (train), .a (train), .b (dev, every 3rd).
# Per module, its docstring paragraphs; every consecutive pair of sentences of 4+ words is in
# PAIRS, written out by hand.
FAKE = {
    "pairsfake_red": {
        "__init__": "Red package opens with this sentence. It has a second sentence here.",
        "a": "Alpha red sentence one is here. Alpha red sentence two follows. Too short. Alpha "
             "red sentence four is long.\n\nA new paragraph starts right here. Its second "
             "sentence closes it now.\n\n>>> code is not prose at all. Nor paired either.",
        "b": "Bravo red dev sentence one. Bravo red dev sentence two.",
    },
    "pairsfake_blue": {
        "__init__": "Blue package opens with this sentence. Then blue goes on further.",
        "a": "Alpha blue sentence one is here. Alpha blue sentence two follows.",
        "b": "Bravo blue dev sentence one. Bravo blue dev sentence two.",
    },
}
FUNCTION_DOC = {  # a function in each .b module: a second dev docstring per topic
    "pairsfake_red": "Red function docstring sentence one. Red function docstring sentence two.",
    "pairsfake_blue": "Blue function says sentence one. Blue function says sentence two.",
}
PAIRS = {  # (topic, split) -> the consecutive pairs, by hand
    ("red", "train"): [("Red package opens with this sentence.", "It has a second sentence here."),
                       ("Alpha red sentence one is here.", "Alpha red sentence two follows."),
                       ("A new paragraph starts right here.",
                        "Its second sentence closes it now.")],
    ("red", "dev"): [("Bravo red dev sentence one.", "Bravo red dev sentence two."),
                     ("Red function docstring sentence one.",
                      "Red function docstring sentence two.")],
    ("blue", "train"): [("Blue package opens with this sentence.", "Then blue goes on further."),
                        ("Alpha blue sentence one is here.", "Alpha blue sentence two follows.")],
    ("blue", "dev"): [("Bravo blue dev sentence one.", "Bravo blue dev sentence two."),
                      ("Blue function says sentence one.", "Blue function says sentence two.")],
}
FAKE_TOPICS = (("red", ("pairsfake_red",)), ("blue", ("pairsfake_blue",)))


@pytest.fixture(scope="module")
def fake_packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake_packages")
    for package, modules in FAKE.items():
        os.makedirs(root / package)
        for name, doc in modules.items():
            source = f'"""{doc}"""\n'
            if name == "b":
                source += f'\n\ndef public():\n    """{FUNCTION_DOC[package]}"""\n'
            (root / package / f"{name}.py").write_text(source)
    sys.path.insert(0, str(root))
    yield
    sys.path.remove(str(root))
    for name in [m for m in sys.modules if m.startswith("pairsfake_")]:
        del sys.modules[name]


@pytest.fixture(scope="module")
def task():
    return docstring_pairs.build()


def test_candidates_are_the_hand_listed_pairs(fake_packages):
    found = docstring_pairs.candidates("red", ["pairsfake_red", "pairsfake_red.a"])
    assert [(c.first, c.second) for c in found] == PAIRS[("red", "train")]
    assert [c.source for c in found] == ["pairsfake_red:0", "pairsfake_red.a:0",
                                         "pairsfake_red.a:0"]
    # A shorter floor lets "Too short." in.
    short = docstring_pairs.candidates("red", ["pairsfake_red.a"], min_sentence_words=2)
    assert ("Alpha red sentence two follows.", "Too short.") in [(c.first, c.second)
                                                                 for c in short]


def test_fake_task_labels_are_right(fake_packages):
    built = docstring_pairs.build(FAKE_TOPICS, max_train_examples=100, max_dev_examples=100)
    assert built.labels == ("not_next", "next") and built.name == "docstring_pairs"
    assert built.train_modules == {"red": ["pairsfake_red", "pairsfake_red.a"],
                                   "blue": ["pairsfake_blue", "pairsfake_blue.a"]}
    assert built.dev_modules == {"red": ["pairsfake_red.b"], "blue": ["pairsfake_blue.b"]}
    for split, examples in (("train", built.train), ("dev", built.dev)):
        listed = {pair: topic for (topic, s), pairs in PAIRS.items() if s == split
                  for pair in pairs}
        # Every candidate is used once (no cap hit), half of them as positives.
        assert sorted(e.text_a for e in examples) == sorted(a for a, _ in listed)
        assert sum(e.label == "next" for e in examples) == len(examples) // 2
        for example in examples:
            topic = listed[next(pair for pair in listed if pair[0] == example.text_a)]
            pair = (example.text_a, example.text_b)
            if example.label == "next":
                assert pair in listed
            else:  # the second sentence of another pair of the same topic and split
                assert pair not in listed
                assert any(b == example.text_b and t == topic and a != example.text_a
                           for (a, b), t in listed.items())


def test_build_is_deterministic_and_balanced(task):
    again = docstring_pairs.build()
    assert again.train == task.train and again.dev == task.dev
    other = docstring_pairs.build(seed=1)
    assert other.train != task.train
    counts = task.describe()
    assert len(task.train) == 320 and len(task.dev) <= 200
    for split in ("train_counts", "dev_counts"):
        assert abs(counts[split]["next"] - counts[split]["not_next"]) <= 1, counts
    assert docstring_topics.majority_baseline_accuracy(
        [e.label for e in task.dev]) == pytest.approx(0.5, abs=0.01)
    for example in task.train + task.dev:
        assert example.text_a != example.text_b
        assert len(example.text_a.split()) >= 4 and len(example.text_b.split()) >= 4


def _source_module(example):
    return example.guid.split("-", 2)[2].rsplit(":", 1)[0]


def test_split_is_disjoint_by_module(task):
    train = {m for modules in task.train_modules.values() for m in modules}
    dev = {m for modules in task.dev_modules.values() for m in modules}
    assert train and dev and not train & dev
    assert {_source_module(e) for e in task.train} <= train
    assert {_source_module(e) for e in task.dev} <= dev
    train_sentences = {s for e in task.train for s in (e.text_a, e.text_b)}
    assert not train_sentences & {s for e in task.dev for s in (e.text_a, e.text_b)}


def _collapsed_docstring(example):
    module_name, index = example.guid.split("-", 2)[2].rsplit(":", 1)
    text = docstring_topics.corpora.module_docstrings(importlib.import_module(module_name))
    return " ".join(text[int(index)].split())


def test_labels_match_the_stdlib_source(task):
    for example in task.train[:40] + task.dev[:40]:
        source = _collapsed_docstring(example)
        assert example.text_a in source
        if example.label == "next":
            assert f"{example.text_a} {example.text_b}" in source
        else:
            assert f"{example.text_a} {example.text_b}" not in source
    # Checked by hand against inspect.getdoc(email.message.Message) (docstring 1 of the module):
    # its first paragraph is one short sentence; the second opens with this pair.
    message = [c for c in docstring_pairs.candidates("email", ["email.message"])
               if c.source == "email.message:1"]
    assert (message[0].first, message[0].second) == (
        "A message object is defined as something that has a bunch of RFC 2822 headers and a "
        "payload.", "It may optionally have an envelope header (a.k.a.")
    assert all("Basic message object." not in (c.first, c.second) for c in message)


def test_pair_features_have_segment_ids_0_then_1(task):
    tokenizer = tokenization.FullTokenizer(str(tokenization.bundled_uncased_vocab_file()), True)
    examples = task.dev[:8]
    features = glue.convert_examples_to_features(examples, tokenizer, 256,
                                                 docstring_pairs.LABELS)
    for row, example in enumerate(examples):
        len_a, len_b = (len(tokenizer.tokenize(t)) for t in (example.text_a, example.text_b))
        expected = [0] * (len_a + 2) + [1] * (len_b + 1)
        assert features["segment_ids"][row, :len(expected)].tolist() == expected
        assert features["input_mask"][row].sum() == len(expected)
        assert not features["segment_ids"][row, len(expected):].any()
        assert features["label_ids"][row] == docstring_pairs.LABELS.index(example.label)


def test_fine_tuning_runs_end_to_end(tmp_path):
    config = finetune_config.get_config("runlocal")
    config.model.update(preset="tiny", vocab_size=30522)
    config.data.max_train_examples = 16
    config.data.max_dev_examples = 8
    config.data.max_seq_length = 32
    config.batch_size = 8
    config.mesh.data = 1
    config.tensorboard = False
    finetune.run(config, str(tmp_path))
    head = json.loads((tmp_path / "export" / "head.json").read_text())
    assert head["labels"] == ["not_next", "next"] and head["num_labels"] == 2
    predictions = json.loads((tmp_path / "predictions_validation.json").read_text())
    assert len(predictions) == 8 and set(predictions) <= {0, 1}
    accuracy = json.loads((tmp_path / "metrics.json").read_text())["validation"]["accuracy"]
    dev = docstring_pairs.build(max_train_examples=16, max_dev_examples=8).dev
    assert accuracy == pytest.approx(np.mean(
        [p == docstring_pairs.LABELS.index(e.label) for p, e in zip(predictions, dev)]))
    with pytest.raises(ValueError, match="docstring_pairs"):
        config.task = "docstring_pair"
        finetune_data.build_offline_task(config)


def test_stability_sweep_runs_end_to_end(tmp_path):
    """The minilm_pairs runlocal config, on a tiny random-init checkpoint instead of MiniLM."""
    bert_config = bert_config_lib.preset("tiny", vocab_size=30522, max_position_embeddings=32)
    params = jax.device_get(nn.meta.unbox(modeling.BertModel(bert_config).init(
        jax.random.PRNGKey(0), *modeling.dummy_inputs(1, 32))["params"]))
    checkpoint = str(tmp_path / "tiny")
    convert.save_hf(bert_config, jax.tree.map(np.asarray, params), checkpoint)
    shutil.copy(tokenization.bundled_uncased_vocab_file(), os.path.join(checkpoint, "vocab.txt"))
    config = minilm_pairs.get_config("runlocal,arm=devlin")
    config.init_checkpoint = checkpoint
    config.data.max_train_examples = 8
    config.data.max_dev_examples = 6
    config.data.max_seq_length = 32
    config.batch_size = 4
    config.sweep.grad_norm_first_steps = 2
    config.sweep.grad_norm_every = 1
    workdir = str(tmp_path / "sweep")
    (path,) = stability_sweep.run(config, workdir)
    assert path == os.path.join(workdir, "docstring_pairs", "devlin.json")
    with open(path) as f:
        arm = json.load(f)
    assert arm["task"] == "docstring_pairs" and arm["majority_baseline"] == {"accuracy": 0.5}
    assert arm["task_description"]["dev_counts"] == {"not_next": 3, "next": 3}
    assert arm["num_train_steps"] == 3 * 2
    assert [r["run_seed"] for r in arm["records"]] == [0, 1]
    for record in arm["records"]:
        assert record["dev_metrics"]["accuracy"] in {k / 6 for k in range(7)}
        assert len(record["train_loss"]) == 6
