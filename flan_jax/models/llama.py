"""The Llama family: Llama 2 / 3 / 3.x (RoPE with Llama 3's frequency scaling, grouped-query
attention, SwiGLU, RMSNorm, tied or untied embeddings). The same architecture covers
Mistral without a sliding window, SmolLM / SmolLM2 and TinyLlama. The body is shared with the
other Hugging Face-style decoders (`rope_decoder.py`); checkpoints convert with
`flan_jax.conversion.hf_causal`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flan_jax.models import family
from flan_jax.models.rope_decoder import RopeDecoderConfig, RopeDecoderFamily


@dataclasses.dataclass(frozen=True)
class LlamaConfig(RopeDecoderConfig):
    """Llama-architecture decoder (defaults: `tiny`). SwiGLU MLP, plain RMSNorm, no biases."""

    norm_epsilon: float = 1e-5


_LLAMA3 = dict(
    rope_theta=500000.0,
    rope_scaling="llama3",
    rope_scaling_factor=32.0,
    rope_low_freq_factor=1.0,
    rope_high_freq_factor=4.0,
    rope_original_max_positions=8192,
    max_position_embeddings=131072,
    tie_word_embeddings=True,
    norm_epsilon=1e-5,
    bos_token_id=128000,
    eos_token_id=128001,
)
# SmolLM2's BOS and EOS are its tokenizer's id 0, <|endoftext|>, which trades places with the
# spare special token <empty_output> (16) to keep id 0 for padding (`hf_vocab`): 16 in our
# numbering, as a converted checkpoint's model_config.json has them (0 in its config.json).
_SMOLLM2 = dict(
    vocab_size=49152,
    rope_theta=100000.0,
    max_position_embeddings=8192,
    tie_word_embeddings=True,
    norm_epsilon=1e-5,
    bos_token_id=16,
    eos_token_id=16,
)

# Published shapes (config.json of HuggingFaceTB/SmolLM2-*, meta-llama/Llama-3.2-*); parameters:
#   tiny           ~0.1M  (tests; untied, 2 K/V groups, head_dim != d_model / heads)
#   smollm2-135m   135M   d 576,  30 layers, 9 heads / 3 K/V, d_ff 1536, tied
#   smollm2-360m   362M   d 960,  32 layers, 15 heads / 5 K/V, d_ff 2560, tied
#   3.2-1b         1.24B  d 2048, 16 layers, 32 heads / 8 K/V, d_ff 8192, tied
#   3.2-3b         3.21B  d 3072, 28 layers, 24 heads / 8 K/V x 128, d_ff 8192, tied
# gin/models/llama_<size>.gin bind the same values (tests/test_model_presets.py checks it).
LLAMA_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        vocab_size=512, d_model=64, num_heads=4, num_kv_heads=2, head_dim=24, d_ff=96,
        num_layers=3,
    ),
    "smollm2-135m": dict(
        _SMOLLM2, d_model=576, num_heads=9, num_kv_heads=3, head_dim=64, d_ff=1536,
        num_layers=30,
    ),
    "smollm2-360m": dict(
        _SMOLLM2, d_model=960, num_heads=15, num_kv_heads=5, head_dim=64, d_ff=2560,
        num_layers=32,
    ),
    "3.2-1b": dict(
        _LLAMA3, vocab_size=128256, d_model=2048, num_heads=32, num_kv_heads=8, head_dim=64,
        d_ff=8192, num_layers=16,
    ),
    "3.2-3b": dict(
        _LLAMA3, vocab_size=128256, d_model=3072, num_heads=24, num_kv_heads=8, head_dim=128,
        d_ff=8192, num_layers=28,
    ),
}  # fmt: skip


class LlamaFamily(RopeDecoderFamily):
    name = "llama"
    display_name = "Llama"
    config_class = LlamaConfig
    sizes = LLAMA_SIZES


FAMILY = family.register(LlamaFamily())


def llama_config(size: str, **overrides: Any) -> LlamaConfig:
    """A Llama preset by name (`LLAMA_SIZES`), with field overrides."""
    return FAMILY.preset(size, **overrides)
