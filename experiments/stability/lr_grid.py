"""A learning-rate x optimizer grid of stability sweeps: where do fine-tuning runs break?

Mosbach et al. (2021) trace failed fine-tuning runs (stuck at the majority class) to the
optimizer (Adam without bias correction, `devlin`) and too few iterations, with the failure
rate rising with the learning rate. This runs one stability sweep (experiments.stability.sweep:
N seeds per arm, K seeds per compiled program) per learning rate and puts them side by side:

    python -m experiments.stability.lr_grid \
        --config=experiments/stability/minilm_docstrings.py:arm=devlin+adamw_3ep,seeds=10 \
        --learning_rates=2e-5,1e-4,3e-4,1e-3,3e-3 --workdir=WORKDIR
    python -m experiments.stability.lr_grid --analyze --workdir=WORKDIR[,WORKDIR2...] \
        --out_dir=OUT

Each learning rate is a sweep workdir of its own (WORKDIR/lr_<rate>/<task>/<arm>.json), so the
grid resumes seed by seed like a sweep, and cells (another arm, another rate, more seeds) can be
added by later runs. The analysis reads any number of grid workdirs (e.g. one per task) and
writes to OUT:

  summary.json   one row per task x arm x learning rate: task, arm, learning_rate, seeds,
                 failed (final dev score at or below the majority baseline), failure_rate with
                 its exact (Clopper-Pearson) 95% binomial interval failure_ci, mean, std (population),
                 median, min, max (percent), best_mean / best_std (each seed's best evaluation
                 over training: the best checkpoint), last_minus_best (mean over seeds, <= 0),
                 nonfinite, majority_baseline, num_train_steps, and late_training: for the
                 failed and the successful seeds apart, Mosbach et al.'s diagnosis in numbers
                 (`late_training`).
  summary.md     the same as markdown tables (scores; late-training gradient norms).
  failure_rate.png          per task: failure rate against learning rate, one line per arm,
                            with the binomial intervals.
  last_vs_best.png          per task: mean final and mean best dev score against learning rate.
  grad_norms_<task>.png     per cell with failed runs (and the next lower rate of that arm, for
                            comparison): per-layer gradient norms of every seed over the first
                            steps, failed runs red (Mosbach et al.'s diagnosis: vanishing
                            gradients in the lower layers of failed runs).
"""

from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from data_pipelines import storage
from experiments.stability import analyze


def rate_dir(workdir: str, learning_rate: float) -> str:
    """The sweep workdir of one learning rate."""
    return storage.join(workdir, f"lr_{learning_rate:g}")


def run_grid(config, learning_rates: Sequence[float], workdir: str) -> list[str]:
    """Runs the sweep of `config` (every arm of config.sweep.arms) at each learning rate."""
    # pylint: disable=import-outside-toplevel
    from experiments.stability import arms
    from experiments.stability import sweep as stability_sweep
    if not learning_rates or not all(rate > 0 for rate in learning_rates):
        raise ValueError(f"learning rates must be positive numbers, got {learning_rates}")
    bert_config, pretrained_bert, data = stability_sweep.load_inputs(config)  # once for all
    paths = []
    for rate in learning_rates:
        cell = type(config)(config.to_dict())
        cell.optimizer.learning_rate = float(rate)
        paths += [stability_sweep.run_arm(arms.arm_config(cell, arm), data, bert_config,
                                          pretrained_bert, rate_dir(workdir, rate))
                  for arm in cell.sweep.arms]
    return paths


def load_grid(workdirs: Sequence[str]) -> list[dict]:
    """Every sweep file under WORKDIR/lr_*/ of each grid workdir, with its learning rate."""
    cells = []
    for workdir in workdirs:
        folders = storage.glob(storage.join(workdir, "lr_*"))
        if not folders:
            raise ValueError(f"no learning-rate folders (lr_<rate>) under {workdir}")
        for folder in folders:
            for arm in analyze.load_arms(folder):
                arm["learning_rate"] = float(arm["config"]["optimizer"]["learning_rate"])
                cells.append(arm)
    return sorted(cells, key=lambda a: (a["task"], a["arm"], a["learning_rate"]))


