"""Pretrained checkpoints in and out: Hugging Face (safetensors) and T5X, for every model family
that has a converter (`conversion/t5.py`: T5 1.1 / Flan-T5 / mT5).

    imported = import_hf("flan-t5-small/")              # config.json + *.safetensors
    imported = import_t5x("gs://.../checkpoint_1198000")  # msgpack + zarr arrays (local, gs://)
    save_imported("ckpt/flan_t5_small", imported)          # params checkpoint + model_config.json
    export_hf("runs/ft/30000", "exported/")                # -> config.json + model.safetensors

`import_hf` picks the converter from config.json's `model_type`; an imported checkpoint is a
params-only orbax checkpoint (`checkpoints.save_params`), usable as INITIAL_CHECKPOINT_PATH, with
`model_config.json` beside the arrays: the model family, its config fields and the vocabulary the
weights were trained with (`read_model_config`). Tensors are read and converted one at a time;
with a layout each lands directly on its `NamedSharding`, so the whole model is never copied on
the host. Nothing is ever unpickled.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from flan_jax import checkpoints, models
from flan_jax.conversion import hf_causal, t5
from flan_jax.conversion.base import (
    VOCABULARIES,
    ConversionError,
    Converter,
    ImportedModel,
    Params,
    PathLike,
    assemble,
    flatten,
    get,
    open_safetensors,
    read_hf_config,
    read_t5x_leaf,
    read_t5x_target,
    shape_error,
    t5x_shape,
    t5x_shapes,
    vocabulary_for,
)
from flan_jax.partitioning import Layout

__all__ = [
    "CONVERTERS",
    "MODEL_CONFIG_FILE",
    "VOCABULARIES",
    "ConversionError",
    "Converter",
    "ImportedModel",
    "check_initial_checkpoint",
    "config_from_json",
    "converter_for",
    "describe",
    "export_hf",
    "import_hf",
    "import_t5x",
    "infer_config",
    "load_params",
    "read_model_config",
    "save_imported",
    "vocabulary_for",
]

MODEL_CONFIG_FILE = "model_config.json"  # written inside an imported params checkpoint
_FORMAT = "flan_jax.params/v2"
# model_config.json files of the first format recorded no family: that format was one family's.
_LEGACY_FORMATS = {"flan_jax.t5_params/v1": "t5"}
_LEGACY_FAMILY = "t5"

# Converters by model family name; adding a family's converter means adding its module here.
CONVERTERS: dict[str, Converter] = {c.family: c for c in (t5.CONVERTER, *hf_causal.CONVERTERS)}


def converter_for(config: models.ModelConfig) -> Converter:
    """The converter of a config's model family."""
    name = models.family_of(config).name
    if name not in CONVERTERS:
        raise ConversionError(
            f"model family {name!r} has no checkpoint converter (converters: "
            f"{', '.join(sorted(CONVERTERS))})"
        )
    return CONVERTERS[name]


def describe(config: models.ModelConfig) -> str:
    """One line for messages: the family's name for the config and its shape."""
    summary = converter_for(config).describe(config)
    return f"{models.family_of(config).report_name(config)} ({summary})"


def _converter_for_hf(hf: Mapping[str, Any], source: str) -> Converter:
    model_type = hf.get("model_type")
    for converter in CONVERTERS.values():
        if model_type in converter.hf_model_types:
            return converter
    known = ", ".join(
        f"{t!r} ({c.description})" for c in CONVERTERS.values() for t in c.hf_model_types
    )
    raise ConversionError(
        f"{source}: model_type={model_type!r} has no flan_jax converter; flan_jax imports "
        f"model_type {known}"
    )


# ---------------------------------------------------------------------------------------------
# Import


def import_hf(
    path: PathLike, *, layout: Layout | None = None, param_dtype: str = "float32"
) -> ImportedModel:
    """Reads a Hugging Face model directory (config.json + safetensors).

    The converter is chosen by config.json's `model_type`; unsupported models fail before any
    weight is read. Tensors are read one at a time (`safe_open`); pickle-only directories are
    refused. With `layout` each array is placed on its sharding as soon as it is converted.
    """
    path, hf = read_hf_config(path)
    config_file = os.fspath(path / "config.json")
    converter = _converter_for_hf(hf, config_file).for_hf_dir(path)
    config = converter.config_from_hf(hf, config_file, param_dtype=param_dtype)
    tensors = open_safetensors(path, converter.hf_architecture)
    source = f"Hugging Face checkpoint {path}"
    read = converter.hf_reader(hf, tensors, config, source)
    return ImportedModel(
        assemble(config, converter.param_map(config), read, layout),
        config,
        converter.import_vocabulary(path, config),
        {"format": "hf", "path": os.fspath(path), "model_type": hf["model_type"]},
    )


