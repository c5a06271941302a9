"""Benchmark: the Beam pipeline against create_pretraining_data --num_workers, same corpus.

    python -m benchmarks.beam_pretraining_data [--dupe_factor=10] [--num_workers=2]

Corpus: the CPython 3.11 documentation's reST sources when installed, else the standard
library's docstrings (data_pipelines/corpora.py), repeated --copies times and cut into
--num_files files. Runs, each a
fresh subprocess timed wall-clock (interpreter start, imports and Beam's start-up included):

* single: `python -m data_pipelines.create_pretraining_data --num_workers=N`;
* beam_1: `python -m data_pipelines.beam_pretraining_data --runner=FnApiRunner` (the
  DirectRunner's batch engine, in memory, one worker);
* beam_N: the same with --direct_num_workers=N --direct_running_mode=multi_processing.

Per run: seconds, instances/s, and input MB and tokens per core-second (seconds x processes),
the figure the README's Dataflow/Flink cost estimate scales. Prints JSON.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

from data_pipelines import corpora

flags.DEFINE_integer("dupe_factor", 10, "Dupe factor for every run.")
flags.DEFINE_integer("num_workers", 2, "Processes for the parallel runs.")
flags.DEFINE_integer("num_files", 8, "Input files the corpus is cut into.")
flags.DEFINE_integer("copies", 4, "Times the corpus documents are repeated (a larger corpus "
                     "makes start-up a smaller share of the time).")
FLAGS = flags.FLAGS

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _timed(command):
    environment = dict(os.environ, PYTHONPATH=_ROOT)  # Beam's worker processes import us.
    start = time.perf_counter()
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=_ROOT, env=environment
    )
    seconds = time.perf_counter() - start
    if result.returncode:
        raise RuntimeError(f"{command} failed:\n{result.stderr[-4000:]}")
    return seconds, json.loads(result.stdout[result.stdout.index("{") :])


def _output_bytes(summary):
    files = summary.get("output_files", [])
    return sum(os.path.getsize(path) for path in files)


def _split_corpus(documents, folder, num_files):
    documents = list(documents)
    paths = []
    for k in range(num_files):
        path = os.path.join(folder, f"part-{k:03d}.txt")
        corpora.write_documents(documents[k::num_files], path)
        paths.append(path)
    return paths


def main(argv):
    del argv
    work = tempfile.mkdtemp(prefix="bench_beam_")
    sources = corpora.python_docs_sources_dir()
    if sources:
        corpus_name = f"python3.11-doc reST ({sources})"
        documents = corpora.rst_file_documents([sources])
    else:
        corpus_name = "stdlib docstrings (python3.11-doc not installed)"
        documents = corpora.stdlib_docstring_documents()
    paths = _split_corpus(
        list(documents) * FLAGS.copies, os.path.join(work, "corpus"), FLAGS.num_files
    )
    corpus_megabytes = sum(os.path.getsize(p) for p in paths) / 1e6
    common = [
        f"--input_file={os.path.join(work, 'corpus', '*.txt')}",
        f"--vocab_file={corpora.default_vocab_file()}",
        "--do_lower_case",
        "--max_seq_length=128",
        "--max_predictions_per_seq=20",
        f"--dupe_factor={FLAGS.dupe_factor}",
        "--random_seed=12345",
    ]
    workers = FLAGS.num_workers
    runs = {
        "single": (
            [
                "data_pipelines.create_pretraining_data",
                f"--output_file={os.path.join(work, 'single.tfrecord')}",
                f"--num_workers={workers}",
                "--noprogress",
            ],
            workers,
        ),
        "beam_1": (
            [
                "data_pipelines.beam_pretraining_data",
                f"--output_dir={os.path.join(work, 'beam_1')}",
                "--num_shards=4",
                "--runner=FnApiRunner",
                "--direct_num_workers=1",
            ],
            1,
        ),
        f"beam_{workers}": (
            [
                "data_pipelines.beam_pretraining_data",
                f"--output_dir={os.path.join(work, f'beam_{workers}')}",
                "--num_shards=4",
                "--runner=FnApiRunner",
                f"--direct_num_workers={workers}",
                "--direct_running_mode=multi_processing",
            ],
            workers,
        ),
    }
    report = dict(
        corpus=corpus_name,
        corpus_megabytes=corpus_megabytes,
        input_files=len(paths),
        copies=FLAGS.copies,
        dupe_factor=FLAGS.dupe_factor,
        cpu_count=os.cpu_count(),
        load_average_before=os.getloadavg()[0],
    )
    for name, (arguments, processes) in runs.items():
        module, *flags_ = arguments
        seconds, summary = _timed([sys.executable, "-m", module, *common, *flags_])
        core_seconds = seconds * processes
        report[name] = dict(
            seconds=seconds,
            processes=processes,
            instances=summary["instances"],
            input_tokens=summary["input_tokens"],
            instances_per_second=summary["instances"] / seconds,
            megabytes_per_core_second=corpus_megabytes / core_seconds,
            input_tokens_per_core_second=summary["input_tokens"] / core_seconds,
            output_bytes_per_record=_output_bytes(summary) / summary["instances"],
            instances_per_input_token=summary["instances"] / summary["input_tokens"],
            masked_fraction=summary["masked_fraction"],
            random_next_fraction=summary["random_next_fraction"],
        )
    report[f"beam_{workers}_over_single_seconds"] = (
        report[f"beam_{workers}"]["seconds"] / report["single"]["seconds"]
    )
    report["load_average_after"] = os.getloadavg()[0]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    app.run(main)
