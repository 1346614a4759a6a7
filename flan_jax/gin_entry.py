"""Gin at the edge: parses gin files and ``--gin.NAME=VALUE`` flags into frozen configs.

Gin binds only the config dataclasses (``TrainConfig``, every model family's config,
``MeshConfig``, ``OptimizerConfig``, ``EvalConfig``); the library never imports gin. Gin files
resolve from the working directory first, then from the gin files shipped with the package, so
``--gin_file=experiments/demo_smoke.gin`` works from anywhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import gin

from flan_jax import models, optim, partitioning, train
from flan_jax.evaluation import jobs as evaluate

CONFIGURABLES = (
    train.TrainConfig,
    evaluate.EvalConfig,
    *models.config_classes(),  # e.g. `MODEL = @T5Config()` in gin/models/*.gin
    partitioning.MeshConfig,
    optim.OptimizerConfig,
)


@functools.cache
def register_configurables() -> None:
    for cls in CONFIGURABLES:
        gin.external_configurable(cls, module="flan_jax")


def packaged_gin_dir() -> str:
    """The shipped gin files: inside the installed package, or gin/ of a source checkout."""
    installed = resources.files("flan_jax") / "gin_configs"
    if installed.is_dir():
        return str(installed)
    return str(pathlib.Path(__file__).resolve().parents[1] / "gin")


def _resolve(path: str) -> str:
    if os.path.exists(path):
        return path
    packaged = os.path.join(packaged_gin_dir(), path.removeprefix("gin/"))
    if os.path.exists(packaged):
        return packaged
    raise FileNotFoundError(
        f"gin file {path} not found in the working directory or in the packaged gin files "
        f"({packaged_gin_dir()}); e.g. --gin_file=experiments/demo_smoke.gin"
    )


def split_gin_args(argv: Sequence[str]) -> tuple[list[str], list[str], list[str]]:
    """T5X-style flags -> (gin files, bindings, leftover args).

    ``--gin_file=F`` (repeatable) and ``--gin.NAME=VALUE`` (a binding ``NAME = VALUE``).
    """
    files, bindings, rest = [], [], []
    it = iter(argv)
    for arg in it:
        if arg.startswith("--gin_file="):
            files.append(arg.split("=", 1)[1])
        elif arg == "--gin_file":
            files.append(next(it))
        elif arg.startswith("--gin."):
            name, sep, value = arg[len("--gin.") :].partition("=")
            if not sep:
                raise ValueError(f"gin flag {arg!r} has no value; write --gin.{name}=VALUE")
            bindings.append(f"{name} = {value}")
        else:
            rest.append(arg)
    return files, bindings, rest


class GinError(ValueError):
    """A gin file or ``--gin.X=`` flag that cannot be used (one line: what, where, the fix)."""


def _macro_names() -> set[str]:
    """Macros the parsed files define (T5X's are all in train.gin, REQUIRED or with a value)."""
    return {name for (name, selector) in gin.config._CONFIG if selector == "gin.macro"}


def _nearest(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _explain(e: Exception, binding: str | None) -> str:
    """gin's exception as one actionable line."""
    message = str(e).splitlines()[0].strip() if str(e) else type(e).__name__
    where = f" in --gin.{binding.replace(' = ', '=', 1)}" if binding else ""
    unknown_param = re.search(
        r"Configurable '(\w+)' doesn't have a parameter named '(\w+)'", message
    )
    if unknown_param:
        cls, param = unknown_param.groups()
        fields = [f.name for c in CONFIGURABLES if c.__name__ == cls for f in dataclasses.fields(c)]
        return f"gin: {cls} has no parameter '{param}'{where}{_nearest(param, fields)}"
    unknown_cls = re.search(r"No configurable matching '([\w.]+)'", message)
    if unknown_cls:
        names = [c.__name__ for c in CONFIGURABLES]
        return (
            f"gin: unknown configurable '{unknown_cls.group(1)}'{where}"
            f"{_nearest(unknown_cls.group(1), names)} (configurable: {', '.join(names)})"
        )
    if isinstance(e, SyntaxError) or "malformed" in message or "Unable to parse" in message:
        if binding:
            return (
                f"gin: cannot parse --gin.{binding.replace(' = ', '=', 1)}: the value must be a "
                'number, list, dict or quoted string, e.g. --gin.MODEL_DIR=\\"runs/x\\"'
            )
        return f"gin: cannot parse the gin files ({message})"
    return f"gin: {message}{where}"


def parse(
    files: Sequence[str], bindings: Sequence[str], macros: Mapping[str, Any] | None = None
) -> None:
    """Parses gin files, then binds `macros` (Python values), then the `bindings` strings (so a
    user's ``--gin.X=`` flags win). The packaged gin dir is on the include search path.

    Every problem is a one-line `GinError`: a parse error, an unknown configurable or parameter,
    and a macro flag that no gin file defines (a misspelled ``--gin.TRAIN_STEP=20`` would
    otherwise bind a macro nothing reads), each with the nearest known name.
    """
    register_configurables()
    gin.clear_config()
    gin.add_config_file_search_path(packaged_gin_dir())
    if not files:
        raise GinError("no --gin_file given; e.g. --gin_file=experiments/demo_smoke.gin")
    resolved = []
    for f in files:
        resolved.append(_resolve(f))
        gin.add_config_file_search_path(os.path.dirname(os.path.abspath(resolved[-1])))
    # gin logs an error for every search path an include is not found in before the one it is.
    root = logging.getLogger()
    level, root.level = root.level, logging.CRITICAL
    binding = None
    try:
        gin.parse_config_files_and_bindings(resolved, [], finalize_config=False)
        known = _macro_names()
        for name, value in (macros or {}).items():
            gin.bind_parameter(f"{name}/macro.value", value)
        for binding in bindings:
            name = binding.split("=", 1)[0].strip()
            if "." not in name and "/" not in name and name not in known:
                raise GinError(
                    f"gin: --gin.{name} sets a macro no gin file uses{_nearest(name, known)} "
                    f"(macros: {', '.join(sorted(known))})"
                )
            gin.parse_config(binding)
    except GinError:
        raise
    except Exception as e:  # gin raises ValueError, SyntaxError, NameError, ... with context
        raise GinError(_explain(e, binding)) from None
    finally:
        root.level = level


def macro(name: str, default=None):
    """The value a gin macro is bound to (``default`` when unbound)."""
    try:
        return gin.query_parameter(f"%{name}")
    except ValueError:
        return default


def build_train_config() -> train.TrainConfig:
    """The TrainConfig the parsed gin config describes (one-line error for missing macros)."""
    return build_config(train.TrainConfig)


def build_eval_config() -> evaluate.EvalConfig:
    """The EvalConfig of the parsed gin config (CHECKPOINT_PATH must be set)."""
    cfg = build_config(evaluate.EvalConfig)
    if cfg.checkpoint_path is None:
        raise ValueError(
            'gin: CHECKPOINT_PATH is not set; add --gin.CHECKPOINT_PATH=\\"MODEL_DIR/<step>\\"'
        )
    return cfg


def build_config(cls):
    """Instantiates a gin-configured config dataclass with one-line errors."""
    try:
        cfg = gin.get_configurable(cls)()
    except (ValueError, TypeError) as e:
        message = str(e).splitlines()[0]
        if "REQUIRED" in message or "required" in message:
            raise ValueError(
                f'gin: {message}; set it with --gin.NAME=VALUE (e.g. --gin.MODEL_DIR=\\"runs/x\\")'
            ) from None
        raise
    # A macro bound to %gin.REQUIRED arrives as gin's placeholder object: name it.
    for field in dataclasses.fields(cfg):
        if type(getattr(cfg, field.name)) is object:
            name = field.name.upper()
            raise ValueError(
                f"gin: {name} is required but not set; add --gin.{name}=VALUE "
                f'(strings quoted, e.g. --gin.MODEL_DIR=\\"runs/x\\")'
            )
    return cfg


def operative_config() -> str:
    """The operative gin config (what the built configs actually used), to keep in MODEL_DIR."""
    return gin.operative_config_str()
