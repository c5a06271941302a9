"""The README's main job, shortened: every stage runs and the summary has every row."""

import json
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_quickstart_runs_end_to_end(tmp_path):
    workdir = tmp_path / "quickstart"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.quickstart", f"--workdir={workdir}", "--steps=40",
         "--finetune_epochs=1"],
        capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["BERT-base parameters (with pooler / with heads)"] == "109,482,240 / 110,106,428"
    first, last = (float(x) for x in summary["pretraining MLM loss, first -> last log"].split(" -> "))
    assert last < first
    for key in ("tiny, pretrained here", "tiny, random init"):
        assert 0.0 <= float(summary[f"docstring topics dev accuracy: {key}"]) <= 1.0
    # The real checkpoint learns the task in one epoch (majority baseline 0.205; 0.626 measured).
    assert float(summary["docstring topics dev accuracy: MiniLM (real checkpoint)"]) > 0.4
    assert "bertjax quickstart summary" in result.stdout
