"""The pinned inputs of the golden fixtures as first drawn (make_goldens reuses the stored ones).

Only `seeded_logits` is used at test time (the logits are too large to store); everything else runs
once, when a golden file does not exist yet.
"""

from __future__ import annotations

import importlib
import inspect
import os

import numpy as np

from data_pipelines import corpora, glue

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")

UNICODE_EDGE_CASES = [
    # accents, precomposed and decomposed
    "café naïve Å Ångström résumé façade", "cafe\u0301 A\u030a", "ÉCOLE Über STRASSE straße",
    # CJK ideographs (spaced), Japanese kana and Korean Hangul (not spaced)
    "中文字符", "日本語のテキスト", "한국어 텍스트", "mixed中文and English", "𠀀𪜀 豈",
    # control characters, NUL, replacement character
    "a\x00b", "a\ufffdb", "bell\x07char", "vt\x0bff\x0cfs\x1cend", "del\x7fete", "nel\x85line",
    # zero-width and format characters (category Cf: dropped, joining their neighbours)
    "zero\u200bwidth", "joiner\u200dhere", "\ufeffbom", "soft\u00adhyphen", "rtl\u202emark",
    # emoji (So category: not punctuation, usually [UNK]) and ZWJ sequences
    "I ❤️ 🐍 Python 👩‍💻!", "🇫🇷 flag",
    # combining marks alone and stacked
    "\u0301", "a\u0301\u0302\u0303", "x \u0308 y",
    # RTL text
    "مرحبا بالعالم", "שלום עולם", "(مرحبا)",
    # Unicode punctuation, symbols, spaces and line separators
    "“quoted” — dash – en… ellipsis «guillemets» ¿qué? ¡sí!", "$5 ^caret^ `tick` ~tilde~",
    "non\u00a0breaking\u2003em\u3000ideographic", "line\u2028sep\u2029para",
    # letters that compatibility-fold elsewhere
    "ſtraße Ⅻ ﬁne ℌ ① ²", "Σίσυφος ΟΔΟΣ", "İstanbul",
    # very long words, and the max_input_chars_per_word boundary
    "a" * 150, "a" * 200, "a" * 201, "supercalifragilistic" * 12, "ж" * 150, "ж" * 201,
    # empty and whitespace-only, tabs and newlines
    "", " ", "\t\n\r ", "tabs\tand\nnewlines\r\nhere",
    # bytes input, decoded as UTF-8 dropping bad bytes
    {"utf8_hex": b"bytes caf\xc3\xa9 \xff bad".hex()},
]

DOCSTRING_MODULES = (
    "json", "collections", "itertools", "functools", "re", "os", "pathlib", "argparse", "logging",
    "textwrap", "string", "typing", "dataclasses", "inspect", "email", "http.client",
    "urllib.parse", "unittest", "decimal", "fractions", "statistics", "datetime", "calendar",
    "csv", "zipfile", "tarfile", "shutil", "subprocess", "threading", "asyncio",
)

PRETRAINING_MODULES = (
    "json", "csv", "random", "textwrap", "string", "heapq", "bisect", "shlex", "argparse",
    "fractions", "statistics", "difflib", "calendar", "gettext", "zipfile", "tarfile", "pathlib",
    "inspect",
)


def docstring_lines(modules=DOCSTRING_MODULES, keep_every: int = 2) -> list[str]:
    """Real English lines: non-blank docstring lines (indentation, doctest prompts and reST markup
    kept) of `modules` and their public members, deduplicated; every `keep_every`-th line, plus
    every non-ASCII one, keeps the golden small."""
    seen: set[str] = set()
    lines: list[str] = []

    def add(obj) -> None:
        # Own docstrings only: inherited ones vary with what else has been imported.
        doc = getattr(obj, "__doc__", None)
        # Docstrings that carry a licence notice (unittest's) are left out: the stored lines
        # are test data, not anybody's licence text.
        if not isinstance(doc, str) or not doc.strip() or "WARRANTIES" in doc.upper():
            return
        for line in inspect.cleandoc(doc).splitlines():
            if line.strip() and line not in seen:
                seen.add(line)
                lines.append(line)

    for module_name in modules:
        module = importlib.import_module(module_name)
        add(module)
        for name in sorted(vars(module)):
            member = getattr(module, name)
            if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(member):
                add(member)
                for attribute_name in sorted(vars(member)):
                    if not attribute_name.startswith("_"):
                        add(getattr(member, attribute_name, None))
            elif inspect.isfunction(member) or inspect.isbuiltin(member):
                add(member)
    return [line for i, line in enumerate(lines) if i % keep_every == 0 or not line.isascii()]