def best_scores(arm: dict) -> np.ndarray:
    """Per-seed best dev score over the evaluations during training (percent)."""
    metric = arm["primary_metric"]
    best = []
    for record in arm["records"]:
        history = record.get("dev_history", {}).get(metric)
        if not history:
            raise ValueError(f"{arm['path']}: run seed {record['run_seed']} has no dev_history "
                             "(the sweep ran with sweep.dev_evals_per_epoch=0)")
        best.append(100 * max(history))
    return np.asarray(best)


def failure_interval(failed: int, seeds: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval of a failure rate from `failed` of `seeds` runs."""
    from scipy import stats  # pylint: disable=import-outside-toplevel
    interval = stats.binomtest(failed, seeds).proportion_ci(confidence_level=confidence,
                                                            method="exact")
    return float(interval.low), float(interval.high)


def late_training(arm: dict, last_losses: int = 5) -> dict:
    """{"failed": ..., "successful": ...} (a side with no seeds left out), each {seeds,
    grad_norms: {group: median over the side's seeds of each seed's median gradient norm over
    the recorded steps of the second half of training}, final_loss: mean over the side's seeds
    of the mean training loss of the last `last_losses` steps}. Vanishing lower-layer norms
    in failed runs only are Mosbach et al.'s (2021) diagnosis; a final loss still at the
    uniform-prediction value (ln C) with healthy norms is a run that has not trained yet."""
    late = np.asarray(arm["grad_norm_steps"]) >= arm["num_train_steps"] // 2
    baseline = 100 * arm["majority_baseline"][arm["primary_metric"]]
    failed = analyze.failed_mask(analyze.scores_of(arm), baseline)
    sides = {}
    for side, chosen in (("failed", failed), ("successful", ~failed)):
        records = [record for record, keep in zip(arm["records"], chosen) if keep]
        if not records:
            continue
        sides[side] = {
            "seeds": len(records),
            "grad_norms": {group: float(np.median([
                np.median(np.asarray(record["grad_norms"][group])[late]) for record in records]))
                for group in records[0]["grad_norms"]},
            "final_loss": float(np.mean([np.mean(record["train_loss"][-last_losses:])
                                         for record in records])),
        }
    return sides


def grid_row(arm: dict) -> dict:
    """The summary row of one cell (see the module docstring)."""
    base = analyze.summarise(arm)
    last, best = analyze.scores_of(arm), best_scores(arm)
    seeds, failed = base["n_seeds"], base["failed_runs"]
    return {
        "task": base["task"], "arm": base["arm"], "learning_rate": arm["learning_rate"],
        "seeds": seeds, "failed": failed, "failure_rate": failed / seeds,
        "failure_ci": list(failure_interval(failed, seeds)),
        "mean": base["mean"], "std": base["std"], "median": base["median"],
        "min": base["min"], "max": base["max"],
        "best_mean": float(np.mean(best)), "best_std": float(np.std(best)),
        "last_minus_best": float(np.mean(last - best)),
        "nonfinite": base["nonfinite_runs"], "majority_baseline": base["majority_baseline"],
        "metric": base["metric"], "num_train_steps": base["num_train_steps"],
        "late_training": late_training(arm),
    }


def markdown_table(rows: Sequence[dict]) -> str:
    lines = ["| task | arm | lr | steps | seeds | failed | failure rate (95% CI) | mean | std | "
             "min | max | best-checkpoint mean | last - best |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        low, high = row["failure_ci"]
        lines.append(
            f"| {row['task']} | {row['arm']} | {row['learning_rate']:g} | "
            f"{row['num_train_steps']} | {row['seeds']} | {row['failed']} | "
            f"{row['failure_rate']:.0%} ({low:.0%}-{high:.0%}) | {row['mean']:.1f} | "
            f"{row['std']:.1f} | {row['min']:.1f} | {row['max']:.1f} | {row['best_mean']:.1f} | "
            f"{row['last_minus_best']:.1f} |")
    lines += ["", "Late in training (second half; median over seeds of each seed's median "
              "gradient norm), failed and successful seeds apart:", "",
              "| task | arm | lr | seeds | embeddings | layer_0 | top layer | classifier | "
              "final loss |", "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        for side, late in row["late_training"].items():
            norms = late["grad_norms"]
            top = max((g for g in norms if g.startswith("layer_")),
                      key=lambda g: int(g.split("_")[1]))
            lines.append(
                f"| {row['task']} | {row['arm']} | {row['learning_rate']:g} | "
                f"{late['seeds']} {side} | {norms['embeddings']:.2g} | {norms['layer_0']:.2g} | "
                f"{norms[top]:.2g} | {norms['classifier']:.2g} | {late['final_loss']:.3f} |")
    return "\n".join(lines) + "\n"


def _task_panels(rows: Sequence[dict], path: str, draw) -> None:
    """One panel per task; `draw(ax, task, {arm: rows sorted by rate})` fills each; saved."""
    grouped: dict[str, dict[str, list[dict]]] = {}
    for row in sorted(rows, key=lambda r: r["learning_rate"]):
        grouped.setdefault(row["task"], {}).setdefault(row["arm"], []).append(row)
    plt = analyze._pyplot()  # pylint: disable=protected-access
    fig, axes = plt.subplots(1, len(grouped), figsize=(5 * len(grouped), 3.8), squeeze=False)
    for ax, (task, arms) in zip(axes[0], sorted(grouped.items())):
        draw(ax, task, dict(sorted(arms.items())))
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate")
    fig.tight_layout()
    analyze._save_figure(fig, path, dpi=110)  # pylint: disable=protected-access
    plt.close(fig)


def plot_failure_rates(rows: Sequence[dict], path: str) -> None:
    """Failure rate (with its binomial interval) against learning rate, per arm and task."""
    def draw(ax, task, arms):
        for offset, (arm, cells) in enumerate(arms.items()):
            rates = np.asarray([r["learning_rate"] for r in cells])
            shift = rates * 1.06 ** (offset - (len(arms) - 1) / 2)  # keep error bars apart
            value = np.asarray([r["failure_rate"] for r in cells])
            low = np.asarray([r["failure_ci"][0] for r in cells])
            high = np.asarray([r["failure_ci"][1] for r in cells])
            ax.errorbar(shift, value, yerr=[value - low, high - value], marker="o", capsize=3,
                        label=f"{arm} ({cells[0]['num_train_steps']} steps)")
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel("failed runs (at or below majority)")
        seeds = sorted({r["seeds"] for cells in arms.values() for r in cells})
        ax.set_title(f"{task}: {'/'.join(map(str, seeds))} seeds per cell, 95% CI")
        ax.legend(fontsize=8)
    _task_panels(rows, path, draw)


def plot_last_vs_best(rows: Sequence[dict], path: str) -> None:
    """Mean final (solid) and mean best-checkpoint (dashed) dev score against learning rate."""
    def draw(ax, task, arms):
        for index, (arm, cells) in enumerate(arms.items()):
            rates = [r["learning_rate"] for r in cells]
            ax.plot(rates, [r["mean"] for r in cells], marker="o", color=f"C{index}",
                    label=f"{arm}: last")
            ax.plot(rates, [r["best_mean"] for r in cells], marker="x", linestyle="--",
                    color=f"C{index}", label=f"{arm}: best checkpoint")
        first = next(iter(arms.values()))[0]
        ax.axhline(first["majority_baseline"], color="gray", linestyle=":",
                   label="majority baseline")
        ax.set_ylabel(f"mean dev {first['metric']} (%)")
        ax.set_title(task)
        ax.legend(fontsize=7)
    _task_panels(rows, path, draw)


def cells_to_diagnose(cells: Sequence[dict], rows: Sequence[dict]) -> list[dict]:
    """Per task: every cell with failed runs, plus, for each arm that has one, its highest
    rate without failures (the healthy comparison), labelled with arm and rate."""
    picked = []
    rows = {id(cell): row for cell, row in zip(cells, rows)}  # grid_row of each cell
    for task in sorted({cell["task"] for cell in cells}):
        for arm in sorted({cell["arm"] for cell in cells if cell["task"] == task}):
            ladder = sorted((c for c in cells if c["task"] == task and c["arm"] == arm),
                            key=lambda c: c["learning_rate"])
            failing = [c for c in ladder if rows[id(c)]["failed"]]
            if not failing:
                continue
            healthy = [c for c in ladder if not rows[id(c)]["failed"]
                       and c["learning_rate"] < failing[0]["learning_rate"]]
            for cell in healthy[-1:] + failing:
                picked.append({**cell, "arm": f"{arm} lr={cell['learning_rate']:g}"})
    return picked


def analyze_grid(workdirs: Sequence[str], out_dir: str) -> list[dict]:
    """Writes the outputs listed in the module docstring; returns the summary rows."""
    cells = load_grid(workdirs)
    rows = [grid_row(cell) for cell in cells]
    storage.makedirs(out_dir)
    storage.write_text(storage.join(out_dir, "summary.json"), json.dumps(rows, indent=2) + "\n")
    storage.write_text(storage.join(out_dir, "summary.md"), markdown_table(rows))
    plot_failure_rates(rows, storage.join(out_dir, "failure_rate.png"))
    plot_last_vs_best(rows, storage.join(out_dir, "last_vs_best.png"))
    diagnosed = cells_to_diagnose(cells, rows)
    for task in sorted({cell["task"] for cell in diagnosed}):
        analyze.plot_grad_norms([c for c in diagnosed if c["task"] == task],
                                storage.join(out_dir, f"grad_norms_{task}.png"))
    return rows


def main(argv):
    del argv
    from absl import flags  # pylint: disable=import-outside-toplevel
    from absl import logging  # pylint: disable=import-outside-toplevel
    from bertjax import launch  # pylint: disable=import-outside-toplevel
    logging.set_verbosity(logging.INFO)
    config = flags.FLAGS.config
    workdirs = [w for w in flags.FLAGS.workdir.split(",") if w]
    if not flags.FLAGS.analyze:
        if config is None or len(workdirs) != 1:
            raise app.UsageError("a grid run needs --config and one --workdir")
        launch.initialize()
        rates = [float(r) for r in flags.FLAGS.learning_rates.split(",") if r]
        logging.info("wrote %s", run_grid(config, rates, workdirs[0]))
        return
    out_dir = flags.FLAGS.out_dir or storage.join(workdirs[0], "analysis")
    print(markdown_table(analyze_grid(workdirs, out_dir)))


if __name__ == "__main__":
    from absl import app, flags
    from ml_collections import config_flags

    from bertjax import launch  # noqa: F401  (defines the multi-host flags)
    config_flags.DEFINE_config_file("config", None, "A stability sweep config file.")
    flags.DEFINE_string("workdir", None, "The grid's workdir (analysis: a comma list).")
    flags.DEFINE_string("learning_rates", "2e-5,1e-4,3e-4,1e-3,3e-3",
                        "Comma list of peak learning rates.")
    flags.DEFINE_bool("analyze", False, "Analyse the grid workdirs instead of running.")
    flags.DEFINE_string("out_dir", None, "Where the analysis goes (default WORKDIR/analysis).")
    flags.mark_flags_as_required(["workdir"])
    app.run(main)
