"""Pretrained T5 checkpoints in and out: Hugging Face (T5 / Flan-T5 / mT5) and T5X.

    flan-jax convert --from hf  HF_DIR      OUT   # config.json + *.safetensors -> params checkpoint
    flan-jax convert --from t5x T5X_DIR     OUT   # `checkpoint` msgpack + zarr arrays (local, gs://)
    flan-jax convert --to hf    CHECKPOINT  OUT   # -> config.json + model.safetensors (transformers)

An imported OUT is a params-only orbax checkpoint (`checkpoints.save_params`), usable as
INITIAL_CHECKPOINT_PATH, with `model_config.json` beside the arrays: the `T5Config` and the
vocabulary the weights were trained with (`read_model_config`).

Weight layouts (our names are T5X's without the trailing "/kernel"):

    ours                       shape        Hugging Face (nn.Linear: [out, in])       T5X
    query/key/value            [d, h, k]    q/k/v.weight [h*k, d] (transposed)          [d, h*k]
    out                        [h, k, d]    o.weight [d, h*k] (transposed)              [h*k, d]
    mlp wi_0/wi_1 | wo         [d, f]|[f,d] DenseReluDense.* (transposed)               same
    relpos_bias/rel_embedding  [h, buckets] block 0 relative_attention_bias [buckets, h] same
    decoder/logits_dense       [d, vocab]   lm_head.weight [vocab, d] (transposed)      same

No conversion scales the attention: T5, Hugging Face's T5 and T5X all fold 1/sqrt(head_dim) into
the query weights and our `MultiHeadAttention` does the same (tested against transformers).
T5 v1.0-style tied logits (`lm_head = shared`, decoder output scaled by d_model**-0.5) are imported
as an untied kernel `shared.T * d_model**-0.5`, which computes the same logits.

Tensors are read and converted one at a time; with a mesh each lands directly on its
`NamedSharding`, so the whole model is never copied on the host.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from jax.sharding import Mesh

from flan_jax import checkpoints
from flan_jax.models import T5, T5Config

PathLike = str | os.PathLike
Params = dict[str, Any]

MODEL_CONFIG_FILE = "model_config.json"  # written inside an imported params checkpoint
_FORMAT = "flan_jax.t5_params/v1"

# Known vocabularies: name -> (SentencePiece pieces, padded embedding rows of public checkpoints).
VOCABULARIES: dict[str, tuple[int, int]] = {"t5": (32100, 32128), "mt5": (250100, 250112)}


class ConversionError(ValueError):
    """A checkpoint that cannot be converted, reported in one line (the CLI prints it)."""


# ---------------------------------------------------------------------------------------------
# Vocabulary


def vocabulary_for(vocab_size: int) -> str | None:
    """The vocabulary name of a public checkpoint's embedding size ("t5", "mt5"), else None."""
    for name, sizes in VOCABULARIES.items():
        if vocab_size in sizes:
            return name
    return None


def _vocab_size_of(vocabulary: Any) -> tuple[int, str]:
    if isinstance(vocabulary, int):
        return vocabulary, f"{vocabulary} ids"
    if isinstance(vocabulary, str):
        if vocabulary in VOCABULARIES:
            return VOCABULARIES[vocabulary][0], f"{vocabulary!r}"
        if vocabulary == "byte":  # seqio.ByteVocabulary: 256 bytes + pad/eos/unk (no TF import)
            return 259, "'byte'"
        from flan_jax.vocab import get_vocabulary

        vocabulary = get_vocabulary(vocabulary)
    return int(vocabulary.vocab_size), type(vocabulary).__name__


def check_vocab(config: T5Config, vocabulary: Any) -> None:
    """Fails in one line when the model cannot embed every id of the task vocabulary.

    `vocabulary` is a seqio vocabulary, a name (`byte`, `t5`, `mt5`, a `.model` path) or a size.
    """
    size, what = _vocab_size_of(vocabulary)
    if config.vocab_size < size:
        raise ConversionError(
            f"vocabulary mismatch: the model has vocab_size={config.vocab_size} but the task "
            f"vocabulary {what} has {size} tokens; register tasks with the vocabulary the "
            "checkpoint was trained with (model_config.json 'vocabulary', e.g. --vocab t5) or "
            f"build the model with vocab_size >= {size}"
        )


