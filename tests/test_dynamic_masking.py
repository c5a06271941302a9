"""Dynamic masking: the offline writer's masking on streamed pairs, exactly resumable, the same
global batches whatever the number of hosts, tokenised files cached."""

import numpy as np
import pytest

from data_pipelines import corpora
from data_pipelines import dynamic_masking
from data_pipelines import instances as instances_lib
from data_pipelines import tokenizers

S, P = 64, 10
MODULES = ("json", "csv", "textwrap", "string", "heapq", "bisect", "shlex", "fractions",
           "argparse", "difflib", "calendar", "statistics")


@pytest.fixture(scope="module")
def tokenizer():
    return tokenizers.make_tokenizer("wordpiece")


@pytest.fixture(scope="module")
def text_files(tmp_path_factory):
    """Six files of real text (stdlib docstrings, two modules each)."""
    folder = tmp_path_factory.mktemp("dynamic_corpus")
    paths = []
    for index in range(6):
        path = folder / f"part-{index}.txt"
        corpora.write_documents(
            corpora.stdlib_docstring_documents(MODULES[2 * index:2 * index + 2]), str(path))
        paths.append(str(path))
    return paths


def _take(iterator, count):
    return [next(iterator) for _ in range(count)]


def _config(**overrides):
    return dynamic_masking.DynamicMaskingConfig(
        max_seq_length=S, max_predictions_per_seq=P, seed=7, **overrides)


@pytest.mark.parametrize("whole_word", [False, True])
def test_batches_are_the_offline_masking_of_the_streamed_pairs(tokenizer, text_files, whole_word):
    config = _config(do_whole_word_mask=whole_word)
    batches = _take(dynamic_masking.host_batches(text_files[:1], tokenizer, config,
                                                 global_batch_size=8), 5)
    # The oracle: the unmasked pairs of the one stream, masked by the offline writer's function
    # with the rng of (seed, step, stream).
    arrays = tokenizers.masking_arrays(tokenizer)
    windows = dynamic_masking.stream_windows(text_files[:1], tokenizer, 0, config)
    rows = dynamic_masking._Rows(windows, S, arrays.cls_id, arrays.sep_id)
    for step, batch in enumerate(batches):
        pairs = rows.take(8)
        expected = instances_lib.create_masked_lm_predictions(
            pairs.input_ids, pairs.input_mask, (arrays.cls_id, arrays.sep_id), 0.15, P,
            np.arange(len(tokenizer.vocab)), tokenizer.vocab["[MASK]"],
            np.random.default_rng([7, step, 0]),
            continuation_ids=arrays.continuation if whole_word else None)
        np.testing.assert_array_equal(batch["input_ids"], expected.input_ids)
        np.testing.assert_array_equal(batch["masked_lm_positions"], expected.masked_lm_positions)
        np.testing.assert_array_equal(batch["masked_lm_ids"], expected.masked_lm_ids)
        np.testing.assert_array_equal(batch["masked_lm_weights"], expected.masked_lm_weights)
        np.testing.assert_array_equal(batch["segment_ids"], pairs.segment_ids)
        np.testing.assert_array_equal(batch["next_sentence_labels"], pairs.next_sentence_labels)


def test_resume_is_exact_and_masks_are_fresh(tokenizer, text_files, tmp_path):
    config = _config(cache_dir=str(tmp_path))
    full = _take(dynamic_masking.host_batches(text_files, tokenizer, config,
                                              global_batch_size=8), 12)
    resumed = _take(dynamic_masking.host_batches(text_files, tokenizer, config,
                                                 global_batch_size=8, start_step=9), 3)
    for k, batch in enumerate(resumed):
        for name in batch:
            np.testing.assert_array_equal(batch[name], full[9 + k][name], err_msg=name)
    assert not np.array_equal(full[0]["masked_lm_positions"], full[1]["masked_lm_positions"])


def test_global_batch_does_not_depend_on_the_number_of_processes(tokenizer, text_files):
    config = _config()
    one = _take(dynamic_masking.host_batches(text_files, tokenizer, config,
                                             global_batch_size=8), 4)
    for count in (2, 4):
        stats = [dict() for _ in range(count)]
        hosts = [_take(dynamic_masking.host_batches(
            text_files, tokenizer, config, global_batch_size=8, process_index=i,
            process_count=count, stats=stats[i]), 4) for i in range(count)]
        for step in range(4):
            for name in one[step]:
                np.testing.assert_array_equal(
                    np.concatenate([host[step][name] for host in hosts]), one[step][name],
                    err_msg=f"{count} processes, step {step}, {name}")
        # Rows 0-3 of 8 come from streams 0, 0, 1, 2 (of 6, one file each): host 0 of 2 reads
        # only those files.
        if count == 2:
            assert set(stats[0]["files_loaded"]) == set(text_files[:3])
            assert set(stats[1]["files_loaded"]) == set(text_files[3:])
    resumed = _take(dynamic_masking.host_batches(text_files, tokenizer, config,
                                                 global_batch_size=8, process_index=1,
                                                 process_count=2, start_step=2), 2)
    np.testing.assert_array_equal(resumed[1]["input_ids"], one[3]["input_ids"][4:])


