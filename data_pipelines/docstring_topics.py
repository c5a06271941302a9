"""An offline text-classification task: the standard-library package of a docstring paragraph.

Built from the docstrings of the Python standard library that runs this code, so it needs no
download. Each example is one paragraph (blank-line separated) of the docstring of a module, or
of a public class, function or method defined in it, labelled with its package's topic:

  email     email.*                      web       http.*, urllib.*
  xml       xml.*                        asyncio   asyncio.*
  unittest  unittest.*                   parallel  multiprocessing.*, concurrent.*

Dev examples come from different MODULES than the training examples (within each topic, every
`dev_every`-th module in sorted order goes to dev), so a model cannot pass by recognising the
very module a paragraph comes from; paragraphs whose text occurs in both splits (inherited or
copied docstrings) are dropped from dev. Everything is sorted and subsampled with fixed numpy
seeds, so a given Python version always yields the same task (the stdlib's docstrings change
between versions: `python_version` is part of the task's description).

    from data_pipelines import docstring_topics
    task = docstring_topics.build()
    task.train, task.dev   # lists of data_pipelines.glue.GlueExample (text_b None, label a topic)
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import sys
import warnings
from typing import Sequence

import numpy as np

from data_pipelines import corpora
from data_pipelines.glue import GlueExample

TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("email", ("email",)),
    ("web", ("http", "urllib")),
    ("xml", ("xml",)),
    ("asyncio", ("asyncio",)),
    ("unittest", ("unittest",)),
    ("parallel", ("multiprocessing", "concurrent")),
)


@dataclasses.dataclass(frozen=True)
class DocstringTask:
    """A task built from docstrings (this one, or data_pipelines.docstring_pairs): examples,
    label names in id order, and which modules (per topic) went where."""

    train: list[GlueExample]
    dev: list[GlueExample]
    labels: tuple[str, ...]
    train_modules: dict[str, list[str]]
    dev_modules: dict[str, list[str]]
    python_version: str
    name: str = "docstring_topics"

    def describe(self) -> dict:
        counts = lambda examples: {label: sum(e.label == label for e in examples)  # noqa: E731
                                   for label in self.labels}
        return {"name": self.name, "labels": list(self.labels),
                "train_counts": counts(self.train), "dev_counts": counts(self.dev),
                "train_modules": self.train_modules, "dev_modules": self.dev_modules,
                "python_version": self.python_version}


def package_modules(package: str) -> list[str]:
    """The package and its importable submodules, sorted; test and __main__ modules excluded."""
    module = importlib.import_module(package)
    names = [package]
    if hasattr(module, "__path__"):
        names += [info.name for info in pkgutil.walk_packages(module.__path__, package + ".")]
    keep = []
    for name in sorted(set(names)):
        parts = name.split(".")
        if "__main__" in parts or any(part in ("test", "tests") for part in parts[1:]):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except Exception:  # pylint: disable=broad-except
            continue  # platform-specific modules (e.g. asyncio.windows_events)
        keep.append(name)
    return keep


def _is_prose(paragraph: str) -> bool:
    # Doctests and indented code blocks are not prose about the topic.
    return not any(line.startswith((">>>", "...", " ", "\t")) for line in paragraph.splitlines())


def docstring_paragraphs(module_name: str, min_words: int = 8) -> list[list[str]]:
    """Per docstring of a module (corpora.module_docstrings' order), its prose paragraphs
    (whitespace collapsed), each at least min_words long; docstrings with none are kept as []."""
    module = importlib.import_module(module_name)
    docstrings = []
    for text in corpora.module_docstrings(module):
        paragraphs = []
        for paragraph in re.split(r"\n\s*\n", text):
            if not _is_prose(paragraph):
                continue
            words = paragraph.split()
            if len(words) >= min_words:
                paragraphs.append(" ".join(words))
        docstrings.append(paragraphs)
    return docstrings


def module_paragraphs(module_name: str, min_words: int = 8) -> list[str]:
    """Prose paragraphs of a module's docstrings (whitespace collapsed), at least min_words long."""
    return [paragraph for paragraphs in docstring_paragraphs(module_name, min_words)
            for paragraph in paragraphs]


def split_modules(label: str, packages: Sequence[str], dev_every: int) -> tuple[list[str],
                                                                               list[str]]:
    """(train, dev) module names of one topic: within its sorted modules, module i goes to dev
    when i % dev_every == dev_every - 1. A topic too small to put modules in both is an error."""
    if dev_every < 2:
        raise ValueError(f"dev_every must be at least 2, got {dev_every}")
    modules = sorted(name for package in packages for name in package_modules(package))
    dev_names = [name for i, name in enumerate(modules) if i % dev_every == dev_every - 1]
    train_names = [name for name in modules if name not in dev_names]
    if not dev_names or not train_names:
        raise ValueError(f"topic {label!r} has modules {modules}: too few to split train/dev "
                         "by module")
    return train_names, dev_names


def subsample(items: list, limit: int, seed: int) -> list:
    if len(items) <= limit:
        return items
    chosen = np.random.default_rng(seed).choice(len(items), size=limit, replace=False)
    return [items[i] for i in sorted(chosen)]


def build(topics: Sequence[tuple[str, Sequence[str]]] = TOPICS, *, max_train_per_topic: int = 60,
          max_dev_per_topic: int = 40, dev_every: int = 3, min_words: int = 8,
          seed: int = 0) -> DocstringTask:
    """Builds the task deterministically (see the module docstring).

    Args:
      topics: (label, packages) pairs; label ids follow this order.
      max_train_per_topic, max_dev_per_topic: caps per topic (subsampled with `seed`).
      dev_every: within a topic's sorted modules, module i goes to dev when i % dev_every ==
        dev_every - 1 (a topic with a single module puts nothing in dev: an error).
      min_words: shortest paragraph kept.
    """
    train, dev = [], []
    train_modules, dev_modules = {}, {}
    for topic_index, (label, packages) in enumerate(topics):
        train_names, dev_names = split_modules(label, packages, dev_every)
        train_texts = list(dict.fromkeys(p for name in train_names
                                         for p in module_paragraphs(name, min_words)))
        seen = set(train_texts)
        dev_texts = [p for p in dict.fromkeys(p for name in dev_names
                                              for p in module_paragraphs(name, min_words))
                     if p not in seen]
        train_texts = subsample(train_texts, max_train_per_topic, seed + 2 * topic_index)
        dev_texts = subsample(dev_texts, max_dev_per_topic, seed + 2 * topic_index + 1)
        if not train_texts or not dev_texts:
            raise ValueError(f"topic {label!r}: {len(train_texts)} train and {len(dev_texts)} dev "
                             "paragraphs; need both")
        train += [GlueExample(f"train-{label}-{i}", text, None, label)
                  for i, text in enumerate(train_texts)]
        dev += [GlueExample(f"dev-{label}-{i}", text, None, label)
                for i, text in enumerate(dev_texts)]
        train_modules[label], dev_modules[label] = train_names, dev_names
    return DocstringTask(train, dev, tuple(label for label, _ in topics), train_modules,
                           dev_modules, sys.version.split()[0])


def majority_baseline_accuracy(dev_labels: Sequence) -> float:
    """Accuracy of always predicting the dev set's most frequent label (Mosbach et al.'s rule)."""
    dev_labels = list(dev_labels)
    if not dev_labels:
        raise ValueError("no dev labels to compute the majority baseline from")
    _, counts = np.unique(np.asarray(dev_labels), return_counts=True)
    return float(counts.max() / counts.sum())