# ---------------------------------------------------------------------------------------------
# The parameter map: one entry per array, with its layout kind


@dataclasses.dataclass(frozen=True)
class _Entry:
    ours: tuple[str, ...]  # path in our params tree
    hf: str  # Hugging Face state-dict key
    kind: str  # embedding | norm | dense | qkv | out | relpos | logits

    @property
    def t5x(self) -> str:
        dense = self.kind in ("dense", "qkv", "out", "logits")
        return "/".join(self.ours) + ("/kernel" if dense else "")


def param_map(config: T5Config) -> list[_Entry]:
    """Every parameter of `T5(config)` with its Hugging Face key and layout kind."""
    e = [_Entry(("token_embedder", "embedding"), "shared.weight", "embedding")]

    def attention(ours: tuple[str, ...], hf: str) -> list[_Entry]:
        names = {"query": "q", "key": "k", "value": "v", "out": "o"}
        return [
            _Entry((*ours, n), f"{hf}.{h}.weight", "out" if n == "out" else "qkv")
            for n, h in names.items()
        ]

    def mlp(ours: tuple[str, ...], hf: str) -> list[_Entry]:
        names = ("wi_0", "wi_1", "wo")
        return [_Entry((*ours, n), f"{hf}.DenseReluDense.{n}.weight", "dense") for n in names]

    for stack, n_layers in (
        ("encoder", config.num_encoder_layers),
        ("decoder", config.num_decoder_layers),
    ):
        e.append(
            _Entry(
                (stack, "relpos_bias", "rel_embedding"),
                f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                "relpos",
            )
        )
        for i in range(n_layers):
            ours, hf = (stack, f"layers_{i}"), f"{stack}.block.{i}"
            if stack == "encoder":
                e += attention((*ours, "attention"), f"{hf}.layer.0.SelfAttention")
                e.append(_Entry((*ours, "pre_attention_layer_norm", "scale"), "", "norm"))
                mlp_layer = 1
            else:
                e += attention((*ours, "self_attention"), f"{hf}.layer.0.SelfAttention")
                e.append(_Entry((*ours, "pre_self_attention_layer_norm", "scale"), "", "norm"))
                e += attention(
                    (*ours, "encoder_decoder_attention"), f"{hf}.layer.1.EncDecAttention"
                )
                e.append(_Entry((*ours, "pre_cross_attention_layer_norm", "scale"), "", "norm"))
                mlp_layer = 2
            e += mlp((*ours, "mlp"), f"{hf}.layer.{mlp_layer}")
            e.append(_Entry((*ours, "pre_mlp_layer_norm", "scale"), "", "norm"))
        e.append(
            _Entry((stack, f"{stack}_norm", "scale"), f"{stack}.final_layer_norm.weight", "norm")
        )
    e.append(_Entry(("decoder", "logits_dense"), "lm_head.weight", "logits"))
    return [_with_norm_key(x) for x in e]


def _with_norm_key(entry: _Entry) -> _Entry:
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


def _abstract_params(config: T5Config) -> Any:
    """The boxed abstract params of `T5(config)` (no FLOPs, no RNG compile)."""
    tokens = jax.ShapeDtypeStruct((1, 1), jnp.int32)
    return jax.eval_shape(T5(config).init, jax.random.key(0), tokens, tokens)["params"]


