"""The stability experiments: arms, the sweep driver with real text, and the analysis.

A tiny random-init BERT (2 layers, H=32) with a small vocabulary built from the task's own words
is saved as an HF checkpoint and fine-tuned on a few docstring-topic paragraphs. Oracles: the
bias-correction factor sqrt(1 - b2) / (1 - b1) = 0.316 of Adam's first step
(Kingma & Ba 2015, Algorithm 1), the LLRD factors decay**(L - i),
bertjax.reinit.reinit_top_layers itself, numpy statistics, and Mosbach et al.'s failure rule.
"""

import collections
import json
import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from bertjax import config as bert_config_lib
from bertjax import convert, modeling, reinit
from data_pipelines import tokenization
from data_pipelines import docstring_topics
from experiments.stability import analyze, arms, bert_large_glue, lr_grid
from experiments.stability import sweep as stability_sweep

S = 32
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny HF BertModel checkpoint whose vocab.txt holds the task's 300 commonest words."""
    topics = docstring_topics.build(max_train_per_topic=4, max_dev_per_topic=4)
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    counts = collections.Counter(word for example in topics.train + topics.dev
                                 for word in basic.tokenize(example.text_a))
    words = [word for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:300]
    vocab = SPECIAL_TOKENS + words
    config = bert_config_lib.preset("tiny", vocab_size=len(vocab), hidden_size=32,
                                    intermediate_size=64, max_position_embeddings=S)
    params = jax.device_get(nn.meta.unbox(modeling.BertModel(config).init(
        jax.random.PRNGKey(0), *modeling.dummy_inputs(1, S))["params"]))
    path = str(tmp_path_factory.mktemp("tiny_bert"))
    convert.save_hf(config, jax.tree.map(np.asarray, params), path)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    return path


def _tiny_config(checkpoint_path):
    config = arms.base_config()
    config.task = "docstring_topics"
    config.data.max_seq_length = S
    config.data.max_train_per_topic = 4
    config.data.max_dev_per_topic = 4
    config.init_checkpoint = checkpoint_path
    config.batch_size = 8
    config.eval_batch_size = 32
    config.sweep.seeds = 2
    config.sweep.seeds_per_program = 2
    config.sweep.grad_norm_first_steps = 4
    config.sweep.grad_norm_every = 3
    config.sweep.reinit_layers = 1
    return config


def _first_step_update(config, bert_config, pretrained, data, seeds=(0,)):
    """(initial params, params after ONE step on the first 8 train rows) of seeds [K, ...]."""
    one_batch = {name: value[:8] for name, value in data.train.items()}
    config.num_train_epochs = 1.0
    trainer, total_steps = stability_sweep.make_trainer(config, bert_config, data.num_labels,
                                                        one_batch, len(seeds))
    assert total_steps == 1
    components = stability_sweep.sweep.seed_components(list(seeds))
    before = jax.device_get(trainer.init_states(pretrained, components).params)
    result = trainer.run(pretrained, one_batch, None, components, batch_size=8, num_epochs=1,
                         score_fn=data.score_fn)
    return before, jax.device_get(result.state.params)


@pytest.fixture(scope="module")
def inputs(checkpoint):
    return stability_sweep.load_inputs(_tiny_config(checkpoint))


def test_arms_change_only_what_they_state():
    base = arms.base_config()
    reference = arms.arm_config(base, "adamw_3ep").to_dict()

    def changed(arm):
        config = arms.arm_config(base, arm).to_dict()
        flat = lambda d, p="": {f"{p}{k}": v for key, val in d.items()  # noqa: E731
                                for k, v in (flat(val, f"{key}.").items()
                                             if isinstance(val, dict) else [(key, val)])}
        a, b = flat(config), flat(reference)
        return {key: a[key] for key in a if a[key] != b[key] and key != "arm"}

    assert changed("devlin") == {"optimizer.name": "bert_adam"}
    assert changed("mosbach") == {"num_train_epochs": 20.0}
    assert changed("reinit") == {"reinit_layers": 5}
    assert changed("llrd") == {"optimizer.layerwise_lr_decay": 0.95}
    assert changed("mixout") == {"mixout_rate": 0.7}
    assert reference["optimizer"]["name"] == "adamw" and reference["num_train_epochs"] == 3
    assert reference["optimizer"]["learning_rate"] == 2e-5
    assert reference["optimizer"]["warmup_proportion"] == 0.1
    assert arms.parse_arms("all") == tuple(arms.ARMS)
    with pytest.raises(ValueError, match="unknown arms"):
        arms.parse_arms("devlin+adam")
    with pytest.raises(ValueError, match=r"unknown config argument 'sedes'.*seeds=25"):
        bert_large_glue.get_config("sedes=3")
    for task, metric in (("rte", "accuracy"), ("mrpc", "f1"), ("cola", "matthews_corrcoef")):
        config = bert_large_glue.get_config(f"task={task},arm=devlin+mosbach,seeds=25")
        assert config.sweep.primary_metric == metric and config.sweep.seeds == 25
        assert config.sweep.arms == ("devlin", "mosbach")
        assert config.sweep.reinit_layers == 5 and config.data.glue_task == task


