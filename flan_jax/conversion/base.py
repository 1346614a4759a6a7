"""What every checkpoint converter shares: reading safetensors (never a pickle) and T5X
checkpoints, the layout transforms of our blocks' kernels, and the `Converter` interface a
family's converter implements (`conversion/t5.py`).

Weight layouts of our blocks (`models/layers.py`; names as T5X's without the trailing "/kernel"):

    kind       ours          Hugging Face (nn.Linear: [out, in])    T5X
    qkv        [d, h, k]     [h*k, d] (transposed)                  [d, h*k] (flaxformer: 3-D)
    out        [h, k, d]     [d, h*k] (transposed)                  [h*k, d] (flaxformer: 3-D)
    dense      [in, out]     [out, in] (transposed)                 same as ours
    relpos     [h, buckets]  [buckets, h]                           same as ours
    bias       [h, k]        [h*k]                                  -
    logits     [d, vocab]    [vocab, d]                             same as ours
    embedding, norm          same as ours                           same as ours
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from flan_jax import checkpoints, models
from flan_jax.partitioning import Layout

PathLike = str | os.PathLike
Params = dict[str, Any]

# Known vocabularies: name -> (SentencePiece pieces, padded embedding rows of public checkpoints).
VOCABULARIES: dict[str, tuple[int, int]] = {"t5": (32100, 32128), "mt5": (250100, 250112)}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class ConversionError(ValueError):
    """A checkpoint that cannot be converted, reported in one line (the CLI prints it)."""


def vocabulary_for(vocab_size: int) -> str | None:
    """The vocabulary name of a public checkpoint's embedding size ("t5", "mt5"), else None."""
    for name, sizes in VOCABULARIES.items():
        if vocab_size in sizes:
            return name
    return None


@dataclasses.dataclass
class ImportedModel:
    """Converted params (our layout), their config and the vocabulary they were trained with."""

    params: Params
    config: models.ModelConfig
    vocabulary: str | None
    source: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# The parameter map: one entry per array, with its layout kind


@dataclasses.dataclass(frozen=True)
class Entry:
    """One parameter: its path in our tree, its Hugging Face key, its layout kind."""

    ours: tuple[str, ...]
    hf: str
    kind: str  # embedding | norm | dense | qkv | out | relpos | logits | bias

    @property
    def t5x(self) -> str:
        """Its T5X / flaxformer name ("decoder/layers_0/mlp/wi_0/kernel")."""
        dense = self.kind in ("dense", "qkv", "out", "logits")
        return "/".join(self.ours) + ("/kernel" if dense else "")


