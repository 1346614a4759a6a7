"""Test setup: 8 virtual CPU devices, forced before JAX is first imported anywhere."""

import os

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # TensorFlow must never grab an accelerator.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Command-line subprocesses would otherwise share the user's compilation cache: tests compile
# afresh (tests/test_host_memory.py turns it on where it checks it).
os.environ["FLAN_JAX_COMPILATION_CACHE"] = "0"