def pretraining_inputs() -> dict:
    corpus = [[s.replace("\n", " ").strip() for s in document]
              for document in corpora.stdlib_docstring_documents(PRETRAINING_MODULES)]
    return dict(
        corpus=[[s for s in document if s] for document in corpus],
        settings=dict(repeats=15, max_seq_length=64, short_seq_prob=0.1, masked_lm_prob=0.15,
                      max_predictions_per_seq=10, short_length=40),
        truncation_cases=[[50, 3, 20], [3, 50, 20], [30, 30, 41], [10, 10, 5], [7, 12, 18],
                          [100, 1, 61]],
        whole_word=dict(
            text_a=("Unaffable characters tokenize into wordpieces; whole word masking keeps them "
                    "together unconditionally."),
            text_b="##ing pieces after the separator join the previous word.",
            draws=3000, max_predictions_per_seq=20),
        one_sentence=dict(documents=[["Only one sentence here."],
                                     ["First of two.", "Second of two."],
                                     ["Another document.", "With two lines."]],
                          seeds=20),
    )


def glue_inputs() -> dict:
    directory = os.path.join(FIXTURES, "glue")
    examples = {
        name: [[e.guid, e.text_a, e.text_b, e.label]
               for e in glue.read_tsv_examples(directory, name, "train")]
        for name in glue.TASKS
    }
    return dict(examples=examples, max_seq_lengths=[8, 16, 128])


def _squad_data(file_name: str) -> list:
    import json

    with open(os.path.join(FIXTURES, "squad", file_name), encoding="utf-8") as json_file:
        return json.load(json_file)["data"]


def squad_feature_inputs() -> dict:
    return dict(
        datasets={"v1.1": _squad_data("tiny-v1.1.json"), "v2.0": _squad_data("tiny-v2.0.json")},
        # [max_seq_length, doc_stride, max_query_length]: full size, and windows so short that
        # answers cross window edges and queries are truncated.
        windows=[[384, 128, 64], [32, 8, 6], [40, 16, 3]],
        unrecoverable=dict(qas_id="q-born", answer_text="1895!"),
        final_text=[["steve smith", "Steve Smith's"], ["1895", "(1895-1943)."],
                    ["zurich , switzerland", "Zürich, Switzerland,"],
                    ["4 , 200 employees", "4,200 employees"], ["24 – 10", "24–10"],
                    ["not there", "Some Text"]],
    )


def squad_prediction_inputs() -> dict:
    cases = []
    for version in ("v1.1", "v2.0"):
        for max_seq_length, doc_stride, n_best_size, max_answer_length in (
                (32, 8, 20, 30), (48, 12, 8, 6), (384, 128, 20, 30)):
            cases.append(dict(version=version, max_seq_length=max_seq_length, doc_stride=doc_stride,
                              n_best_size=n_best_size, max_answer_length=max_answer_length,
                              seed=max_seq_length + n_best_size))
    return dict(cases=cases, max_query_length=16, null_score_diff_threshold=0.5)


