"""Process set-up shared by every entry point: the multi-host flags and jax.distributed.

Entry points (`bertjax.main`, `experiments.stability.sweep`) import this module, which defines
the flags, and call `initialize()` once absl has parsed them:

  --distributed=auto|true|false  auto joins a cluster when one is detected (TPU pod, SLURM,
                                 Open MPI), which jax.distributed.initialize() then configures;
  --coordinator_address, --num_processes, --process_id
                                 an explicit cluster (e.g. several processes on one machine).

On CPU the processes exchange collectives over gloo (set here, before the backend starts).
"""

import os

from absl import flags, logging

flags.DEFINE_enum("distributed", "auto", ["auto", "true", "false"],
                  "Initialise jax.distributed: auto does so when a cluster is detected.")
flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (explicit clusters).")
flags.DEFINE_integer("num_processes", None, "Number of processes (explicit clusters).")
flags.DEFINE_integer("process_id", None, "This process's index (explicit clusters).")
FLAGS = flags.FLAGS


def cluster_detected() -> bool:
    """True under a multi-host TPU slice, a SLURM job or an Open MPI job of several tasks."""
    if os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") >= 1:
        return True
    return any(int(os.environ.get(v, "1") or 1) > 1 for v in ("SLURM_NTASKS",
                                                            "OMPI_COMM_WORLD_SIZE"))


def initialize() -> None:
    """Joins the cluster the flags (or the environment) describe; hides accelerators from TF."""
    import jax  # after absl parsed flags, so XLA_FLAGS set by the launcher are in place

    if FLAGS.distributed == "true" or FLAGS.coordinator_address or (
            FLAGS.distributed == "auto" and cluster_detected()):
        # CPU processes (tests, CPU clusters) need a cross-process collectives backend.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes,
                                   FLAGS.process_id)
    # TensorFlow feeds tf.data only: it must never claim the accelerators.
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
    logging.info("process %d/%d, %d local / %d global devices", jax.process_index(),
                 jax.process_count(), jax.local_device_count(), jax.device_count())
