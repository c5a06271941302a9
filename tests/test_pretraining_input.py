"""The TFRecord pretraining reader: spec, exact resume, topology-independent global batches and
validation."""

import numpy as np
import pytest

from data_pipelines import corpora
from data_pipelines import create_pretraining_data as cpd
from data_pipelines import pretraining_input


@pytest.fixture(scope="module")
def record_files(tmp_path_factory):
    directory = tmp_path_factory.mktemp("records")
    corpus = str(directory / "corpus.txt")
    corpora.write_documents(
        corpora.stdlib_docstring_documents(
            ("json", "csv", "textwrap", "string", "heapq", "bisect", "shlex", "fractions")
        ),
        corpus,
    )
    files = tuple(str(directory / f"train-{i}.tfrecord") for i in range(3))
    summary = cpd.run(
        cpd.PretrainingDataConfig(
            input_files=(corpus,),
            output_files=files,
            vocab_file=corpora.default_vocab_file(),
            max_seq_length=64,
            max_predictions_per_seq=10,
            dupe_factor=1,
            num_workers=1,
            progress=False,
        )
    )
    return files, summary["instances"]


def _batches(dataset, count):
    iterator = iter(dataset)
    return [{k: v.numpy() for k, v in next(iterator).items()} for _ in range(count)]


def test_batches_have_the_feature_dict_and_dtypes(record_files):
    files, _ = record_files
    batch = _batches(
        pretraining_input.make_pretraining_dataset(
            list(files), 4, 64, 10, is_training=True, seed=0, vocab_size=30522
        ),
        1,
    )[0]
    assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == {
        "input_ids": ((4, 64), "int32"),
        "input_mask": ((4, 64), "int32"),
        "segment_ids": ((4, 64), "int32"),
        "masked_lm_positions": ((4, 10), "int32"),
        "masked_lm_ids": ((4, 10), "int32"),
        "masked_lm_weights": ((4, 10), "float32"),
        "next_sentence_labels": ((4,), "int32"),
    }


def test_start_step_resumes_exactly(record_files):
    files, num_records = record_files
    epoch_batches = num_records // 8
    full = _batches(
        pretraining_input.make_pretraining_dataset(
            ",".join(files), 8, 64, 10, is_training=True, seed=3
        ),
        epoch_batches + 6,
    )
    start = epoch_batches - 2  # crosses an epoch boundary (reshuffled file order)
    resumed = _batches(
        pretraining_input.make_pretraining_dataset(
            ",".join(files), 8, 64, 10, is_training=True, seed=3, start_step=start
        ),
        8,
    )
    for k, batch in enumerate(resumed):
        for name in batch:
            np.testing.assert_array_equal(batch[name], full[start + k][name])
    other_seed = _batches(
        pretraining_input.make_pretraining_dataset(
            ",".join(files), 8, 64, 10, is_training=True, seed=4
        ),
        1,
    )[0]
    assert not np.array_equal(other_seed["input_ids"], full[0]["input_ids"])


def _global_batches(files, global_batch, process_count, *, is_training, count=None,
                    start_step=0):
    """The global batches as the hosts of a process_count-host run see them, rows joined."""
    per_host = global_batch // process_count
    streams = [
        pretraining_input.make_pretraining_dataset(
            list(files), per_host, 64, 10, is_training=is_training, seed=5,
            start_step=start_step, process_index=i, process_count=process_count)
        for i in range(process_count)
    ]
    host_batches = [_batches(stream, count) if count else
                    [{k: v.numpy() for k, v in b.items()} for b in stream] for stream in streams]
    return [{name: np.concatenate([hosts[k][name] for hosts in host_batches])
             for name in host_batches[0][k]} for k in range(len(host_batches[0]))]


@pytest.mark.parametrize("is_training", [True, False])
def test_global_batches_do_not_depend_on_the_number_of_hosts(record_files, is_training):
    files, num_records = record_files
    count = 4 if is_training else None
    one_host = _global_batches(files, 16, 1, is_training=is_training, count=count)
    if not is_training:  # one pass, the partial last global batch dropped
        assert len(one_host) == num_records // 16
    for process_count in (2, 4):
        hosts = _global_batches(files, 16, process_count, is_training=is_training, count=count)
        assert len(hosts) == len(one_host)
        for ours, reference in zip(hosts, one_host):
            for name in reference:
                np.testing.assert_array_equal(ours[name], reference[name], err_msg=name)
    # Each host parses distinct rows: the shares of one global batch differ.
    halves = _global_batches(files, 16, 2, is_training=is_training, count=1)[0]["input_ids"]
    assert not np.array_equal(halves[:8], halves[8:])


def test_resume_on_another_topology(record_files):
    files, _ = record_files
    one_host = _global_batches(files, 8, 1, is_training=True, count=6)
    resumed_on_two = _global_batches(files, 8, 2, is_training=True, count=3, start_step=3)
    for k, batch in enumerate(resumed_on_two):
        np.testing.assert_array_equal(batch["input_ids"], one_host[3 + k]["input_ids"])


def test_process_index_out_of_range_is_refused(record_files):
    files, _ = record_files
    with pytest.raises(ValueError, match=r"process_index=2 is not in \[0, 2\)"):
        pretraining_input.make_pretraining_dataset(
            list(files), 4, 64, 10, is_training=True, seed=0, process_index=2, process_count=2)


def test_bad_records_fail_naming_file_and_feature(record_files):
    import tensorflow as tf

    files, _ = record_files
    with pytest.raises(
        ValueError,
        match=r"train-0\.tfrecord: first record does not match "
        r"max_seq_length=128.*Key: \w+",
    ):
        pretraining_input.make_pretraining_dataset(
            list(files), 4, 128, 10, is_training=True, seed=0
        )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"input_ids has a value >= 1000.*train-\d\.tfrecord"
    ):
        _batches(
            pretraining_input.make_pretraining_dataset(
                list(files), 4, 64, 10, is_training=True, seed=0, vocab_size=1000
            ),
            1,
        )
    with pytest.raises(FileNotFoundError, match="matches no file"):
        pretraining_input.make_pretraining_dataset(
            "/nonexistent/*.tfrecord", 4, 64, 10, is_training=True, seed=0
        )
