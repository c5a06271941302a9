"""Exact parameter counts of the BERT presets, against the approximation and the paper's figures.

    python -m experiments.param_count                  # a table per preset
    python -m experiments.param_count --model=base --vocab_size=28996   # cased vocabulary
    python -m experiments.param_count --json           # the same rows as a JSON list

Counts come from the eval_shape'd param tree of BertForPreTraining (nothing is allocated),
grouped by path and cross-checked against the closed-form formulas (bertjax.param_count).
Relative errors are (estimate - exact) / exact against the encoder with its pooler (BertModel),
the model the paper's 110M / 340M describe.
"""

from __future__ import annotations

import json

from absl import app, flags

from bertjax import config as config_lib
from bertjax import param_count

FLAGS = flags.FLAGS


def _define_flags() -> None:
    """Defined only when run as a command: importing this module (tests, notebooks) must not
    claim global absl flag names such as --vocab_size."""
    flags.DEFINE_string("model", "all",
                        f"A preset ({', '.join(config_lib.PRESETS)}) or 'all'.")
    flags.DEFINE_integer("vocab_size", 30522, "V: 30,522 uncased WordPiece, 28,996 cased.")
    flags.DEFINE_bool("json", False, "Print the rows as a JSON list instead of tables.")

# (label, component key); per-layer rows are for one layer.
_BREAKDOWN = (
    ("word embeddings (V x H)", "word_embeddings"),
    ("position embeddings (512 x H)", "position_embeddings"),
    ("segment embeddings (2 x H)", "segment_embeddings"),
    ("embedding LayerNorm", "embedding_layer_norm"),
    ("per layer: attention Q, K, V", "attention_qkv"),
    ("per layer: attention output", "attention_output"),
    ("per layer: attention LayerNorm", "attention_layer_norm"),
    ("per layer: FFN (H x F, F x H)", "ffn"),
    ("per layer: FFN LayerNorm", "ffn_layer_norm"),
    ("one layer", "layer"),
    ("all L layers", "layers"),
    ("pooler", "pooler"),
    ("MLM transform (dense)", "mlm_transform"),
    ("MLM transform LayerNorm", "mlm_layer_norm"),
    ("MLM output bias (decoder tied)", "mlm_output_bias"),
    ("NSP", "nsp"),
)


def rows(model: str, vocab_size: int) -> list[dict]:
    names = list(config_lib.PRESETS) if model == "all" else [model]
    return [param_count.count_params(name, config_lib.preset(name, vocab_size=vocab_size))
            for name in names]


def _estimate(value: int | None, rel_error: float | None) -> str:
    return "-" if value is None else f"{value:,} ({rel_error:+.2%})"


def format_table(row: dict) -> str:
    lines = [f"### {row['name']}: L={row['num_layers']}, H={row['hidden_size']}, "
             f"A={row['num_heads']}, V={row['vocab_size']:,}", "",
             "| component | parameters |", "|---|---:|"]
    lines += [f"| {label} | {row['components'][key]:,} |" for label, key in _BREAKDOWN]
    lines += [
        f"| **encoder** (embeddings + layers) | {row['encoder']:,} |",
        f"| **encoder + pooler** (BertModel) | {row['with_pooler']:,} |",
        f"| **pretraining model** (+ MLM, NSP) | {row['pretraining']:,} |",
        f"| approximation V*H + 12*L*H^2 (rel. error) | "
        f"{_estimate(row['formula'], row['formula_rel_error'])} |",
        f"| paper's figure (rel. error) | {_estimate(row['paper'], row['paper_rel_error'])} |",
    ]
    return "\n".join(lines)


def main(argv):
    del argv
    if FLAGS.model != "all" and FLAGS.model not in config_lib.PRESETS:
        raise app.UsageError(f"--model={FLAGS.model!r}; expected 'all' or one of "
                             f"{sorted(config_lib.PRESETS)}")
    table_rows = rows(FLAGS.model, FLAGS.vocab_size)
    if FLAGS.json:
        print(json.dumps(table_rows, indent=1))
    else:
        print("\n\n".join(format_table(row) for row in table_rows))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
