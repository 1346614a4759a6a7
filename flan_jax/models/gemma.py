"""The Gemma family: Gemma 1 (GeGLU with tanh-approximated GELU, tied embeddings scaled by
sqrt(d_model) in the activation dtype, RMSNorm scaling by 1 + weight, head_dim independent of
d_model; the 2B model uses one K/V head). The body is shared with the other Hugging Face-style
decoders (`rope_decoder.py`); checkpoints convert with `flan_jax.conversion.hf_causal`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from flan_jax.models import family
from flan_jax.models.rope_decoder import RopeDecoderConfig, RopeDecoderFamily


@dataclasses.dataclass(frozen=True)
class GemmaConfig(RopeDecoderConfig):
    """Gemma-architecture decoder (defaults: `tiny`)."""

    tie_word_embeddings: bool = True
    activation: ClassVar[str] = "gelu_tanh"
    norm_offset: ClassVar[float] = 1.0
    scale_embeddings: ClassVar[bool] = True


_GEMMA = dict(
    vocab_size=256000,
    head_dim=256,
    rope_theta=10000.0,
    max_position_embeddings=8192,
    norm_epsilon=1e-6,
    bos_token_id=2,
    eos_token_id=1,
    tie_word_embeddings=True,
)

# Published shapes (config.json of google/gemma-2b, google/gemma-7b); parameters:
#   tiny  ~0.1M  (tests; 2 K/V groups, head_dim 20 with d_model 48)
#   2b    2.51B  d 2048, 18 layers, 8 heads / 1 K/V x 256, d_ff 16384
#   7b    8.54B  d 3072, 28 layers, 16 heads / 16 K/V x 256, d_ff 24576
# gin/models/gemma_<size>.gin bind the same values (tests/test_model_presets.py checks it).
GEMMA_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=512, d_model=48, num_heads=4, num_kv_heads=2, head_dim=20, d_ff=96,
        num_layers=3,
    ),
    "2b": dict(_GEMMA, d_model=2048, num_heads=8, num_kv_heads=1, d_ff=16384, num_layers=18),
    "7b": dict(_GEMMA, d_model=3072, num_heads=16, num_kv_heads=16, d_ff=24576, num_layers=28),
}  # fmt: skip


class GemmaFamily(RopeDecoderFamily):
    name = "gemma"
    display_name = "Gemma"
    config_class = GemmaConfig
    sizes = GEMMA_SIZES


FAMILY = family.register(GemmaFamily())


def gemma_config(size: str, **overrides: Any) -> GemmaConfig:
    """A Gemma preset by name (`GEMMA_SIZES`), with field overrides."""
    return FAMILY.preset(size, **overrides)