def _get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _set(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


# ---------------------------------------------------------------------------------------------
# Layout transforms (numpy, one tensor at a time)


def _hf_shape(kind: str, ours: tuple[int, ...]) -> tuple[int, ...]:
    if kind in ("embedding", "norm"):
        return ours
    if kind == "qkv":  # ours [d, h, k]
        return (ours[1] * ours[2], ours[0])
    if kind == "out":  # ours [h, k, d]
        return (ours[2], ours[0] * ours[1])
    return ours[::-1]  # dense, relpos, logits: transposed


def _from_hf(kind: str, x: np.ndarray, ours: tuple[int, ...]) -> np.ndarray:
    if kind in ("embedding", "norm"):
        return x
    if kind in ("qkv", "out"):
        return x.T.reshape(ours)
    return x.T


def _to_hf(kind: str, x: np.ndarray) -> np.ndarray:
    if kind in ("embedding", "norm"):
        return x
    if kind == "qkv":
        return x.reshape(x.shape[0], -1).T
    if kind == "out":
        return x.reshape(-1, x.shape[-1]).T
    return x.T


def _t5x_shapes(kind: str, ours: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """T5X stores attention kernels flattened to 2-D (flaxformer keeps them 3-D: accept both)."""
    if kind == "qkv":
        return ((ours[0], ours[1] * ours[2]), ours)
    if kind == "out":
        return ((ours[0] * ours[1], ours[2]), ours)
    return (ours,)


def _describe(config: T5Config) -> str:
    return (
        f"vocab_size={config.vocab_size}, d_model={config.d_model}, "
        f"num_heads={config.num_heads}, head_dim={config.head_dim}, d_ff={config.d_ff}, "
        f"layers={config.num_encoder_layers}/{config.num_decoder_layers}, "
        f"buckets={config.relative_attention_num_buckets}"
    )


def _shape_error(source: str, key: str, got: Any, want: Any, config: T5Config) -> ConversionError:
    return ConversionError(
        f"{source}: tensor {key!r} has shape {tuple(got)} but the model config "
        f"({_describe(config)}) expects {tuple(want)}; the weights and the config disagree"
    )


# ---------------------------------------------------------------------------------------------
# Assembling params (optionally straight onto a mesh)


def _assemble(
    config: T5Config,
    read: Callable[[_Entry, tuple[int, ...]], np.ndarray],
    mesh: Mesh | None,
    rules: Any,
) -> Params:
    """Our params tree from `read(entry, our_shape) -> array in our layout`, one tensor at a time.

    With `mesh`, each array is placed on its NamedSharding (from the model's logical axis names
    and `rules`) as soon as it is converted, and the host copy is dropped.
    """
    boxed = _abstract_params(config)
    abstract = nn.meta.unbox(boxed)
    shardings = None
    if mesh is not None:
        from flan_jax.partitioning import logical_axis_rules, param_shardings

        shardings = param_shardings(
            boxed, mesh, rules if rules is not None else logical_axis_rules()
        )
    dtype = np.dtype(jnp.dtype(config.param_dtype))
    params: Params = {}
    for entry in param_map(config):
        leaf = _get(abstract, entry.ours)
        value = np.asarray(read(entry, tuple(leaf.shape)))
        value = value.astype(dtype, copy=False)
        if shardings is not None:
            sharding = _get(shardings, entry.ours)
            value = jax.make_array_from_callback(value.shape, sharding, lambda i, v=value: v[i])
        _set(params, entry.ours, value)
    return params


@dataclasses.dataclass
class ImportedModel:
    """Converted params (our layout), their `T5Config` and the vocabulary they were trained with."""

    params: Params
    config: T5Config
    vocabulary: str | None
    source: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Hugging Face import

_HF_REQUIRED = ("d_model", "num_heads", "d_kv", "d_ff", "num_layers", "vocab_size")
_HF_IGNORED = re.compile(
    r"(encoder|decoder)\.embed_tokens\.weight"
    r"|decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight"
)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def config_from_hf(
    hf: Mapping[str, Any], source: str = "config.json", **overrides: Any
) -> T5Config:
    """A `T5Config` from a Hugging Face T5 / Flan-T5 / mT5 config.json (as a dict)."""
    model_type = hf.get("model_type", "t5")
    if model_type not in ("t5", "mt5"):
        raise ConversionError(
            f"{source}: model_type={model_type!r} is not T5-shaped; flan_jax imports model_type "
            "'t5' or 'mt5' (T5 1.1, Flan-T5, mT5)"
        )
    proj = hf.get("feed_forward_proj", "relu")
    if proj != "gated-gelu":
        raise ConversionError(
            f"{source}: feed_forward_proj={proj!r}; flan_jax implements T5 1.1's gated-GELU MLP "
            "only, so use a T5 1.1 / Flan-T5 / mT5 checkpoint (original T5 v1.0 uses 'relu')"
        )
    missing = [k for k in _HF_REQUIRED if k not in hf]
    if missing:
        raise ConversionError(f"{source}: missing {', '.join(missing)}; is it a T5 config.json?")
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


def _scales_logits(hf: Mapping[str, Any]) -> bool:
    """Whether the reference scales the decoder output by d_model**-0.5 before the LM head.

    transformers >= 5 writes `scale_decoder_outputs`; older configs say `tie_word_embeddings`
    (False for T5 1.1 / Flan-T5 / mT5, which do not scale; absent or True for T5 v1.0).
    """
    if "scale_decoder_outputs" in hf:
        return bool(hf["scale_decoder_outputs"])
    return hf.get("tie_word_embeddings", True) is not False


class _SafetensorsDir:
    """Lazy access to the tensors of a (possibly sharded) safetensors model directory."""

    def __init__(self, path: epath.Path) -> None:
        self.path = path
        index = path / "model.safetensors.index.json"
        if index.exists():
            weight_map = json.loads(index.read_text())["weight_map"]
            self.files = {k: path / f for k, f in weight_map.items()}
        else:
            self.files = {}
            for f in sorted(path.glob("*.safetensors")):
                self.files.update({k: f for k in self._open(os.fspath(f)).keys()})
        self._handles: dict[str, Any] = {}

    def keys(self) -> set[str]:
        return set(self.files)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._handle(key).get_slice(key).get_shape())

    def get(self, key: str) -> np.ndarray:
        return self._handle(key).get_tensor(key)

    def _handle(self, key: str) -> Any:
        name = os.fspath(self.files[key])
        if name not in self._handles:
            if not os.path.exists(name):
                raise ConversionError(f"{self.path}: the index names {name}, which does not exist")
            self._handles[name] = self._open(name)
        return self._handles[name]

    @staticmethod
    def _open(name: str) -> Any:
        from safetensors import SafetensorError, safe_open

        try:
            return safe_open(name, framework="np")
        except SafetensorError as e:
            raise ConversionError(f"{name} is not a readable safetensors file ({e})") from e


def _open_hf_dir(path: PathLike) -> tuple[epath.Path, dict[str, Any], _SafetensorsDir]:
    path = checkpoints.as_path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"Hugging Face model directory {path} does not exist; pass a directory holding "
            "config.json and model.safetensors (e.g. from `hf download google/flan-t5-small`)"
        )
    config_file = path / "config.json"
    if not config_file.exists():
        raise ConversionError(
            f"{path} has no config.json; a Hugging Face model directory holds config.json next "
            "to its *.safetensors weights (download the whole model repository)"
        )
    hf = json.loads(config_file.read_text())
    config_from_hf(hf, os.fspath(config_file))  # unsupported models fail before any weight is read
    has_index = (path / "model.safetensors.index.json").exists()
    if not has_index and not list(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.name.endswith(_PICKLE_SUFFIXES))
        if pickles:
            raise ConversionError(
                f"{path} has only pickle weights ({', '.join(pickles)}) and flan-jax never "
                "unpickles a file (loading a pickle can run arbitrary code); convert it once "
                "where you trust it: T5ForConditionalGeneration.from_pretrained(DIR)"
                ".save_pretrained(NEW_DIR, safe_serialization=True)"
            )
        raise ConversionError(f"{path} has no *.safetensors weights next to its config.json")
    return path, hf, _SafetensorsDir(path)


