"""One source of truth for model sizes: every gin/models/*.gin binds exactly its family's preset.

The presets live in the family modules (`models.t5.T5_SIZES`, `models.decoder.DECODER_SIZES`);
the gin files repeat them so a run's config.gin is readable on its own. Each gin file is named
`<prefix>_<size>.gin`; parsed with gin, its model config must equal the family's preset of that
size (vocabulary and dropout aside, which experiments set), and every preset must have a file.
"""

from __future__ import annotations

import dataclasses
import glob
import os

import pytest

from flan_jax import gin_entry, models

GIN_DIR = gin_entry.packaged_gin_dir()
MODEL_FILES = sorted(os.path.relpath(p, GIN_DIR) for p in glob.glob(f"{GIN_DIR}/models/*.gin"))
REQUIRED = [
    'MODEL_DIR = "/tmp/unused"',
    'MIXTURE_OR_TASK_NAME = "demo:heldout_nli:train"',
    'TASK_FEATURE_LENGTHS = {"inputs": 64, "targets": 8}',
    "TRAIN_STEPS = 10",
]


def _parsed_model(model_file: str) -> models.ModelConfig:
    gin_entry.parse(["train.gin", model_file], REQUIRED)
    return gin_entry.build_train_config().model


def _size(model_file: str) -> str:
    return os.path.basename(model_file).removesuffix(".gin").rsplit("_", 1)[-1]


@pytest.mark.parametrize("model_file", MODEL_FILES)
def test_gin_model_file_binds_its_preset(model_file):
    config = _parsed_model(model_file)
    family = models.family_of(config)
    size = _size(model_file)
    assert size in family.sizes, f"{model_file}: {family.name} has no preset {size!r}"
    expected = family.preset(size, vocab_size=config.vocab_size, dropout_rate=config.dropout_rate)
    differ = {
        f.name: (getattr(config, f.name), getattr(expected, f.name))
        for f in dataclasses.fields(config)
        if getattr(config, f.name) != getattr(expected, f.name)
    }
    assert not differ, f"{model_file} differs from {family.name} preset {size!r}: {differ}"


def test_every_preset_has_a_gin_file():
    covered = set()
    for model_file in MODEL_FILES:
        config = _parsed_model(model_file)
        covered.add((models.family_of(config).name, _size(model_file)))
    presets = {(f.name, size) for f in models.FAMILIES.values() for size in f.sizes}
    assert presets == covered, f"presets without a gin file: {sorted(presets - covered)}"
