"""Tables and plots of a stability sweep (the JSON files `experiments.stability.sweep` writes).

    python -m experiments.stability.analyze --workdir=WORKDIR [--out_dir=WORKDIR/analysis]

Writes to out_dir:
  summary.json       one object per (task, arm): arm, task, metric, n_seeds, mean, std, median,
                     max, min, failed_runs, majority_baseline, nonfinite_runs. Scores in percent
                     (x 100, as the papers' tables, MCC included); std is the population std
                     (numpy's default, ddof=0).
  summary.md         the same as a markdown table.
  scores.png         per task, a box plot with every seed's score drawn on it, per arm; the
                     dashed line is the majority-class baseline.
  grad_norms_<task>.png  per arm (rows) and layer group (columns): the gradient norm of every
                     seed over the training steps, failed runs in red, successful in blue: Mosbach
                     et al.'s diagnosis (failed runs' lower-layer gradients vanish early on).

A run FAILED when its final dev score is at or below the majority-class baseline (Mosbach et
al. 2021: RTE 52.7% accuracy, MRPC 81.2 F1, CoLA MCC 0).
"""

from __future__ import annotations

import io
import json
from typing import Sequence

import numpy as np

from data_pipelines import storage

# Scores equal to the baseline up to float round-off count as failed (an all-majority run
# reproduces the baseline exactly, but accuracies are ratios of integers computed in floats).
_TIE_TOLERANCE = 1e-9


def failed_mask(scores: Sequence[float], majority_baseline: float) -> np.ndarray:
    """Per score: at or below the majority-class baseline (same units), i.e. a failed run."""
    return np.asarray(scores, dtype=float) <= majority_baseline + _TIE_TOLERANCE


def failed_runs(scores: Sequence[float], majority_baseline: float) -> int:
    """Number of scores at or below the majority-class baseline (same units)."""
    return int(np.sum(failed_mask(scores, majority_baseline)))


def load_arms(workdir: str) -> list[dict]:
    """Every WORKDIR/<task>/<arm>.json, sorted by task then arm as the sweep's ARMS order."""
    from experiments.stability.arms import ARMS  # pylint: disable=import-outside-toplevel
    paths = storage.glob(storage.join(workdir, "*", "*.json"))
    arms = []
    for path in paths:
        arm = json.loads(storage.read_text(path))
        if not {"task", "arm", "records", "majority_baseline", "primary_metric"} <= set(arm):
            continue  # not a sweep file (e.g. an analysis output kept in the workdir)
        if not arm["records"]:
            raise ValueError(f"{path}: no finished seeds yet")
        arm["path"] = path
        arms.append(arm)
    if not arms:
        raise ValueError(f"no sweep results (WORKDIR/<task>/<arm>.json) under {workdir}")
    order = {name: i for i, name in enumerate(ARMS)}
    return sorted(arms, key=lambda a: (a["task"], order.get(a["arm"], len(order)), a["arm"]))


def scores_of(arm: dict) -> np.ndarray:
    """Per-seed primary scores of one arm, in percent."""
    metric = arm["primary_metric"]
    try:
        return np.asarray([100 * r["dev_metrics"][metric] for r in arm["records"]])
    except KeyError as e:
        raise ValueError(f"{arm['path']}: a record has no dev metric {metric!r}") from e


def summarise(arm: dict) -> dict:
    """The summary row of one arm (see the module docstring)."""
    scores = scores_of(arm)
    baseline = 100 * arm["majority_baseline"][arm["primary_metric"]]
    return {
        "task": arm["task"], "arm": arm["arm"], "metric": arm["primary_metric"],
        "n_seeds": int(scores.size), "mean": float(np.mean(scores)),
        "std": float(np.std(scores)), "median": float(np.median(scores)),
        "max": float(np.max(scores)), "min": float(np.min(scores)),
        "failed_runs": failed_runs(scores, baseline), "majority_baseline": baseline,
        "nonfinite_runs": int(sum(r["nonfinite_step"] >= 0 for r in arm["records"])),
        "num_train_steps": int(arm["num_train_steps"]),
    }


def markdown_table(rows: Sequence[dict]) -> str:
    lines = ["| task | arm | metric | n | mean | std | median | max | min | failed | majority |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['arm']} | {row['metric']} | {row['n_seeds']} | "
            f"{row['mean']:.1f} | {row['std']:.1f} | {row['median']:.1f} | {row['max']:.1f} | "
            f"{row['min']:.1f} | {row['failed_runs']} | {row['majority_baseline']:.1f} |")
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib  # pylint: disable=import-outside-toplevel
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
    return plt