def import_hf(
    path: PathLike,
    *,
    mesh: Mesh | None = None,
    rules: Any = None,
    param_dtype: str = "float32",
) -> ImportedModel:
    """Reads a Hugging Face T5 / Flan-T5 / mT5 directory (config.json + safetensors).

    Tensors are read one at a time (`safe_open`); pickle-only directories are refused. With
    `mesh` (and logical axis `rules`, default T5X 1D) each array is placed on its sharding.
    """
    path, hf, tensors = _open_hf_dir(path)
    source = f"Hugging Face checkpoint {path}"
    config = config_from_hf(hf, f"{path / 'config.json'}", param_dtype=param_dtype)
    keys = tensors.keys()
    expected = {e.hf for e in param_map(config)}
    unexpected = sorted(k for k in keys - expected if not _HF_IGNORED.fullmatch(k))
    if unexpected:
        raise ConversionError(
            f"{source} has {len(unexpected)} tensors a T5 1.1 model does not use (e.g. "
            f"{unexpected[0]!r}); it is not T5ForConditionalGeneration-shaped"
        )
    logits_scale = config.d_model**-0.5 if _scales_logits(hf) else 1.0

    def read(entry: _Entry, ours: tuple[int, ...]) -> np.ndarray:
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
        want = _hf_shape(entry.kind, ours)
        if tensors.shape(key) != want:
            raise _shape_error(source, key, tensors.shape(key), want, config)
        x = _from_hf(entry.kind, tensors.get(key), ours)
        if entry.kind == "logits" and logits_scale != 1.0:
            x = x.astype(np.float32) * np.float32(logits_scale)
        return x

    return ImportedModel(
        _assemble(config, read, mesh, rules),
        config,
        vocabulary_for(config.vocab_size),
        {"format": "hf", "path": os.fspath(path), "model_type": hf.get("model_type", "t5")},
    )


