"""The Qwen2 family: Qwen2 / Qwen2.5 (the Llama architecture plus q/k/v projection biases;
the small sizes tie their embeddings). Sliding-window attention is not implemented (the
published Qwen2.5 models do not use it). The body is shared with the other Hugging Face-style
decoders (`rope_decoder.py`); checkpoints convert with `flan_jax.conversion.hf_causal`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from flan_jax.models import family
from flan_jax.models.rope_decoder import RopeDecoderConfig, RopeDecoderFamily


@dataclasses.dataclass(frozen=True)
class Qwen2Config(RopeDecoderConfig):
    """Qwen2-architecture decoder (defaults: `tiny`): SwiGLU, RMSNorm, q/k/v biases."""

    rope_theta: float = 1000000.0
    qkv_bias: ClassVar[bool] = True


_QWEN25 = dict(
    vocab_size=151936,
    rope_theta=1000000.0,
    max_position_embeddings=131072,
    norm_epsilon=1e-6,
    bos_token_id=151643,
    eos_token_id=151643,
    tie_word_embeddings=True,
)

# Published shapes (config.json of Qwen/Qwen2.5-*); parameters:
#   tiny   ~0.1M  (tests; tied, 2 K/V groups, head_dim != d_model / heads)
#   2.5-0.5b  494M  d 896,  24 layers, 14 heads / 2 K/V, d_ff 4864, tied
#   2.5-1.5b  1.54B d 1536, 28 layers, 12 heads / 2 K/V x 128, d_ff 8960, tied
#   2.5-7b    7.62B d 3584, 28 layers, 28 heads / 4 K/V x 128, d_ff 18944, untied, vocab 152064
# gin/models/qwen2_<size>.gin bind the same values (tests/test_model_presets.py checks it).
QWEN2_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=512, d_model=48, num_heads=6, num_kv_heads=2, head_dim=10, d_ff=80,
        num_layers=3, tie_word_embeddings=True,
    ),
    "2.5-0.5b": dict(
        _QWEN25, d_model=896, num_heads=14, num_kv_heads=2, head_dim=64, d_ff=4864,
        num_layers=24, max_position_embeddings=32768,
    ),
    "2.5-1.5b": dict(
        _QWEN25, d_model=1536, num_heads=12, num_kv_heads=2, head_dim=128, d_ff=8960,
        num_layers=28,
    ),
    "2.5-7b": dict(
        _QWEN25, vocab_size=152064, d_model=3584, num_heads=28, num_kv_heads=4, head_dim=128,
        d_ff=18944, num_layers=28, tie_word_embeddings=False,
    ),
}  # fmt: skip


class Qwen2Family(RopeDecoderFamily):
    name = "qwen2"
    display_name = "Qwen2"
    config_class = Qwen2Config
    sizes = QWEN2_SIZES


FAMILY = family.register(Qwen2Family())


def qwen2_config(size: str, **overrides: Any) -> Qwen2Config:
    """A Qwen2 preset by name (`QWEN2_SIZES`), with field overrides."""
    return FAMILY.preset(size, **overrides)
