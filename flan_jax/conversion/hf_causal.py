"""Converters for the Hugging Face-style decoder-only families: `LlamaForCausalLM` (Llama 2/3/3.x,
SmolLM, TinyLlama, Mistral without sliding window), `Qwen2ForCausalLM` (Qwen2 / 2.5) and
`GemmaForCausalLM` (Gemma 1), to and from our `RopeDecoder` (`models/rope_decoder.py`).

    ours                                   Hugging Face
    token_embedder/embedding               model.embed_tokens.weight
    layers_i/pre_self_attention_layer_norm model.layers.i.input_layernorm.weight
    layers_i/self_attention/{query,key,value,out}  model.layers.i.self_attn.{q,k,v,o}_proj.weight
    layers_i/self_attention/*_bias         model.layers.i.self_attn.{q,k,v}_proj.bias (Qwen2)
    layers_i/pre_mlp_layer_norm            model.layers.i.post_attention_layernorm.weight
    layers_i/mlp/{wi_0,wi_1,wo}            model.layers.i.mlp.{gate,up,down}_proj.weight
    decoder_norm                           model.norm.weight
    logits_dense (untied only)             lm_head.weight

Gemma's norm weights are stored as in transformers (the model scales by 1 + weight). config.json
is checked before any tensor is read; options our model does not implement (sliding windows,
other rope scalings, biases Llama does not have) are refused in one line. An imported model
records the vocabulary `hf:<checkpoint>`: the tokenizer files of the Hugging Face directory
(tokenizer.json, ...) are copied into the converted checkpoint (and into an export).
"""

from __future__ import annotations

import copy
import os
import re
import shutil
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from etils import epath

from flan_jax.conversion.base import (
    ConversionError,
    Converter,
    Entry,
    SafetensorsDir,
    from_hf,
    hf_shape,
    shape_error,
    to_hf,
)
from flan_jax.models.gemma import GemmaConfig
from flan_jax.models.llama import LlamaConfig
from flan_jax.models.qwen2 import Qwen2Config
from flan_jax.models.rope_decoder import RopeDecoderConfig

# Files of a Hugging Face model directory that travel with the weights.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",  # where newer transformers save the chat template
)
_REQUIRED = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
)
# Tensors some checkpoints carry that the model recomputes (rotary frequency buffers).
_IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")
_ATTENTION = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "out": "o_proj"}
_MLP = {"wi_0": "gate_proj", "wi_1": "up_proj", "wo": "down_proj"}


def param_map(config: RopeDecoderConfig) -> list[Entry]:
    """Every parameter of `RopeDecoder(config)` with its Hugging Face key and layout kind."""
    e = [Entry(("token_embedder", "embedding"), "model.embed_tokens.weight", "embedding")]
    for i in range(config.num_layers):
        ours, hf = (f"layers_{i}",), f"model.layers.{i}"
        e.append(
            Entry(
                (*ours, "pre_self_attention_layer_norm", "scale"),
                f"{hf}.input_layernorm.weight",
                "norm",
            )
        )
        for name, proj in _ATTENTION.items():
            kind = "out" if name == "out" else "qkv"
            e.append(Entry((*ours, "self_attention", name), f"{hf}.self_attn.{proj}.weight", kind))
        if config.qkv_bias:
            for name in ("query", "key", "value"):
                e.append(
                    Entry(
                        (*ours, "self_attention", f"{name}_bias"),
                        f"{hf}.self_attn.{_ATTENTION[name]}.bias",
                        "bias",
                    )
                )
        e.append(
            Entry(
                (*ours, "pre_mlp_layer_norm", "scale"),
                f"{hf}.post_attention_layernorm.weight",
                "norm",
            )
        )
        for name, proj in _MLP.items():
            e.append(Entry((*ours, "mlp", name), f"{hf}.mlp.{proj}.weight", "dense"))
    e.append(Entry(("decoder_norm", "scale"), "model.norm.weight", "norm"))
    if not config.tie_word_embeddings:
        e.append(Entry(("logits_dense",), "lm_head.weight", "logits"))
    return e


