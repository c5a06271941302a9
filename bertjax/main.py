"""Entry point: `python -m bertjax.main --config=experiments/<file>.py[:args] --workdir=DIR`.

The same command runs on every host of a TPU pod or GPU cluster. Multi-host set-up goes through
`jax.distributed.initialize()`, which detects TPU pods, SLURM and Open MPI by itself; elsewhere
pass --coordinator_address, --num_processes and --process_id.
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and outputs.")
flags.DEFINE_enum("distributed", "auto", ["auto", "true", "false"],
                  "Initialise jax.distributed: auto does so when a cluster is detected.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (explicit clusters).")
flags.DEFINE_integer("num_processes", None, "Number of processes (explicit clusters).")
flags.DEFINE_integer("process_id", None, "This process's index (explicit clusters).")
flags.mark_flags_as_required(["config", "workdir"])
FLAGS = flags.FLAGS

FINETUNE_TASKS = ("glue", "squad", "ner", "docstring_topics")
_CLUSTER_VARIABLES = ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES")


def _cluster_detected() -> bool:
    if os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1:
        return True
    return any(int(os.environ.get(v, "1") or 1) > 1 for v in ("SLURM_NTASKS",
                                                            "OMPI_COMM_WORLD_SIZE"))


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        # Warnings and up by default: orbax, clu and TensorFlow log every save and scalar at
        # INFO, which drowns the progress bar. --verbosity=0 brings INFO back.
        logging.set_verbosity(logging.WARNING)
    import jax  # after absl parsed flags, so XLA_FLAGS set by the launcher are in place

    if FLAGS.distributed == "true" or FLAGS.coordinator_address or (
            FLAGS.distributed == "auto" and _cluster_detected()):
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                   FLAGS.process_id)
    # TensorFlow feeds tf.data only: it must never claim the accelerators.
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
    logging.info("process %d/%d, %d local / %d global devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count())

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