# ---------------------------------------------------------------------------------------------
# T5X import


def _is_ts_spec(x: Any) -> bool:
    return isinstance(x, dict) and "driver" in x and ("kvstore" in x or "path" in x)


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and not _is_ts_spec(value):
            yield from _flatten(value, name + "/")
        else:
            yield name, value


def _absolute_ts_spec(spec: Mapping[str, Any], directory: str) -> dict[str, Any]:
    """A T5X leaf's relative TensorStore spec made absolute (file, or gcs for gs:// dirs).

    T5X writes the array's path relative to the checkpoint directory (in `kvstore.path`, or at
    the top level in older and gs:// checkpoints) and a dummy bucket for GCS.
    """
    spec = copy.deepcopy(dict(spec))
    kvstore = spec.get("kvstore")
    if isinstance(kvstore, dict) and "path" in kvstore:
        relative = kvstore["path"]
    elif "path" in spec:
        relative = spec.pop("path")
    else:
        raise ConversionError(f"T5X checkpoint {directory}: a TensorStore spec without a path")
    match = re.fullmatch(r"gs://([^/]+)/?(.*)", directory)
    if match:
        bucket, prefix = match.group(1), match.group(2)
        spec["kvstore"] = {
            "driver": "gcs",
            "bucket": bucket,
            "path": posixpath.join(prefix, relative),
        }
    else:
        spec["kvstore"] = {"driver": "file", "path": os.path.join(directory, relative)}
    return spec


def _read_t5x_target(path: PathLike) -> tuple[str, dict[str, Any]]:
    """(checkpoint directory, {"encoder/layers_0/...": ndarray or TensorStore spec})."""
    from flax import serialization

    path = checkpoints.as_path(path)
    file = path if path.name == "checkpoint" and not path.is_dir() else path / "checkpoint"
    if not file.exists():
        raise FileNotFoundError(
            f"T5X checkpoint {path} has no `checkpoint` file; pass a checkpoint_<step> directory "
            "(e.g. gs://t5-data/pretrained_models/t5x/flan_t5_small/checkpoint_1198000)"
        )
    contents = serialization.msgpack_restore(file.read_bytes())
    version = contents.get("version", 0) if isinstance(contents, dict) else 0
    state = contents.get("optimizer", contents) if version else contents
    if not isinstance(state, dict) or "target" not in state:
        raise ConversionError(f"T5X checkpoint {file} has no optimizer 'target' (the params)")
    directory = os.fspath(file.parent)
    return directory, dict(_flatten(state["target"]))


def _t5x_shape(leaf: Any) -> tuple[int, ...]:
    if _is_ts_spec(leaf):
        meta = leaf.get("metadata", {})
        if "shape" not in meta:
            raise ConversionError(f"T5X TensorStore spec without metadata.shape: {leaf}")
        return tuple(int(s) for s in meta["shape"])
    return tuple(np.shape(leaf))


def infer_config(shapes: Mapping[str, tuple[int, ...]], **overrides: Any) -> T5Config:
    """A `T5Config` from parameter shapes keyed by our or T5X names ("encoder/layers_0/...").

    The one thing shapes cannot tell is `relative_attention_max_distance` (default 128).
    """

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
        k.startswith("encoder/layers_0/mlp/wi/") or k == "encoder/layers_0/mlp/wi" for k in shapes
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