def _rope(hf: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Our rope fields from config.json: `rope_theta` + `rope_scaling` (transformers < 5) or
    `rope_parameters` (transformers >= 5)."""
    params = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
    if params and any(isinstance(v, dict) for v in params.values()):
        raise ConversionError(
            f"{source}: per-layer rope_parameters are not supported; flan_jax implements one "
            "rotary embedding for all layers"
        )
    rope_type = params.get("rope_type", params.get("type", "default"))
    theta = params.get("rope_theta", hf.get("rope_theta", 10000.0))
    fields: dict[str, Any] = {"rope_theta": float(theta)}
    if params.get("partial_rotary_factor", hf.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ConversionError(
            f"{source}: partial_rotary_factor != 1 is not supported; flan_jax rotates the whole "
            "head dimension"
        )
    if rope_type == "default":
        return fields
    if rope_type != "llama3":
        raise ConversionError(
            f"{source}: rope scaling type {rope_type!r} is not supported; flan_jax implements "
            "plain RoPE and Llama 3's 'llama3' scaling (use a model without rope_scaling, or one "
            "with rope_type 'llama3')"
        )
    try:
        return dict(
            fields,
            rope_scaling="llama3",
            rope_scaling_factor=float(params["factor"]),
            rope_low_freq_factor=float(params["low_freq_factor"]),
            rope_high_freq_factor=float(params["high_freq_factor"]),
            rope_original_max_positions=int(
                params.get(
                    "original_max_position_embeddings", hf.get("max_position_embeddings", 8192)
                )
            ),
        )
    except KeyError as e:
        raise ConversionError(f"{source}: llama3 rope scaling lacks {e.args[0]!r}") from None


def _rope_json(config: RopeDecoderConfig) -> dict[str, Any]:
    """rope_theta and rope_scaling as config.json has them (read by transformers 4 and 5)."""
    out: dict[str, Any] = {"rope_theta": config.rope_theta, "rope_scaling": None}
    if config.rope_scaling == "llama3":
        out["rope_scaling"] = {
            "rope_type": "llama3",
            "factor": config.rope_scaling_factor,
            "low_freq_factor": config.rope_low_freq_factor,
            "high_freq_factor": config.rope_high_freq_factor,
            "original_max_position_embeddings": config.rope_original_max_positions,
        }
    return out


def _tokenizer(path: epath.Path) -> Any:
    """The `hf:` vocabulary of a directory with a tokenizer.json, else None."""
    if not (path / "tokenizer.json").exists():
        return None
    from flan_jax import hf_vocab  # tokenizers + seqio: only when there is a tokenizer

    try:
        return hf_vocab.load(f"{hf_vocab.PREFIX}{os.fspath(path)}")
    except hf_vocab.HFVocabularyError as e:
        raise ConversionError(str(e)) from None


def _swapped(value: Any, swap: tuple[int, int] | None) -> Any:
    """Token id(s) between the tokenizer's numbering and ours (the swap is an involution)."""
    if value is None or swap is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_swapped(v, swap) for v in value]
    a, b = swap
    return b if value == a else a if value == b else value


def _rows(x: np.ndarray, swap: tuple[int, int] | None) -> np.ndarray:
    """A [vocab, ...] table with the swapped token rows traded (see `hf_vocab`)."""
    if swap is None:
        return x
    from flan_jax import hf_vocab

    try:
        return hf_vocab.permute_rows(x, swap)
    except ValueError as e:
        raise ConversionError(str(e)) from None