@pytest.fixture(scope="module")
def first_steps(inputs):
    """{arm: first update (after - before) of seed 0} for devlin, adamw_3ep and llrd."""
    bert_config, pretrained, data = inputs
    base = _tiny_config("")
    base.optimizer.warmup_proportion = 0.0  # lr(0) = init_lr: the first update is not zero
    base.optimizer.learning_rate = 1e-3
    base.sweep.layerwise_lr_decay = 0.5  # visible LLRD factors: 0.5, 0.25, 0.125
    base.optimizer.weight_decay_rate = 0.0  # a zero gradient then gives exactly no update
    steps = {}
    for arm in ("devlin", "adamw_3ep", "llrd", "mixout"):
        before, after = _first_step_update(arms.arm_config(base, arm), bert_config, pretrained,
                                           data)
        steps[arm] = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, after, before)
    return steps


def test_devlin_first_step_is_adam_without_bias_correction(first_steps):
    # Same gradient g (same init, batch and dropout), lr 1e-3, eps 1e-6, on the leaves without
    # weight decay (biases: near 0, so their updates are exact in float32):
    #   Adam:      lr * |g| / (|g| + eps)                (m_hat = g, v_hat = g^2)
    #   original:  lr * 0.1 |g| / (sqrt(0.001) |g| + eps) (m = 0.1 g, v = 0.001 g^2)
    # |g| is recovered from Adam's update; where |g| >> eps the ratio is 1 / 0.316.
    lr, eps = 1e-3, 1e-6
    ratios, expected = [], []
    for path, adam in jax.tree_util.tree_leaves_with_path(first_steps["adamw_3ep"]):
        if path[-1].key != "bias":
            continue
        devlin = _get(first_steps["devlin"], path)
        r = np.abs(adam) / lr
        use = (r > 0.99) & (r < 1)
        g = eps * r[use] / (1 - r[use])
        ratios.extend(devlin[use] / adam[use])
        expected.extend(0.1 * (g + eps) / (np.sqrt(0.001) * g + eps))
    assert len(ratios) >= 5
    np.testing.assert_allclose(ratios, expected, rtol=1e-3)
    np.testing.assert_allclose(np.max(ratios), 1 / 0.316, rtol=2e-3)
    np.testing.assert_allclose(np.sqrt(1 - 0.999) / (1 - 0.9), 0.316, atol=1e-3)


def test_mixout_arm_swaps_encoder_kernels_for_their_pretrained_values(first_steps):
    # Mixout at rate r: each encoder kernel element is its pretrained value with probability r
    # in the forward pass, so its gradient (hence Adam's first update, with no weight decay) is
    # exactly 0 there; biases, LayerNorms and the head are not mixed. adamw_3ep has no such
    # zeros: the fraction of frozen kernel elements is the arm's signature.
    rate = arms.base_config().sweep.mixout_rate
    kernels = {"mixout": [], "adamw_3ep": []}
    for arm in kernels:
        for path, update in jax.tree_util.tree_leaves_with_path(first_steps[arm]["bert"]):
            keys = [k.key for k in path]
            if keys[-1] == "kernel" and keys[0] == "encoder":
                kernels[arm].append(np.ravel(update))
            elif arm == "mixout" and keys[-1] in ("bias", "scale") and keys[-2] != "key":
                # Not mixed: updated as usual. (The attention key bias is left out: softmax is
                # blind to a shift shared by all keys, so its gradient is 0 up to rounding, and
                # some of its updates come out exactly 0 whatever the arm.)
                assert np.mean(update == 0) < 0.05, keys
    frozen = {arm: np.mean(np.concatenate(v) == 0) for arm, v in kernels.items()}
    assert frozen["adamw_3ep"] < 0.01
    assert abs(frozen["mixout"] - rate) < 0.02, frozen  # ~33k elements: binomial sd 0.003
    assert np.mean(first_steps["mixout"]["classifier"]["kernel"] == 0) < 0.05  # head not mixed