def seeded_logits(seed: int, input_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits [R, S] ~ N(0, 3), padding pushed 20 down.

    A trained model scores padding low; without that, the top-n of random logits at S=384 is mostly
    padding, no span is valid, and the original crashes on v2.0 (best_non_null is None).
    """
    rng = np.random.default_rng(seed)
    padding_penalty = 20.0 * (1 - np.asarray(input_mask))
    start = (rng.normal(0, 3, padding_penalty.shape) - padding_penalty).astype(np.float32)
    end = (rng.normal(0, 3, padding_penalty.shape) - padding_penalty).astype(np.float32)
    return start, end


def _random_answer(rng) -> str:
    vocabulary = ["the", "a", "An", "THE", "cat", "Cat's", "dog", "dog.", "(1895)", "1895", ",",
                  "an-", "thea", "é", "naïve", "--", "  ", "\t", "New", "York", "!?", "a.b"]
    return "".join(
        rng.choice(vocabulary) + rng.choice(["", " ", "  "]) for _ in range(rng.integers(0, 7)))


def squad_score_inputs() -> dict:
    """Hand-worked cases (what each exercises: tests/test_metrics.py) and random strings."""
    v1_hand = [["articles", ["The Eiffel Tower"]], ["punctuation", ["Denver Broncos!"]],
               ["max_over_golds", ["Carolina Panthers", "the Panthers", "Panthers"]],
               ["partial", ["Santa Clara, California"]], ["unanswered", ["1994"]]]
    v2_hand = [["has_right", ["Normandy", "in Normandy"]],
               ["has_partial", ["10th and 11th centuries"]], ["has_abstained", ["France"]],
               ["no_abstained", []], ["no_answered", []],
               ["no_article_gold", ["the"]]]
    threshold = [["a", ["x"]], ["b", ["y z"]], ["c", []], ["d", []]]
    cases = [
        dict(name="v1_hand_worked", version="v1.1", questions=v1_hand,
             predictions={"articles": "eiffel tower", "punctuation": "denver, broncos",
                          "max_over_golds": "panthers", "partial": "California"}),
        dict(name="v2_hand_worked", version="v2.0", questions=v2_hand,
             predictions={"has_right": "normandy", "has_partial": "11th centuries",
                          "has_abstained": "", "no_abstained": "", "no_answered": "Rollo",
                          "no_article_gold": ""}),
    ]
    for na_prob_thresh in (1.0, 0.7, 0.5, 0.0):  # 0.7: a value equal to the threshold
        cases.append(dict(name=f"v2_threshold_{na_prob_thresh}", version="v2.0",
                          questions=threshold,
                          predictions={"a": "x", "b": "y", "c": "w", "d": ""},
                          na_probs={"a": 0.1, "b": 0.7, "c": 0.9, "d": 0.4},
                          na_prob_thresh=na_prob_thresh))
    for seed in range(3):
        rng = np.random.default_rng(seed)
        v1_questions, v2_questions, predictions, na_probs = [], [], {}, {}
        for index in range(150):
            qid = f"q{index}"
            golds = [_random_answer(rng) for _ in range(rng.integers(1, 4))]
            v1_questions.append([qid, golds])
            v2_questions.append([qid, golds if rng.random() < 0.6 else []])
            predictions[qid] = _random_answer(rng) if rng.random() < 0.8 else ""
            na_probs[qid] = float(rng.random())
        cases += [
            dict(name=f"v1_random_{seed}", version="v1.1", questions=v1_questions,
                 predictions=predictions),
            dict(name=f"v2_random_{seed}", version="v2.0", questions=v2_questions,
                 predictions=predictions),
            dict(name=f"v2_random_{seed}_na_probs", version="v2.0", questions=v2_questions,
                 predictions=predictions, na_probs=na_probs, na_prob_thresh=0.5),
        ]
    return dict(cases=cases)


def optimization_inputs() -> dict:
    """Param trees of tests/test_optimizers.py (as {name: values}) and the optimizer settings."""
    from tests import test_optimizers  # pylint: disable=import-outside-toplevel

    def named(seed):
        """[[name, shape, float32 values flat, at their shortest decimals]]."""
        leaves = test_optimizers.named_leaves(test_optimizers.make_pretraining_params(seed=seed))
        return [[name, list(value.shape), shortest_float32(value)]
                for name, value in sorted(leaves.items())]

    return dict(
        # create_optimizer (schedule, clipping, AdamWeightDecayOptimizer), gradient scales cycling
        # large (clipped), tiny (norm < 1: not clipped), unit (clipped).
        recipe=dict(params=named(1), gradient_seed=2, gradient_scales=[10.0, 1e-3, 1.0],
                    init_lr=0.01, num_train_steps=50, num_warmup_steps=5,
                    checkpoints=[1, 2, 3, 4, 5, 6, 7, 10, 20, 30, 40, 50]),
        # AdamWeightDecayOptimizer alone: constant learning rate, no weight decay, no clipping.
        constant=dict(params=named(3), gradient_seed=4, gradient_scales=[1e-2], learning_rate=1e-3,
                      steps=10, checkpoints=[1, 2, 3, 5, 10]),
        # create_optimizer's learning rate at every step (beyond num_train_steps too).
        schedules=dict(init_lr=1e-4, configs=[[100, 10], [37, 5], [20, 0], [8, 8]], extra_steps=5),
    )


def shortest_float32(values) -> list[float]:
    """float32 values, flat, at their shortest round-tripping decimals (short JSON, exact)."""
    return [float(np.format_float_positional(x, unique=True))
            for x in np.asarray(values, np.float32).ravel()]


def named_arrays(params: list) -> dict[str, np.ndarray]:
    """{name: float32 array} from stored [[name, shape, flat values], ...]."""
    return {name: np.asarray(values, np.float32).reshape(shape) for name, shape, values in params}


def seeded_gradients(params: list, seed: int, scales: list, steps: int) -> list[dict]:
    """`steps` gradient dicts {name: float32 array} ~ N(0, scale^2), scales cycling per step,
    drawn leaf by leaf in the order of `params` ([[name, shape, values], ...])."""
    rng = np.random.default_rng(seed)
    return [{name: (scales[t % len(scales)] * rng.normal(size=shape)).astype(np.float32)
             for name, shape, _ in params} for t in range(steps)]
