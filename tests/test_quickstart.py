"""The README's main job, shortened: every stage runs and the summary has every row."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path):
    workdir = tmp_path / "quickstart"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.quickstart", f"--workdir={workdir}", "--steps=40",
         "--finetune_epochs=1", "--seeds=2", "--train_per_topic=60"],
        capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["BERT-base parameters (with pooler / with heads)"] == "109,482,240 / 110,106,428"
    first, last = (float(x) for x in summary["pretraining MLM loss, first -> last log"].split(" -> "))
    assert last < first
    downstream = summary["downstream"]
    for arm in ("pretrained", "random_init"):
        scores = downstream[arm]["scores"]
        assert downstream[arm]["seeds"] == 2 and all(0.0 <= x <= 1.0 for x in scores)
        assert downstream[arm]["mean"] == pytest.approx(np.mean(scores))
        assert downstream[arm]["std"] == pytest.approx(np.std(scores, ddof=1))
    # The p-value is scipy's one-sided Welch test on the stored scores (None if all equal).
    if downstream["p_value"] is not None:
        assert downstream["p_value"] == pytest.approx(stats.ttest_ind(
            downstream["pretrained"]["scores"], downstream["random_init"]["scores"],
            equal_var=False, alternative="greater").pvalue)
    baseline = summary["unigram_baseline"]
    assert 0.0 < baseline["accuracy"] < 0.2 and baseline["loss"] > 3.0
    # The real checkpoint learns the task in one epoch of 60 paragraphs per topic (majority
    # baseline 0.205; 0.626 measured).
    assert float(summary["docstring topics dev accuracy: MiniLM (real checkpoint)"]) > 0.4
    assert "bertjax quickstart summary" in result.stdout
