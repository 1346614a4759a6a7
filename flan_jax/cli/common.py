"""What every subcommand shares: one-line errors, quiet start-up, logging, gin configs."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any


class UserError(Exception):
    """An input problem reported as one line (no traceback)."""


# Exceptions that mean "bad input" (what, which value, how to fix): configs, names, paths.
_USER_ERRORS = (UserError, ValueError, FileNotFoundError, FileExistsError, PermissionError)


def is_user_error(e: BaseException) -> bool:
    """Whether `e` is bad input to report in one line, rather than a bug to show in full."""
    if isinstance(e, _USER_ERRORS):
        return True
    step = sys.modules.get("flan_jax.train_step")  # imported only if a run got that far
    return step is not None and isinstance(e, step.TrainingDiverged)


@contextlib.contextmanager
def quiet_startup(enabled: bool = True) -> Iterator[None]:
    """Imports done inside print nothing unless they fail.

    TensorFlow and XLA write start-up lines to the stderr file descriptor from C++ before their
    log levels apply ("Could not find cuda drivers", "failed call to cuInit", absl's "log
    messages before InitializeLog"); they read as errors to a newcomer. While enabled, fd 2 goes
    to a temporary file that is replayed only if the block raises. Later warnings still show:
    only TensorFlow's C++ INFO/WARNING lines stay hidden (TF_CPP_MIN_LOG_LEVEL=2).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if enabled else "0")
    if not enabled:
        yield
        _hide_gpus_from_tensorflow()
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
            _hide_gpus_from_tensorflow()
        except BaseException:
            sys.stderr.flush()
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _hide_gpus_from_tensorflow() -> None:
    # JAX owns the accelerators; TensorFlow (the input pipeline) stays on the CPU.
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        with contextlib.suppress(RuntimeError):  # already initialized: nothing to change
            tf.config.set_visible_devices([], "GPU")
        tf.get_logger().setLevel("ERROR")


def setup_logging() -> None:
    """INFO logs of our own; seqio/absl/orbax/jax chatter only from ERROR up."""
    import logging

    import absl.logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S", force=True
    )
    # seqio warns on every uncached function source; orbax/absl chatter drowns the progress.
    absl.logging.set_verbosity(absl.logging.ERROR)
    for name in ("absl", "jax", "orbax", "tensorflow", "seqio"):
        logging.getLogger(name).setLevel(logging.ERROR)


def vocabulary_spec(args: argparse.Namespace, default: str = "byte") -> str:
    """The vocabulary named by ``--vocab`` (byte, t5 or a SentencePiece .model path)."""
    return args.vocab or default


def gin_config(
    args: argparse.Namespace, files: tuple[str, ...] = (), macros: Mapping[str, Any] | None = None
) -> Any:
    """Parses the gin files and ``--gin.X=`` flags of `args.extra` (plus `files` first and
    `macros` bound before the user's flags, so those win); sets up devices and processes.

    Returns the `gin_entry` module, ready for ``build_train_config()`` / ``build_eval_config()``.
    """
    from flan_jax import gin_entry

    user_files, bindings, rest = gin_entry.split_gin_args(args.extra)
    if rest:
        raise UserError(f"unrecognized arguments: {' '.join(rest)}")
    macros = dict(macros or {})
    if args.vocab:
        macros["VOCABULARY"] = args.vocab
    if getattr(args, "templates", None):
        macros["TEMPLATES"] = args.templates
    gin_entry.parse([*files, *user_files], bindings, macros=macros)
    from flan_jax import catalog

    catalog.use_templates(gin_entry.macro("TEMPLATES"))
    _cpu_devices(gin_entry.macro("CPU_DEVICES"))
    _join_processes()
    return gin_entry


def _cpu_devices(n: int | None) -> None:
    """Virtual CPU devices (only affects the CPU backend; read when JAX first starts)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if n and "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def _join_processes() -> None:
    """Joins a multi-process job described by FLAN_JAX_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID
    (set by launch/local_multiprocess.py); Cloud TPU needs nothing (auto-detected)."""
    if "FLAN_JAX_COORDINATOR" not in os.environ:
        return
    from flan_jax import partitioning

    partitioning.init_distributed(
        os.environ["FLAN_JAX_COORDINATOR"],
        int(os.environ["FLAN_JAX_NUM_PROCESSES"]),
        int(os.environ["FLAN_JAX_PROCESS_ID"]),
    )
