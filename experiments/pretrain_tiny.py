"""A tiny BERT (2 layers, H=128) pretrained on the Python standard library's docstrings.

The embedded default corpus needs no download: its TFRecords are built on first use (under
WORKDIR/data) with the original create_pretraining_data algorithm and the bert-base-uncased
vocab. The MLM loss falls visibly within a few minutes on a 2-core CPU. Tests and the README's
quickstart use it; `:runlocal` shrinks it to a few steps.

    python -m bertjax.main --config=experiments/pretrain_tiny.py --workdir=/tmp/tiny
"""

from experiments import config_args, pretrain_defaults


def get_config(arg: str = ""):
    args = config_args.parse(arg, runlocal=False)
    config = pretrain_defaults.get_config()
    config.model.preset = "tiny"
    config.data.source = "default_corpus"
    config.data.dupe_factor = 2
    config.batch_size = 32
    config.num_train_steps = 600
    # A short run wants a short warmup and a larger lr than BERT-base's 1e-4 (Turc et al. 2019
    # pretrain the miniatures at up to 1e-3).
    config.optimizer.learning_rate = 1e-3
    config.optimizer.warmup_steps = 60
    config.log_every_steps = 20
    config.eval_every_steps = 200
    config.num_eval_steps = 10
    config.checkpoint_every_steps = 200
    if args["runlocal"]:
        config.num_train_steps = 6
        config.optimizer.warmup_steps = 2
        config.batch_size = 8
        config.log_every_steps = 2
        config.eval_every_steps = 3
        config.num_eval_steps = 2
        config.checkpoint_every_steps = 3
    return config
