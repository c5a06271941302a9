"""Fine-tuning on the offline docstring-topic task (6 stdlib packages, real English text).

    python -m bertjax.main --config=experiments/finetune/docstring_topics.py --workdir=W \
        --config.init_checkpoint=PATH

The task needs no download, so it is what the quickstart fine-tunes its pretrained model on.
"""

from experiments.finetune import defaults


def get_config(arg: str = ""):
    config = defaults.get_config()
    config.task = "docstring_topics"
    config.max_seq_length = 64
    config.batch_size = 16
    config.eval_batch_size = 32
    config.num_train_epochs = 5.0
    config.log_every_steps = 10
    if "runlocal" in defaults.parse_arg(arg):
        config.num_train_epochs = 1.0
    return config
