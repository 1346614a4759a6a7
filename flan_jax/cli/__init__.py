"""The ``flan-jax`` command: the entry layer, one parser with lazily imported subcommands.

Building the parser imports nothing heavy: each subcommand names the module and function that
runs it (``flan_jax.cli.<module>:<function>``), imported only when that subcommand runs, so
``flan-jax --help`` and every ``flan-jax <subcommand> --help`` answer without starting JAX,
TensorFlow or seqio.

Subcommands:
  list [COLLECTION]           registered collections, clusters, datasets and mixtures
  inspect NAME                a task (raw example, rendered text, token counts) or a mixture
  train-vocab NAME OUT        a SentencePiece model trained on a task's or mixture's text
  train / eval / infer        gin-configured jobs (``--gin_file=F --gin.NAME=VALUE``)
  smoke                       the main job on the embedded demo collection
  convert                     Hugging Face / T5X checkpoints in, Hugging Face out
  preflight                   per-device memory of a train config on a target mesh (no run)
  data-status NAME            which datasets of NAME are prepared / missing / need a download
  datacard [COLLECTION]       writes docs/<collection>_datacard.md
"""

from __future__ import annotations

import argparse
import faulthandler
import importlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from flan_jax.cli.common import is_user_error, quiet_startup

# ---------------------------------------------------------------------------------------------
# Arguments of each subcommand (argparse only: no heavy imports here).


def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", nargs="?", help="only this collection")


def _inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="task or mixture name, e.g. demo:fact_nli:t0")
    p.add_argument("--split", default="train")
    p.add_argument("--n", type=int, default=3, help="examples to show")
    p.add_argument(
        "--mock", action="store_true", help="TFDS tasks: random schema-true examples, no data"
    )


def _train_vocab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="task or mixture")
    p.add_argument("output", help="output prefix (writes PREFIX.model and PREFIX.vocab)")
    p.add_argument("--vocab_size", type=int, default=8000)
    p.add_argument("--split", default="train")
    p.add_argument("--max_examples", type=int, default=100_000)
    p.add_argument("--overwrite", action="store_true")


def _no_args(p: argparse.ArgumentParser) -> None:
    del p


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile_steps",
        default=None,
        metavar="N:M",
        help="write a JAX profiler trace of steps N..M to MODEL_DIR/profile (TensorBoard / "
        'Perfetto); the same as --gin.TrainConfig.profile_steps=\\"N:M\\"',
    )


def _eval_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--include_heldin", action="store_true", help="also evaluate held-in clusters")
    p.add_argument(
        "--watch",
        metavar="MODEL_DIR",
        default=None,
        help="follow a training run: evaluate each committed checkpoint as it appears (skipping "
        "evaluated ones) until its final step; a summary across steps in MODEL_DIR/eval/summary",
    )
    p.add_argument(
        "--poll_seconds",
        type=float,
        default=60.0,
        help="--watch: how often to look for checkpoints",
    )


def _infer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", help="one instruction")
    p.add_argument("--options", nargs="+", help="answer options to score for --prompt")
    p.add_argument("--input", help='JSONL of {"prompt": ..., "options": [...]} records')
    p.add_argument("--output", help="JSONL of answers (never overwritten)")


def _smoke_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heldout", default="nli", help="the demo cluster held out of tuning")
    p.add_argument(
        "--model_dir",
        default=None,
        help="default runs/demo_smoke (runs/demo_smoke_<cluster> for another --heldout)",
    )
    p.add_argument("--steps", type=int, default=None, help="override TRAIN_STEPS")
    p.add_argument(
        "--num_examples",
        type=int,
        default=120,
        help="cap on eval examples (rows for rank tasks) per task and split; 0: no cap",
    )
    p.add_argument("--eval_batch_size", type=int, default=64)
    p.add_argument("--heldin", default=None, help="evaluate only these held-in clusters (a,b)")


def _convert_args(p: argparse.ArgumentParser) -> None:
    way = p.add_mutually_exclusive_group(required=True)
    way.add_argument("--from", dest="from_format", choices=("hf", "t5x"), help="import format")
    way.add_argument("--to", dest="to_format", choices=("hf",), help="export format")
    p.add_argument("src", help="source directory (HF model dir, T5X checkpoint_N, or ours)")
    p.add_argument("out", help="output directory (must not exist, or be empty for --to)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--max_distance", type=int, default=128, help="T5X: relative max distance")
    p.add_argument("--vocabulary", default=None, help="record this vocabulary (default: by size)")
    p.add_argument(
        "--model_parallel",
        type=int,
        default=1,
        help="import straight onto a mesh with this many model shards (large models)",
    )
    p.add_argument(
        "--model_config", default=None, help="--to: model_config.json if the checkpoint has none"
    )