class HFCausalConverter(Converter):
    """One Hugging Face causal-LM architecture; subclasses check their own options."""

    config_class: type[RopeDecoderConfig]
    activations: tuple[str, ...] = ("silu",)
    # The tokenizer of the checkpoint being converted (`for_hf_dir` / `for_vocabulary`), and
    # the pair of token ids it trades to keep id 0 for padding (`hf_vocab.HFVocabulary.id_swap`):
    # embedding and output rows are traded the same way, and BOS / EOS ids mapped.
    tokenizer: Any = None
    swap: tuple[int, int] | None = None

    def _with_tokenizer(self, tokenizer: Any) -> HFCausalConverter:
        bound = copy.copy(self)
        bound.tokenizer = tokenizer
        bound.swap = None if tokenizer is None else tokenizer.id_swap
        return bound

    def for_hf_dir(self, path: epath.Path) -> HFCausalConverter:
        return self._with_tokenizer(_tokenizer(path))

    def for_vocabulary(self, vocabulary: str | None) -> HFCausalConverter:
        if not vocabulary or not vocabulary.startswith("hf:"):
            return self
        return self._with_tokenizer(_tokenizer(epath.Path(vocabulary[3:].partition("?")[0])))

    def check_options(self, hf: Mapping[str, Any], source: str) -> None:
        """Refuses, in one line, what the architecture has and our model does not."""
        act = hf.get("hidden_act", "silu")
        if act not in self.activations:
            raise ConversionError(
                f"{source}: hidden_act={act!r} is not supported for {self.description} "
                f"(flan_jax implements {' / '.join(self.activations)})"
            )
        if hf.get("mlp_bias"):
            raise ConversionError(
                f"{source}: mlp_bias=true is not supported; flan_jax's MLP has no biases"
            )

    def config_from_hf(
        self, hf: Mapping[str, Any], source: str = "config.json", **overrides: Any
    ) -> RopeDecoderConfig:
        missing = [k for k in _REQUIRED if k not in hf]
        if missing:
            raise ConversionError(
                f"{source}: missing {', '.join(missing)}; is it a {self.hf_architecture} "
                "config.json?"
            )
        self.check_options(hf, source)
        if self.tokenizer is not None:
            from flan_jax import hf_vocab

            # config.json's ids are the tokenizer's (our config gets them swapped, below).
            ids = {"bos": hf.get("bos_token_id"), "eos": hf.get("eos_token_id")}
            try:
                hf_vocab.check_agrees(self.tokenizer, hf["vocab_size"], ids, tokenizer_ids=True)
            except ValueError as e:
                raise ConversionError(f"{source}: {e}") from None
        heads = hf["num_attention_heads"]
        fields = dict(
            vocab_size=hf["vocab_size"],
            d_model=hf["hidden_size"],
            num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
            d_ff=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"],
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=bool(
                hf.get("tie_word_embeddings", self.config_class.tie_word_embeddings)
            ),
            norm_epsilon=float(hf.get("rms_norm_eps", 1e-6)),
            bos_token_id=_swapped(hf.get("bos_token_id"), self.swap),
            eos_token_id=_swapped(hf.get("eos_token_id"), self.swap),
            **_rope(hf, source),
        )
        try:
            return self.config_class(**{**fields, **overrides})
        except (TypeError, ValueError) as e:
            raise ConversionError(f"{source}: {e}") from e

    def hf_config_dict(self, config: RopeDecoderConfig) -> dict[str, Any]:
        return {
            "architectures": [self.hf_architecture],
            "model_type": self.hf_model_types[0],
            "vocab_size": config.vocab_size,
            "hidden_size": config.d_model,
            "intermediate_size": config.d_ff,
            "num_hidden_layers": config.num_layers,
            "num_attention_heads": config.num_heads,
            "num_key_value_heads": config.num_kv_heads,
            "head_dim": config.head_dim,
            "hidden_act": self.activations[0],
            "max_position_embeddings": config.max_position_embeddings,
            "rms_norm_eps": config.norm_epsilon,
            "tie_word_embeddings": config.tie_word_embeddings,
            "bos_token_id": _swapped(config.bos_token_id, self.swap),
            "eos_token_id": _swapped(config.eos_token_id, self.swap),
            "attention_dropout": 0.0,
            "use_cache": True,
            "dtype": config.param_dtype,
            **_rope_json(config),
            **self.extra_hf_fields(config),
        }

    def extra_hf_fields(self, config: RopeDecoderConfig) -> dict[str, Any]:
        return {}

    def param_map(self, config: RopeDecoderConfig) -> list[Entry]:
        return param_map(config)

    def hf_reader(
        self,
        hf: Mapping[str, Any],
        tensors: SafetensorsDir,
        config: RopeDecoderConfig,
        source: str,
    ) -> Callable[[Entry, tuple[int, ...]], np.ndarray]:
        keys = tensors.keys()
        expected = {e.hf for e in param_map(config)}
        tied_head = {"lm_head.weight"} if config.tie_word_embeddings else set()
        unexpected = sorted(k for k in keys - expected - tied_head if not _IGNORED.fullmatch(k))
        if unexpected:
            raise ConversionError(
                f"{source} has {len(unexpected)} tensors a {self.description} model with this "
                f"config.json does not use (e.g. {unexpected[0]!r}); it is not "
                f"{self.hf_architecture}-shaped"
            )

        def read(entry: Entry, ours: tuple[int, ...]) -> np.ndarray:
            if entry.hf not in keys:
                raise ConversionError(
                    f"{source} lacks tensor {entry.hf!r}; is it a {self.hf_architecture} "
                    "checkpoint with the layer count of its config.json?"
                )
            want = hf_shape(entry.kind, ours)
            got = tensors.shape(entry.hf)
            if got != want:
                raise shape_error(source, entry.hf, got, want, self.describe(config))
            x = from_hf(entry.kind, tensors.get(entry.hf), ours)
            if entry.kind == "embedding":
                x = _rows(x, self.swap)
            elif entry.kind == "logits":
                x = _rows(x.T, self.swap).T
            return x

        return read

    def tensor_to_hf(self, entry: Entry, x: np.ndarray) -> np.ndarray:
        x = to_hf(entry.kind, x)
        return _rows(x, self.swap) if entry.kind in ("embedding", "logits") else x

    def infer_config(
        self, shapes: Mapping[str, tuple[int, ...]], **overrides: Any
    ) -> RopeDecoderConfig:
        raise ConversionError(
            f"a {self.description} config cannot be inferred from parameter shapes (rotary "
            "settings, token ids); pass the model_config.json of the imported checkpoint "
            "(`--model_config`)"
        )

    def describe(self, config: RopeDecoderConfig) -> str:
        return (
            f"vocab_size={config.vocab_size}, d_model={config.d_model}, "
            f"layers={config.num_layers}, heads={config.num_heads}/{config.num_kv_heads} x "
            f"{config.head_dim}, d_ff={config.d_ff}, tied={config.tie_word_embeddings}"
        )

    # -- tokenizer files --------------------------------------------------------------------

    def import_vocabulary(self, path: epath.Path, config: RopeDecoderConfig) -> str | None:
        """`hf:<dir>` when the directory has a tokenizer.json, else None."""
        return f"hf:{path}" if (path / "tokenizer.json").exists() else None

    def copy_side_files(self, src: epath.Path, out: epath.Path) -> list[str]:
        """Copies the tokenizer files of `src` that exist into `out`; returns their names."""
        copied = []
        for name in TOKENIZER_FILES:
            if (src / name).exists():
                shutil.copyfile(src / name, out / name)
                copied.append(name)
        return copied


