"""Feature-based use: extraction against BertModel's own hidden states, the probe against sklearn,
determinism, and the fine-tuning vs features experiment end to end on a tiny random encoder."""

import flax.linen as nn
import jax
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from bertjax import feature_based, modeling
from bertjax.config import BertConfig

CONFIG = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=16)


def _direct_hidden_states(params, features):
    """[L + 1, N, S, H] from one BertModel call on all examples, no batching."""
    out = modeling.BertModel(CONFIG).apply({"params": params}, features["input_ids"],
                                           features["segment_ids"], features["input_mask"],
                                           deterministic=True, output_hidden_states=True)
    return np.asarray(out["hidden_states"])


@pytest.fixture(scope="module")
def encoder():
    """Random BertModel params, 7 examples of different lengths (S = 10, zero padding), and
    their hidden states [L + 1, N, S, H] straight from BertModel."""
    # Any values serve (the check is extraction against the model itself); numpy draws skip
    # compiling the model's init.
    shapes = jax.eval_shape(modeling.BertModel(CONFIG).init, jax.random.PRNGKey(0),
                            *modeling.dummy_inputs(1, 10))
    rs = np.random.RandomState(0)
    params = jax.tree_util.tree_map(lambda leaf: rs.normal(0, 0.5, leaf.shape).astype(np.float32),
                                    nn.meta.unbox(shapes["params"]))
    lengths = np.array([10, 3, 7, 1, 5, 10, 2])
    input_mask = (np.arange(10)[None] < lengths[:, None]).astype(np.int32)
    features = {"input_ids": rs.randint(1, 50, (7, 10)).astype(np.int32) * input_mask,
                "segment_ids": (rs.randint(0, 2, (7, 10)) * input_mask).astype(np.int32),
                "input_mask": input_mask,
                "label_ids": np.zeros(7, np.int32)}  # extra keys are ignored
    return params, features, _direct_hidden_states(params, features)


def test_concat_of_last_four_equals_bert_model_hidden_states(encoder):
    params, features, hidden = encoder
    assert hidden.shape == (5, 7, 10, 16)
    # batch_size 3 over 7 examples: the last batch is padded, and the padding must be dropped.
    got = feature_based.extract_features(CONFIG, params, features, batch_size=3)
    expected = np.concatenate([hidden[4, :, 0], hidden[3, :, 0], hidden[2, :, 0],
                               hidden[1, :, 0]], axis=-1)
    assert got.shape == (7, 64)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_mean_pooling_counts_only_real_tokens(encoder):
    params, features, hidden = encoder
    mask = features["input_mask"].astype(bool)
    expected = np.stack([hidden[-2, i, mask[i]].mean(axis=0) for i in range(7)])
    got = feature_based.extract_features(CONFIG, params, features, layers=(-2,), pooling="mean",
                                         batch_size=4)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    # Padded positions still have hidden states of their own; changing their ids must not move
    # the mean, and does move the states there (so the check above could have failed).
    changed = dict(features, input_ids=np.where(mask, features["input_ids"], 7))
    np.testing.assert_allclose(
        feature_based.extract_features(CONFIG, params, changed, layers=(-2,), pooling="mean"),
        got, rtol=1e-5, atol=1e-6)
    assert not np.allclose(_direct_hidden_states(params, changed)[-2][~mask], hidden[-2][~mask])


def test_named_strategies_pick_the_paper_layers(encoder):
    params, features, hidden = encoder
    cls = hidden[:, :, 0]  # [L + 1, N, H]
    pooled = feature_based.pooled_hidden_states(CONFIG, params, features, pooling="cls")
    np.testing.assert_allclose(pooled, cls, rtol=1e-5, atol=1e-5)
    expected = {"embeddings": cls[0], "second_to_last_hidden": cls[3], "last_hidden": cls[4],
                "sum_last_four": cls[1:].sum(0), "concat_last_four": np.concatenate(
                    [cls[4], cls[3], cls[2], cls[1]], -1), "sum_all_layers": cls[1:].sum(0)}
    assert set(expected) == set(feature_based.STRATEGIES)
    for name, strategy in feature_based.STRATEGIES.items():
        got = feature_based.combine_layers(pooled, strategy.layers, strategy.combine)
        np.testing.assert_allclose(got, expected[name], rtol=1e-5, atol=1e-5, err_msg=name)