def import_t5x(
    path: PathLike,
    *,
    mesh: Mesh | None = None,
    rules: Any = None,
    param_dtype: str = "float32",
    relative_attention_max_distance: int = 128,
) -> ImportedModel:
    """Reads a T5X checkpoint directory (msgpack `checkpoint` + zarr arrays), local or gs://.

    The config is inferred from the array shapes (T5X checkpoints carry none).
    """
    import tensorstore as ts

    directory, leaves = _read_t5x_target(path)
    source = f"T5X checkpoint {directory}"
    shapes = {name: _t5x_shape(leaf) for name, leaf in leaves.items()}
    config = infer_config(
        shapes,
        param_dtype=param_dtype,
        relative_attention_max_distance=relative_attention_max_distance,
    )
    unexpected = sorted(set(leaves) - {e.t5x for e in param_map(config)})
    if unexpected:
        raise ConversionError(
            f"{source} has {len(unexpected)} parameters a T5 1.1 model does not use (e.g. "
            f"{unexpected[0]!r})"
        )

    def read(entry: _Entry, ours: tuple[int, ...]) -> np.ndarray:
        name = entry.t5x
        if name not in leaves:
            raise ConversionError(f"{source} lacks parameter {name!r}")
        if shapes[name] not in _t5x_shapes(entry.kind, ours):
            raise _shape_error(source, name, shapes[name], _t5x_shapes(entry.kind, ours)[0], config)
        leaf = leaves[name]
        if _is_ts_spec(leaf):
            store = ts.open(_absolute_ts_spec(leaf, directory), open=True, read=True).result()
            leaf = store.read().result()
        return np.asarray(leaf).reshape(ours)

    return ImportedModel(
        _assemble(config, read, mesh, rules),
        config,
        vocabulary_for(config.vocab_size),
        {"format": "t5x", "path": directory},
    )


# ---------------------------------------------------------------------------------------------
# Our converted checkpoints: write, read back


def save_imported(out: PathLike, model: ImportedModel) -> epath.Path:
    """Writes `out` (params checkpoint) and `out/model_config.json`; refuses an existing `out`."""
    out = checkpoints.as_path(out)
    if out.exists():
        raise ConversionError(f"output {out} already exists; choose a new path")
    checkpoints.save_params(out, model.params)
    meta = {
        "format": _FORMAT,
        "model": "t5",
        "config": dataclasses.asdict(model.config),
        "vocabulary": model.vocabulary,
        "source": model.source,
    }
    if jax.process_index() == 0:
        (out / MODEL_CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def read_model_config(path: PathLike) -> tuple[T5Config, str | None]:
    """(T5Config, vocabulary name) of an imported checkpoint (`model_config.json` inside it)."""
    file = epath.Path(path) / MODEL_CONFIG_FILE
    if not file.exists():
        raise FileNotFoundError(
            f"{file} does not exist; only checkpoints written by `flan-jax convert --from ...` "
            "carry their model config"
        )
    meta = json.loads(file.read_text())
    return T5Config(**meta["config"]), meta.get("vocabulary")


def _checkpoint_shapes(path: epath.Path) -> dict[str, tuple[int, ...]]:
    """Param shapes from orbax metadata: a params-only checkpoint or a MODEL_DIR/<step>."""
    import orbax.checkpoint as ocp

    item = path / "state" if (path / "state").is_dir() else path
    with ocp.PyTreeCheckpointer() as checkpointer:
        tree = checkpointer.metadata(item).item_metadata.tree
    if item != path:
        tree = tree["params"]
    return {name: tuple(leaf.shape) for name, leaf in _flatten(tree)}


def load_params(
    checkpoint: PathLike, config: T5Config | None = None
) -> tuple[Params, T5Config, str | None]:
    """(params on the host CPU, config, vocabulary) of a params-only or MODEL_DIR/<step> checkpoint.

    The config comes from `config`, else `model_config.json`, else the array shapes.
    """
    path = epath.Path(checkpoint)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    vocabulary = None
    if config is None:
        if (path / MODEL_CONFIG_FILE).exists():
            config, vocabulary = read_model_config(path)
        else:
            config = infer_config(_checkpoint_shapes(path))
    cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=cpu),
        nn.meta.unbox(_abstract_params(config)),
    )
    params = checkpoints.restore_params(path, abstract)
    return params, config, vocabulary or vocabulary_for(config.vocab_size)


# ---------------------------------------------------------------------------------------------
# Hugging Face export


