"""Where training metrics go: TensorBoard, WORKDIR/metrics.jsonl and a console progress bar.

metrics.jsonl holds one JSON object per logged step (train and eval records, told apart by the
"split" key), so analysis scripts read it without TensorFlow. On resume, records after the
restored step are dropped before appending: they belonged to steps that will run again, and a
resumed run's file then reads exactly like an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
from typing import Mapping

import jax
from clu import metric_writers
from tqdm import tqdm


def read_jsonl(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricLogger:
    """Writes scalars to TensorBoard and metrics.jsonl (process 0 only) and drives the bar."""

    def __init__(self, workdir: str, total_steps: int, initial_step: int = 0):
        self.is_main = jax.process_index() == 0
        os.makedirs(workdir, exist_ok=True)
        self.writer = metric_writers.create_default_writer(
            os.path.join(workdir, "tensorboard"), just_logging=not self.is_main)
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        if self.is_main:
            self._truncate_after(initial_step)
        self.bar = tqdm(total=total_steps, initial=initial_step, unit="step",
                        disable=not self.is_main, dynamic_ncols=True, mininterval=1.0)

    def _truncate_after(self, step: int) -> None:
        if not os.path.exists(self.jsonl_path):
            return
        kept = [r for r in read_jsonl(self.jsonl_path) if r.get("step", 0) <= step]
        with open(self.jsonl_path, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)

    def write(self, step: int, scalars: Mapping[str, float], split: str = "train") -> None:
        scalars = {k: float(v) for k, v in scalars.items()}
        prefix = "" if split == "train" else f"{split}_"
        self.writer.write_scalars(step, {prefix + k: v for k, v in scalars.items()})
        if self.is_main:
            with open(self.jsonl_path, "a") as f:
                f.write(json.dumps({"step": step, "split": split, **scalars}) + "\n")
        if split == "train" and "loss" in scalars:
            self.bar.set_postfix(loss=f"{scalars['loss']:.4f}", refresh=False)

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def close(self) -> None:
        self.writer.flush()
        self.bar.close()