def test_bad_requests_are_named(encoder):
    params, features, _ = encoder
    with pytest.raises(ValueError, match="layer index 5 is out of range"):
        feature_based.extract_features(CONFIG, params, features, layers=(5,))
    with pytest.raises(ValueError, match="pooling='max'"):
        feature_based.extract_features(CONFIG, params, features, pooling="max")
    with pytest.raises(ValueError, match="lack \\['segment_ids'\\]"):
        feature_based.extract_features(CONFIG, params, {"input_ids": features["input_ids"],
                                                        "input_mask": features["input_mask"]})
    bad_ids = features["input_ids"].copy()
    bad_ids[2, 1] = 50
    with pytest.raises(ValueError, match="input_ids has value 50 at index \\(2, 1\\)"):
        feature_based.extract_features(CONFIG, params, dict(features, input_ids=bad_ids))
    with pytest.raises(ValueError, match="all zeros for example 3"):
        feature_based.extract_features(CONFIG, params, dict(
            features, input_mask=features["input_mask"] * (np.arange(7) != 3)[:, None]))


def _blobs(num_examples, num_features=12, num_classes=3, spread=0.5, seed=0):
    """Gaussian clusters around fixed centres, features at very different scales and offsets."""
    centres = np.random.RandomState(100).normal(size=(num_classes, num_features)) * 3
    scales = np.random.RandomState(101).uniform(0.01, 50, num_features)
    rs = np.random.RandomState(seed)
    labels = rs.randint(num_classes, size=num_examples)
    x = centres[labels] + spread * rs.normal(size=(num_examples, num_features))
    return (x * scales + 7).astype(np.float32), labels


def test_linear_probe_is_sklearn_logistic_regression():
    """Same objective (mean CE + wd/2 |W|^2 on standardised features, intercept unpenalised) as
    LogisticRegression(C = 1 / (wd N)); a noisy task so the optimum is interior."""
    x, y = _blobs(150, spread=4.0)
    weight_decay = 0.05
    probe = feature_based.train_linear_probe(x, y, num_classes=3, weight_decay=weight_decay)
    standardized = StandardScaler().fit_transform(x)
    oracle = LogisticRegression(C=1 / (weight_decay * len(y)), tol=1e-10, max_iter=10_000)
    oracle.fit(standardized, y)
    probabilities = np.asarray(jax.nn.softmax(feature_based.predict_logits(probe, x)))
    np.testing.assert_allclose(probabilities, oracle.predict_proba(standardized), atol=2e-3)
    np.testing.assert_allclose(probe.params["output"]["kernel"], oracle.coef_.T, atol=2e-3)
    assert 0.6 < feature_based.evaluate(probe, x, y)["accuracy"] < 1.0  # not a trivial case


def test_probes_separate_separable_features():
    train_x, train_y = _blobs(200, seed=1)
    dev_x, dev_y = _blobs(100, seed=2)
    probe = feature_based.train_linear_probe(train_x, train_y, num_classes=3, num_steps=200)
    assert feature_based.evaluate(probe, dev_x, dev_y)["accuracy"] == 1.0
    # XOR: no linear probe can pass; the MLP head can.
    rs = np.random.RandomState(3)
    points = rs.uniform(-1, 1, (200, 2)).astype(np.float32)
    xor = (points[:, 0] * points[:, 1] > 0).astype(np.int32)
    linear = feature_based.train_linear_probe(points, xor, num_classes=2, num_steps=200)
    mlp = feature_based.train_probe(points, xor, num_classes=2, hidden_units=32,
                                    weight_decay=1e-4, num_steps=200)
    assert feature_based.evaluate(linear, points, xor)["accuracy"] < 0.7
    assert feature_based.evaluate(mlp, points, xor)["accuracy"] > 0.95


def test_probe_is_deterministic_for_a_seed():
    x, y = _blobs(60)
    first, again, other = (feature_based.train_probe(x, y, num_classes=3, hidden_units=8,
                                                     num_steps=50, seed=seed)
                           for seed in (0, 0, 1))
    same = jax.tree_util.tree_map(np.array_equal, first.params, again.params)
    assert all(jax.tree_util.tree_leaves(same))
    assert not np.array_equal(first.params["hidden"]["kernel"], other.params["hidden"]["kernel"])