def plot_scores(arms: Sequence[dict], path: str) -> None:
    """Box plot plus every seed's score (jittered strip), per arm, one panel per task."""
    plt = _pyplot()
    task_names = sorted({arm["task"] for arm in arms})
    fig, axes = plt.subplots(1, len(task_names), figsize=(4.5 * len(task_names), 4),
                             squeeze=False)
    jitter = np.random.default_rng(0)
    for ax, task in zip(axes[0], task_names):
        task_arms = [arm for arm in arms if arm["task"] == task]
        data = [scores_of(arm) for arm in task_arms]
        ax.boxplot(data, showfliers=False)
        for position, scores in enumerate(data, start=1):
            ax.scatter(position + jitter.uniform(-0.12, 0.12, scores.size), scores, s=14,
                       alpha=0.7, zorder=3)
        baseline = 100 * task_arms[0]["majority_baseline"][task_arms[0]["primary_metric"]]
        ax.axhline(baseline, color="gray", linestyle="--", label="majority baseline")
        ax.set_xticks(range(1, len(task_arms) + 1), [arm["arm"] for arm in task_arms])
        ax.set_title(f"{task}: {len(data[0])} seeds per arm")
        ax.set_ylabel(f"dev {task_arms[0]['primary_metric']} (%)")
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    _save_figure(fig, path, dpi=110)
    plt.close(fig)


def _groups_to_plot(groups: Sequence[str]) -> list[str]:
    """Embeddings, lowest, middle and top encoder layers, pooler, head: Mosbach's panels."""
    layers = [g for g in groups if g.startswith("layer_")]
    picked = ["embeddings"] + sorted({layers[0], layers[len(layers) // 2], layers[-1]},
                                     key=layers.index) if layers else ["embeddings"]
    return picked + [g for g in groups if not g.startswith("layer_") and g != "embeddings"]


def plot_grad_norms(arms: Sequence[dict], path: str) -> None:
    """Gradient-norm traces of failed (red) vs successful (blue) seeds, per arm and group."""
    plt = _pyplot()
    groups = _groups_to_plot(list(arms[0]["records"][0]["grad_norms"]))
    fig, axes = plt.subplots(len(arms), len(groups), figsize=(2.6 * len(groups), 2.3 * len(arms)),
                             squeeze=False, sharex="row")
    for row, arm in enumerate(arms):
        baseline = 100 * arm["majority_baseline"][arm["primary_metric"]]
        steps = arm["grad_norm_steps"]
        failed_count = 0
        for record, failed in zip(arm["records"], failed_mask(scores_of(arm), baseline)):
            failed_count += failed
            for col, group in enumerate(groups):
                axes[row, col].plot(steps, record["grad_norms"][group],
                                    color="tab:red" if failed else "tab:blue",
                                    alpha=0.8 if failed else 0.4, linewidth=0.8)
        for col, group in enumerate(groups):
            ax = axes[row, col]
            ax.set_yscale("log")
            ax.tick_params(labelsize=7)
            if row == 0:
                ax.set_title(group, fontsize=9)
            if row == len(arms) - 1:
                ax.set_xlabel("step", fontsize=8)
        axes[row, 0].set_ylabel(f"{arm['arm']}\n{failed_count} failed / {len(arm['records'])}",
                                fontsize=8)
    fig.suptitle(f"{arms[0]['task']}: gradient norm per layer group (red: failed runs, "
                 "blue: successful)", fontsize=10)
    # Keep 0.4 inch on top for the title, whatever the number of rows.
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    _save_figure(fig, path, dpi=70)  # hundreds of traces: keep the file small
    plt.close(fig)


def _save_figure(fig, path: str, dpi: int) -> None:
    """Renders `fig` as PNG and writes it atomically through the path layer (any scheme)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    storage.write_bytes(path, buffer.getvalue())


def analyze(workdir: str, out_dir: str | None = None) -> list[dict]:
    """Writes summary.json, summary.md, scores.png and grad_norms_<task>.png; returns the rows."""
    out_dir = out_dir or storage.join(workdir, "analysis")
    storage.makedirs(out_dir)
    arms = load_arms(workdir)
    rows = [summarise(arm) for arm in arms]
    storage.write_text(storage.join(out_dir, "summary.json"), json.dumps(rows, indent=2) + "\n")
    storage.write_text(storage.join(out_dir, "summary.md"), markdown_table(rows))
    plot_scores(arms, storage.join(out_dir, "scores.png"))
    for task in sorted({arm["task"] for arm in arms}):
        plot_grad_norms([arm for arm in arms if arm["task"] == task],
                        storage.join(out_dir, f"grad_norms_{task}.png"))
    return rows


def main(argv):
    del argv
    from absl import flags  # pylint: disable=import-outside-toplevel
    rows = analyze(flags.FLAGS.workdir, flags.FLAGS.out_dir)
    print(markdown_table(rows))


if __name__ == "__main__":
    from absl import app, flags
    flags.DEFINE_string("workdir", None, "The sweep's workdir (WORKDIR/<task>/<arm>.json).")
    flags.DEFINE_string("out_dir", None, "Where the outputs go (default WORKDIR/analysis).")
    flags.mark_flags_as_required(["workdir"])
    app.run(main)
