"""The path layer on cloud storage, for real: a GCS emulator on loopback and TensorFlow's ram://.

gs:// goes through gcsfs (our own files, orbax's metadata) and tensorstore (orbax's arrays),
both pointed at the emulator by the standard variables only (`STORAGE_EMULATOR_HOST`,
`TENSORSTORE_GCS_HTTP_URL`; see tests/gcs_emulator.py). What TensorFlow reads and writes itself
(tf.data record files, TensorBoard events) cannot be redirected to an emulator, so it is tested
through the same path layer on TensorFlow's in-memory `ram://` file system. Whole training runs
against the emulator are in tests/test_cloud_runs.py.
"""

import json
import os
import uuid

import jax
import numpy as np
import pytest
import tensorflow as tf

from bertjax import checkpointing, metric_logging
from data_pipelines import create_pretraining_data, pretraining_input, storage
from data_pipelines.tokenization import bundled_uncased_vocab_file
from tests import gcs_emulator

BUCKET = "bertjax-test"

_TEXT = """The quick brown fox jumps over the lazy dog. It was not amused by the dog at all.
The dog slept on. Nobody knows why the fox was in such a hurry that day.

Python is a programming language. It has a standard library with many modules.
Each module has docstrings. The docstrings describe functions and classes in plain words.
Some of them are long and some are short.

Storage is where files live. A bucket holds objects under keys.
A key looks like a path. Folders are only prefixes of keys.
"""


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """The emulator's URL, with this process's gcsfs and tensorstore pointed at it."""
    import gcsfs  # pylint: disable=import-outside-toplevel

    log = str(tmp_path_factory.mktemp("gcs") / "emulator.log")
    with gcs_emulator.running(BUCKET, log) as url:
        saved = {k: os.environ.get(k) for k in gcs_emulator.client_environment(url)}
        os.environ.update(gcs_emulator.client_environment(url))
        gcsfs.GCSFileSystem.clear_instance_cache()
        try:
            yield url
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            gcsfs.GCSFileSystem.clear_instance_cache()


def _fresh(prefix: str) -> str:
    return f"gs://{BUCKET}/{prefix}-{uuid.uuid4().hex[:8]}"


def test_path_layer_reads_writes_lists_and_globs_on_gcs(gcs):
    root = _fresh("layer")
    storage.write_text(storage.join(root, "a", "x.txt"), "one")
    storage.write_bytes(storage.join(root, "a", "y.bin"), b"\x00\x01")
    with storage.atomic_write(storage.join(root, "b", "z.txt")) as writer:
        writer.write("three")
    with pytest.raises(storage.StorageError, match=f"cannot append to {root}/a/x.txt"):
        storage.open(storage.join(root, "a", "x.txt"), "a")
    assert storage.read_text(storage.join(root, "a", "x.txt")) == "one"
    assert storage.read_bytes(storage.join(root, "a", "y.bin")) == b"\x00\x01"
    assert storage.listdir(root) == ["a", "b"]
    assert storage.isdir(storage.join(root, "a")) and not storage.isfile(storage.join(root, "a"))
    assert storage.size(storage.join(root, "b", "z.txt")) == 5
    storage.write_text(storage.join(root, "a", "k.txt.tmp-0123456789ab"), "killed writer")
    assert storage.expand_patterns(f"{root}/a/*") == [f"{root}/a/x.txt", f"{root}/a/y.bin"]
    assert storage.expand_patterns(f"{root}/*/*.txt,{root}/a/y.bin") == [
        f"{root}/a/x.txt", f"{root}/b/z.txt", f"{root}/a/y.bin"]
    with pytest.raises(FileNotFoundError, match=rf"{root}/\*\.tfrecord.*matches no file"):
        storage.expand_patterns(f"{root}/*.tfrecord", what="pretraining")
    with pytest.raises(FileNotFoundError, match=f"{root}/missing.txt"):
        storage.read_text(f"{root}/missing.txt")
    storage.rename(storage.join(root, "b", "z.txt"), storage.join(root, "b", "w.txt"))
    assert storage.listdir(storage.join(root, "b")) == ["w.txt"]
    storage.rmtree(root)
    assert not storage.exists(storage.join(root, "a", "x.txt"))


