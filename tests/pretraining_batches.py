"""Synthetic pretraining batches with the original feature names, for trainer tests.

Real ids, masks and labels in the right ranges and layout ([CLS] A [SEP] B [SEP] + padding), so
the train step sees what the TFRecord reader would give it.
"""

import numpy as np


def make_batch(batch_size: int, seq_len: int, num_predictions: int, vocab_size: int,
               seed: int = 0) -> dict[str, np.ndarray]:
    rs = np.random.RandomState(seed)
    lengths = rs.randint(seq_len // 2, seq_len + 1, batch_size)
    input_ids = rs.randint(5, vocab_size, (batch_size, seq_len)).astype(np.int32)
    input_mask = (np.arange(seq_len)[None] < lengths[:, None]).astype(np.int32)
    input_ids *= input_mask
    segment_ids = ((np.arange(seq_len)[None] >= (lengths // 2)[:, None]) & (input_mask > 0))
    positions = np.stack([np.sort(rs.choice(np.arange(1, n), num_predictions, replace=False))
                          for n in lengths]).astype(np.int32)
    weights = (rs.rand(batch_size, num_predictions) < 0.8).astype(np.float32)
    weights[:, 0] = 1.0
    return dict(input_ids=input_ids, input_mask=input_mask, segment_ids=segment_ids.astype(np.int32),
                masked_lm_positions=positions * weights.astype(np.int32),
                masked_lm_ids=rs.randint(5, vocab_size, (batch_size, num_predictions)).astype(
                    np.int32) * weights.astype(np.int32),
                masked_lm_weights=weights,
                next_sentence_labels=rs.randint(0, 2, (batch_size,)).astype(np.int32))
