"""The T5 1.1 converter: Hugging Face T5 / Flan-T5 / mT5 (`T5ForConditionalGeneration`) and T5X
checkpoints to and from our `T5` (parameter names as T5X's).

    ours                       Hugging Face                                          T5X
    token_embedder/embedding   shared.weight                                         same as ours
    encoder/layers_i/attention encoder.block.i.layer.0.SelfAttention.{q,k,v,o}       .../kernel
    decoder/layers_i/...       decoder.block.i.layer.{0 self, 1 cross, 2 mlp}...     .../kernel
    */relpos_bias              block 0 relative_attention_bias                       rel_embedding
    decoder/logits_dense       lm_head.weight                                        .../kernel

No conversion scales the attention: T5, Hugging Face's T5 and T5X all fold 1/sqrt(head_dim) into
the query weights and our `MultiHeadAttention` does the same (tested against transformers).
T5 v1.0-style tied logits (`lm_head = shared`, decoder output scaled by d_model**-0.5) are imported
as an untied kernel `shared.T * d_model**-0.5`, which computes the same logits.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from flan_jax.conversion.base import (
    ConversionError,
    Converter,
    Entry,
    SafetensorsDir,
    from_hf,
    hf_shape,
    shape_error,
)
from flan_jax.models import T5Config

_HF_REQUIRED = ("d_model", "num_heads", "d_kv", "d_ff", "num_layers", "vocab_size")
# Tensors Hugging Face writes that our model does not have (copies of shared ones).
_HF_IGNORED = re.compile(
    r"(encoder|decoder)\.embed_tokens\.weight"
    r"|decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight"
)


def param_map(config: T5Config) -> list[Entry]:
    """Every parameter of `T5(config)` with its Hugging Face key and layout kind."""
    e = [Entry(("token_embedder", "embedding"), "shared.weight", "embedding")]

    def attention(ours: tuple[str, ...], hf: str) -> list[Entry]:
        names = {"query": "q", "key": "k", "value": "v", "out": "o"}
        return [
            Entry((*ours, n), f"{hf}.{h}.weight", "out" if n == "out" else "qkv")
            for n, h in names.items()
        ]

    def mlp(ours: tuple[str, ...], hf: str) -> list[Entry]:
        names = ("wi_0", "wi_1", "wo")
        return [Entry((*ours, n), f"{hf}.DenseReluDense.{n}.weight", "dense") for n in names]

    for stack, n_layers in (
        ("encoder", config.num_encoder_layers),
        ("decoder", config.num_decoder_layers),
    ):
        e.append(
            Entry(
                (stack, "relpos_bias", "rel_embedding"),
                f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "relpos",
            )
        )
        for i in range(n_layers):
            ours, hf = (stack, f"layers_{i}"), f"{stack}.block.{i}"
            if stack == "encoder":
                e += attention((*ours, "attention"), f"{hf}.layer.0.SelfAttention")
                e.append(Entry((*ours, "pre_attention_layer_norm", "scale"), "", "norm"))
            else:
                e += attention((*ours, "self_attention"), f"{hf}.layer.0.SelfAttention")
                e.append(Entry((*ours, "pre_self_attention_layer_norm", "scale"), "", "norm"))
                e += attention(
                    (*ours, "encoder_decoder_attention"), f"{hf}.layer.1.EncDecAttention"
                )
                e.append(Entry((*ours, "pre_cross_attention_layer_norm", "scale"), "", "norm"))
            mlp_layer = 1 if stack == "encoder" else 2
            e += mlp((*ours, "mlp"), f"{hf}.layer.{mlp_layer}")
            e.append(Entry((*ours, "pre_mlp_layer_norm", "scale"), "", "norm"))
        e.append(
            Entry((stack, f"{stack}_norm", "scale"), f"{stack}.final_layer_norm.weight", "norm")
        )
    e.append(Entry(("decoder", "logits_dense"), "lm_head.weight", "logits"))
    return [_with_norm_key(x) for x in e]


def _with_norm_key(entry: Entry) -> Entry:
    """Hugging Face names a block's norms by the sub-layer they precede (`layer.N.layer_norm`)."""
    if entry.hf:
        return entry
    stack, layer, norm = entry.ours[0], entry.ours[1], entry.ours[2]
    i = int(layer.removeprefix("layers_"))
    sub = {
        "pre_attention_layer_norm": 0,
        "pre_self_attention_layer_norm": 0,
        "pre_cross_attention_layer_norm": 1,
        "pre_mlp_layer_norm": 1 if stack == "encoder" else 2,
    }[norm]
    return dataclasses.replace(entry, hf=f"{stack}.block.{i}.layer.{sub}.layer_norm.weight")


