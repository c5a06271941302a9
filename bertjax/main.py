"""Entry point: `python -m bertjax.main --config=experiments/<file>.py[:args] --workdir=DIR`.

The same command runs on every host of a TPU pod or GPU cluster. Multi-host set-up goes through
`jax.distributed.initialize()`, which detects TPU pods, SLURM and Open MPI by itself; elsewhere
pass --coordinator_address, --num_processes and --process_id (bertjax.launch).
"""

from absl import app, flags, logging
from ml_collections import config_flags

from bertjax import launch  # the multi-host flags

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS

FINETUNE_TASKS = ("glue", "squad", "ner", "docstring_topics", "docstring_pairs")


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        # Warnings and up by default: orbax, clu and TensorFlow log every save and scalar at
        # INFO, which drowns the progress bar. --verbosity=0 brings INFO back.
        logging.set_verbosity(logging.WARNING)
    launch.initialize()

    config = FLAGS.config
    if config.task == "pretrain":
        from bertjax import train
        train.train_and_evaluate(config, FLAGS.workdir)
    elif config.task in FINETUNE_TASKS:
        from bertjax import finetune
        finetune.run(config, FLAGS.workdir)
    else:
        raise app.UsageError(f"config.task={config.task!r}; expected 'pretrain' or one of "
                             f"{FINETUNE_TASKS} (stability sweeps run with "
                             "`python -m experiments.stability.sweep`)")


if __name__ == "__main__":
    app.run(main)
