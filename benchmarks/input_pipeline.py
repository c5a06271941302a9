"""Benchmark: the TFRecord pretraining reader and dynamic masking (start-up, batches/s, memory).

    python -m benchmarks.input_pipeline [--batch_size=32] [--num_batches=200] \
        [--corpus_copies=1,64] [--process_counts=1,4] [--baseline_dir=OLD_CHECKOUT]

TFRecord reader: the default tiny pretraining data (stdlib docstrings, S=128, P=20), built on
first use in a temporary folder; batches/s.

Dynamic masking (data_pipelines.pretraining_data, source="dynamic"): a corpus of C files, each a
copy of the default corpus (184 documents, 0.64 MB; copies after the first enciphered, see
_enciphered), for each C in --corpus_copies; for each
process count n in --process_counts, host 0 of n with a per-host batch of B / n. Each
measurement runs in a fresh Python process (so its peak RSS is its own), twice on one cache
folder: `cold` (empty cache) and `warm` (the cache the cold run left). Reported per run:
seconds from the pretraining_batches call to the first batch (start_s; imports excluded),
batches/s over --num_batches after 10 warm-up batches, the resident memory added since the
imports (rss_growth_mb, at the end) and the process's peak RSS (MB, TensorFlow's import
included).
--baseline_dir runs the same measurements with another checkout's data_pipelines (e.g. a
`git worktree add /tmp/base COMMIT` of an older commit): the child imports only
PretrainingDataSpec(source, input_files, cache_dir, max_seq_length, max_predictions_per_seq,
seed) and pretraining_batches(spec, per_host_batch_size, process_index, process_count), which
every version has. Prints JSON.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

flags.DEFINE_integer("batch_size", 32, "Global batch size B.")
flags.DEFINE_integer("num_batches", 200, "Timed batches (after 10 warm-up batches).")
flags.DEFINE_string("corpus_copies", "1,64", "Comma list: files (enciphered copies of the "
                    "default corpus).")
flags.DEFINE_string("process_counts", "1,4", "Comma list: simulated process counts (host 0).")
flags.DEFINE_string("baseline_dir", "", "Another checkout whose data_pipelines to measure too.")
FLAGS = flags.FLAGS

_REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Run in a child process with PYTHONPATH set to the checkout being measured.
_CHILD = r"""
import json, resource, sys, time
arguments = json.loads(sys.argv[1])
import tensorflow as tf  # imported before the clock starts, as a trainer has it already
from data_pipelines import pretraining_data
def resident_mb():
    with open("/proc/self/statm") as reader:
        return int(reader.read().split()[1]) * resource.getpagesize() / 2**20
imported_mb = resident_mb()
spec = pretraining_data.PretrainingDataSpec(
    source="dynamic", input_files=arguments["input_files"], cache_dir=arguments["cache_dir"],
    max_seq_length=128, max_predictions_per_seq=20, seed=0)
start = time.perf_counter()
batches = pretraining_data.pretraining_batches(
    spec, per_host_batch_size=arguments["per_host_batch_size"], process_index=0,
    process_count=arguments["process_count"])
next(batches)
start_s = time.perf_counter() - start
for _ in range(10):
    next(batches)
timed = time.perf_counter()
for _ in range(arguments["num_batches"]):
    next(batches)
rate = arguments["num_batches"] / (time.perf_counter() - timed)
print(json.dumps(dict(start_s=start_s, batches_per_second=rate,
                      rss_growth_mb=resident_mb() - imported_mb,
                      peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
sys.stdout.flush()
import os
os._exit(0)  # a tf.data generator dataset (the old dynamic masking) can hang interpreter exit
"""


def _child(code_dir: str, **arguments) -> dict:
    environment = dict(os.environ, PYTHONPATH=code_dir, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(arguments)],
                            env=environment, capture_output=True, text=True, check=False,
                            cwd=code_dir)  # `python -c` puts the working directory first
    if result.returncode:
        raise RuntimeError(f"benchmark child failed ({code_dir}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _enciphered(text: str, index: int) -> str:
    """Copy `index` of the corpus with its letters through a seeded substitution cipher (copy 0
    unchanged): every copy has new words, so the tokenizer's word cache cannot make copies free
    (cipher words split into more, shorter WordPieces than English: a heavier corpus per MB)."""
    if not index:
        return text
    import random  # pylint: disable=import-outside-toplevel
    import string  # pylint: disable=import-outside-toplevel

    letters = list(string.ascii_lowercase)
    random.Random(index).shuffle(letters)
    cipher = "".join(letters)
    return text.translate(str.maketrans(string.ascii_lowercase + string.ascii_uppercase,
                                        cipher + cipher.upper()))


def _tfrecord_batches_per_second(work: str) -> float:
    from data_pipelines import corpora, pretraining_input  # pylint: disable=import-outside-toplevel

    files = corpora.prepare_default_pretraining_data(work, dupe_factor=2)
    dataset = pretraining_input.make_pretraining_dataset(
        files, FLAGS.batch_size, 128, 20, is_training=True, seed=0)
    iterator = iter(dataset)
    for _ in range(10):
        next(iterator)
    start = time.perf_counter()
    for _ in range(FLAGS.num_batches):
        next(iterator)["input_ids"].numpy()
    return FLAGS.num_batches / (time.perf_counter() - start)


def main(argv):
    del argv
    from data_pipelines import corpora  # pylint: disable=import-outside-toplevel

    work = tempfile.mkdtemp(prefix="bench_input_")
    results = dict(batch_size=FLAGS.batch_size, max_seq_length=128, max_predictions_per_seq=20,
                   tfrecord_batches_per_second=_tfrecord_batches_per_second(work))
    source = os.path.join(work, "default_corpus.txt")
    corpora.write_documents(corpora.stdlib_docstring_documents(), source)
    code_dirs = {"current": _REPOSITORY}
    if FLAGS.baseline_dir:
        code_dirs["baseline"] = os.path.abspath(FLAGS.baseline_dir)
    rows = []
    for copies in (int(c) for c in FLAGS.corpus_copies.split(",")):
        corpus_dir = os.path.join(work, f"corpus_{copies}")
        os.makedirs(corpus_dir)
        with open(source, encoding="utf-8") as reader:
            text = reader.read()
        for index in range(copies):
            with open(os.path.join(corpus_dir, f"part-{index:04d}.txt"), "w",
                      encoding="utf-8") as writer:
                writer.write(_enciphered(text, index))
        for process_count in (int(n) for n in FLAGS.process_counts.split(",")):
            for name, code_dir in code_dirs.items():
                cache_dir = tempfile.mkdtemp(dir=work)
                arguments = dict(input_files=os.path.join(corpus_dir, "*.txt"),
                                 cache_dir=cache_dir, process_count=process_count,
                                 per_host_batch_size=FLAGS.batch_size // process_count,
                                 num_batches=FLAGS.num_batches)
                row = dict(code=name, files=copies,
                           corpus_mb=copies * os.path.getsize(source) / 1e6,
                           process_count=process_count)
                for phase in ("cold", "warm"):
                    row[phase] = _child(code_dir, **arguments)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    results["dynamic_masking"] = rows
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    app.run(main)