def get(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def put(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


# ---------------------------------------------------------------------------------------------
# Layout transforms (numpy, one tensor at a time)


def hf_shape(kind: str, ours: tuple[int, ...]) -> tuple[int, ...]:
    """The Hugging Face shape of a parameter of our shape."""
    if kind in ("embedding", "norm"):
        return ours
    if kind == "bias":  # ours [h, k]
        return (ours[0] * ours[1],)
    if kind == "qkv":  # ours [d, h, k]
        return (ours[1] * ours[2], ours[0])
    if kind == "out":  # ours [h, k, d]
        return (ours[2], ours[0] * ours[1])
    return ours[::-1]  # dense, relpos, logits: transposed


def from_hf(kind: str, x: np.ndarray, ours: tuple[int, ...]) -> np.ndarray:
    if kind in ("embedding", "norm"):
        return x
    if kind == "bias":
        return x.reshape(ours)
    if kind in ("qkv", "out"):
        return x.T.reshape(ours)
    return x.T


def to_hf(kind: str, x: np.ndarray) -> np.ndarray:
    if kind in ("embedding", "norm"):
        return x
    if kind == "bias":
        return x.reshape(-1)
    if kind == "qkv":
        return x.reshape(x.shape[0], -1).T
    if kind == "out":
        return x.reshape(-1, x.shape[-1]).T
    return x.T


def t5x_shapes(kind: str, ours: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """T5X stores attention kernels flattened to 2-D (flaxformer keeps them 3-D: accept both)."""
    if kind == "qkv":
        return ((ours[0], ours[1] * ours[2]), ours)
    if kind == "out":
        return ((ours[0] * ours[1], ours[2]), ours)
    return (ours,)


# ---------------------------------------------------------------------------------------------
# The interface of a family's converter


class Converter:
    """Converts one model family's checkpoints (Hugging Face in and out, T5X in)."""

    family: ClassVar[str]  # the models family name (`models.family_named`)
    hf_model_types: ClassVar[tuple[str, ...]]  # config.json model_type values it imports
    hf_architecture: ClassVar[str]  # the transformers class an export loads as
    description: ClassVar[str]  # for messages, e.g. "T5 1.1 / Flan-T5 / mT5"

    def config_from_hf(
        self, hf: Mapping[str, Any], source: str = "config.json", **overrides: Any
    ) -> models.ModelConfig:
        """Our config from a Hugging Face config.json (as a dict); ConversionError if the
        architecture differs from ours."""
        raise NotImplementedError

    def hf_config_dict(self, config: models.ModelConfig) -> dict[str, Any]:
        """config.json for `hf_architecture`."""
        raise NotImplementedError

    def param_map(self, config: models.ModelConfig) -> list[Entry]:
        """Every parameter of the family's module for `config`, in a stable order."""
        raise NotImplementedError

    def hf_reader(
        self,
        hf: Mapping[str, Any],
        tensors: SafetensorsDir,
        config: models.ModelConfig,
        source: str,
    ) -> Callable[[Entry, tuple[int, ...]], np.ndarray]:
        """read(entry, our_shape) -> the array in our layout (checks the tensors' names first)."""
        raise NotImplementedError

    def infer_config(
        self, shapes: Mapping[str, tuple[int, ...]], **overrides: Any
    ) -> models.ModelConfig:
        """The config from parameter shapes keyed by our or T5X names; ConversionError if the
        shapes are not this family's."""
        raise NotImplementedError

    def describe(self, config: models.ModelConfig) -> str:
        """A one-line summary of the config's shape, for messages."""
        return models.family_of(config).report_name(config)

    def for_hf_dir(self, path: epath.Path) -> Converter:
        """This converter bound to what a Hugging Face directory holds besides the weights
        (e.g. its tokenizer's id conventions); by default itself."""
        return self

    def for_vocabulary(self, vocabulary: str | None) -> Converter:
        """This converter for exporting weights trained with `vocabulary`; by default itself."""
        return self

    def tensor_to_hf(self, entry: Entry, x: np.ndarray) -> np.ndarray:
        """One parameter in our layout -> the Hugging Face tensor."""
        return to_hf(entry.kind, x)

    def import_vocabulary(self, path: epath.Path, config: models.ModelConfig) -> str | None:
        """The vocabulary a Hugging Face directory's model was trained with (recorded on
        import), by default a known one of the same embedding size."""
        return vocabulary_for(config.vocab_size)

    def copy_side_files(self, src: epath.Path, out: epath.Path) -> list[str]:
        """Copies files that travel with the weights (e.g. a tokenizer) from the Hugging Face
        directory or imported checkpoint `src` into `out`; returns their names."""
        return []


def shape_error(source: str, key: str, got: Any, want: Any, config_summary: str) -> ConversionError:
    return ConversionError(
        f"{source}: tensor {key!r} has shape {tuple(got)} but the model config "
        f"({config_summary}) expects {tuple(want)}; the weights and the config disagree"
    )


def assemble(
    config: models.ModelConfig,
    entries: list[Entry],
    read: Callable[[Entry, tuple[int, ...]], np.ndarray],
    layout: Layout | None,
) -> Params:
    """Our params tree from `read(entry, our_shape) -> array in our layout`, one tensor at a time.

    With `layout`, each array is placed on its NamedSharding (from the model's logical axis names)
    as soon as it is converted, and the host copy is dropped: the whole model is never copied on
    the host.
    """
    boxed = models.abstract_params(config)
    abstract = nn.meta.unbox(boxed)
    shardings = layout.param_shardings(boxed) if layout is not None else None
    dtype = np.dtype(jnp.dtype(config.param_dtype))
    params: Params = {}
    for entry in entries:
        leaf = get(abstract, entry.ours)
        value = np.asarray(read(entry, tuple(leaf.shape)))
        value = value.astype(dtype, copy=False)
        if shardings is not None:
            sharding = get(shardings, entry.ours)
            value = jax.make_array_from_callback(value.shape, sharding, lambda i, v=value: v[i])
        put(params, entry.ours, value)
    return params


# ---------------------------------------------------------------------------------------------
# Hugging Face directories: config.json + safetensors (pickles are refused)


class SafetensorsDir:
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


def read_hf_config(path: PathLike) -> tuple[epath.Path, dict[str, Any]]:
    """(directory, config.json as a dict) of a Hugging Face model directory."""
    path = checkpoints.as_path(path)
    if not path.is_dir():
        raise FileNotFoundError(
            f"Hugging Face model directory {path} does not exist; pass a directory holding "
            "config.json and model.safetensors (e.g. from `hf download ORG/MODEL`)"
        )
    config_file = path / "config.json"
    if not config_file.exists():
        raise ConversionError(
            f"{path} has no config.json; a Hugging Face model directory holds config.json next "
            "to its *.safetensors weights (download the whole model repository)"
        )
    return path, json.loads(config_file.read_text())


def open_safetensors(path: epath.Path, hf_architecture: str) -> SafetensorsDir:
    """The directory's safetensors weights; a pickle-only directory is refused, unread."""
    has_index = (path / "model.safetensors.index.json").exists()
    if not has_index and not list(path.glob("*.safetensors")):
        pickles = sorted(p.name for p in path.iterdir() if p.name.endswith(_PICKLE_SUFFIXES))
        if pickles:
            raise ConversionError(
                f"{path} has only pickle weights ({', '.join(pickles)}) and flan-jax never "
                "unpickles a file (loading a pickle can run arbitrary code); convert it once "
                f"where you trust it: {hf_architecture}.from_pretrained(DIR)"
                ".save_pretrained(NEW_DIR, safe_serialization=True)"
            )
        raise ConversionError(f"{path} has no *.safetensors weights next to its config.json")
    return SafetensorsDir(path)


# ---------------------------------------------------------------------------------------------
# T5X checkpoints: a msgpack `checkpoint` whose leaves are arrays or TensorStore specs


def is_ts_spec(x: Any) -> bool:
    return isinstance(x, dict) and "driver" in x and ("kvstore" in x or "path" in x)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """("a/b/c", leaf) pairs of a nested dict (TensorStore specs are leaves)."""
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and not is_ts_spec(value):
            yield from flatten(value, name + "/")
        else:
            yield name, value


def absolute_ts_spec(spec: Mapping[str, Any], directory: str) -> dict[str, Any]:
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


def read_t5x_target(path: PathLike) -> tuple[str, dict[str, Any]]:
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
    return directory, dict(flatten(state["target"]))


def t5x_shape(leaf: Any) -> tuple[int, ...]:
    """The shape of a T5X leaf (an array, or a TensorStore spec's metadata)."""
    if is_ts_spec(leaf):
        meta = leaf.get("metadata", {})
        if "shape" not in meta:
            raise ConversionError(f"T5X TensorStore spec without metadata.shape: {leaf}")
        return tuple(int(s) for s in meta["shape"])
    return tuple(np.shape(leaf))


def read_t5x_leaf(leaf: Any, directory: str) -> np.ndarray:
    """A T5X leaf's array (TensorStore specs are opened relative to the checkpoint)."""
    if is_ts_spec(leaf):
        import tensorstore as ts

        store = ts.open(absolute_ts_spec(leaf, directory), open=True, read=True).result()
        return np.asarray(store.read().result())
    return np.asarray(leaf)