def test_masking_statistics_on_real_text(tokenizer, text_files):
    """15% of the tokens (the original's count), 80/10/10, whole words never split."""
    config = _config(do_whole_word_mask=True)
    vocab = tokenizer.vocab
    continuation = tokenizers.masking_arrays(tokenizer).continuation
    batches = _take(dynamic_masking.host_batches(text_files, tokenizer, config,
                                                 global_batch_size=32), 40)
    kinds = np.zeros(3)
    predicted = tokens = 0
    labels = []
    for batch in batches:
        labels.extend(batch["next_sentence_labels"].tolist())
        lengths = batch["input_mask"].sum(axis=1)
        count = batch["masked_lm_weights"].sum(axis=1).astype(int)
        assert (count <= np.minimum(P, np.maximum(1, np.rint(lengths * 0.15)))).all()
        predicted += count.sum()
        tokens += lengths.sum()
        for row in range(len(count)):
            positions = batch["masked_lm_positions"][row, :count[row]]
            assert np.all(np.diff(positions) > 0)
            assert not batch["masked_lm_positions"][row, count[row]:].any()
            originals = batch["masked_lm_ids"][row, :count[row]]
            assert not np.isin(originals, [vocab["[CLS]"], vocab["[SEP]"], 0]).any()
            now = batch["input_ids"][row, positions]
            kinds += [np.sum(now == vocab["[MASK]"]), np.sum(now == originals),
                      np.sum((now != vocab["[MASK]"]) & (now != originals))]
            # Whole words: a "##" piece is chosen exactly when its predecessor is (unless that
            # is [CLS] or [SEP]: a truncated segment may start inside a word).
            chosen = np.zeros(lengths[row] + 1, bool)
            chosen[positions] = True
            unmasked = batch["input_ids"][row].copy()
            unmasked[positions] = originals
            for position in range(1, lengths[row]):
                if continuation[unmasked[position]] and unmasked[position - 1] not in (
                        vocab["[CLS]"], vocab["[SEP]"]):
                    assert chosen[position] == chosen[position - 1], (row, position)
    shares = kinds / kinds.sum()
    assert abs(shares[0] - 0.8) < 0.03 and abs(shares[1] - 0.1) < 0.025
    assert 0.13 < predicted / tokens < 0.16  # whole words that do not fit are skipped
    assert 0.4 < np.mean(labels) < 0.6


def test_tokenised_windows_are_cached(tokenizer, text_files, tmp_path, monkeypatch):
    config = _config(cache_dir=str(tmp_path), window_documents=1)
    first = _take(dynamic_masking.host_batches(text_files[:2], tokenizer, config,
                                               global_batch_size=4), 60)
    assert len(list(tmp_path.rglob("complete.json"))) == 2  # both files read to the end
    assert len(list(tmp_path.rglob("window-*.npz"))) == 4  # two documents per file
    assert not list(tmp_path.rglob("*.tmp-*"))

    def refuse(*args):
        raise AssertionError(f"tokenised {args[0]} again")

    monkeypatch.setattr(dynamic_masking, "tokenize_windows", refuse)
    again = _take(dynamic_masking.host_batches(text_files[:2], tokenizer, config,
                                               global_batch_size=4), 60)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["input_ids"], b["input_ids"])
    # Another tokenizer (cased) has its own cache: it tokenises.
    cased = tokenizers.make_tokenizer("wordpiece", do_lower_case=False)
    with pytest.raises(AssertionError, match="tokenised"):
        next(dynamic_masking.host_batches(text_files[:2], cased, config, global_batch_size=4))


def test_windows_split_documents_exactly(tokenizer, tmp_path):
    path = str(tmp_path / "twelve.txt")
    corpora.write_documents(corpora.stdlib_docstring_documents(MODULES), path)
    whole = dynamic_masking.tokenize_file(path, tokenizer)
    windows = list(dynamic_masking.tokenize_windows(path, tokenizer, 5))
    assert whole.num_documents == 12
    assert [w.num_documents for w in windows] == [5, 5, 2]
    assert sum((w.documents() for w in windows), []) == whole.documents()


def test_bad_input_is_named(tokenizer, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"good line\n\xff\xfe bad line\n")
    with pytest.raises(ValueError, match=r"bad\.txt:2: not valid UTF-8"):
        dynamic_masking.tokenize_file(str(bad), tokenizer)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    with pytest.raises(ValueError, match="has no document"):
        next(dynamic_masking.host_batches([str(empty)], tokenizer, _config(),
                                          global_batch_size=2))


def test_prefetched_keeps_order_and_raises_where_the_stream_does():
    def numbers():
        yield from range(10)
        raise ValueError("broken after 10")

    iterator = dynamic_masking.prefetched(numbers(), size=2)
    assert [next(iterator) for _ in range(10)] == list(range(10))
    with pytest.raises(ValueError, match="broken after 10"):
        next(iterator)
    assert list(dynamic_masking.prefetched(iter(range(5)))) == list(range(5))


def test_entry_point_serves_the_default_corpus_on_any_topology(tmp_path):
    from data_pipelines import pretraining_data

    spec = pretraining_data.PretrainingDataSpec(
        source="dynamic", cache_dir=str(tmp_path), max_seq_length=S, max_predictions_per_seq=P,
        do_whole_word_mask=True)
    one = pretraining_data.pretraining_batches(spec, per_host_batch_size=8, start_step=3)
    halves = [pretraining_data.pretraining_batches(spec, per_host_batch_size=4, start_step=3,
                                                   process_index=i, process_count=2)
              for i in range(2)]
    for _ in range(2):
        batch, parts = next(one), [next(h) for h in halves]
        for name in batch:
            np.testing.assert_array_equal(np.concatenate([p[name] for p in parts]), batch[name])
    assert list(tmp_path.rglob("stdlib_docstrings-py*.txt"))
    assert list(tmp_path.rglob("complete.json"))
