"""An offline sentence-pair task: does sentence B follow sentence A? (RTE-like, binary, ~50/50)

Built, like data_pipelines.docstring_topics, from the docstrings of the Python standard library
that runs this code (the same six topics, the same prose paragraphs, the same train/dev split BY
MODULE), so it needs no download. Sentences come from corpora.split_sentences.

  next      B is the sentence that follows A in the same docstring paragraph.
  not_next  B is a sentence of a DIFFERENT docstring of the same topic (hard negatives: the
            package's vocabulary alone does not give the answer).

Every example starts from a candidate: two consecutive sentences (A, B) of one paragraph, both
at least `min_sentence_words` words long and different. A split's candidates are subsampled to
its cap, and a seeded permutation marks exactly half of them `next` (an odd count gives one more
`not_next`); the others keep their A and take as B the second sentence of a random candidate
from another docstring of the same topic and split (never A itself, nor a sentence that follows
A anywhere). So in both classes B is a sentence that follows another one in its paragraph, and
its position alone tells nothing.

Dev examples come from different modules than training examples (docstring_topics.split_modules:
every 3rd module of a topic in sorted order), and dev candidates with a sentence that occurs in a
training candidate (inherited or copied docstrings) are dropped, as are, per split, the topics
whose candidates all come from one docstring (no negatives to draw). Everything is sorted and drawn
with fixed numpy seeds: a given Python version always yields the same task.

Measured on Python 3.11.7 with the defaults (`python -m data_pipelines.docstring_pairs` prints
the counts and lengths): 603 training and 305 dev candidates, 483 and 240 distinct, 201 dev left
after the drops above; hence 320 training examples (160 next / 160 not_next) and 200 dev
(100 / 100): the majority baseline is exactly 50% (RTE's is 52.7%). In word pieces of the
untruncated [CLS] A [SEP] B [SEP] (bert-base-uncased vocab), train / dev: median 43 / 44, 75th
percentile 54 / 56, 90th 66 / 68, 95th 70 / 75, max 108 / 98; 11% / 15.5% exceed 64 (the
fine-tuning configs' max_seq_length: those lose the tail of their longer sentence, as GLUE pairs).

    from data_pipelines import docstring_pairs
    task = docstring_pairs.build()
    task.train, task.dev   # data_pipelines.glue.GlueExample: text_a, text_b, label in LABELS;
                           # guid "<split>-<i>-<module>:<docstring index>" of sentence A
"""

from __future__ import annotations

import collections
import dataclasses
import json
import sys
from typing import Sequence

import numpy as np

from data_pipelines import corpora, docstring_topics
from data_pipelines.glue import GlueExample, example_tokens

LABELS = ("not_next", "next")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """Two consecutive sentences of one paragraph of docstring `source` ("module:index")."""

    topic: str
    source: str
    first: str
    second: str


def candidates(topic: str, module_names: Sequence[str],
               min_sentence_words: int = 4) -> list[Candidate]:
    """Consecutive sentence pairs of the modules' docstring paragraphs, in source order; pairs
    with a sentence under min_sentence_words words, or with A == B, are skipped."""
    found = []
    for name in module_names:
        for index, paragraphs in enumerate(docstring_topics.docstring_paragraphs(name, 1)):
            for paragraph in paragraphs:
                sentences = corpora.split_sentences(paragraph)
                for first, second in zip(sentences, sentences[1:]):
                    if (first != second and len(first.split()) >= min_sentence_words
                            and len(second.split()) >= min_sentence_words):
                        found.append(Candidate(topic, f"{name}:{index}", first, second))
    return found


def _unique(items: list[Candidate]) -> list[Candidate]:
    # The first occurrence of each (A, B) text pair (inherited docstrings repeat across classes).
    first = {}
    for item in items:
        first.setdefault((item.first, item.second), item)
    return list(first.values())


def _with_negatives(pool: list[Candidate]) -> list[Candidate]:
    # A topic whose pairs (in this split) all come from one docstring has no negatives to give.
    sources = collections.defaultdict(set)
    for candidate in pool:
        sources[candidate.topic].add(candidate.source)
    return [candidate for candidate in pool if len(sources[candidate.topic]) >= 2]