def test_a_failed_write_keeps_the_old_object_and_creates_no_new_one(gcs):
    root = _fresh("failed")
    storage.write_text(f"{root}/old.txt", "old")
    for name, mode, data in (("old.txt", "w", "new, half written"), ("new.bin", "wb", b"\x01")):
        with pytest.raises(RuntimeError, match="interrupted"):
            with storage.atomic_write(f"{root}/{name}", mode) as writer:
                writer.write(data)
                raise RuntimeError("interrupted")
    assert storage.read_text(f"{root}/old.txt") == "old"
    assert storage.listdir(root) == ["old.txt"]


def test_a_missing_bucket_or_a_file_as_workdir_is_named(gcs, tmp_path):
    with pytest.raises(storage.StorageError, match="gs://no-such-bucket-here/run"):
        storage.check_writable("gs://no-such-bucket-here/run")
    blocker = _fresh("blocker")
    storage.write_text(blocker, "I am a file")
    with pytest.raises(storage.StorageError, match=f"{blocker} is a file"):
        storage.check_writable(blocker)
    # Locally: a file where the workdir goes, and a folder that cannot be created under a file.
    local_file = tmp_path / "workdir"
    local_file.write_text("x")
    with pytest.raises(storage.StorageError, match=f"{local_file} is a file"):
        storage.check_writable(str(local_file))
    with pytest.raises(storage.StorageError, match=f"{local_file}/run"):
        storage.check_writable(str(local_file / "run"))
    assert local_file.read_text() == "x"  # nothing already there is touched
    storage.check_writable(str(tmp_path / "fine"))
    assert os.listdir(tmp_path / "fine") == []  # the probe is removed


def _abstract(tree):
    sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


@pytest.mark.parametrize("where", ["gcs", "local"])
def test_a_partially_written_checkpoint_is_skipped(where, request, tmp_path):
    """A kill mid-save leaves a step without orbax's completion mark (a `.orbax-checkpoint-tmp`
    folder locally, a step folder without commit_success.txt on GCS): the next run restores the
    last complete step, and saving that step again replaces the debris."""
    if where == "gcs":
        request.getfixturevalue("gcs")
        directory = _fresh("checkpoints")
        partial = storage.join(directory, "4")
    else:
        directory = str(tmp_path / "checkpoints")
        partial = storage.join(directory, "4.orbax-checkpoint-tmp-1796000000")
    state = {"w": np.arange(4, dtype=np.float32), "b": np.ones((2, 3), np.float32)}
    checkpointer = checkpointing.Checkpointer(directory, async_save=False)
    checkpointer.save(2, state, {"identity": {"seed": 0}}, wait=True)
    checkpointer.close()
    storage.write_text(storage.join(partial, "_CHECKPOINT_METADATA"), "{}")
    storage.write_text(storage.join(partial, "state", "manifest.ocdbt"), "torn")

    checkpointer = checkpointing.Checkpointer(directory, async_save=False)
    assert checkpointer.latest_step() == 2
    restored, metadata, step = checkpointer.restore(_abstract(state))
    assert step == 2 and metadata == {"identity": {"seed": 0}}
    np.testing.assert_array_equal(restored["w"], state["w"])
    newer = {"w": state["w"] + 1, "b": state["b"] * 2}
    checkpointer.save(4, newer, {"identity": {"seed": 0}}, wait=True)
    assert checkpointer.latest_step() == 4
    restored, _, step = checkpointer.restore(_abstract(state))
    assert step == 4
    np.testing.assert_array_equal(restored["b"], newer["b"])
    checkpointer.close()


def _pretraining_data(inputs, outputs):
    return create_pretraining_data.run(create_pretraining_data.PretrainingDataConfig(
        input_files=tuple(inputs), output_files=tuple(outputs),
        vocab_file=str(bundled_uncased_vocab_file()), max_seq_length=32,
        max_predictions_per_seq=5, dupe_factor=2, num_workers=1, progress=False))