def test_probe_input_errors():
    x, y = _blobs(20)
    with pytest.raises(ValueError, match="train_labels\\[.*\\] = 3"):
        feature_based.train_probe(x, np.where(np.arange(20) == 4, 3, y), num_classes=3)
    with pytest.raises(ValueError, match="non-finite value in row 2"):
        feature_based.train_probe(np.where(np.arange(20)[:, None] == 2, np.nan, x), y,
                                  num_classes=3)
    probe = feature_based.train_probe(x, y, num_classes=3, num_steps=5)
    with pytest.raises(ValueError, match="F=5; the probe was trained on F=12"):
        feature_based.predict(probe, x[:, :5])


def test_experiment_end_to_end_on_a_tiny_random_encoder(tmp_path):
    from experiments import feature_based as experiment

    # tiny with 3 layers, so the last four hidden states include the embeddings; one device
    # (the 8 faked ones only slow a 2-core machine down).
    overrides = {"model": {"preset": "tiny", "num_hidden_layers": 3, "vocab_size": 30522,
                           "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0},
                 "mesh": {"data": 1}}
    result = experiment.compare(
        "", str(tmp_path / "work"), max_seq_length=16,
        recipes=(("adamw, a fifth of an epoch", "adamw", 1e-4, 0.2),),
        strategies=("concat_last_four",), poolings=("mean",),
        mlp_hidden_units=8, probe_kwargs={"num_steps": 20}, config_overrides=overrides)
    rows = result["rows"]
    assert [(r.method, r.detail, r.head) for r in rows] == [
        ("fine-tuning", "adamw, a fifth of an epoch", "linear"),
        ("feature-based", "concat_last_four", "linear"),
        ("feature-based", "concat_last_four", "MLP 8"), ("majority class", "", "")]
    assert [r.feature_size for r in rows[1:3]] == [512, 512]  # 4H
    assert all(0.0 <= r.dev_accuracy <= 1.0 for r in rows)
    assert (tmp_path / "work" / "finetune_0_adamw" / "metrics.json").exists()
    output = tmp_path / "results.md"
    output.write_text("old table\n" + experiment.NOTES_MARKER + "\nhand-written notes\n")
    experiment.write_markdown(result, str(output), "python -m experiments.feature_based")
    text = output.read_text()
    assert "old table" not in text and text.endswith("hand-written notes\n")
    assert "| feature-based | concat_last_four | mean | MLP 8 | 512 |" in text


def test_minilm_features_match_transformers_hidden_states():
    """The real all-MiniLM-L6-v2 weights: mean-pooled concatenation of the last four layers
    against HF transformers' own hidden_states (embedding output first, as ours)."""
    import torch
    import transformers

    from bertjax import convert
    from data_pipelines.tokenization import FullTokenizer
    from data_pipelines.glue import GlueExample, convert_examples_to_features
    from experiments.stability.minilm_docstrings import minilm_checkpoint

    folder = minilm_checkpoint()
    config, params = convert.load_hf(folder)
    sentences = ["Return the value of the header, or None if it is missing.",
                 "Run the event loop until stop() is called.", "Parse XML."]
    features = convert_examples_to_features(
        [GlueExample(str(i), text, None, None) for i, text in enumerate(sentences)],
        FullTokenizer(f"{folder}/vocab.txt", do_lower_case=True), 16, None)
    ours = feature_based.extract_features(config, convert.encoder_params(params), features,
                                          pooling="mean", batch_size=2)
    with torch.no_grad():
        hidden = transformers.BertModel.from_pretrained(folder).eval()(
            input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
            attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
            token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long),
            output_hidden_states=True).hidden_states
    mask = torch.tensor(features["input_mask"], dtype=torch.float32)[..., None]
    expected = torch.cat([(hidden[i] * mask).sum(1) / mask.sum(1) for i in (-1, -2, -3, -4)], -1)
    assert len(hidden) == 7 and ours.shape == (3, 4 * 384)
    np.testing.assert_allclose(ours, expected.numpy(), atol=1e-4, rtol=1e-4)