def _examples(split: str, pool: list[Candidate], limit: int, seed: int) -> list[GlueExample]:
    """Up to `limit` examples from the split's candidate pool, half `next` (see the module
    docstring); `pool` also supplies the negatives' second sentences."""
    chosen = docstring_topics.subsample(pool, limit, seed)
    rng = np.random.default_rng([seed, 1])
    is_next = rng.permutation(np.arange(len(chosen)) % 2 == 1)
    follows = {(c.first, c.second) for c in pool}
    examples = []
    for i, (candidate, positive) in enumerate(zip(chosen, is_next)):
        second = candidate.second
        if not positive:
            others = [c.second for c in pool if c.topic == candidate.topic
                      and c.source != candidate.source and c.second != candidate.first
                      and (candidate.first, c.second) not in follows]
            if not others:
                raise ValueError(f"{split} topic {candidate.topic!r}: no sentence of another "
                                 f"docstring to pair with {candidate.first!r} as a negative")
            second = others[int(rng.integers(len(others)))]
        examples.append(GlueExample(f"{split}-{i}-{candidate.source}", candidate.first, second,
                                    LABELS[int(positive)]))
    return examples


def build(topics: Sequence[tuple[str, Sequence[str]]] = docstring_topics.TOPICS, *,
          max_train_examples: int = 320, max_dev_examples: int = 200, dev_every: int = 3,
          min_sentence_words: int = 4, seed: int = 0) -> docstring_topics.DocstringTask:
    """Builds the task deterministically (see the module docstring).

    Args:
      topics: (topic, packages) pairs, as docstring_topics; negatives stay within a topic.
      max_train_examples, max_dev_examples: caps per split (subsampled with `seed`).
      dev_every: the module split of docstring_topics.split_modules.
      min_sentence_words: shortest sentence kept, in whitespace-separated words.
    """
    train_pool, dev_pool = [], []
    train_modules, dev_modules = {}, {}
    for topic, packages in topics:
        train_names, dev_names = docstring_topics.split_modules(topic, packages, dev_every)
        train_pool += candidates(topic, train_names, min_sentence_words)
        dev_pool += candidates(topic, dev_names, min_sentence_words)
        train_modules[topic], dev_modules[topic] = train_names, dev_names
    train_pool = _with_negatives(_unique(train_pool))
    seen = {s for c in train_pool for s in (c.first, c.second)}
    dev_pool = _with_negatives([c for c in _unique(dev_pool)
                                if c.first not in seen and c.second not in seen])
    for split, pool in (("train", train_pool), ("dev", dev_pool)):
        if len(pool) < 2:
            raise ValueError(f"docstring_pairs: {len(pool)} {split} candidate pairs; need 2 or "
                             "more")
    return docstring_topics.DocstringTask(
        _examples("train", train_pool, max_train_examples, seed),
        _examples("dev", dev_pool, max_dev_examples, seed + 1), LABELS, train_modules,
        dev_modules, sys.version.split()[0], name="docstring_pairs")


def pair_lengths(examples: Sequence[GlueExample], tokenizer) -> np.ndarray:
    """[N] word pieces of each untruncated [CLS] A [SEP] B [SEP]."""
    return np.array([len(example_tokens(example, tokenizer, 1 << 30)[0]) for example in examples])


def main() -> None:
    """`python -m data_pipelines.docstring_pairs`: the task's counts and its pair lengths in
    word pieces (bert-base-uncased vocab), what the module docstring quotes."""
    from data_pipelines import tokenization  # pylint: disable=import-outside-toplevel
    task = build()
    tokenizer = tokenization.FullTokenizer(str(tokenization.bundled_uncased_vocab_file()),
                                           do_lower_case=True)
    report = task.describe()
    del report["train_modules"], report["dev_modules"]
    for split, examples in (("train", task.train), ("dev", task.dev)):
        lengths = pair_lengths(examples, tokenizer)
        report[f"{split}_length_percentiles"] = {
            str(p): float(np.percentile(lengths, p)) for p in (50, 75, 90, 95, 100)}
        report[f"{split}_over_64"] = float(np.mean(lengths > 64))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