def infer_config(shapes: Mapping[str, tuple[int, ...]], **overrides: Any) -> models.ModelConfig:
    """The config of parameter shapes (keyed by our or T5X names), by the first converter whose
    family they fit."""
    errors = []
    for converter in CONVERTERS.values():
        try:
            return converter.infer_config(shapes, **overrides)
        except ConversionError as e:
            errors.append(str(e))
    raise ConversionError(errors[0] if len(errors) == 1 else "; ".join(errors))


def import_t5x(
    path: PathLike,
    *,
    layout: Layout | None = None,
    param_dtype: str = "float32",
    **overrides: Any,
) -> ImportedModel:
    """Reads a T5X checkpoint directory (msgpack `checkpoint` + zarr arrays), local or gs://.

    The config is inferred from the array shapes (T5X checkpoints carry none); `overrides` set
    what shapes cannot tell (e.g. `relative_attention_max_distance`).
    """
    directory, leaves = read_t5x_target(path)
    source = f"T5X checkpoint {directory}"
    shapes = {name: t5x_shape(leaf) for name, leaf in leaves.items()}
    config = infer_config(shapes, param_dtype=param_dtype, **overrides)
    converter = converter_for(config)
    entries = converter.param_map(config)
    unexpected = sorted(set(leaves) - {e.t5x for e in entries})
    if unexpected:
        raise ConversionError(
            f"{source} has {len(unexpected)} parameters a {converter.description} model does "
            f"not use (e.g. {unexpected[0]!r})"
        )

    def read(entry, ours: tuple[int, ...]) -> np.ndarray:
        name = entry.t5x
        if name not in leaves:
            raise ConversionError(f"{source} lacks parameter {name!r}")
        allowed = t5x_shapes(entry.kind, ours)
        if shapes[name] not in allowed:
            raise shape_error(source, name, shapes[name], allowed[0], converter.describe(config))
        return read_t5x_leaf(leaves[name], directory).reshape(ours)

    return ImportedModel(
        assemble(config, entries, read, layout),
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
    vocabulary = model.vocabulary
    if model.source.get("format") == "hf" and jax.process_index() == 0:
        # Files beside the weights (a tokenizer) come along; a vocabulary that named the source
        # directory now names the copy.
        src = epath.Path(model.source["path"])
        if converter_for(model.config).copy_side_files(src, out) and vocabulary == f"hf:{src}":
            vocabulary = f"hf:{out}"
    meta = {
        "format": _FORMAT,
        "family": models.family_of(model.config).name,
        "config": dataclasses.asdict(model.config),
        "vocabulary": vocabulary,
        "source": model.source,
    }
    if jax.process_index() == 0:
        (out / MODEL_CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out


def config_from_json(record: Mapping[str, Any]) -> models.ModelConfig:
    """The config of a model_config.json record (parsed JSON), or of bare config fields.

    A record without a family name (bare fields, or the first format) is a T5 config, the only
    family those were written for.
    """
    fields = record.get("config", record)
    name = record.get("family") or _LEGACY_FORMATS.get(record.get("format", ""), _LEGACY_FAMILY)
    try:
        return models.family_named(name).config_from_fields(fields)
    except (TypeError, ValueError) as e:
        raise ConversionError(f"model config: {e}") from e


def read_model_config(path: PathLike) -> tuple[models.ModelConfig, str | None]:
    """(config, vocabulary name) of an imported checkpoint (`model_config.json` inside it)."""
    file = epath.Path(path) / MODEL_CONFIG_FILE
    if not file.exists():
        raise FileNotFoundError(
            f"{file} does not exist; only checkpoints written by `flan-jax convert --from ...` "
            "carry their model config"
        )
    meta = json.loads(file.read_text())
    return config_from_json(meta), meta.get("vocabulary")


# Run options that may differ between an imported checkpoint's config and the model trained from
# it (the weights are the same).
_RUN_OPTIONS = frozenset({"dtype", "param_dtype", "remat", "dropout_rate"})


def check_initial_checkpoint(
    path: PathLike, config: models.ModelConfig, setting: str = "INITIAL_CHECKPOINT_PATH"
) -> None:
    """Refuses, in one line, a model config (gin's MODEL) that is not the one recorded with an
    imported checkpoint (its model_config.json): shapes, rotary settings and token ids must agree.
    Checkpoints without a model_config.json (training steps, save_params) are not checked.
    `setting` names where the path came from in the message (eval: CHECKPOINT_PATH)."""
    if not (epath.Path(path) / MODEL_CONFIG_FILE).exists():
        return
    recorded, _ = read_model_config(path)
    if type(recorded) is not type(config):
        family = models.family_of(recorded).name
        raise ConversionError(
            f"{setting} {path} holds a {describe(recorded)}, but MODEL is a "
            f"{type(config).__name__}; include the model file of that family and size "
            f"(gin/models/{family}_*.gin)"
        )
    differ = [
        f.name
        for f in dataclasses.fields(config)
        if f.name not in _RUN_OPTIONS and getattr(config, f.name) != getattr(recorded, f.name)
    ]
    if differ:
        name = type(config).__name__
        have = ", ".join(f"{k}={getattr(config, k)!r}" for k in differ)
        fix = " ".join(f"--gin.{name}.{k}={getattr(recorded, k)!r}" for k in differ)
        raise ConversionError(
            f"MODEL ({have}) is not the model of {setting} {path} (see its "
            f"{MODEL_CONFIG_FILE}); use the model file that matches it, or set {fix}"
        )


def _checkpoint_shapes(path: epath.Path) -> dict[str, tuple[int, ...]]:
    """Param shapes from orbax metadata: a params-only checkpoint or a MODEL_DIR/<step>."""
    import orbax.checkpoint as ocp

    item = path / "state" if (path / "state").is_dir() else path
    with ocp.PyTreeCheckpointer() as checkpointer:
        tree = checkpointer.metadata(item).item_metadata.tree
    if item != path:
        tree = tree["params"]
    return {name: tuple(leaf.shape) for name, leaf in flatten(tree)}


def load_params(
    checkpoint: PathLike, config: models.ModelConfig | None = None
) -> tuple[Params, models.ModelConfig, str | None]:
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
        nn.meta.unbox(models.abstract_params(config)),
    )
    params = checkpoints.restore_params(path, abstract)
    return params, config, vocabulary or vocabulary_for(config.vocab_size)


# ---------------------------------------------------------------------------------------------
# Hugging Face export


def export_hf(
    checkpoint: PathLike,
    out: PathLike,
    *,
    config: models.ModelConfig | None = None,
    vocabulary: str | None = None,
    max_shard_bytes: int = 2 * 1024**3,
) -> epath.Path:
    """Writes `out/config.json` and `out/model.safetensors` (sharded with an index if large).

    `checkpoint` is an imported params checkpoint or a training MODEL_DIR/<step>. Refuses a
    non-empty `out`. `vocabulary` (e.g. from the model_config.json given with `config`) names
    the tokenizer the weights use when the checkpoint records none.
    """
    from safetensors.numpy import save_file

    out = checkpoints.as_path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConversionError(f"output {out} exists and is not empty; choose a new directory")
    params, config, recorded = load_params(checkpoint, config)
    vocabulary = vocabulary or recorded
    converter = converter_for(config).for_vocabulary(vocabulary)
    out.mkdir(parents=True, exist_ok=True)
    if vocabulary and vocabulary.startswith("hf:"):
        converter.copy_side_files(epath.Path(vocabulary[3:].partition("?")[0]), out)
    (out / "config.json").write_text(json.dumps(converter.hf_config_dict(config), indent=2) + "\n")

    entries = converter.param_map(config)
    shards: list[list[Any]] = [[]]
    size = 0
    itemsize = jnp.dtype(config.param_dtype).itemsize
    for entry in entries:
        nbytes = math.prod(get(params, entry.ours).shape) * itemsize
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
            x = np.asarray(jax.device_get(get(params, entry.ours)))
            tensors[entry.hf] = np.ascontiguousarray(converter.tensor_to_hf(entry, x))
            weight_map[entry.hf] = name
            total += tensors[entry.hf].nbytes
        save_file(tensors, os.fspath(out / name), metadata={"format": "pt"})
    if len(shards) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return out
