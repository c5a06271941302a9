"""Group-by-length batching (opt-in): the batches of an epoch hold the same examples as without
grouping, each once, sorted within mega-batches, a pure function of (seed, epoch) so a resumed
run gets the same batches; off, the batches are exactly the plain shuffled ones.

Oracles: the plain shuffled order written out here from numpy's Generator (one permutation per
epoch, batches its consecutive slices), and properties checked batch by batch.
"""

import os

import flax.linen as nn
import jax
import numpy as np
import pytest

from bertjax import config as bert_config_lib
from bertjax import finetune, metric_logging, modeling, optimizers, sweep, tasks
from data_pipelines import finetune_input
from tests.test_length_buckets import _features, _glue_config
from tests.test_finetune import _write_separable_sst2


def _indexed(lengths, seq_len=32):
    features = _features(lengths, seq_len)
    features["example_index"] = np.arange(len(lengths))
    return features


def _epochs(features, batch_size, num_epochs, **kwargs):
    """[epochs][batches] of example indices."""
    batches = [b["example_index"] for b in finetune_input.train_batches(
        features, batch_size, num_epochs=num_epochs, **kwargs)]
    per_epoch = len(batches) // num_epochs
    return [batches[e * per_epoch:(e + 1) * per_epoch] for e in range(num_epochs)]


def test_off_is_the_plain_shuffled_order():
    features = _indexed(np.random.default_rng(1).integers(1, 33, 37))
    got = _epochs(features, 8, 3, seed=5)
    rng = np.random.default_rng(5)
    for epoch in got:
        permutation = rng.permutation(37)
        assert [b.tolist() for b in epoch] == [permutation[i * 8:(i + 1) * 8].tolist()
                                               for i in range(4)]


