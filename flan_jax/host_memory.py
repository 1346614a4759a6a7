"""Host allocator settings for compute processes (what the CLI's train and eval run under).

XLA's CPU runtime allocates each step's buffers (activations, gradients, its temporary arena)
with the C allocator. glibc serves blocks above a few MiB with a fresh `mmap` and unmaps them on
free, so every training step faults in, and the kernel zeroes, every page of those buffers
again: ~58k page faults per step for a T5 tiny step (byte vocabulary) on the CPU, ~240k
(about a GiB) for T5 small. glibc's malloc tunables fix that: large blocks come from the heap
(`mmap_max=0`), freed memory stays mapped for the next step (`trim_threshold`), and the heap is
backed by transparent huge pages (`hugetlb=1`; 2 MiB pages where the kernel allows them on
request, as most distributions do). The process then keeps its peak memory until it exits, which a training or
evaluation process reaches on its first step anyway.

Tunables are read only when a process starts, so the CLI starts itself again with them
(`reexec_with_tuned_allocator`) before anything heavy is imported. Other C libraries ignore the
variable. ``FLAN_JAX_KEEP_HOST_MEMORY=0`` leaves the allocator as it is; a ``GLIBC_TUNABLES``
the user set that already names a malloc tunable is kept as it is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence

# Largest values glibc accepts: a trim threshold this size means "never give the heap back".
TUNABLES = "glibc.malloc.hugetlb=1:glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4294967295"

_OPT_OUT = "FLAN_JAX_KEEP_HOST_MEMORY"


def tuned_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """`environ` with the allocator tunables added, or None when nothing should change (not
    Linux, opted out, already set, or the user's own malloc tunables)."""
    if not sys.platform.startswith("linux") or environ.get(_OPT_OUT, "1") == "0":
        return None
    current = environ.get("GLIBC_TUNABLES", "")
    if "glibc.malloc." in current:  # ours (already restarted) or the user's own choice
        return None
    return {**environ, "GLIBC_TUNABLES": f"{current}:{TUNABLES}" if current else TUNABLES}


def reexec_with_tuned_allocator(argv: Sequence[str] | None = None) -> None:
    """Replaces this process by the same command under `tuned_environment` (no return), or
    returns when nothing should change. `argv` defaults to the interpreter's own command line;
    call it before threads start or files are opened for writing."""
    env = tuned_environment(os.environ)
    if env is None:
        return
    argv = list(argv if argv is not None else sys.orig_argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv[1:]], env)
