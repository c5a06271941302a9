"""The README's quickstart command, run as a new user runs it: in a fresh copy of the repository
(the files git tracks, nothing else), from its root, with the README's relative workdir.

Only the documented shortening flags (`--steps`, `--finetune_epochs`) differ from the README's
`python -m experiments.quickstart --workdir=workdirs/quickstart`; the full command runs in CI
(`.ci/run` runs `make quickstart` after the tests).
"""

import json
import os
import shutil
import subprocess
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _fresh_copy(target: str) -> None:
    """Copies what a clone holds: the tracked files (and untracked ones git does not ignore)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = os.path.join(REPO_ROOT, name)
        if not os.path.isfile(source):  # deleted in the work tree but still in the index
            continue
        os.makedirs(os.path.join(target, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(source, os.path.join(target, name))


def test_readme_quickstart_in_a_fresh_copy_with_its_relative_workdir(tmp_path):
    clone = str(tmp_path / "bertjax")
    _fresh_copy(clone)
    assert not os.path.exists(os.path.join(clone, "workdirs"))
    env = {**os.environ, "PYTHONPATH": clone}  # the copy's code, not this checkout's
    result = subprocess.run(
        [sys.executable, "-m", "experiments.quickstart", "--workdir=workdirs/quickstart",
         "--steps=4", "--finetune_epochs=0.2", "--seeds=2"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    workdir = os.path.join(clone, "workdirs", "quickstart")
    summary = json.loads(open(os.path.join(workdir, "summary.json")).read())
    assert summary["BERT-base parameters (with pooler / with heads)"] == "109,482,240 / 110,106,428"
    # Every stage wrote inside the relative workdir, under the copy: checkpoints, exports, data.
    assert sorted(os.listdir(os.path.join(workdir, "pretrain", "checkpoints"))) == ["4"]
    for stage in ("pretrain", "finetune_pretrained/seed_0", "finetune_pretrained/seed_1",
                  "finetune_scratch/seed_0", "finetune_scratch/seed_1", "finetune_minilm"):
        assert os.path.isfile(os.path.join(workdir, stage, "export", "config.json")), stage
    downstream = summary["downstream"]
    for arm in ("pretrained", "random_init"):
        assert downstream[arm]["seeds"] == 2 and len(downstream[arm]["scores"]) == 2
    # The quickstart's vocab is learned from the corpus, cached beside its TFRecords, and is
    # the vocab the pretrained export (hence its fine-tuning) carries.
    data = os.listdir(os.path.join(workdir, "data"))
    vocab = [name for name in data if name.startswith("default-corpus-vocab-")]
    assert len(vocab) == 1, data
    with open(os.path.join(workdir, "data", vocab[0])) as learned, open(
            os.path.join(workdir, "pretrain", "export", "vocab.txt")) as exported:
        assert learned.read() == exported.read()
    assert 0 < summary["unigram_baseline"]["accuracy"] < 0.2
    assert "bertjax quickstart summary" in result.stdout
