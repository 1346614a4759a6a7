"""The model-family interface: what the rest of the library may ask of a model.

A *family* is one architecture (T5 1.1 encoder-decoder, decoder-only LM, ...): its frozen config
dataclass, preset sizes, Linen module, and the hooks training, evaluation and benchmarks need.
Each family lives in one module (`t5.py`, `decoder.py`) that defines a `Family` subclass and
registers an instance here; nothing outside `flan_jax.models` switches on the family, it asks
`family_of(config)` instead. Adding a family means adding one module (plus its gin presets and
checkpoint converter) and importing it in `flan_jax/models/__init__.py`.

Hooks come in three groups:

* construction and reports: `build`, `preset`, `size_of`, `report_name`, `describe`;
* training: `batch_layout` (the data layer maps it to a seqio feature converter),
  `model_feature_lengths`, `dummy_batch`, `param_count`, `train_flops_per_example`;
* inference: `init_decode_cache`, `row_scorer` / `option_scorer` (rank classification) and
  `stepper` (greedy / sample / beam decoding). They return a `ModelFn`: a function for the caller
  to jit under the job's layout, and whether it `vmap`s the model over examples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import numpy as np

Array = jax.Array
_DTYPES = ("float32", "bfloat16")


class ModelConfig:
    """Base of every family's frozen config dataclass.

    Subclasses are `@dataclasses.dataclass(frozen=True)` with at least `vocab_size`,
    `dropout_rate`, `dtype` (activations) and `param_dtype`; they validate in `__post_init__`
    with one-line errors.
    """

    vocab_size: int
    dropout_rate: float
    dtype: str
    param_dtype: str


# ---------------------------------------------------------------------------------------------
# Validation shared by the configs built on `layers.py` (one line naming field and value).


def prefix_lm_loss_positions(task_feature_lengths: Mapping[str, int]) -> int | None:
    """A prefix-LM row holds inputs then targets and the loss weighs the targets: how many
    positions per row that is at most, or None when the targets are the whole row."""
    targets = task_feature_lengths["targets"]
    return targets if targets < sum(task_feature_lengths.values()) else None


def check_positive(cfg: Any, *names: str) -> None:
    """Each named field is a positive int (not a bool)."""
    for name in names:
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(cfg).__name__}.{name}={value!r}: must be a positive integer.")


def check_block_fields(cfg: Any) -> None:
    """The fields of `layers.py`'s blocks: widths, relative positions, dropout, norms, dtypes."""
    check_positive(
        cfg,
        "vocab_size",
        "d_model",
        "num_heads",
        "head_dim",
        "d_ff",
        "relative_attention_num_buckets",
        "relative_attention_max_distance",
    )
    name = type(cfg).__name__
    # The bucket function gives half the buckets to exact small distances and needs at least
    # one log-spaced bucket per direction (bidirectional halves the buckets again).
    if cfg.relative_attention_num_buckets < 4:
        raise ValueError(
            f"{name}.relative_attention_num_buckets={cfg.relative_attention_num_buckets}: "
            "must be >= 4."
        )
    if cfg.relative_attention_max_distance <= cfg.relative_attention_num_buckets // 2:
        raise ValueError(
            f"{name}.relative_attention_max_distance={cfg.relative_attention_max_distance}: "
            f"must exceed relative_attention_num_buckets // 2 "
            f"({cfg.relative_attention_num_buckets // 2})."
        )
    if not 0.0 <= cfg.dropout_rate < 1.0:
        raise ValueError(f"{name}.dropout_rate={cfg.dropout_rate!r}: must be in [0, 1).")
    if not cfg.layer_norm_epsilon > 0.0:
        raise ValueError(f"{name}.layer_norm_epsilon={cfg.layer_norm_epsilon!r}: must be > 0.")
    for field in ("dtype", "param_dtype"):
        if getattr(cfg, field) not in _DTYPES:
            raise ValueError(f"{name}.{field}={getattr(cfg, field)!r}: must be one of {_DTYPES}.")
    if not isinstance(cfg.remat, bool):
        raise ValueError(f"{name}.remat={cfg.remat!r}: must be True or False.")


