"""Benchmark: the original create_pretraining_data.py against ours, end to end, same corpus.

    python -m benchmarks.create_pretraining_data [--dupe_factor=5] [--num_workers=0]
        [--original_dir=PATH_TO_google-research/bert_CHECKOUT]

Corpus: the CPython 3.11 documentation's reST sources (`apt-get install python3.11-doc`),
converted to the documents format by data_pipelines/corpora.py; without them, the standard
library's docstrings. Both scripts run as fresh subprocesses with the same flags (S=128,
P=20) and are timed wall-clock, interpreter start and imports included. Prints JSON.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from benchmarks import original_bert
from data_pipelines import corpora

flags.DEFINE_integer("dupe_factor", 5, "Dupe factor for both scripts.")
flags.DEFINE_integer("max_seq_length", 128, "S.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "P.")
flags.DEFINE_integer("num_workers", 0, "Our worker processes (0: all cores).")
flags.DEFINE_string("original_dir", None,
                    "A checkout of github.com/google-research/bert: also time its "
                    "create_pretraining_data.py (about a minute). Without it, ours alone.")
FLAGS = flags.FLAGS

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(command):
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=_ROOT)
    return time.perf_counter() - start, result


def main(argv):
    del argv
    work = tempfile.mkdtemp(prefix="bench_cpd_")
    corpus = os.path.join(work, "corpus.txt")
    sources = corpora.python_docs_sources_dir()
    if sources:
        corpus_name = f"python3.11-doc reST ({sources})"
        counts = corpora.write_documents(corpora.rst_file_documents([sources]), corpus)
    else:
        corpus_name = "stdlib docstrings (python3.11-doc not installed)"
        counts = corpora.write_documents(corpora.stdlib_docstring_documents(), corpus)
    corpus_megabytes = os.path.getsize(corpus) / 1e6
    vocab_file = corpora.default_vocab_file()
    common = [
        f"--input_file={corpus}",
        f"--vocab_file={vocab_file}",
        "--do_lower_case",
        f"--max_seq_length={FLAGS.max_seq_length}",
        f"--max_predictions_per_seq={FLAGS.max_predictions_per_seq}",
        f"--dupe_factor={FLAGS.dupe_factor}",
        "--random_seed=12345",
    ]
    ours_seconds, ours_run = _timed(
        [
            sys.executable,
            "-m",
            "data_pipelines.create_pretraining_data",
            *common,
            f"--output_file={os.path.join(work, 'ours.tfrecord')}",
            f"--num_workers={FLAGS.num_workers}",
            "--noprogress",
        ]
    )
    summary = json.loads(ours_run.stdout)
    report = dict(
        corpus=corpus_name,
        corpus_megabytes=corpus_megabytes,
        documents=counts["documents"],
        sentences=counts["sentences"],
        dupe_factor=FLAGS.dupe_factor,
        max_seq_length=FLAGS.max_seq_length,
        cpu_count=os.cpu_count(),
        ours=dict(
            seconds=ours_seconds,
            instances=summary["instances"],
            instances_per_second=summary["instances"] / ours_seconds,
            megabytes_per_second=corpus_megabytes / ours_seconds,
            tokenize_seconds=summary["tokenize_seconds"],
            num_workers=summary["num_workers"],
        ),
    )
    if FLAGS.original_dir:
        original_seconds, original_run = _timed(original_bert.script_command(
            FLAGS.original_dir, "create_pretraining_data.py",
            [*common, f"--output_file={os.path.join(work, 'original.tfrecord')}"]))
        written = re.search(r"Wrote (\d+) total instances", original_run.stderr)
        original_instances = int(written.group(1)) if written else None
        report["original"] = dict(
            seconds=original_seconds,
            instances=original_instances,
            instances_per_second=original_instances / original_seconds if written else None,
            megabytes_per_second=corpus_megabytes / original_seconds,
        )
        report["speedup"] = original_seconds / ours_seconds
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
