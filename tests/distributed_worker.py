"""One process of the two-process jax.distributed test (see test_distributed.py).

    python -m tests.distributed_worker PORT PROCESS_ID

Each process owns 2 CPU devices; together they form a 4-device data-parallel mesh. Each feeds
only its own rows of the global batch (as every host of a pod does) and prints the step's loss
and gradient norm as JSON.
"""

import json
import os
import sys

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

import jax  # noqa: E402

jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_default_matmul_precision", "highest")


def main(port: int, process_id: int) -> None:
    jax.distributed.initialize(f"localhost:{port}", num_processes=2, process_id=process_id,
                               local_device_ids=[0, 1])
    from tests import test_distributed  # the shared tiny set-up

    loss, grad_norm = test_distributed.one_step(sharding_mesh={"data": 4})
    print(json.dumps({"process": jax.process_index(), "loss": loss, "grad_norm": grad_norm}))
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