def test_grouped_epochs_hold_the_same_examples_sorted_within_mega_batches():
    lengths = np.random.default_rng(2).integers(1, 33, 101)  # 12 batches of 8, 5 dropped
    features = _indexed(lengths)
    plain = _epochs(features, 8, 3, seed=7)
    grouped = _epochs(features, 8, 3, seed=7, group_by_length=5)
    for plain_epoch, grouped_epoch in zip(plain, grouped):
        rows = np.concatenate(grouped_epoch)
        assert len(set(rows.tolist())) == len(rows) == 96  # each example at most once
        # The same permutation: the same examples (the same remainder dropped) ...
        permutation = np.concatenate(plain_epoch)
        assert sorted(rows.tolist()) == sorted(permutation.tolist())
        # ... and each batch inside one mega-batch of 5 x 8 rows, contiguous in length order.
        mega_of = {int(r): i // 40 for i, r in enumerate(permutation)}
        by_mega = {}
        for batch in grouped_epoch:
            megas = {mega_of[int(r)] for r in batch}
            assert len(megas) == 1
            by_mega.setdefault(megas.pop(), []).append(np.sort(lengths[batch]))
        assert sorted(len(b) for b in by_mega.values()) == [2, 5, 5]
        for batches in by_mega.values():
            batches.sort(key=lambda b: (b[0], b[-1]))
            for lower, upper in zip(batches, batches[1:]):
                assert lower[-1] <= upper[0]
        assert np.mean([np.ptp(lengths[b]) for b in grouped_epoch]) < np.mean(
            [np.ptp(lengths[b]) for b in plain_epoch]) / 2
    # The grouped batch order is shuffled, not sorted across the epoch.
    maxima = [lengths[b].max() for b in grouped[0]]
    assert maxima != sorted(maxima) and maxima != sorted(maxima, reverse=True)


def test_grouped_order_is_deterministic_and_resumes_exactly():
    features = _indexed(np.random.default_rng(3).integers(1, 33, 64))
    kwargs = dict(seed=11, num_epochs=None, num_steps=20, group_by_length=2)
    run = [b["example_index"].tolist() for b in finetune_input.train_batches(features, 8,
                                                                             **kwargs)]
    again = [b["example_index"].tolist() for b in finetune_input.train_batches(features, 8,
                                                                               **kwargs)]
    assert run == again and len(run) == 20
    for start in (1, 8, 13):  # mid-epoch and at an epoch boundary
        resumed = [b["example_index"].tolist() for b in finetune_input.train_batches(
            features, 8, start_step=start, **kwargs)]
        assert resumed == run[start:]
    other = [b["example_index"].tolist() for b in finetune_input.train_batches(
        features, 8, **dict(kwargs, seed=12))]
    assert other != run


def test_shared_length_schedule_aligns_the_seeds_length_ranks():
    lengths = np.random.default_rng(4).integers(1, 33, 160)
    features = _indexed(lengths)

    def maxima(seed, schedule):
        return np.asarray([lengths[b["example_index"]].max() for b in finetune_input.train_batches(
            features, 8, seed=seed, num_epochs=2, group_by_length=4,
            length_schedule_seed=schedule)])

    shared = np.stack([maxima(seed, 0) for seed in range(4)])  # [K, steps]
    own = np.stack([maxima(seed, None) for seed in range(4)])
    # Each seed keeps its own examples per batch but takes them in the schedule's rank order:
    # the K seeds' batch maxima rise and fall together, so the step's longest row is shorter.
    ranks = np.argsort(np.argsort(shared.reshape(4, 2, 20), axis=-1, kind="stable"), axis=-1)
    assert np.mean(ranks.std(axis=0)) < 2.0
    assert shared.max(axis=0).mean() < own.max(axis=0).mean()
    assert sorted(shared[0].tolist()) == sorted(own[0].tolist())  # the same batches, reordered
    stacked = list(sweep.stacked_train_batches({k: v for k, v in features.items()}, 8,
                                               [0, 1, 2, 3], 2, group_by_length=4))
    np.testing.assert_array_equal([lengths[b["example_index"]].max(axis=1) for b in stacked],
                                  shared.T)


def test_config_key_and_validation():
    with pytest.raises(ValueError, match="input_mask"):
        next(finetune_input.train_batches({"input_ids": np.zeros((8, 4), np.int32)}, 4, seed=0,
                                          group_by_length=2))
    with pytest.raises(ValueError, match="group_by_length_megabatches"):
        finetune_input.group_by_length_of({"group_by_length": True,
                                           "group_by_length_megabatches": 0})
    assert finetune_input.group_by_length_of({"group_by_length": False}) == 0


def test_off_keys_stay_out_of_the_run_identity():
    # Checkpoints and sweep results written before the keys existed resume unchanged.
    from bertjax import trainer
    from experiments import base_config
    config = base_config.get_config()
    assert not any(k.startswith("data.group_by_length") for k in trainer.identity_of(config))
    config.data.group_by_length = True
    identity = trainer.identity_of(config)
    assert identity["data.group_by_length"] is True
    assert identity["data.group_by_length_megabatches"] == 50


def _losses(workdir):
    return [r["loss"] for r in metric_logging.read_jsonl(os.path.join(workdir, "metrics.jsonl"))
            if r["split"] == "train"]


def test_grouped_fine_tuning_trains(tmp_path):
    _write_separable_sst2(str(tmp_path / "glue"), num_train=128, num_dev=32)
    config = _glue_config(tmp_path / "glue", 4)
    config.data.group_by_length = True
    config.data.group_by_length_megabatches = 4
    config.num_train_epochs = 4
    results = finetune.run(config, str(tmp_path / "run"))
    losses = _losses(tmp_path / "run")
    assert len(losses) == 32
    assert np.mean(losses[-8:]) < 0.5 * np.mean(losses[:4])
    assert results["validation"]["accuracy"] >= 0.9


def test_grouped_sweep_runs_and_shows_its_progress_bar(capsys):
    # That each seed trains on exactly its own grouped stream, vectorised or alone, is the
    # stacked_train_batches check above; here the K-seed program trains on it (one bucket: one
    # compiled program keeps the test short; grouping with several buckets runs just above).
    config = bert_config_lib.preset("tiny", vocab_size=64, hidden_size=32, intermediate_size=64,
                                    max_position_embeddings=32, hidden_dropout_prob=0.0,
                                    attention_probs_dropout_prob=0.0)
    pretrained = jax.device_get(nn.meta.unbox(modeling.BertModel(config).init(
        jax.random.PRNGKey(7), *modeling.dummy_inputs(1, 32))["params"]))
    features = _features(np.random.default_rng(0).integers(3, 30, 48), 32)
    features["label_ids"] = (features["input_ids"][:, 1] % 3).astype(np.int32)
    features.pop("label_weights")
    opt = optimizers.create_optimizer(5e-3, 6, 1, optimizer="adamw")
    trainer = sweep.SeedTrainer(tasks.classification(config, 3), opt.tx, opt.schedule,
                                max_seq_length=32, length_buckets=(32,), group_by_length=2,
                                mesh=sweep.seed_mesh(2))
    result = trainer.run(pretrained, features, None, sweep.seed_components([0, 1]),
                         batch_size=8, num_epochs=1, score_fn=None)
    for record in result.records:
        assert len(record["train_loss"]) == 6 and np.isfinite(record["train_loss"]).all()
    assert result.records[0]["train_loss"] != result.records[1]["train_loss"]
    assert "6/6" in capsys.readouterr().err  # the training loop's progress bar