def _scales_logits(hf: Mapping[str, Any]) -> bool:
    """Whether the reference scales the decoder output by d_model**-0.5 before the LM head.

    transformers >= 5 writes `scale_decoder_outputs`; older configs say `tie_word_embeddings`
    (False for T5 1.1 / Flan-T5 / mT5, which do not scale; absent or True for T5 v1.0).
    """
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return hf.get("tie_word_embeddings", True) is not False


class T5Converter(Converter):
    family = "t5"
    hf_model_types = ("t5", "mt5")
    hf_architecture = "T5ForConditionalGeneration"
    description = "T5 1.1 / Flan-T5 / mT5"

    def config_from_hf(
        self, hf: Mapping[str, Any], source: str = "config.json", **overrides: Any
    ) -> T5Config:
        proj = hf.get("feed_forward_proj", "relu")
        if proj != "gated-gelu":
            raise ConversionError(
                f"{source}: feed_forward_proj={proj!r}; flan_jax implements T5 1.1's gated-GELU "
                "MLP only, so use a T5 1.1 / Flan-T5 / mT5 checkpoint (original T5 v1.0 uses "
                "'relu')"
            )
        missing = [k for k in _HF_REQUIRED if k not in hf]
        if missing:
            raise ConversionError(
                f"{source}: missing {', '.join(missing)}; is it a T5 config.json?"
            )
        fields = dict(
            vocab_size=hf["vocab_size"],
            d_model=hf["d_model"],
            num_heads=hf["num_heads"],
            head_dim=hf["d_kv"],
            d_ff=hf["d_ff"],
            num_encoder_layers=hf["num_layers"],
            num_decoder_layers=hf.get("num_decoder_layers") or hf["num_layers"],
            relative_attention_num_buckets=hf.get("relative_attention_num_buckets", 32),
            relative_attention_max_distance=hf.get("relative_attention_max_distance", 128),
            layer_norm_epsilon=hf.get("layer_norm_epsilon", 1e-6),
        )
        try:
            return T5Config(**{**fields, **overrides})
        except ValueError as e:
            raise ConversionError(f"{source}: {e}") from e

    def hf_config_dict(self, config: T5Config) -> dict[str, Any]:
        """config.json for `transformers.T5ForConditionalGeneration` (untied, unscaled LM head)."""
        return {
            "architectures": [self.hf_architecture],
            "model_type": "t5",
            "vocab_size": config.vocab_size,
            "d_model": config.d_model,
            "d_kv": config.head_dim,
            "d_ff": config.d_ff,
            "num_layers": config.num_encoder_layers,
            "num_decoder_layers": config.num_decoder_layers,
            "num_heads": config.num_heads,
            "relative_attention_num_buckets": config.relative_attention_num_buckets,
            "relative_attention_max_distance": config.relative_attention_max_distance,
            "dropout_rate": config.dropout_rate,
            "layer_norm_epsilon": config.layer_norm_epsilon,
            "initializer_factor": 1.0,
            "feed_forward_proj": "gated-gelu",
            "dense_act_fn": "gelu_new",
            "is_gated_act": True,
            "is_encoder_decoder": True,
            # T5 1.1 semantics: transformers < 5 reads tie_word_embeddings, >= 5 the scale flag.
            "tie_word_embeddings": False,
            "scale_decoder_outputs": False,
            "pad_token_id": 0,
            "eos_token_id": 1,
            "decoder_start_token_id": 0,
            "use_cache": True,
            "dtype": config.param_dtype,
        }

    def param_map(self, config: T5Config) -> list[Entry]:
        return param_map(config)

    def hf_reader(
        self,
        hf: Mapping[str, Any],
        tensors: SafetensorsDir,
        config: T5Config,
        source: str,
    ) -> Callable[[Entry, tuple[int, ...]], np.ndarray]:
        keys = tensors.keys()
        expected = {e.hf for e in param_map(config)}
        unexpected = sorted(k for k in keys - expected if not _HF_IGNORED.fullmatch(k))
        if unexpected:
            raise ConversionError(
                f"{source} has {len(unexpected)} tensors a T5 1.1 model does not use (e.g. "
                f"{unexpected[0]!r}); it is not T5ForConditionalGeneration-shaped"
            )
        logits_scale = config.d_model**-0.5 if _scales_logits(hf) else 1.0

        def read(entry: Entry, ours: tuple[int, ...]) -> np.ndarray:
            key = entry.hf
            if entry.kind == "logits" and key not in keys:
                key = "shared.weight"  # tied LM head
            if key == "shared.weight" and key not in keys:
                key = "encoder.embed_tokens.weight"
            if key not in keys:
                raise ConversionError(
                    f"{source} lacks tensor {entry.hf!r}; is it a T5ForConditionalGeneration "
                    "checkpoint with the layer counts of its config.json?"
                )
            want = hf_shape(entry.kind, ours)
            if tensors.shape(key) != want:
                raise shape_error(source, key, tensors.shape(key), want, self.describe(config))
            x = from_hf(entry.kind, tensors.get(key), ours)
            if entry.kind == "logits" and logits_scale != 1.0:
                x = x.astype(np.float32) * np.float32(logits_scale)
            return x

        return read

    def infer_config(self, shapes: Mapping[str, tuple[int, ...]], **overrides: Any) -> T5Config:
        """The one thing shapes cannot tell is `relative_attention_max_distance` (default 128)."""

        def shape(name: str) -> tuple[int, ...]:
            for key in (name, name + "/kernel"):
                if key in shapes:
                    return tuple(shapes[key])
            raise ConversionError(f"checkpoint has no parameter {name!r}; is it a T5 1.1 model?")

        if "encoder/layers/attention/query/kernel" in shapes or "encoder/layers/mlp/wi_0" in shapes:
            raise ConversionError(
                "scanned-layer T5X checkpoints (encoder/layers/...) are not supported"
            )
        if any(
            k.startswith("encoder/layers_0/mlp/wi/") or k == "encoder/layers_0/mlp/wi"
            for k in shapes
        ):
            raise ConversionError(
                "the checkpoint's MLP has no wi_0/wi_1: T5 v1.0 (ReLU) is unsupported"
            )

        def count(stack: str) -> int:
            layers = {m.group(1) for k in shapes if (m := re.match(rf"{stack}/layers_(\d+)/", k))}
            return len(layers)

        vocab, d_model = shape("token_embedder/embedding")
        heads, buckets = shape("encoder/relpos_bias/rel_embedding")
        query = shape("encoder/layers_0/attention/query")
        fields = dict(
            vocab_size=vocab,
            d_model=d_model,
            num_heads=heads,
            head_dim=math.prod(query[1:]) // heads,
            d_ff=shape("encoder/layers_0/mlp/wi_0")[-1],
            num_encoder_layers=count("encoder"),
            num_decoder_layers=count("decoder"),
            relative_attention_num_buckets=buckets,
        )
        return T5Config(**{**fields, **overrides})

    def describe(self, config: T5Config) -> str:
        return (
            f"vocab_size={config.vocab_size}, d_model={config.d_model}, "
            f"num_heads={config.num_heads}, head_dim={config.head_dim}, d_ff={config.d_ff}, "
            f"layers={config.num_encoder_layers}/{config.num_decoder_layers}, "
            f"buckets={config.relative_attention_num_buckets}"
        )


CONVERTER = T5Converter()
