"""Where training metrics go: WORKDIR/metrics.jsonl, TensorBoard and a console progress bar.

metrics.jsonl holds one JSON object per logged step (train and eval records, told apart by the
"split" key), so analysis scripts read it without TensorFlow. A metric may be a vector (one
value per seed of a stability sweep): metrics.jsonl keeps the list, TensorBoard its mean.

Resume keeps the history exact and safe:
  * records after the restored step belonged to steps that will run again: they are dropped, by
    writing the kept records to a temporary file and renaming it over metrics.jsonl, so a kill
    at any moment leaves either the old or the new file, never a truncated one;
  * a torn last line (a kill in the middle of an append) is dropped with a warning instead of
    blocking every later resume;
  * TensorBoard events after the restored step are dropped the same way (the event files are
    rewritten without them), so curves show each step once.

Every path goes through data_pipelines.storage (local, gs://, ram://). Object stores cannot
append, so there the whole file is rewritten at each write (it is small: one line per log step).
Only process 0 writes; every process drives the same calls.
"""

from __future__ import annotations

import json
import logging
from typing import Mapping

import jax
import numpy as np
from tqdm import tqdm

from data_pipelines import storage


def _parse_lines(text: str, path: str) -> list[dict]:
    records = []
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines) and not text.endswith("\n"):
                logging.warning("%s: dropping a torn last line (%d characters; a run was killed "
                                "while writing it)", path, len(line))
                continue
            raise ValueError(f"{path}: line {number} is not JSON ({error})") from error
    return records


def read_jsonl(path: str) -> list[dict]:
    """The records of a metrics.jsonl (a torn last line is skipped)."""
    return _parse_lines(storage.read_text(path), path)


def _to_json_value(value):
    array = np.asarray(value)
    if array.ndim == 0:
        return float(array)
    return array.astype(float).tolist()


class MetricLogger:
    """Writes scalars to metrics.jsonl and TensorBoard (process 0 only) and drives the bar.

    Args:
      workdir: the run's folder (any scheme the path layer serves).
      total_steps: for the progress bar.
      initial_step: the step the run resumes from (0 for a fresh run): later records are dropped.
      tensorboard: also write TensorBoard events under WORKDIR/tensorboard.
    """

    def __init__(self, workdir: str, total_steps: int, initial_step: int = 0, *,
                 tensorboard: bool = True):
        self.is_main = jax.process_index() == 0
        self.jsonl_path = storage.join(workdir, "metrics.jsonl")
        self._remote = storage.is_remote(workdir)
        self._records: list[dict] = []
        self.writer = None
        if self.is_main:
            storage.makedirs(workdir)
            self._records = self._kept_records(initial_step)
            if tensorboard:
                tensorboard_dir = storage.join(workdir, "tensorboard")
                if initial_step and storage.isdir(tensorboard_dir):
                    _drop_events_after(tensorboard_dir, initial_step)
                from clu import metric_writers  # pylint: disable=import-outside-toplevel

                self.writer = metric_writers.SummaryWriter(tensorboard_dir)
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step",
                        disable=not self.is_main, dynamic_ncols=True, mininterval=1.0)

    def _kept_records(self, step: int) -> list[dict]:
        if not storage.exists(self.jsonl_path):
            return []
        records = read_jsonl(self.jsonl_path)
        kept = [r for r in records if r.get("step", 0) <= step]
        if kept != records or not storage.read_text(self.jsonl_path).endswith("\n"):
            storage.write_text(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def write(self, step: int, scalars: Mapping[str, object], split: str = "train") -> None:
        """Logs `scalars` (floats, or vectors: one value per seed) at `step`."""
        values = {k: _to_json_value(v) for k, v in scalars.items()}
        record = {"step": step, "split": split, **values}
        if self.is_main:
            self._records.append(record)
            if self._remote:
                storage.write_text(self.jsonl_path,
                                   "".join(json.dumps(r) + "\n" for r in self._records))
            else:
                with storage.open(self.jsonl_path, "a") as writer:
                    writer.write(json.dumps(record) + "\n")
            if self.writer is not None:
                prefix = "" if split == "train" else f"{split}_"
                self.writer.write_scalars(step, {prefix + k: float(np.mean(v))
                                                 for k, v in values.items()})
        if split == "train" and "loss" in values:
            self.bar.set_postfix(loss=f"{float(np.mean(values['loss'])):.4f}", refresh=False)

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        self.bar.close()


def _drop_events_after(tensorboard_dir: str, step: int) -> None:
    """Rewrites the event files under `tensorboard_dir` without events of steps > `step`.

    Each file is replaced atomically (temporary file, then rename); files left with no scalar
    events are removed.
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorboard.compat.proto import event_pb2  # pylint: disable=import-outside-toplevel

    paths = [p for p in storage.glob(storage.join(tensorboard_dir, "events.out.tfevents*"))
             if ".tmp-" not in p]
    for path in paths:
        kept, dropped = [], 0
        try:
            for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
                event = event_pb2.Event.FromString(record)
                if event.step > step and event.HasField("summary"):
                    dropped += 1
                else:
                    kept.append(record)
        except tf.errors.DataLossError:  # a torn last event (a kill mid-write): drop it
            dropped += 1
        if not dropped:
            continue
        temporary = f"{path}.tmp-rewrite"
        with tf.io.TFRecordWriter(temporary) as writer:
            for record in kept:
                writer.write(record)
        storage.rename(temporary, path)
        logging.info("%s: dropped %d TensorBoard events after step %d", path, dropped, step)
