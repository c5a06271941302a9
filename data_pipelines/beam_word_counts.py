r"""Word counts for WordPiece vocabulary training, with Apache Beam.

    python -m data_pipelines.beam_word_counts --input_file='corpus/*.txt' \
      --output_file=counts.tsv --do_lower_case [Beam options, e.g. --runner=DataflowRunner ...]
    python -m data_pipelines.build_vocab --word_counts_file=counts.tsv --output_file=vocab.txt \
      --vocab_size=30522

Counting is the part of build_vocab that grows with the corpus; the learner then needs only
the counts (millions of distinct words, not billions of lines). Words are what
tokenization.BasicTokenizer yields, exactly build_vocab.count_words; the counts equal its
counts on the same files (tested). Output: one "word<TAB>count" line per distinct word, most
frequent first (ties by word), sorted and written by one worker with storage.atomic_write
(build_vocab's learner needs all counts in memory anyway).
"""

from __future__ import annotations

import collections
from typing import Iterator

import apache_beam as beam

from data_pipelines import build_vocab
from data_pipelines import storage
from data_pipelines import tokenization


class _Words(beam.DoFn):
    """path -> the BasicTokenizer words of every line (undecodable bytes replaced, as
    build_vocab.read_lines)."""

    def __init__(self, do_lower_case: bool):
        self._do_lower_case = do_lower_case

    def setup(self):
        self._tokenizer = tokenization.BasicTokenizer(do_lower_case=self._do_lower_case)

    def process(self, path: str) -> Iterator[tuple[str, int]]:
        counts: collections.Counter = collections.Counter()
        with storage.open(path, "rb") as reader:
            for raw_line in reader:
                counts.update(self._tokenizer.tokenize(raw_line.decode("utf-8", "replace")))
        yield from counts.items()  # Counted per file first: far fewer elements to combine.


def count_words(
    input_files: str | list[str],
    output_file: str,
    do_lower_case: bool,
    pipeline_args: list[str] | None = None,
) -> dict:
    """Counts the words of the files (comma list or list of paths/globs, any scheme) and writes
    them to output_file (any scheme); returns {distinct_words, total_words}."""
    # pylint: disable-next=import-outside-toplevel
    from apache_beam.options.pipeline_options import PipelineOptions

    files = storage.expand_patterns(input_files)
    with beam.Pipeline(options=PipelineOptions(list(pipeline_args or []))) as pipeline:
        _ = (
            pipeline
            | "Files" >> beam.Create(files)
            | "Spread" >> beam.Reshuffle()
            | "Words" >> beam.ParDo(_Words(do_lower_case))
            | "Sum" >> beam.CombinePerKey(sum)
            # One worker sorts and writes: the learner needs all counts in one place anyway.
            | "Collect" >> beam.combiners.ToList()
            | "Write" >> beam.Map(build_vocab.write_word_counts, output_file)
        )
    counts = build_vocab.read_word_counts(output_file)
    if not counts:
        raise ValueError(f"no words in {files}")
    return dict(distinct_words=len(counts), total_words=sum(counts.values()))


def _define_flags():
    from absl import flags  # pylint: disable=import-outside-toplevel

    flags.DEFINE_string("input_file", None, "Comma-separated text files or globs.")
    flags.DEFINE_string("output_file", None, "word<TAB>count file to write.")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case and strip accents (uncased model).")
    flags.mark_flags_as_required(["input_file", "output_file"])


def main(argv):
    import json  # pylint: disable=import-outside-toplevel
    from absl import flags  # pylint: disable=import-outside-toplevel

    flag_values = flags.FLAGS
    summary = count_words(
        flag_values.input_file, flag_values.output_file, flag_values.do_lower_case, list(argv[1:])
    )
    print(json.dumps(dict(output_file=flag_values.output_file, **summary)))


if __name__ == "__main__":
    from absl import app  # pylint: disable=g-import-not-at-top
    from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top

    from data_pipelines import beam_word_counts  # pylint: disable=g-import-not-at-top

    beam_word_counts._define_flags()  # pylint: disable=protected-access
    # Flags this module does not know are Beam pipeline options.
    app.run(
        beam_word_counts.main,
        flags_parser=lambda argv: absl_flags.FLAGS(argv, known_only=True),
    )