# ---------------------------------------------------------------------------------------------
# What the inference hooks return.


@dataclasses.dataclass(frozen=True)
class ModelFn:
    """A function of (params, arrays...) for the caller to jit under the job's layout.

    `vmaps_examples`: the function `vmap`s the model over examples, so inside it the model's
    "batch" axis is the per-example option / beam axis; the caller then traces it under
    `layout.without_batch()` (the example axis keeps the sharding of the inputs).
    """

    fn: Callable[..., Any]
    vmaps_examples: bool = False


@dataclasses.dataclass(frozen=True)
class Stepper:
    """One autoregressive decoder, as the decoding loops drive it.

    Rows are example-major: row e * R + r is copy r (a beam) of example e.
      start() -> (logits [rows, vocab] of the first output token, state)
      step(state, tokens [rows], i) -> (logits of the next token, state)
      reorder(state, rows [rows]) -> state with row j taken from row rows[j] (beam search)
    """

    start: Callable[[], tuple[Array, Any]]
    step: Callable[[Any, Array, Array], tuple[Array, Any]]
    reorder: Callable[[Any, Array], Any]


# ---------------------------------------------------------------------------------------------
# The interface.


class Family:
    """One model family; subclasses set the class attributes and implement the hooks."""

    name: ClassVar[str]  # registry key, recorded in checkpoints ("t5", "decoder")
    display_name: ClassVar[str]  # for reports ("T5", "decoder-only")
    config_class: ClassVar[type]
    # The batch layout the module consumes: "encoder_decoder" or "prefix_lm" (the data layer
    # maps it to seqio's EncDec / PrefixLM feature converters).
    batch_layout: ClassVar[str]
    sizes: ClassVar[Mapping[str, Mapping[str, Any]]]  # preset name -> config fields

    # -- construction and reports ----------------------------------------------------------

    def build(self, config: Any) -> nn.Module:
        """The Linen module (every family's module has a `config` attribute)."""
        raise NotImplementedError

    def preset(self, size: str, **overrides: Any) -> Any:
        """A preset by name (`sizes`) with field overrides (vocab_size, dropout_rate, ...)."""
        if size not in self.sizes:
            raise ValueError(
                f"Unknown {self.display_name} size {size!r}: choose one of {sorted(self.sizes)}."
            )
        return self.config_class(**{**self.sizes[size], **overrides})

    def size_of(self, config: Any) -> str | None:
        """The preset whose fields `config` has (other fields may differ), else None."""
        fields = dataclasses.asdict(config)
        for size, preset in self.sizes.items():
            if all(fields[k] == v for k, v in preset.items()):
                return size
        return None

    def report_name(self, config: Any) -> str:
        """E.g. "T5 small", or "T5 d_model=96" for a config that is no preset."""
        size = self.size_of(config)
        if size is not None:
            return f"{self.display_name} {size}"
        return f"{self.display_name} d_model={getattr(config, 'd_model', '?')}"

    def describe(self, config: Any) -> dict[str, Any]:
        """The config as a JSON record (family, class and fields), for checkpoint metadata."""
        return {"family": self.name, "kind": type(config).__name__, **dataclasses.asdict(config)}

    def config_from_fields(self, fields: Mapping[str, Any]) -> Any:
        """The config from a `describe()`-style record (extra bookkeeping keys ignored)."""
        names = {f.name for f in dataclasses.fields(self.config_class)}
        unknown = sorted(set(fields) - names - {"family", "kind"})
        if unknown:
            raise ValueError(
                f"{self.config_class.__name__} has no field {unknown[0]!r} "
                f"(its fields: {', '.join(sorted(names))})"
            )
        return self.config_class(**{k: v for k, v in fields.items() if k in names})

    # -- training ---------------------------------------------------------------------------

    def model_feature_lengths(
        self, config: Any, task_feature_lengths: Mapping[str, int]
    ) -> dict[str, int]:
        """Lengths of the model's token arrays ("encoder_input_tokens" if any,
        "decoder_target_tokens") for given task feature lengths."""
        raise NotImplementedError

    def dummy_batch(
        self, config: Any, task_feature_lengths: Mapping[str, int], batch: int
    ) -> dict[str, np.ndarray]:
        """An all-ones batch of the module's `__call__` inputs (for init and compiling)."""
        lengths = self.model_feature_lengths(config, task_feature_lengths)
        out = {}
        if "encoder_input_tokens" in lengths:
            out["encoder_input_tokens"] = np.ones(
                (batch, lengths["encoder_input_tokens"]), np.int32
            )
        for name in ("decoder_input_tokens", "decoder_target_tokens"):
            out[name] = np.ones((batch, lengths["decoder_target_tokens"]), np.int32)
        return out

    def param_count(self, config: Any) -> int:
        """Exact number of parameters the module creates (analytic; tested against `init`)."""
        raise NotImplementedError

    def train_flops_per_example(
        self, config: Any, task_feature_lengths: Mapping[str, int]
    ) -> float:
        """Model FLOPs of one training step per example (packed row), analytic."""
        raise NotImplementedError

    # -- training ---------------------------------------------------------------------------

    def logit_row_budget(self, config: Any, task_feature_lengths: Mapping[str, int]) -> int | None:
        """How many positions per batch row the training loss usually weighs (a prefix-LM's
        targets), when the module can return its final hidden states (`return_hidden=True`)
        and `head_logits` can turn a selection of them into logits; None (the default): the
        loss takes the module's logits at every position."""
        return None

    def head_logits(self, config: Any, params: Any, hidden: Array) -> Array:
        """fp32 logits [..., vocab] of final hidden states [..., d_model] (from the module's
        `return_hidden=True`), exactly as the module's own output layer computes them."""
        raise NotImplementedError

    # -- inference --------------------------------------------------------------------------

    def init_decode_cache(
        self,
        model: nn.Module,
        batch_size: int,
        max_decode_length: int,
        encoder_length: int | None = None,
    ) -> dict:
        """A fresh "cache" collection for `decode=True` steps of up to `max_decode_length`."""
        raise NotImplementedError

    def row_scorer(self, model: nn.Module, prefix_lm: bool) -> ModelFn:
        """fn(params, inputs [b, s], targets [b, t]) -> [b, 2] (summed target log-prob, number
        of target tokens): one full forward per row."""
        raise NotImplementedError

    def option_scorer(self, model: nn.Module, prefix_lm: bool) -> ModelFn:
        """fn(params, inputs [G, s], options [G, K, t]) -> [G, K, 2]: each input computed once
        and every option scored against it (same numbers as `row_scorer`)."""
        raise NotImplementedError

    def stepper(
        self, model: nn.Module, copies: int, max_len: int, use_cache: bool, prefix_lm: bool
    ) -> ModelFn:
        """fn(params, inputs [e, s]) -> `Stepper` over e * copies rows, for up to `max_len`
        output tokens (`use_cache=False` recomputes the decoder at every step)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------
# The registry.

FAMILIES: dict[str, Family] = {}
_BY_CONFIG: dict[type, Family] = {}


def register(family: Family) -> Family:
    """Adds a family (its module calls this once, at import)."""
    if family.name in FAMILIES and type(FAMILIES[family.name]) is not type(family):
        raise ValueError(f"model family {family.name!r} is registered twice")
    FAMILIES[family.name] = family
    _BY_CONFIG[family.config_class] = family
    return family


def family_of(config: Any) -> Family:
    """The family of a config (by its class)."""
    family = _BY_CONFIG.get(type(config))
    if family is None:
        known = ", ".join(c.__name__ for c in _BY_CONFIG)
        raise TypeError(f"{type(config).__name__} is no model family's config (known: {known}).")
    return family


def family_named(name: str) -> Family:
    """The family registered under `name`."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]
