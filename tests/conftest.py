"""Test setup: 8 virtual CPU devices, forced before JAX is first imported anywhere."""

import os
import tempfile

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["CUDA_VISIBLE_DEVICES"] = ""  # TensorFlow must never grab an accelerator.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Command-line subprocesses (`flan-jax train` and the like) use the persistent compilation cache
# as users' do, but a test one in the temp dir instead of the user's (bounded: the cache keeps
# 2 GiB at most); the suite's many launches of the same tiny programs then compile once.
os.environ["XDG_CACHE_HOME"] = os.path.join(
    tempfile.gettempdir(), f"flan_jax_test_cache_{os.getuid()}"
)
os.environ.pop("FLAN_JAX_COMPILATION_CACHE", None)
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)


def pytest_collection_modifyitems(config, items):
    """Files with slow tests first (alphabetical otherwise): `make test` hands whole files to two
    xdist workers in this order (--no-loadscope-reorder), so the long multi-process files start
    early and short files fill in at the end, instead of two long files ending the run alone."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: order within a file kept
