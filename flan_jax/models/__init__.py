"""Models: arrays in, arrays out, configured by a frozen dataclass (no seqio, tasks or gin).

config = t5_config("small", vocab_size=32128)
model = build_model(config)               # T5 or DecoderOnly (Flax Linen)
variables = model.init(rng, **dummy_batch) # params are nn.LogicallyPartitioned boxes
cache = init_decode_cache(model, batch_size=8, max_decode_length=64, encoder_length=512)
"""

from __future__ import annotations

from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from flan_jax.models.config import (
    DECODER_SIZES,
    T5_SIZES,
    DecoderConfig,
    ModelConfig,
    T5Config,
    decoder_config,
    param_count,
    t5_config,
)
from flan_jax.models.config import train_flops_per_example as _flops
from flan_jax.models.decoder import DecoderOnly
from flan_jax.models.t5 import T5

__all__ = [
    "DECODER_SIZES",
    "T5_SIZES",
    "DecoderConfig",
    "DecoderOnly",
    "ModelConfig",
    "T5",
    "T5Config",
    "build_model",
    "decoder_config",
    "init_decode_cache",
    "model_kind",
    "param_count",
    "t5_config",
    "train_flops_per_example",
]


def build_model(config: ModelConfig) -> nn.Module:
    """The Linen module for a config: `T5` or `DecoderOnly`."""
    if isinstance(config, T5Config):
        return T5(config)
    if isinstance(config, DecoderConfig):
        return DecoderOnly(config)
    raise TypeError(
        f"build_model: expected T5Config or DecoderConfig, got {type(config).__name__}."
    )


def model_kind(config: ModelConfig) -> Literal["encoder_decoder", "decoder_only"]:
    """Which feature-converter family the model consumes."""
    if isinstance(config, T5Config):
        return "encoder_decoder"
    if isinstance(config, DecoderConfig):
        return "decoder_only"
    raise TypeError(f"model_kind: expected T5Config or DecoderConfig, got {type(config).__name__}.")


def init_decode_cache(
    model: nn.Module,
    batch_size: int,
    max_decode_length: int,
    encoder_length: int | None = None,
) -> dict:
    """A fresh "cache" collection for `decode=True` steps of up to `max_decode_length` tokens.

    Runs `init` with `decode=True` on a dummy full-length batch (for T5 through `T5.decode`, with
    a dummy encoder output of `encoder_length`). Only the cache is returned, so under `jit` XLA
    drops the parameter initialization and the forward pass: no parameters are materialized.
    """
    decoder_tokens = jnp.ones((batch_size, max_decode_length), jnp.int32)
    if isinstance(model, T5):
        if encoder_length is None:
            raise ValueError("init_decode_cache: T5 needs encoder_length (the inputs length).")
        cfg = model.config
        encoded = jnp.zeros((batch_size, encoder_length, cfg.d_model), jnp.dtype(cfg.dtype))
        encoder_tokens = jnp.ones((batch_size, encoder_length), jnp.int32)

        def init(rng: jax.Array) -> dict:
            return model.init(
                rng, encoded, encoder_tokens, decoder_tokens, decode=True, method=T5.decode
            )["cache"]
    elif isinstance(model, DecoderOnly):

        def init(rng: jax.Array) -> dict:
            return model.init(rng, decoder_tokens, decode=True)["cache"]
    else:
        raise TypeError(f"init_decode_cache: unsupported model {type(model).__name__}.")
    return jax.jit(init)(jax.random.key(0))


# ---------------------------------------------------------------------------------------------
# Family-neutral helpers for the train loop (moved here from train / input_pipeline).


def default_config() -> ModelConfig:
    """The model a config gets when none is given: the tiny T5."""
    return t5_config("tiny")


def model_feature_lengths(
    config: ModelConfig, task_feature_lengths: dict[str, int]
) -> dict[str, int]:
    """Lengths of the model's batch arrays for given task feature lengths."""
    if model_kind(config) == "encoder_decoder":
        return {
            "encoder_input_tokens": task_feature_lengths["inputs"],
            "decoder_target_tokens": task_feature_lengths["targets"],
        }
    return {"decoder_target_tokens": sum(task_feature_lengths.values())}


def dummy_batch(config: ModelConfig, task_feature_lengths: dict[str, int], batch: int) -> dict:
    """An all-ones batch of the model's input arrays (for init and compiling)."""
    import numpy as np

    shapes = model_feature_lengths(config, task_feature_lengths)
    return {
        name: np.ones((batch, length), np.int32)
        for name, length in [
            *(
                [("encoder_input_tokens", shapes["encoder_input_tokens"])]
                if "encoder_input_tokens" in shapes
                else []
            ),
            ("decoder_input_tokens", shapes["decoder_target_tokens"]),
            ("decoder_target_tokens", shapes["decoder_target_tokens"]),
        ]
    }


def describe(config: ModelConfig) -> dict:
    """The config as a JSON record (kind + fields), for checkpoint metadata."""
    import dataclasses

    return {"kind": type(config).__name__, **dataclasses.asdict(config)}


def train_flops_per_example(config: ModelConfig, task_feature_lengths: dict[str, int]) -> float:
    """Model FLOPs of one training step per example (packed row) at these task lengths."""
    if model_kind(config) == "encoder_decoder":
        return _flops(config, task_feature_lengths["inputs"], task_feature_lengths["targets"])
    return _flops(config, 0, sum(task_feature_lengths.values()))


def batch_layout(config: ModelConfig) -> str:
    """The batch layout the model consumes: "encoder_decoder" or "prefix_lm" (seqio's
    EncDec / PrefixLM feature converters)."""
    return "encoder_decoder" if model_kind(config) == "encoder_decoder" else "prefix_lm"
