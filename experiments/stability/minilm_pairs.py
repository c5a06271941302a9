"""The 2-core-CPU stability sweep on a sentence-pair task: all-MiniLM-L6-v2 on docstring_pairs.

The real MiniLM weights, arms, seeds and settings of minilm_docstrings.py (shared through its
`minilm_config`), fine-tuned on `docstring_pairs` (data_pipelines/docstring_pairs.py: does
sentence B follow sentence A in a standard-library docstring? 320 training pairs, 200 dev, both
classes exactly half, dev split by module): a binary task with a majority baseline of 50%, as
RTE's, where Mosbach et al.'s failed runs sit. Pairs are cut at 64 word pieces: the median pair
is 43, the 90th percentile 66-68, and 11% (train) / 15.5% (dev) lose the tail of their longer
sentence (`python -m data_pipelines.docstring_pairs`).

    python -m experiments.stability.sweep \\
        --config=experiments/stability/minilm_pairs.py:arm=devlin+adamw_3ep+mosbach,seeds=10 \\
        --workdir=/tmp/stability_minilm
"""

from experiments import config_args
from experiments.stability import minilm_docstrings


def get_config(arg: str = ""):
    args = config_args.parse(arg, arm="devlin+adamw_3ep+mosbach", seeds=10,
                             seeds_per_program=5, max_seq_length=64, train_examples=320,
                             dev_examples=200, runlocal=False)
    config = minilm_docstrings.minilm_config(args)
    config.task = "docstring_pairs"
    config.data.max_train_examples = args["train_examples"]
    config.data.max_dev_examples = args["dev_examples"]
    if args["runlocal"]:
        config.data.max_train_examples = 16
        config.data.max_dev_examples = 16
    return config