def _preflight_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--topology",
        default=None,
        help="v4-32, v5e-16, v5p-8, v6e-8, ... or a device count (8, cpu:8); "
        "default: this process's devices",
    )
    p.add_argument(
        "--device_memory_gb",
        type=float,
        default=None,
        help="memory per device in GiB (default: the TPU's HBM, or the device's own limit)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    p.add_argument(
        "--no_compile",
        action="store_true",
        help="skip the compile: exact param/optimizer/batch bytes, no activation estimate",
    )
    p.add_argument(
        "--fail_if_not_fits", action="store_true", help="exit with status 3 when it does not fit"
    )


def _data_status_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="collection (e.g. flan2021), task or mixture name")
    p.add_argument("--data_dir", default=None, help="TFDS data dir (default $TFDS_DATA_DIR)")


def _datacard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("collection", nargs="?", default="flan2021")
    p.add_argument("--output", default=None, help="default docs/<collection>_datacard.md")


# (name, help, arguments, handler "module:function", takes --gin_file / --gin.X flags)
COMMANDS: tuple[tuple[str, str, Callable[[argparse.ArgumentParser], None], str, bool], ...] = (
    ("list", "registered collections, clusters, datasets, mixtures", _list_args, "data:cmd_list", False),
    ("inspect", "show a task's examples or a mixture's members", _inspect_args, "data:cmd_inspect", False),
    ("train-vocab", "train a SentencePiece model on task text", _train_vocab_args, "data:cmd_train_vocab", False),
    ("train", 'train a model: --gin_file=F ... --gin.MODEL_DIR=\\"DIR\\" --gin.TRAIN_STEPS=N', _train_args, "jobs:cmd_train", True),
    ("eval", "evaluate a checkpoint: --gin_file=F --gin.CHECKPOINT_PATH=...", _eval_args, "jobs:cmd_eval", True),
    ("infer", "answer prompts with a checkpoint (--prompt or --input)", _infer_args, "jobs:cmd_infer", True),
    ("smoke", "the main job on the embedded demo collection", _smoke_args, "jobs:cmd_smoke", True),
    ("convert", "import Hugging Face / T5X checkpoints, export to Hugging Face", _convert_args, "convert:cmd_convert", False),
    ("preflight", "per-device memory of a train config on a target mesh, compiled ahead of time", _preflight_args, "preflight:cmd_preflight", True),
    ("data-status", "which datasets of a collection/task/mixture are prepared", _data_status_args, "data:cmd_data_status", False),
    ("datacard", "write docs/<collection>_datacard.md", _datacard_args, "data:cmd_datacard", False),
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The one parser of ``flan-jax`` (imports no subcommand module)."""
    parser = argparse.ArgumentParser(
        prog="flan-jax",
        description="FLAN-style instruction tuning and zero-shot evaluation of held-out task clusters.",
        epilog="Bad input fails with one line; FLAN_JAX_DEBUG=1 shows the traceback. "
        "kill -USR1 <pid> makes a running train/eval/infer write its Python stacks to stderr.",
    )
    parser.add_argument(
        "--vocab",
        default=None,
        help="vocabulary: byte (default), t5, or a SentencePiece .model path "
        "(for gin jobs it sets the VOCABULARY macro)",
    )
    parser.add_argument(
        "--templates",
        default=None,
        help="ours (default) or flan:PATH/TO/FLAN: FLAN 2021 tasks use FLAN's own templates, "
        "read as data from that checkout's flan/templates.py (gin jobs: the TEMPLATES macro)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="keep TensorFlow/absl/XLA start-up logs (also FLAN_JAX_VERBOSE=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_args, handler, accepts_gin in COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
        p.set_defaults(handler=handler, accepts_gin=accepts_gin)
    return parser


def _handler(spec: str) -> Callable[[argparse.Namespace], None]:
    module, function = spec.split(":")
    return getattr(importlib.import_module(f"flan_jax.cli.{module}"), function)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one subcommand; returns the exit status (2 for bad input, with one line)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown and not args.accepts_gin:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.extra = unknown
    if argv is None and args.accepts_gin:
        # Compute jobs use JAX's persistent compilation cache (flan_jax.compile_cache) and run
        # under the allocator settings of flan_jax.host_memory: the process starts itself again
        # with them (only from the command line, before any heavy import).
        from flan_jax import compile_cache, host_memory

        os.environ.update(compile_cache.environment(os.environ))
        host_memory.reexec_with_tuned_allocator()
        # `kill -USR1 <pid>` writes every thread's Python stack to stderr: what a job that
        # seems stuck (a host waiting on a collective, a slow input) is doing, without stopping it.
        if hasattr(signal, "SIGUSR1"):  # POSIX only
            faulthandler.register(signal.SIGUSR1, all_threads=True)
    args.verbose = args.verbose or os.environ.get("FLAN_JAX_VERBOSE", "") not in ("", "0")
    try:
        with quiet_startup(enabled=not args.verbose):
            run = _handler(args.handler)
        run(args)
    except Exception as e:
        if not is_user_error(e) or os.environ.get("FLAN_JAX_DEBUG"):
            raise  # a bug (or a developer asking): the full traceback
        print(
            f"flan-jax: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("flan-jax: interrupted", file=sys.stderr)
        return 130
    return 0