def hf_config_dict(config: T5Config) -> dict[str, Any]:
    """config.json for `transformers.T5ForConditionalGeneration` (untied, unscaled LM head)."""
    return {
        "architectures": ["T5ForConditionalGeneration"],
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


def export_hf(
    checkpoint: PathLike,
    out: PathLike,
    *,
    config: T5Config | None = None,
    max_shard_bytes: int = 2 * 1024**3,
) -> epath.Path:
    """Writes `out/config.json` and `out/model.safetensors` (sharded with an index if large).

    `checkpoint` is an imported params checkpoint or a training MODEL_DIR/<step>. Refuses a
    non-empty `out`.
    """
    from safetensors.numpy import save_file

    out = checkpoints.as_path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConversionError(f"output {out} exists and is not empty; choose a new directory")
    params, config, _ = load_params(checkpoint, config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(hf_config_dict(config), indent=2) + "\n")

    entries = param_map(config)
    shards: list[list[_Entry]] = [[]]
    size = 0
    for entry in entries:
        nbytes = math.prod(_get(params, entry.ours).shape) * jnp.dtype(config.param_dtype).itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += nbytes
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards):
        name = (
            "model.safetensors"
            if len(shards) == 1
            else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        )
        tensors = {}
        for entry in shard:
            x = np.asarray(jax.device_get(_get(params, entry.ours)))
            tensors[entry.hf] = np.ascontiguousarray(_to_hf(entry.kind, x))
            weight_map[entry.hf] = name
            total += tensors[entry.hf].nbytes
        save_file(tensors, os.fspath(out / name), metadata={"format": "pt"})
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# CLI (`flan-jax convert`), wired into flan_jax/cli.py by `add_convert_parser`


def cmd_convert(args: argparse.Namespace) -> None:
    """`flan-jax convert --from hf|t5x SRC OUT` or `--to hf CHECKPOINT OUT`."""
    if args.to_format:
        config = None
        if args.model_config:
            fields = json.loads(epath.Path(args.model_config).read_text())
            fields = fields.get("config", fields)  # our model_config.json or bare T5Config fields
            try:
                config = T5Config(**fields)
            except TypeError as e:
                raise ConversionError(f"--model_config {args.model_config}: {e}") from e
        out = export_hf(args.src, args.out, config=config)
        print(
            f"wrote {out}/config.json and safetensors weights (transformers T5ForConditionalGeneration)"
        )
        return
    if epath.Path(args.out).exists():
        raise ConversionError(f"output {args.out} already exists; choose a new path")
    mesh = None
    if args.model_parallel > 1:
        from flan_jax.partitioning import MeshConfig, make_mesh

        mesh = make_mesh(MeshConfig(data=-1, model=args.model_parallel))
    if args.from_format == "hf":
        model = import_hf(args.src, mesh=mesh, param_dtype=args.dtype)
    else:
        model = import_t5x(
            args.src,
            mesh=mesh,
            param_dtype=args.dtype,
            relative_attention_max_distance=args.max_distance,
        )
    if args.vocabulary:
        model.vocabulary = args.vocabulary
    save_imported(args.out, model)
    print(
        f"wrote {args.out}: T5 ({_describe(model.config)}), vocabulary {model.vocabulary}; "
        f"use it as INITIAL_CHECKPOINT_PATH"
    )


def add_convert_parser(sub: Any) -> None:
    """Adds the `convert` subcommand to the CLI's subparsers."""
    p = sub.add_parser(
        "convert",
        help="import Hugging Face / T5X T5 checkpoints, export to Hugging Face",
        description=__doc__.split("\n\n")[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    way = p.add_mutually_exclusive_group(required=True)
    way.add_argument("--from", dest="from_format", choices=("hf", "t5x"), help="import format")
    way.add_argument("--to", dest="to_format", choices=("hf",), help="export format")
    p.add_argument("src", help="source directory (HF model dir, T5X checkpoint_N, or ours)")
    p.add_argument("out", help="output directory (must not exist, or be empty for --to)")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--max_distance", type=int, default=128, help="T5X: relative max distance")
    p.add_argument("--vocabulary", default=None, help="record this vocabulary (default: by size)")
    p.add_argument(
        "--model_parallel",
        type=int,
        default=1,
        help="import straight onto a mesh with this many model shards (large models)",
    )
    p.add_argument("--model_config", default=None, help="--to: T5Config JSON if not recorded")
    p.set_defaults(fn=cmd_convert)
