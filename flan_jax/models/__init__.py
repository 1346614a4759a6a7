"""Models: arrays in, arrays out, configured by a frozen dataclass (no seqio, tasks or gin).

    config = preset("t5", "small", vocab_size=32128)   # or t5_config("small"), a gin file, ...
    model = build_model(config)                         # a Flax Linen module
    family_of(config).batch_layout                      # "encoder_decoder" | "prefix_lm"
    boxed = abstract_params(config)                     # eval_shape'd params, logical axes
    cache = init_decode_cache(model, batch_size=8, max_decode_length=64, encoder_length=512)

Each model family (`t5.py`, `decoder.py`) keeps its config, preset sizes, module and hooks in one
module and registers itself in `family.FAMILIES`. Code outside this package imports only
`flan_jax.models` and uses the family-neutral functions below (or `family_of(config).<hook>`);
the family classes are re-exported for tests and benchmarks that build a particular model.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import numpy as np

# The families register themselves on import: adding one means importing its module here.
from flan_jax.models.decoder import DECODER_SIZES, DecoderConfig, DecoderOnly, decoder_config
from flan_jax.models.family import (
    FAMILIES,
    Family,
    ModelConfig,
    ModelFn,
    Stepper,
    family_named,
    family_of,
)
from flan_jax.models.gemma import GEMMA_SIZES, GemmaConfig, gemma_config
from flan_jax.models.llama import LLAMA_SIZES, LlamaConfig, llama_config
from flan_jax.models.qwen2 import QWEN2_SIZES, Qwen2Config, qwen2_config
from flan_jax.models.t5 import T5, T5_SIZES, T5Config, t5_config

__all__ = [
    "DECODER_SIZES",
    "FAMILIES",
    "GEMMA_SIZES",
    "LLAMA_SIZES",
    "QWEN2_SIZES",
    "T5",
    "T5_SIZES",
    "DecoderConfig",
    "DecoderOnly",
    "Family",
    "GemmaConfig",
    "LlamaConfig",
    "ModelConfig",
    "ModelFn",
    "Qwen2Config",
    "Stepper",
    "T5Config",
    "abstract_params",
    "batch_layout",
    "build_model",
    "config_classes",
    "decoder_config",
    "default_config",
    "describe",
    "dummy_batch",
    "family_named",
    "family_of",
    "gemma_config",
    "head_logits",
    "init_decode_cache",
    "llama_config",
    "logit_row_budget",
    "model_feature_lengths",
    "param_count",
    "preset",
    "qwen2_config",
    "t5_config",
    "train_flops_per_example",
]


def build_model(config: ModelConfig) -> nn.Module:
    """The Linen module of a config (its family's module)."""
    return family_of(config).build(config)


def preset(family: str, size: str, **overrides: Any) -> ModelConfig:
    """A family's preset config by name, e.g. ``preset("t5", "small", vocab_size=384)``."""
    return family_named(family).preset(size, **overrides)


def default_config() -> ModelConfig:
    """The model a config gets when none is given: the tiny T5."""
    return preset("t5", "tiny")


def config_classes() -> tuple[type, ...]:
    """Every registered family's config class (gin binds them)."""
    return tuple(f.config_class for f in FAMILIES.values())


def batch_layout(config: ModelConfig) -> str:
    """The batch layout the model consumes: "encoder_decoder" or "prefix_lm" (seqio's
    EncDec / PrefixLM feature converters)."""
    return family_of(config).batch_layout


def model_feature_lengths(
    config: ModelConfig, task_feature_lengths: Mapping[str, int]
) -> dict[str, int]:
    """Lengths of the model's batch arrays for given task feature lengths."""
    return family_of(config).model_feature_lengths(config, task_feature_lengths)


def dummy_batch(
    config: ModelConfig, task_feature_lengths: Mapping[str, int], batch: int
) -> dict[str, np.ndarray]:
    """An all-ones batch of the model's input arrays (for init and compiling)."""
    return family_of(config).dummy_batch(config, task_feature_lengths, batch)


def describe(config: ModelConfig) -> dict:
    """The config as a JSON record (family, class and fields), for checkpoint metadata."""
    return family_of(config).describe(config)


def param_count(config: ModelConfig) -> int:
    """Exact number of parameters the model creates (analytic: no model is built)."""
    return family_of(config).param_count(config)


def train_flops_per_example(config: ModelConfig, task_feature_lengths: Mapping[str, int]) -> float:
    """Model FLOPs of one training step per example (packed row) at these task lengths."""
    return family_of(config).train_flops_per_example(config, task_feature_lengths)


def logit_row_budget(config: ModelConfig, task_feature_lengths: Mapping[str, int]) -> int | None:
    """Positions per batch row the training loss usually weighs, when the model can compute
    logits at those alone (`head_logits`); None: the loss takes logits at every position."""
    return family_of(config).logit_row_budget(config, task_feature_lengths)


def head_logits(config: ModelConfig, params: Any, hidden: jax.Array) -> jax.Array:
    """fp32 logits of final hidden states from `model.apply(..., return_hidden=True)`."""
    return family_of(config).head_logits(config, params, hidden)


@functools.lru_cache(maxsize=16)
def abstract_params(config: ModelConfig) -> Any:
    """Boxed abstract params (leaves carry logical axis names) from `eval_shape(init)`:
    nothing is allocated or compiled. `Layout.param_shardings` / `abstract_on_mesh` take it."""
    model = build_model(config)
    batch = dummy_batch(config, {"inputs": 4, "targets": 4}, 1)
    return jax.eval_shape(lambda r: model.init(r, **batch), jax.random.key(0))["params"]


def init_decode_cache(
    model: nn.Module,
    batch_size: int,
    max_decode_length: int,
    encoder_length: int | None = None,
) -> dict:
    """A fresh "cache" collection for `decode=True` steps of up to `max_decode_length` tokens.

    Runs `init` with `decode=True` on a dummy full-length batch (an encoder-decoder also needs
    `encoder_length`, the inputs length). Only the cache is returned, so under `jit` XLA drops
    the parameter initialization and the forward pass: no parameters are materialized.
    """
    return family_of(model.config).init_decode_cache(
        model, batch_size, max_decode_length, encoder_length
    )
