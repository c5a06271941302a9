"""Fine-tuning on the offline docstring-topic task (6 stdlib packages, real English text).

    python -m bertjax.main --config=experiments/finetune/docstring_topics.py --workdir=W \
        --config.init_checkpoint=PATH

The task needs no download, so it is what the quickstart fine-tunes its pretrained model on.
"""

from experiments import config_args
from experiments.finetune import defaults


def offline_config(task: str, runlocal: bool):
    """The settings the offline docstring tasks share (this one and docstring_pairs.py)."""
    config = defaults.get_config()
    config.task = task
    config.data.max_seq_length = 64
    config.batch_size = 16
    config.eval_batch_size = 32
    config.num_train_epochs = 5.0
    config.log_every_steps = 10
    if runlocal:
        config.num_train_epochs = 1.0
    return config


def get_config(arg: str = ""):
    args = config_args.parse(arg, runlocal=False)
    config = offline_config("docstring_topics", args["runlocal"])
    config.data.max_train_per_topic = 60
    config.data.max_dev_per_topic = 40
    return config
