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
