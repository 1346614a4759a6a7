"""Every shipped gin file parses and builds its configs (without running anything)."""

import glob
import os

import pytest

from flan_jax import gin_entry, models, train

GIN_DIR = gin_entry.packaged_gin_dir()
REQUIRED = [
    'MODEL_DIR = "/tmp/unused"',
    'MIXTURE_OR_TASK_NAME = "demo:heldout_nli:train"',
    'TASK_FEATURE_LENGTHS = {"inputs": 64, "targets": 8}',
    "TRAIN_STEPS = 10",
]


def _rel(path):
    return os.path.relpath(path, GIN_DIR)


@pytest.mark.parametrize("model_file", sorted(map(_rel, glob.glob(f"{GIN_DIR}/models/*.gin"))))
def test_model_files_build(model_file):
    gin_entry.parse(["train.gin", model_file], REQUIRED)
    cfg = gin_entry.build_train_config()
    models.family_of(cfg.model)  # a registered family's config (presets: test_model_presets.py)
    size = os.path.basename(model_file).rsplit("_", 1)[-1].removesuffix(".gin")
    if model_file.startswith("models/t5_1_1_") and size != "tiny":
        assert cfg.model.vocab_size == 32128


@pytest.mark.parametrize("experiment", sorted(map(_rel, glob.glob(f"{GIN_DIR}/experiments/*.gin"))))
def test_experiment_files_build(experiment):
    text = open(os.path.join(GIN_DIR, experiment)).read()
    assert text.startswith("#") and "flan-jax" in text.split("\n\n")[0], "header: command first"
    gin_entry.parse([experiment], ['MODEL_DIR = "/tmp/unused"'])
    cfg = gin_entry.build_train_config()
    assert isinstance(cfg, train.TrainConfig) and cfg.train_steps > 0


def test_overrides_and_errors():
    files, bindings, rest = gin_entry.split_gin_args(
        [
            "--gin_file=experiments/demo_smoke.gin",
            '--gin.MODEL_DIR="/tmp/x"',
            "--gin.TRAIN_STEPS=7",
            "-v",
        ]
    )
    assert files == ["experiments/demo_smoke.gin"] and rest == ["-v"]
    gin_entry.parse(files, bindings)
    cfg = gin_entry.build_train_config()
    assert (cfg.model_dir, cfg.train_steps) == ("/tmp/x", 7)
    with pytest.raises(FileNotFoundError, match="gin file nope.gin not found"):
        gin_entry.parse(["nope.gin"], [])
    gin_entry.parse(["experiments/demo_smoke.gin"], [])
    with pytest.raises(ValueError, match="MODEL_DIR"):
        gin_entry.build_train_config()