def _get(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree


def test_llrd_scales_each_layers_step_by_its_factor(first_steps):
    expected_factor = {"embeddings": 0.125, "layer_0": 0.25, "layer_1": 0.5, "pooler": 1.0,
                       "classifier": 1.0}
    for path, adam in jax.tree_util.tree_leaves_with_path(first_steps["adamw_3ep"]):
        keys = [k.key for k in path]
        group = keys[0] if keys[0] == "classifier" else (
            keys[2] if keys[1] == "encoder" else keys[1])
        np.testing.assert_allclose(_get(first_steps["llrd"], path),
                                   expected_factor[group] * adam, rtol=1e-4,
                                   # two float32 ulps of a LayerNorm scale near 1
                                   atol=2.5e-7, err_msg="/".join(keys))


def test_reinit_arm_replaces_exactly_the_top_layers_and_pooler(inputs):
    bert_config, pretrained, data = inputs
    config = arms.arm_config(_tiny_config(""), "reinit")  # reinit_layers=1 of the 2 layers
    trainer, _ = stability_sweep.make_trainer(config, bert_config, data.num_labels, data.train, 2)
    seeds = stability_sweep.sweep.seed_components([0, 1])
    initial = jax.device_get(trainer.init_states(pretrained, seeds).params)
    for k, seed in enumerate(seeds):
        bert = jax.tree.map(lambda x: x[k], initial["bert"])
        for part in ("embeddings", "layer_0"):  # untouched: bit-identical to the checkpoint
            got = bert[part] if part == "embeddings" else bert["encoder"][part]
            want = pretrained[part] if part == "embeddings" else pretrained["encoder"][part]
            for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                np.testing.assert_array_equal(x, y)
        # The oracle: the library's re-init with the sweep's re-init key of this init seed.
        expected = reinit.reinit_top_layers(
            {"bert": pretrained}, 1,
            jax.random.fold_in(jax.random.PRNGKey(seed.init_seed), 1))["bert"]
        for got, want, old in ((bert["encoder"]["layer_1"], expected["encoder"]["layer_1"],
                                pretrained["encoder"]["layer_1"]),
                               (bert["pooler"], expected["pooler"], pretrained["pooler"])):
            for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-7)
            kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(old)
                       if path[-1].key == "kernel"]
            new_kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(got)
                           if path[-1].key == "kernel"]
            for new, pre in zip(new_kernels, kernels):
                assert not np.allclose(new, pre)
                assert np.abs(new).max() <= 2 * bert_config.initializer_range + 1e-6
    # Each init seed draws its own head and its own re-initialised layers.
    assert not np.allclose(initial["classifier"]["kernel"][0], initial["classifier"]["kernel"][1])
    assert not np.allclose(initial["bert"]["pooler"]["dense"]["kernel"][0],
                           initial["bert"]["pooler"]["dense"]["kernel"][1])


def test_sweep_and_analysis_end_to_end(checkpoint, tmp_path):
    config = _tiny_config(checkpoint)
    config.sweep.arms = ("devlin", "mosbach")
    config.optimizer.learning_rate = 1e-3
    workdir = str(tmp_path / "sweep")
    paths = stability_sweep.run(config, workdir)
    assert [os.path.basename(p) for p in paths] == ["devlin.json", "mosbach.json"]
    with open(paths[1]) as f:
        mosbach = json.load(f)
    assert mosbach["num_train_steps"] == 20 * 3 and len(mosbach["learning_rate"]) == 60
    assert [r["run_seed"] for r in mosbach["records"]] == [0, 1]
    record = mosbach["records"][0]
    assert len(record["train_loss"]) == 60
    assert set(record["grad_norms"]) == {"embeddings", "layer_0", "layer_1", "pooler",
                                         "classifier"}
    assert all(len(v) == len(mosbach["grad_norm_steps"]) for v in record["grad_norms"].values())
    assert mosbach["majority_baseline"]["accuracy"] == pytest.approx(4 / 24)
    # Dev scored after every epoch (sweep.dev_evals_per_epoch = 1): 20 scores, the last final.
    assert record["dev_history"]["steps"] == list(range(3, 61, 3))
    assert record["dev_history"]["accuracy"][-1] == record["dev_metrics"]["accuracy"]

    # A rerun resumes (nothing left to train); a changed config is refused.
    modified = os.path.getmtime(paths[0])
    stability_sweep.run(config, workdir)
    assert os.path.getmtime(paths[0]) == modified
    config.optimizer.learning_rate = 2e-3
    with pytest.raises(ValueError, match="different config"):
        stability_sweep.run(config, workdir)

    out_dir = str(tmp_path / "analysis")
    rows = analyze.analyze(workdir, out_dir)
    with open(os.path.join(out_dir, "summary.json")) as f:
        summary = json.load(f)
    assert summary == rows and [row["arm"] for row in summary] == ["devlin", "mosbach"]
    required = {"arm", "task", "n_seeds", "mean", "std", "median", "max", "failed_runs",
                "majority_baseline"}
    for row in summary:
        assert required <= set(row) and row["n_seeds"] == 2 and row["task"] == "docstring_topics"
    scores = [100 * r["dev_metrics"]["accuracy"] for r in mosbach["records"]]
    assert summary[1]["mean"] == pytest.approx(np.mean(scores))
    for name in ("scores.png", "grad_norms_docstring_topics.png"):
        with open(os.path.join(out_dir, name), "rb") as f:
            content = f.read()
        assert content[:8] == b"\x89PNG\r\n\x1a\n" and len(content) > 1000, name
    with open(os.path.join(out_dir, "summary.md")) as f:
        table = f.read()
    assert f"| docstring_topics | mosbach | accuracy | 2 | {summary[1]['mean']:.1f} |" in table


