"""Benchmark: batches/s of the TFRecord pretraining reader and of dynamic masking.

    python -m benchmarks.input_pipeline [--batch_size=32] [--num_batches=200]

Data: the default tiny pretraining data (stdlib docstrings, S=128, P=20), built on first use
in a temporary folder. Prints JSON.
"""

import json
import tempfile
import time

from absl import app
from absl import flags

from data_pipelines import tokenization
from data_pipelines import corpora
from data_pipelines import dynamic_masking
from data_pipelines import instances as instances_lib
from data_pipelines import pretraining_input

flags.DEFINE_integer("batch_size", 32, "Per-host batch size B.")
flags.DEFINE_integer("num_batches", 200, "Timed batches (after 10 warm-up batches).")
FLAGS = flags.FLAGS


def _batches_per_second(dataset, num_batches):
    iterator = iter(dataset)
    for _ in range(10):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        batch = next(iterator)
        batch["input_ids"].numpy()
    return num_batches / (time.perf_counter() - start)


def main(argv):
    del argv
    work = tempfile.mkdtemp(prefix="bench_input_")
    files = corpora.prepare_default_pretraining_data(work, dupe_factor=2)
    tfrecord = _batches_per_second(
        pretraining_input.make_pretraining_dataset(
            files, FLAGS.batch_size, 128, 20, is_training=True, seed=0, vocab_size=30522
        ),
        FLAGS.num_batches,
    )
    tokenizer = tokenization.FullTokenizer(corpora.default_vocab_file())
    documents = corpora.stdlib_docstring_documents()
    corpus = instances_lib.TokenizedCorpus.from_documents(
        [[tokenizer.tokenize_to_ids(line) for line in document] for document in documents]
    )
    dynamic = _batches_per_second(
        dynamic_masking.make_dynamic_masking_dataset(
            corpus, tokenizer.vocab, FLAGS.batch_size, 128, 20, seed=0
        ),
        FLAGS.num_batches,
    )
    print(
        json.dumps(
            dict(
                batch_size=FLAGS.batch_size,
                max_seq_length=128,
                max_predictions_per_seq=20,
                tfrecord_batches_per_second=tfrecord,
                tfrecord_examples_per_second=tfrecord * FLAGS.batch_size,
                dynamic_masking_batches_per_second=dynamic,
                dynamic_masking_examples_per_second=dynamic * FLAGS.batch_size,
            ),
            indent=1,
        )
    )


if __name__ == "__main__":
    app.run(main)
