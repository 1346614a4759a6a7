"""Model configurations: frozen dataclasses, named presets, parameter and FLOP counts.

Two architectures share one set of building blocks (see `layers.py`):
  * `T5Config`: T5 1.1 encoder-decoder (gated-GELU MLP, RMSNorm, relative position buckets,
    untied output logits).
  * `DecoderConfig`: decoder-only LM built from the same blocks (causal relative position buckets,
    optional prefix-LM attention), for FLAN-style training of decoder-only models.

`param_count` and `train_flops_per_example` are analytic: benchmarks use them for MFU without
building a model.
"""

from __future__ import annotations

import dataclasses
from typing import Any

_DTYPES = ("float32", "bfloat16")


def _check_positive(obj: Any, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{type(obj).__name__}.{name}={value!r}: must be a positive integer.")


def _check_common(cfg: Any) -> None:
    """Validation shared by both configs: fails early with one line naming field and value."""
    _check_positive(
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


@dataclasses.dataclass(frozen=True)
class T5Config:
    """T5 1.1 encoder-decoder. Defaults are T5 1.1 small; `dtype` is the activation dtype."""

    vocab_size: int = 32128
    d_model: int = 512
    num_heads: int = 6
    head_dim: int = 64
    d_ff: int = 1024
    num_encoder_layers: int = 8
    num_decoder_layers: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False

    def __post_init__(self) -> None:
        _check_common(self)
        _check_positive(self, "num_encoder_layers", "num_decoder_layers")


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Decoder-only LM (T5 1.1 blocks, causal relative positions). Defaults are `tiny`."""

    vocab_size: int = 32128
    d_model: int = 64
    num_heads: int = 4
    head_dim: int = 16
    d_ff: int = 128
    num_layers: int = 2
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.0
    layer_norm_epsilon: float = 1e-6
    dtype: str = "float32"
    param_dtype: str = "float32"
    remat: bool = False

    def __post_init__(self) -> None:
        _check_common(self)
        _check_positive(self, "num_layers")


ModelConfig = T5Config | DecoderConfig

# T5 1.1 sizes (t5.md); `tiny` is for tests and laptops. Vocabulary defaults to 32128 and is
# usually overridden at build time for tiny models: `t5_config("tiny", vocab_size=256)`.
T5_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(
        d_model=64, num_heads=4, head_dim=16, d_ff=128, num_encoder_layers=2, num_decoder_layers=2
    ),
    "small": dict(
        d_model=512, num_heads=6, head_dim=64, d_ff=1024, num_encoder_layers=8, num_decoder_layers=8
    ),
    "base": dict(
        d_model=768,
        num_heads=12,
        head_dim=64,
        d_ff=2048,
        num_encoder_layers=12,
        num_decoder_layers=12,
    ),
    "large": dict(
        d_model=1024,
        num_heads=16,
        head_dim=64,
        d_ff=2816,
        num_encoder_layers=24,
        num_decoder_layers=24,
    ),
    "xl": dict(
        d_model=2048,
        num_heads=32,
        head_dim=64,
        d_ff=5120,
        num_encoder_layers=24,
        num_decoder_layers=24,
    ),
    "xxl": dict(
        d_model=4096,
        num_heads=64,
        head_dim=64,
        d_ff=10240,
        num_encoder_layers=24,
        num_decoder_layers=24,
    ),
}

# Decoder-only sizes (ours, no published counterpart). Parameters at vocab 32128:
#   tiny   ~4.2M (almost all embeddings)
#   small  ~106M  d 768,  12 x 64 heads,  d_ff 2048, 8 layers
#   base   ~955M  d 2048, 16 x 128 heads, d_ff 5632, 16 layers
#   large  ~2.7B  d 2560, 20 x 128 heads, d_ff 6912, 32 layers
DECODER_SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(d_model=64, num_heads=4, head_dim=16, d_ff=128, num_layers=2),
    "small": dict(d_model=768, num_heads=12, head_dim=64, d_ff=2048, num_layers=8),
    "base": dict(d_model=2048, num_heads=16, head_dim=128, d_ff=5632, num_layers=16),
    "large": dict(d_model=2560, num_heads=20, head_dim=128, d_ff=6912, num_layers=32),
}


def t5_config(size: str, **overrides: Any) -> T5Config:
    """A T5 1.1 preset by name (`T5_SIZES`), with field overrides (vocab_size, dropout_rate...)."""
    if size not in T5_SIZES:
        raise ValueError(f"Unknown T5 size {size!r}: choose one of {sorted(T5_SIZES)}.")
    return T5Config(**{**T5_SIZES[size], **overrides})


def decoder_config(size: str, **overrides: Any) -> DecoderConfig:
    """A decoder-only preset by name (`DECODER_SIZES`), with field overrides."""
    if size not in DECODER_SIZES:
        raise ValueError(f"Unknown decoder size {size!r}: choose one of {sorted(DECODER_SIZES)}.")
    return DecoderConfig(**{**DECODER_SIZES[size], **overrides})


def param_count(config: ModelConfig) -> int:
    """Exact number of parameters the model creates (analytic; tested against `init`)."""
    d, a, f, v = config.d_model, config.num_heads * config.head_dim, config.d_ff, config.vocab_size
    attn = 4 * d * a  # q, k, v, o
    mlp = 3 * d * f  # wi_0, wi_1, wo
    relpos = config.relative_attention_num_buckets * config.num_heads
    embeddings = 2 * v * d  # input embedding + untied logits kernel
    if isinstance(config, T5Config):
        encoder = config.num_encoder_layers * (attn + mlp + 2 * d) + d + relpos
        decoder = config.num_decoder_layers * (2 * attn + mlp + 3 * d) + d + relpos
        return embeddings + encoder + decoder
    if isinstance(config, DecoderConfig):
        return embeddings + config.num_layers * (attn + mlp + 2 * d) + d + relpos
    raise TypeError(f"param_count: unsupported config type {type(config).__name__}.")


def train_flops_per_example(config: ModelConfig, inputs_len: int, targets_len: int) -> float:
    """Model FLOPs of one training step per example (3x forward; matmuls 2mkn; gathers free).

    T5: the formula of t5.md, with S_e = inputs_len and S_d = targets_len.
    Decoder-only: the same per-layer terms over the concatenated sequence S = inputs + targets
    (the prefix-LM layout, loss on the targets only); attention scores counted over the full S x S
    square as t5.md does for the causal decoder, and logits counted on all S positions because the
    model computes them everywhere (the loss just ignores the prefix ones).
    """
    d, a, f, v = config.d_model, config.num_heads * config.head_dim, config.d_ff, config.vocab_size

    def block(s: int) -> float:  # self-attention (projections + scores/values) and MLP
        return 2 * s * (4 * d * a + 3 * d * f) + 4 * s * s * a

    if isinstance(config, T5Config):
        se, sd = inputs_len, targets_len
        fwd = config.num_encoder_layers * block(se)
        fwd += config.num_decoder_layers * (
            block(sd) + 2 * sd * (2 * d * a) + 2 * se * (2 * d * a) + 4 * sd * se * a
        )
        fwd += 2 * sd * d * v
    elif isinstance(config, DecoderConfig):
        s = inputs_len + targets_len
        fwd = config.num_layers * block(s) + 2 * s * d * v
    else:
        raise TypeError(
            f"train_flops_per_example: unsupported config type {type(config).__name__}."
        )
    return 3.0 * float(fwd)
