"""The one pretraining feature spec shared by the TFRecord writer and every reader.

These are exactly the seven features of the original google-research/bert
`create_pretraining_data.py`, so records written here are read unchanged by the original
`run_pretraining.py` and by any reader that follows it (and ours read theirs).

Shape legend: S = max_seq_length, P = max_predictions_per_seq.

| name                 | dtype   | shape | meaning                                               |
| -------------------- | ------- | ----- | ----------------------------------------------------- |
| input_ids            | int64   | [S]   | [CLS] A [SEP] B [SEP] token ids (masked), zero padded |
| input_mask           | int64   | [S]   | 1 for real tokens, 0 for padding                      |
| segment_ids          | int64   | [S]   | 0 for [CLS] A [SEP], 1 for B [SEP], 0 for padding      |
| masked_lm_positions  | int64   | [P]   | sorted positions of the predicted tokens, zero padded |
| masked_lm_ids        | int64   | [P]   | original ids at those positions, zero padded          |
| masked_lm_weights    | float32 | [P]   | 1.0 for a real prediction, 0.0 for padding            |
| next_sentence_labels | int64   | [1]   | 1 when B is a random next segment, 0 when actual next |

This module stays free of TensorFlow at import time: the writer must not pay TF's
multi-second import, so `tf_feature_spec` imports it lazily.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """One feature of a pretraining record.

    Attributes:
      name: the tf.train.Example feature key.
      dtype: "int64" (Int64List) or "float32" (FloatList).
      length: "seq" for [S], "predictions" for [P], "one" for [1].
    """

    name: str
    dtype: Literal["int64", "float32"]
    length: Literal["seq", "predictions", "one"]

    def size(self, max_seq_length: int, max_predictions_per_seq: int) -> int:
        return {"seq": max_seq_length, "predictions": max_predictions_per_seq, "one": 1}[
            self.length
        ]


# Order matches the original writer's OrderedDict (readers do not depend on it).
PRETRAINING_FEATURES = (
    FeatureSpec("input_ids", "int64", "seq"),
    FeatureSpec("input_mask", "int64", "seq"),
    FeatureSpec("segment_ids", "int64", "seq"),
    FeatureSpec("masked_lm_positions", "int64", "predictions"),
    FeatureSpec("masked_lm_ids", "int64", "predictions"),
    FeatureSpec("masked_lm_weights", "float32", "predictions"),
    FeatureSpec("next_sentence_labels", "int64", "one"),
)
FEATURE_NAMES = tuple(feature.name for feature in PRETRAINING_FEATURES)


def feature_shapes(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, tuple[int]]:
    """Per-record shape of every feature: {name: (S,) | (P,) | (1,)}."""
    return {
        f.name: (f.size(max_seq_length, max_predictions_per_seq),) for f in PRETRAINING_FEATURES
    }


def tf_feature_spec(max_seq_length: int, max_predictions_per_seq: int):
    """The original reader's `name_to_features`: {name: tf.io.FixedLenFeature(shape, dtype)}."""
    import tensorflow as tf  # Lazy: the writer path never imports TensorFlow.

    dtypes = {"int64": tf.int64, "float32": tf.float32}
    return {
        f.name: tf.io.FixedLenFeature(
            [f.size(max_seq_length, max_predictions_per_seq)], dtypes[f.dtype]
        )
        for f in PRETRAINING_FEATURES
    }


def batch_shapes(
    batch_size: int, max_seq_length: int, max_predictions_per_seq: int
) -> dict[str, tuple[tuple[int, ...], str]]:
    """{name: (shape, numpy dtype)} of a batch as the readers yield it (int32 ids, [B] labels).

    What a compiled train step is specialised on: abstract inputs for ahead-of-time compilation
    and the layout of `synthetic_batch`.
    """
    shapes = {}
    for f in PRETRAINING_FEATURES:
        size = f.size(max_seq_length, max_predictions_per_seq)
        shape = (batch_size,) if f.length == "one" else (batch_size, size)
        shapes[f.name] = (shape, "float32" if f.dtype == "float32" else "int32")
    return shapes


def synthetic_batch(
    batch_size: int, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int,
    seed: int = 0,
):
    """A random batch laid out as real data: [CLS] A [SEP] B [SEP] + padding, sorted masked
    positions inside each sequence, ids in [5, vocab_size), about 80% real predictions.

    For benchmarks and tests of the train step that need the reader's layout but no corpus.
    """
    import numpy as np  # pylint: disable=import-outside-toplevel

    rs = np.random.RandomState(seed)
    seq_len, num_predictions = max_seq_length, max_predictions_per_seq
    lengths = rs.randint(seq_len // 2, seq_len + 1, batch_size)
    input_ids = rs.randint(5, vocab_size, (batch_size, seq_len)).astype(np.int32)
    input_mask = (np.arange(seq_len)[None] < lengths[:, None]).astype(np.int32)
    input_ids *= input_mask
    segment_ids = (np.arange(seq_len)[None] >= (lengths // 2)[:, None]) & (input_mask > 0)
    positions = np.stack(
        [np.sort(rs.choice(np.arange(1, n), num_predictions, replace=False)) for n in lengths]
    ).astype(np.int32)
    weights = (rs.rand(batch_size, num_predictions) < 0.8).astype(np.float32)
    weights[:, 0] = 1.0
    real = weights.astype(np.int32)
    masked_ids = rs.randint(5, vocab_size, (batch_size, num_predictions)).astype(np.int32)
    return dict(
        input_ids=input_ids,
        input_mask=input_mask,
        segment_ids=segment_ids.astype(np.int32),
        masked_lm_positions=positions * real,
        masked_lm_ids=masked_ids * real,
        masked_lm_weights=weights,
        next_sentence_labels=rs.randint(0, 2, (batch_size,)).astype(np.int32),
    )