def test_create_pretraining_data_reads_and_writes_gcs(gcs, tmp_path):
    """Inputs matched by a gs:// pattern, outputs written to gs://: byte for byte what the same
    run writes locally."""
    (tmp_path / "corpus.txt").write_text(_TEXT)
    local_out = [str(tmp_path / f"local-{i}.tfrecord") for i in range(2)]
    _pretraining_data([str(tmp_path / "*.txt")], local_out)

    root = _fresh("pretraining")
    storage.write_text(f"{root}/corpus/corpus.txt", _TEXT)
    remote_out = [f"{root}/out/train-{i}.tfrecord" for i in range(2)]
    _pretraining_data([f"{root}/corpus/*.txt"], remote_out)
    assert storage.listdir(f"{root}/out") == ["train-0.tfrecord", "train-1.tfrecord"]
    for local, remote in zip(local_out, remote_out):
        assert storage.read_bytes(remote) == open(local, "rb").read()
    assert not os.path.exists("gs:")  # nothing went to a local folder named after the scheme


def test_tf_data_and_tensorboard_through_the_path_layer_on_ram(tmp_path):
    """TensorFlow's own IO (tf.data records, TensorBoard events) on a non-local scheme."""
    (tmp_path / "corpus.txt").write_text(_TEXT)
    local_out = [str(tmp_path / "local.tfrecord")]
    _pretraining_data([str(tmp_path / "corpus.txt")], local_out)
    root = f"ram://bertjax-{uuid.uuid4().hex[:8]}"
    storage.write_text(f"{root}/corpus/corpus.txt", _TEXT)
    _pretraining_data([f"{root}/corpus/*.txt"], [f"{root}/data/train.tfrecord"])
    assert storage.read_bytes(f"{root}/data/train.tfrecord") == open(local_out[0], "rb").read()

    def first_batch(pattern):
        dataset = pretraining_input.make_pretraining_dataset(
            pattern, 4, 32, 5, is_training=True, seed=3)
        return next(iter(dataset.as_numpy_iterator()))

    remote, local = first_batch(f"{root}/data/*.tfrecord"), first_batch(local_out[0])
    assert remote.keys() == local.keys()
    for key in local:
        np.testing.assert_array_equal(remote[key], local[key])

    workdir = f"{root}/run"
    logger = metric_logging.MetricLogger(workdir, 4, tensorboard=True)
    for step in range(1, 5):
        logger.write(step, {"loss": 10.0 - step})
    logger.close()
    # Resuming from step 2 drops later records from metrics.jsonl and TensorBoard alike.
    metric_logging.MetricLogger(workdir, 4, initial_step=2, tensorboard=True).close()
    assert [r["step"] for r in metric_logging.read_jsonl(f"{workdir}/metrics.jsonl")] == [1, 2]
    event_files = storage.glob(f"{workdir}/tensorboard/events.out.tfevents*")
    assert event_files
    steps = []
    for path in event_files:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            event = tf.compat.v1.Event.FromString(record)
            if event.HasField("summary"):
                steps.append(event.step)
    assert sorted(steps) == [1, 2]
    assert json.loads(storage.read_text(f"{workdir}/metrics.jsonl").splitlines()[0])["loss"] == 9


def test_the_training_loop_checks_its_workdir_before_anything_else(gcs, tmp_path):
    """The loop's first act: a file as workdir or a missing bucket fails naming the path (the
    program is never touched, so none is built here)."""
    from bertjax import trainer  # pylint: disable=import-outside-toplevel
    from experiments import pretrain_tiny  # pylint: disable=import-outside-toplevel

    config = pretrain_tiny.get_config("runlocal")
    blocker = tmp_path / "workdir"
    blocker.write_text("keep me")
    with pytest.raises(storage.StorageError, match=f"{blocker} is a file"):
        trainer.train(None, config, str(blocker))
    assert blocker.read_text() == "keep me"
    with pytest.raises(storage.StorageError, match="gs://no-such-bucket-here/run"):
        trainer.train(None, config, "gs://no-such-bucket-here/run")


def test_the_default_corpus_cache_must_be_local():
    from data_pipelines import corpora  # pylint: disable=import-outside-toplevel

    with pytest.raises(ValueError, match="gs://bucket/run/data must be a local folder.*"
                       "--config.data.cache_dir"):
        corpora.prepare_default_pretraining_data("gs://bucket/run/data")
    assert not os.path.exists("gs:")