class LlamaConverter(HFCausalConverter):
    family = "llama"
    hf_model_types = ("llama", "mistral")
    hf_architecture = "LlamaForCausalLM"
    description = "Llama / Mistral / SmolLM"
    config_class = LlamaConfig

    def check_options(self, hf: Mapping[str, Any], source: str) -> None:
        super().check_options(hf, source)
        if hf.get("sliding_window") is not None:
            raise ConversionError(
                f"{source}: sliding_window={hf['sliding_window']} is not supported; flan_jax "
                "attends over the whole sequence (Mistral v0.2+ and Llama have no window)"
            )
        if hf.get("attention_bias"):
            raise ConversionError(
                f"{source}: attention_bias=true is not supported for Llama; flan_jax's Llama "
                "has no attention biases"
            )
        if hf.get("pretraining_tp", 1) not in (1, None):
            raise ConversionError(
                f"{source}: pretraining_tp={hf['pretraining_tp']} is not supported; use 1"
            )


class Qwen2Converter(HFCausalConverter):
    family = "qwen2"
    hf_model_types = ("qwen2",)
    hf_architecture = "Qwen2ForCausalLM"
    description = "Qwen2 / Qwen2.5"
    config_class = Qwen2Config

    def check_options(self, hf: Mapping[str, Any], source: str) -> None:
        super().check_options(hf, source)
        layer_types = hf.get("layer_types") or []
        if hf.get("use_sliding_window") or "sliding_attention" in layer_types:
            raise ConversionError(
                f"{source}: use_sliding_window=true is not supported; flan_jax attends over the "
                "whole sequence (the published Qwen2.5 models set it false)"
            )

    def extra_hf_fields(self, config: RopeDecoderConfig) -> dict[str, Any]:
        return {"use_sliding_window": False, "max_window_layers": config.num_layers}


class GemmaConverter(HFCausalConverter):
    family = "gemma"
    hf_model_types = ("gemma",)
    hf_architecture = "GemmaForCausalLM"
    description = "Gemma 1"
    config_class = GemmaConfig
    # Gemma 1 configs say "gelu", meaning the tanh approximation (transformers maps it so).
    activations = ("gelu_pytorch_tanh", "gelu", "gelu_tanh")

    def check_options(self, hf: Mapping[str, Any], source: str) -> None:
        super().check_options(hf, source)
        hidden_activation = hf.get("hidden_activation")
        if hidden_activation not in (None, "gelu_pytorch_tanh", "gelu_tanh"):
            raise ConversionError(
                f"{source}: hidden_activation={hidden_activation!r} is not supported; Gemma 1 "
                "uses the tanh-approximated GELU ('gelu_pytorch_tanh')"
            )
        if hf.get("attention_bias"):
            raise ConversionError(f"{source}: attention_bias=true is not supported for Gemma")
        if hf.get("use_bidirectional_attention"):
            raise ConversionError(
                f"{source}: use_bidirectional_attention=true is not supported; flan_jax's Gemma "
                "is causal"
            )


LLAMA = LlamaConverter()
QWEN2 = Qwen2Converter()
GEMMA = GemmaConverter()
CONVERTERS = (LLAMA, QWEN2, GEMMA)
