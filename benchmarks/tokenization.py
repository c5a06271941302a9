"""Benchmark: the original BERT tokenizer, bertjax's FullTokenizer and the in-graph tf_text path.

    python -m benchmarks.tokenization [--json] [--corpus=python_docs|stdlib_docstrings|PATH]
        [--original_dir=PATH_TO_google-research/bert_CHECKOUT]

Corpus: every non-blank line of the CPython documentation's reST sources
(`apt-get install python3.11-doc`), or, without them, the standard library's docstrings; or
any text file. All tokenizers use the real bert-base-uncased vocab (30,522 tokens).

Reported, for each casing:
  * speed on the same --timing_lines lines: lines/s and MB/s (UTF-8 input) of
      original   google-research/bert's FullTokenizer, loaded from the checkout given as
                 --original_dir (github.com/google-research/bert; the checkout stays outside
                 this repository); without it the original is left out and speed-ups are
                 quoted against `exact`,
      exact      data_pipelines.tokenization.FullTokenizer, fresh instance (empty word cache),
      exact_warm_cache  the same on lines it has seen (word cache filled),
      fast_tf    data_pipelines.fast_tokenization.TfBertTokenizer (exact normalisation), batches of
                 --batch_size lines, ids out,
      fast_tf_native  the same with FastBertTokenizer's own normaliser,
    and each one's speed-up over the baseline (the original, else `exact`) (best of --repeats runs each; the machine is shared);
  * agreement on every line of the corpus: exact vs original on the timing lines (must be 1.0;
    only with --original_dir),
    fast_tf and fast_tf_native vs exact on all lines (fraction of lines with identical ids), with
    examples and the characters of the disagreeing lines that the original treats differently.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import time
import unicodedata

from absl import app, flags

from benchmarks import original_bert
from data_pipelines import corpora, fast_tokenization, tokenization

flags.DEFINE_string("corpus", "python_docs", "python_docs, stdlib_docstrings, or a text file path.")
flags.DEFINE_string("original_dir", None,
                    "A checkout of github.com/google-research/bert; its tokenization.py is timed "
                    "as the baseline. Without it, `exact` is the baseline.")
flags.DEFINE_integer("timing_lines", 20000, "Lines timed for every tokenizer (the original is slow).")
flags.DEFINE_integer("batch_size", 1024, "Lines per call of the in-graph tokenizer.")
flags.DEFINE_integer("repeats", 3, "Each timing is the best of this many runs (the machine is shared).")
flags.DEFINE_bool("json", False, "Print compact JSON only.")
FLAGS = flags.FLAGS


def stdlib_docstring_lines() -> list[str]:
    """Sentences of the standard library's docstrings (the zero-download default corpus)."""
    return [sentence for document in corpora.stdlib_docstring_documents() for sentence in document]


def python_docs_lines() -> list[str] | None:
    """Non-blank lines of the python3.x-doc reST sources, or None when not installed."""
    sources_dir = corpora.python_docs_sources_dir()
    if sources_dir is None:
        return None
    lines = []
    for path in sorted(glob.glob(os.path.join(sources_dir, "**", "*.txt"), recursive=True)):
        with open(path, encoding="utf-8", errors="replace") as reader:
            lines.extend(line.rstrip("\n") for line in reader if line.strip())
    return lines


def load_corpus(name: str) -> tuple[str, list[str]]:
    if name == "python_docs":
        lines = python_docs_lines()
        if lines is not None:
            return "python3.11-doc reST sources", lines
        name = "stdlib_docstrings"  # Documented fallback: no download needed.
    if name == "stdlib_docstrings":
        return "stdlib docstrings", stdlib_docstring_lines()
    with open(name, encoding="utf-8", errors="replace") as reader:
        return name, [line.rstrip("\n") for line in reader if line.strip()]


def _timed(function, setup=lambda: None):
    """Best wall time of FLAGS.repeats runs of function(setup()), and the last result."""
    best = float("inf")
    for _ in range(FLAGS.repeats):
        state = setup()
        start = time.perf_counter()
        result = function(state)
        best = min(best, time.perf_counter() - start)
    return best, result


def _speed(seconds: float, lines: list[str], megabytes: float, baseline_seconds: float) -> dict:
    return dict(seconds=round(seconds, 3), lines_per_s=round(len(lines) / seconds),
                mb_per_s=round(megabytes / seconds, 3),
                speedup_vs_baseline=round(baseline_seconds / seconds, 2))


def _tf_ids(tf_tokenizer, lines: list[str], batch_size: int) -> list[list[int]]:
    ids = []
    for start in range(0, len(lines), batch_size):
        ids.extend(tf_tokenizer(lines[start:start + batch_size]).to_list())
    return ids


