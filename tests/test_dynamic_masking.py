"""Dynamic masking: original pairing and 80/10/10 masks in tf.data, exactly resumable."""

import numpy as np
import pytest

from data_pipelines import tokenization
from data_pipelines import corpora
from data_pipelines import dynamic_masking
from data_pipelines import instances as instances_lib

S, P, B = 64, 10, 16


@pytest.fixture(scope="module")
def setup():
    tokenizer = tokenization.FullTokenizer(corpora.default_vocab_file())
    documents = list(
        corpora.stdlib_docstring_documents(
            ("json", "csv", "textwrap", "string", "heapq", "bisect", "shlex", "fractions")
        )
    )
    corpus = instances_lib.TokenizedCorpus.from_documents(
        [[tokenizer.tokenize_to_ids(line) for line in document] for document in documents]
    )
    return tokenizer, corpus


def _batches(dataset, count):
    iterator = iter(dataset)
    return [{k: v.numpy() for k, v in next(iterator).items()} for _ in range(count)]


def test_resume_is_exact_and_masks_are_fresh(setup):
    tokenizer, corpus = setup
    full = _batches(
        dynamic_masking.make_dynamic_masking_dataset(corpus, tokenizer.vocab, B, S, P, seed=5), 40
    )
    resumed = _batches(
        dynamic_masking.make_dynamic_masking_dataset(
            corpus, tokenizer.vocab, B, S, P, seed=5, start_step=33
        ),
        7,
    )
    for k, batch in enumerate(resumed):
        for name in batch:
            np.testing.assert_array_equal(batch[name], full[33 + k][name])
    # Same pairs, other seed step: masking is keyed by (seed, step), not fixed per pair.
    pairs = next(
        dynamic_masking.sentence_pairs(
            corpus, S, 0.1, 5, tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
        )
    )
    import tensorflow as tf

    batch = {k: tf.constant(v[:B]) for k, v in pairs.items()}
    settings = dict(
        max_predictions_per_seq=P,
        masked_lm_prob=0.15,
        vocab_size=len(tokenizer.vocab),
        cls_id=tokenizer.vocab["[CLS]"],
        sep_id=tokenizer.vocab["[SEP]"],
        mask_id=tokenizer.vocab["[MASK]"],
    )
    first = dynamic_masking.mask_batch(batch, tf.constant([5, 0], tf.int64), **settings)
    again = dynamic_masking.mask_batch(batch, tf.constant([5, 0], tf.int64), **settings)
    later = dynamic_masking.mask_batch(batch, tf.constant([5, 1], tf.int64), **settings)
    np.testing.assert_array_equal(first["masked_lm_positions"], again["masked_lm_positions"])
    assert not np.array_equal(first["masked_lm_positions"], later["masked_lm_positions"])
    # Only chosen positions may differ from the unmasked pair.
    changed = first["input_ids"].numpy() != pairs["input_ids"][:B]
    chosen = np.zeros_like(changed)
    weights = first["masked_lm_weights"].numpy() > 0
    np.put_along_axis(chosen, first["masked_lm_positions"].numpy(), weights, axis=1)
    assert changed.any() and not (changed & ~chosen).any()
    np.testing.assert_array_equal(
        first["masked_lm_ids"].numpy() * first["masked_lm_weights"].numpy(),
        np.take_along_axis(pairs["input_ids"][:B], first["masked_lm_positions"].numpy(), 1)
        * first["masked_lm_weights"].numpy(),
    )


def test_masking_follows_the_original_rules(setup):
    tokenizer, corpus = setup
    vocab = tokenizer.vocab
    batches = _batches(
        dynamic_masking.make_dynamic_masking_dataset(corpus, vocab, B, S, P, seed=1), 60
    )
    kinds = np.zeros(3)
    labels = []
    for batch in batches:
        labels.extend(batch["next_sentence_labels"].tolist())
        lengths = batch["input_mask"].sum(axis=1)
        count = batch["masked_lm_weights"].sum(axis=1)
        np.testing.assert_array_equal(count, np.minimum(P, np.maximum(1, np.rint(lengths * 0.15))))
        for row in range(B):
            k = int(count[row])
            positions = batch["masked_lm_positions"][row, :k]
            assert (
                np.all(np.diff(positions) > 0) and not batch["masked_lm_positions"][row, k:].any()
            )
            assert not batch["masked_lm_ids"][row, k:].any()
            originals = batch["masked_lm_ids"][row, :k]
            assert not np.isin(originals, [vocab["[CLS]"], vocab["[SEP]"], 0]).any()
            now = batch["input_ids"][row, positions]
            kinds += [
                np.sum(now == vocab["[MASK]"]),
                np.sum(now == originals),
                np.sum((now != vocab["[MASK]"]) & (now != originals)),
            ]
            assert batch["input_ids"][row, 0] == vocab["[CLS]"]
            b_start = int(np.argmax(batch["segment_ids"][row]))
            assert batch["input_ids"][row, b_start - 1] == vocab["[SEP]"]
            assert batch["segment_ids"][row, b_start : lengths[row]].all()
    shares = kinds / kinds.sum()
    assert abs(shares[0] - 0.8) < 0.03 and abs(shares[1] - 0.1) < 0.03
    assert 0.4 < np.mean(labels) < 0.65


def test_hosts_split_documents(setup):
    tokenizer, corpus = setup
    cls_id, sep_id = tokenizer.vocab["[CLS]"], tokenizer.vocab["[SEP]"]
    host_pairs = [
        list(dynamic_masking.sentence_pairs(corpus, S, 0.1, 0, cls_id, sep_id, i, 2, num_epochs=1))
        for i in range(2)
    ]
    assert all(host_pairs)
    first = {tuple(r) for chunk in host_pairs[0] for r in chunk["input_ids"]}
    second = {tuple(r) for chunk in host_pairs[1] for r in chunk["input_ids"]}
    assert len(first & second) < 0.05 * min(len(first), len(second))  # only random-next overlap
    with pytest.raises(ValueError, match="gets no document"):
        next(dynamic_masking.sentence_pairs(corpus, S, 0.1, 0, cls_id, sep_id, 9_999, 10_000))
