"""Golden fixtures: google-research/bert's and the official SQuAD scripts' outputs on pinned inputs.

The JSON files beside this module are data, written by `python -m tests.golden.make_goldens` from
checkouts that stay outside this repository; the oracle tests compare our code against them. Each
file stores its inputs next to the outputs, so no golden depends on the running Python's standard
library (whose docstrings change from version to version).

Files (one per oracle):
  tokenization.json             tokens of stored real lines and Unicode edge cases, both casings;
                                digests of every code point's tokenization, block by block
  create_pretraining_data.json  instance and masking statistics on a stored corpus
  glue_features.json            run_classifier features of the GLUE fixtures
  squad_features.json           run_squad examples and windowed features of the SQuAD fixtures
  squad_predictions.json        run_squad write_predictions on seeded logits (n-best, null odds)
  optimization.json             create_optimizer / AdamWeightDecayOptimizer on seeded gradients
  squad_scores.json             evaluate-v1.1.py / evaluate-v2.0.py scores of stored predictions
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Mapping, Sequence

GOLDEN_DIR = os.path.dirname(os.path.abspath(__file__))
REGENERATE = ("python -m tests.golden.make_goldens --original_dir=PATH_TO_google-research/bert "
              "--squad_scripts_dir=PATH_TO_SQuAD_evaluate_scripts")

# The code points the tokenization goldens cover: the BMP without surrogates, the CJK extension
# planes and the tag block. Each is tokenized as "x<c>y", so joining, splitting and folding show.
ALL_CODE_POINTS = (*range(1, 0xD800), *range(0xE000, 0x30000), *range(0xE0000, 0xE0080))
CODE_POINT_BLOCK = 4096


def path(name: str) -> str:
    return os.path.join(GOLDEN_DIR, f"{name}.json")


def load(name: str) -> dict:
    """The golden `name` (e.g. "tokenization"), or an error saying how to make it."""
    file_name = path(name)
    if not os.path.isfile(file_name):
        raise FileNotFoundError(f"{file_name}: golden file missing; regenerate with {REGENERATE}")
    with open(file_name, encoding="utf-8") as golden_file:
        return json.load(golden_file)


def encode_text(text: str | bytes) -> str | dict:
    """JSON form of a tokenizer input: bytes (decoded by the tokenizer) become their hex."""
    return {"utf8_hex": text.hex()} if isinstance(text, bytes) else text


def decode_text(stored: str | Mapping) -> str | bytes:
    return bytes.fromhex(stored["utf8_hex"]) if isinstance(stored, Mapping) else stored


def join_tokens(tokens: Sequence[str]) -> str:
    """Tokens as one space-separated string (BERT tokens never hold a space or are empty)."""
    if any(not token or " " in token for token in tokens):
        raise ValueError(f"cannot join tokens losslessly: {tokens!r}")
    return " ".join(tokens)


def split_tokens(joined: str) -> list[str]:
    return joined.split(" ") if joined else []


def code_point_blocks() -> list[tuple[int, ...]]:
    """ALL_CODE_POINTS in consecutive blocks of CODE_POINT_BLOCK."""
    return [ALL_CODE_POINTS[i:i + CODE_POINT_BLOCK]
            for i in range(0, len(ALL_CODE_POINTS), CODE_POINT_BLOCK)]


def code_point_text(block: Sequence[int]) -> str:
    return " ".join(f"x{chr(code_point)}y" for code_point in block)


def digest(value) -> str:
    """A short stable fingerprint of a JSON-able value (for outputs too large to store)."""
    return hashlib.sha256(json.dumps(value, ensure_ascii=True).encode("ascii")).hexdigest()[:16]


def file_sha256(file_name: str) -> str:
    with open(file_name, "rb") as stored_file:
        return hashlib.sha256(stored_file.read()).hexdigest()


def squad_dataset(questions: Sequence[Sequence]) -> list[dict]:
    """Official SQuAD "data" list from [(qid, [gold texts])], one paragraph holding them all."""
    qas = [{
        "id": qid,
        "question": "?",
        "answers": [{"text": text, "answer_start": 0} for text in golds]
    } for qid, golds in questions]
    return [{"title": "t", "paragraphs": [{"context": "c", "qas": qas}]}]


def padded(values: Sequence[int], length: int) -> list[int]:
    """A golden feature row (stored without its trailing zero padding) at its full length."""
    if len(values) > length:
        raise ValueError(f"golden row of {len(values)} values is longer than {length}")
    return list(values) + [0] * (length - len(values))


def unpadded(values: Sequence[int]) -> list[int]:
    """The row without trailing zeros (the original pads input_ids, mask and segments with 0)."""
    values = list(values)
    while values and values[-1] == 0:
        values.pop()
    return values


def run_lengths(values: Sequence) -> list[list]:
    """[[value, count], ...] of consecutive equal values (a mask or segment row is 1-3 runs)."""
    runs: list[list] = []
    for value in values:
        if runs and runs[-1][0] == value:
            runs[-1][1] += 1
        else:
            runs.append([value, 1])
    return runs


def expand_runs(runs: Sequence[Sequence]) -> list:
    return [value for value, count in runs for _ in range(count)]


def position_map(mapping: Mapping[int, object]) -> list:
    """{position: value} over consecutive positions as [first position, [values in order]]."""
    positions = sorted(mapping)
    first = positions[0] if positions else 0
    if positions != list(range(first, first + len(positions))):
        raise ValueError(f"positions are not consecutive: {positions}")
    return [first, [mapping[p] for p in positions]]


def expand_position_map(stored: Sequence) -> dict:
    first, values = stored
    return {first + offset: value for offset, value in enumerate(values)}