def _agreement(exact, tf_ids, lines, do_lower_case) -> dict:
    disagreeing = [i for i, line in enumerate(lines) if exact.tokenize_to_ids(line) != tf_ids[i]]
    suspect_chars = collections.Counter()
    for i in disagreeing:
        for char in set(lines[i]):
            if fast_tokenization.native_normalizer_may_differ(char, do_lower_case):
                suspect_chars[f"U+{ord(char):04X} {unicodedata.name(char, '?')} ({unicodedata.category(char)})"] += 1
    return dict(
        lines=len(lines), disagreeing_lines=len(disagreeing),
        agreement=round(1 - len(disagreeing) / len(lines), 6),
        flagged_chars_in_disagreeing_lines=dict(suspect_chars.most_common(15)),
        unexplained_lines=sum(
            not any(fast_tokenization.native_normalizer_may_differ(c, do_lower_case) for c in lines[i])
            for i in disagreeing
        ),
        examples=[
            dict(line=lines[i][:160], exact=exact.tokenize(lines[i])[:40],
                 fast_tf=exact.convert_ids_to_tokens(tf_ids[i])[:40])
            for i in disagreeing[:3]
        ],
    )


def benchmark_casing(vocab_file, lines: list[str], do_lower_case: bool, original_module=None) -> dict:
    timing_lines = lines[:FLAGS.timing_lines]
    megabytes = sum(len(line.encode("utf-8")) for line in timing_lines) / 1e6

    # Cold: a fresh tokenizer each run, so every distinct word pays for its WordPiece search
    # once, as in one pass over a corpus. Warm: the same lines again (word cache filled).
    exact_seconds, exact_tokens = _timed(
        lambda fresh: [fresh.tokenize(line) for line in timing_lines],
        setup=lambda: tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case),
    )
    exact = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
    exact.tokenize_batch(timing_lines)
    warm_seconds, _ = _timed(lambda _: [exact.tokenize(line) for line in timing_lines])
    baseline_seconds = exact_seconds
    speeds, agreements = {}, {}
    if original_module is not None:
        original = original_module.FullTokenizer(str(vocab_file), do_lower_case=do_lower_case)
        baseline_seconds, original_tokens = _timed(
            lambda _: [original.tokenize(line) for line in timing_lines])
        speeds["original"] = _speed(baseline_seconds, timing_lines, megabytes, baseline_seconds)
        agreements["exact_vs_original"] = dict(
            lines=len(timing_lines),
            agreement=sum(a == b for a, b in zip(exact_tokens, original_tokens)) / len(timing_lines),
        )
    speeds["exact"] = _speed(exact_seconds, timing_lines, megabytes, baseline_seconds)
    speeds["exact_warm_cache"] = _speed(warm_seconds, timing_lines, megabytes, baseline_seconds)
    for name, exact_normalization in (("fast_tf", True), ("fast_tf_native", False)):
        tf_tokenizer = fast_tokenization.make_tf_tokenizer(vocab_file, do_lower_case, exact_normalization)
        _tf_ids(tf_tokenizer, timing_lines[:FLAGS.batch_size], FLAGS.batch_size)  # trace once
        seconds, _ = _timed(lambda _: _tf_ids(tf_tokenizer, timing_lines, FLAGS.batch_size))
        speeds[name] = _speed(seconds, timing_lines, megabytes, baseline_seconds)
        agreements[f"{name}_vs_exact"] = _agreement(
            exact, _tf_ids(tf_tokenizer, lines, FLAGS.batch_size), lines, do_lower_case
        )
    return dict(speed=speeds, agreement=agreements)


def main(argv):
    del argv
    corpus_name, lines = load_corpus(FLAGS.corpus)
    vocab_file = tokenization.bundled_uncased_vocab_file()
    original_module = (original_bert.load_module(FLAGS.original_dir, "tokenization")
                       if FLAGS.original_dir else None)
    report = dict(
        corpus=corpus_name, lines=len(lines),
        megabytes=round(sum(len(line.encode("utf-8")) for line in lines) / 1e6, 2),
        non_ascii_lines=sum(not line.isascii() for line in lines),
        timing_lines=min(FLAGS.timing_lines, len(lines)), batch_size=FLAGS.batch_size,
        vocab="bert-base-uncased vocab.txt (30,522 tokens)",
        baseline="original" if original_module else "exact",
        uncased=benchmark_casing(vocab_file, lines, do_lower_case=True, original_module=original_module),
        cased=benchmark_casing(vocab_file, lines, do_lower_case=False, original_module=original_module),
    )
    print(json.dumps(report) if FLAGS.json else json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    app.run(main)
