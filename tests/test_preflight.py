"""Preflight on the 8 forced CPU devices: per-device memory from abstract shapes and one AOT compile.

The compile is the cost (full T5 small: ~25 s on 2 busy cores), so the compiled check uses small's
widths and vocabulary with 2 + 2 layers under FSDP 8; full small (data=8 and FSDP 8) and xxl are
checked from abstract shardings, which is exact for params and optimizer state and allocates
nothing. `bench/train_throughput.py` compiles full small on both meshes.
"""

import json

import pytest

from flan_jax import cli, partitioning, preflight, train
from flan_jax.models import param_count, t5_config

pytestmark = pytest.mark.xdist_group("preflight")

GIB = 1024**3


def _config(size: str, mesh: partitioning.MeshConfig, **model) -> train.TrainConfig:
    return train.TrainConfig(
        model_dir="/unused",
        mixture_or_task_name="unused",
        task_feature_lengths={"inputs": 32, "targets": 8},
        train_steps=10,
        batch_size=8,
        model=t5_config(size, **model),
        mesh=mesh,
    )


FSDP8 = partitioning.MeshConfig(data=1, fsdp=8, rules="fsdp")
DATA8 = partitioning.MeshConfig(data=8)


def test_small_widths_fsdp8_compiled():
    cfg = _config("small", FSDP8, num_encoder_layers=2, num_decoder_layers=2)
    report = preflight.preflight(cfg, compile=True, device_memory_gib=16)
    n = param_count(cfg.model)
    # Everything with an "embed" dim is split 8 ways; only the relative-position tables
    # (heads x buckets) stay whole.
    assert report.param_bytes == pytest.approx(n * 4 / 8, rel=1e-3)
    assert 0 < report.opt_state_bytes < report.param_bytes  # Adafactor: factored moments
    # Packed batch, one row per device: 3 encoder and 5 decoder int32 features.
    assert report.batch_bytes == 4 * (3 * 32 + 5 * 8)
    # Gradients alone are as large as the param shard; activations add to it.
    assert report.temp_bytes > report.param_bytes
    parts = report.param_bytes + report.opt_state_bytes + report.batch_bytes
    assert report.total_bytes == parts + report.temp_bytes + report.other_bytes
    assert report.total_bytes < 2 * GIB and report.fits is True
    assert report.mesh == {"data": 1, "fsdp": 8, "model": 1}
    table = report.table()
    assert "FITS in 16.00 GiB" in table and "activations/temporaries" in table


def test_fsdp_divides_params_and_optimizer_state():
    data = preflight.preflight(_config("small", DATA8), compile=False)
    fsdp = preflight.preflight(_config("small", FSDP8), compile=False)
    n = param_count(t5_config("small"))
    assert data.param_bytes == n * 4  # data parallel: a full replica per device
    assert fsdp.param_bytes == pytest.approx(data.param_bytes / 8, rel=1e-3)
    # Factored Adafactor rows/columns are replicated; the unfactored moments follow the params.
    assert fsdp.opt_state_bytes < data.opt_state_bytes / 2
    assert data.temp_bytes is None and data.fits is None and not data.compiled
    assert data.model == "T5 small"


def test_xxl_on_8_devices_of_16gb_does_not_fit():
    report = preflight.preflight(_config("xxl", DATA8), compile=False, device_memory_gib=16)
    assert report.param_bytes == param_count(t5_config("xxl")) * 4  # ~44 GB per device
    assert report.fits is False and report.total_bytes > 16 * GIB
    assert "DOES NOT FIT in 16.00 GiB" in report.table()
    # Sharded 8 ways the state alone fits; whether activations do needs the compile.
    sharded = preflight.preflight(_config("xxl", FSDP8), compile=False, device_memory_gib=16)
    assert sharded.total_bytes < 16 * GIB and sharded.fits is None


def test_parse_topology():
    v4 = preflight.parse_topology("v4-32")
    assert (v4.num_devices, v4.device_memory_gib) == (16, 32.0)  # v4 names count cores
    assert preflight.parse_topology("v5e-16").num_devices == 16  # v5e names count chips
    assert preflight.parse_topology("cpu:4").num_devices == 4
    assert preflight.parse_topology("8").device_memory_gib is None
    for bad in ("v9-8", "tpu", "v4-3"):
        with pytest.raises(ValueError, match="topology"):
            preflight.parse_topology(bad)


def test_cli_json_from_gin_with_tpu_fallback(capsys):
    argv = [
        "preflight",
        "--gin_file=train.gin",
        "--gin_file=models/t5_1_1_small.gin",
        '--gin.TASK_FEATURE_LENGTHS={"inputs": 32, "targets": 8}',
        "--gin.BATCH_SIZE=8",
        "--gin.MeshConfig.data=1",
        "--gin.MeshConfig.fsdp=8",
        '--gin.MeshConfig.rules="fsdp"',
        "--topology=v5e-8",
        "--no_compile",
        "--json",
    ]
    assert cli.main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["target"] == "v5e-8" and out["num_devices"] == 8
    assert out["device_memory_bytes"] == 16 * GIB  # v5e HBM by default
    assert out["param_bytes"] == pytest.approx(param_count(t5_config("small")) * 4 / 8, rel=1e-3)
    # No libtpu here: the TPU attempt fails and the CPU fallback says what it means.
    assert any("TPU ahead-of-time topology" in n for n in out["notes"])
    assert any("virtual CPU devices" in n for n in out["notes"])


def test_cli_unknown_topology_is_one_line(capsys):
    argv = ["preflight", "--gin_file=experiments/demo_smoke.gin", "--topology=v9-8"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "v9-8" in err and "Traceback" not in err