def test_failure_rate_intervals_are_clopper_pearson():
    # Hand-worked exact intervals: 0 of n -> (0, 1 - (alpha/2)^(1/n)); k of n symmetric.
    low, high = lr_grid.failure_interval(0, 10)
    assert low == 0 and high == pytest.approx(1 - 0.025 ** (1 / 10), abs=1e-6)  # 0.3085
    low, high = lr_grid.failure_interval(10, 10)
    assert high == 1 and low == pytest.approx(0.025 ** (1 / 10), abs=1e-6)
    low, high = lr_grid.failure_interval(5, 10)
    assert (low, high) == pytest.approx((0.18709, 0.81291), abs=1e-4)


def test_learning_rate_grid_runs_resumes_and_summarises(checkpoint, tmp_path):
    config = _tiny_config(checkpoint)
    config.sweep.arms = ("devlin",)
    workdir = str(tmp_path / "grid")
    rates = [1e-3, 3.0]  # 3.0 wrecks the model: every seed ends on one class
    paths = lr_grid.run_grid(config, rates, workdir)
    assert [os.path.relpath(p, workdir) for p in paths] == [
        f"lr_{rate:g}/docstring_topics/devlin.json" for rate in rates]
    modified = [os.path.getmtime(p) for p in paths]
    lr_grid.run_grid(config, rates, workdir)  # every cell done: nothing retrained
    assert [os.path.getmtime(p) for p in paths] == modified

    out_dir = str(tmp_path / "out")
    rows = lr_grid.analyze_grid([workdir], out_dir)
    with open(os.path.join(out_dir, "summary.json")) as f:
        assert json.load(f) == rows
    assert [(r["arm"], r["learning_rate"]) for r in rows] == [("devlin", 1e-3), ("devlin", 3.0)]
    for row, path in zip(rows, paths):
        with open(path) as f:
            cell = json.load(f)
        assert cell["config"]["optimizer"]["learning_rate"] == row["learning_rate"]
        last = np.asarray([100 * r["dev_metrics"]["accuracy"] for r in cell["records"]])
        best = np.asarray([100 * max(r["dev_history"]["accuracy"]) for r in cell["records"]])
        baseline = 100 * cell["majority_baseline"]["accuracy"]
        assert row["seeds"] == 2 and row["failed"] == int(np.sum(last <= baseline + 1e-9))
        assert row["failure_ci"] == list(lr_grid.failure_interval(row["failed"], 2))
        assert row["mean"] == pytest.approx(np.mean(last))
        assert row["best_mean"] == pytest.approx(np.mean(best)) and row["best_mean"] >= row["mean"]
        assert row["last_minus_best"] == pytest.approx(np.mean(last - best))
        failed = last <= baseline + 1e-9
        late = np.asarray(cell["grad_norm_steps"]) >= cell["num_train_steps"] // 2
        for side, chosen in (("failed", failed), ("successful", ~failed)):
            records = [r for r, keep in zip(cell["records"], chosen) if keep]
            if not records:
                assert side not in row["late_training"]
                continue
            embeddings = [np.median(np.asarray(r["grad_norms"]["embeddings"])[late])
                          for r in records]
            assert row["late_training"][side]["grad_norms"]["embeddings"] == pytest.approx(
                np.median(embeddings))
    assert rows[1]["failed"] == 2  # lr 3.0: collapsed
    for name in ["failure_rate.png", "last_vs_best.png", "grad_norms_docstring_topics.png"]:
        with open(os.path.join(out_dir, name), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n", name
    with open(os.path.join(out_dir, "summary.md")) as f:
        assert "| docstring_topics | devlin | 3 | 9 | 2 | 2 | 100% (16%-100%) |" in f.read()


def test_restricted_vocabulary_gives_the_same_outputs(inputs):
    bert_config, pretrained, data = inputs
    rows = {name: value[:6] for name, value in data.train.items()}
    small, (small_rows,) = stability_sweep.restrict_vocabulary(pretrained, rows)
    used = np.unique(rows["input_ids"])
    assert small["embeddings"]["word_embeddings"]["embedding"].shape[0] == used.size
    assert small_rows["input_ids"].max() == used.size - 1

    def pooled(config, params, features):
        return modeling.BertModel(config).apply(
            {"params": params}, features["input_ids"], features["segment_ids"],
            features["input_mask"])["pooled_output"]

    small_config = bert_config.replace(vocab_size=int(used.size))
    np.testing.assert_allclose(pooled(small_config, small, small_rows),
                               pooled(bert_config, pretrained, rows), rtol=1e-6, atol=1e-6)


def test_failed_runs_against_the_majority_baseline():
    # Mosbach et al.: failed = at or below the majority baseline (RTE 52.7%, CoLA MCC 0).
    assert analyze.failed_runs([52.7, 52.69, 70.1, 52.71], 52.7) == 2
    assert analyze.failed_runs([100 * 0.527, 60.0], 52.7) == 1  # float round-off counts as a tie
    assert analyze.failed_runs([0.0, -1.5, 58.3], 0.0) == 2
    arm = {"task": "rte", "arm": "devlin", "primary_metric": "accuracy", "path": "hand-made",
           "majority_baseline": {"accuracy": 0.527}, "num_train_steps": 10,
           "records": [{"dev_metrics": {"accuracy": s}, "nonfinite_step": -1}
                       for s in (0.527, 0.473, 0.711, 0.65)]}
    row = analyze.summarise(arm)
    scores = np.array([52.7, 47.3, 71.1, 65.0])
    assert row["failed_runs"] == 2 and row["n_seeds"] == 4
    assert row["mean"] == pytest.approx(scores.mean())
    assert row["std"] == pytest.approx(scores.std())
    assert row["median"] == pytest.approx(np.median(scores))
    assert row["max"] == pytest.approx(71.1) and row["majority_baseline"] == pytest.approx(52.7)
    assert "| rte | devlin | accuracy | 4 | 59.0 |" in analyze.markdown_table([row])


def test_late_training_diagnosis_by_hand():
    """Mosbach et al.'s diagnosis in numbers: per side (failed / successful), the median over
    seeds of each seed's median gradient norm over the second half, and the final loss."""
    def record(score, norms, losses):
        return {"dev_metrics": {"accuracy": score}, "nonfinite_step": -1,
                "grad_norms": {"embeddings": norms, "layer_0": norms, "layer_1": norms,
                               "classifier": [1.0] * len(norms)},
                "train_loss": losses, "dev_history": {"accuracy": [score]}}

    arm = {"task": "pairs", "arm": "devlin", "primary_metric": "accuracy", "path": "hand-made",
           "learning_rate": 1e-4,
           "majority_baseline": {"accuracy": 0.5}, "num_train_steps": 8,
           "grad_norm_steps": [0, 1, 2, 5, 7],  # the second half is steps 4-7: indices 3, 4
           "records": [record(0.5, [1.0, 2.0, 3.0, 1e-6, 3e-6], [0.7] * 6),
                       record(0.75, [1.0, 2.0, 3.0, 2.0, 4.0], [0.7, 0.6, 0.5, 0.4, 0.3, 0.2]),
                       record(0.8, [1.0, 2.0, 3.0, 5.0, 7.0], [0.1] * 6)]}
    sides = lr_grid.late_training(arm, last_losses=5)
    assert sides["failed"]["seeds"] == 1 and sides["successful"]["seeds"] == 2
    assert sides["failed"]["grad_norms"]["embeddings"] == pytest.approx(2e-6)
    assert sides["successful"]["grad_norms"]["layer_1"] == pytest.approx((3.0 + 6.0) / 2)
    assert sides["successful"]["grad_norms"]["classifier"] == 1.0
    assert sides["failed"]["final_loss"] == pytest.approx(0.7)
    assert sides["successful"]["final_loss"] == pytest.approx((0.4 + 0.1) / 2)
    arm["records"] = arm["records"][1:]
    assert set(lr_grid.late_training(arm)) == {"successful"}  # no failed seeds: no failed side
    table = lr_grid.markdown_table([lr_grid.grid_row(arm)])
    assert "| pairs | devlin | 0.0001 | 2 successful | 4.5 | 4.5 | 4.5 | 1 | 0.250 |" in table
