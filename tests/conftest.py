"""Test-session set-up shared by every test module.

Eight fake CPU devices let the sharding tests build real meshes (data x fsdp x tensor) on a
laptop; the flag must be set before jax is imported anywhere, hence here. TensorFlow serves
tf.data only and must never claim an accelerator.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
