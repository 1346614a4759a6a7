"""The trainer's profiler: TrainConfig.profile_steps writes a trace TensorBoard/Perfetto open.

One tiny T5 on one CPU device, three steps; a resume may change profile_steps (it observes the
run, it does not define it), and a malformed value is one line with exit status 2.
"""

import pathlib

import jax
import pytest

from flan_jax import cli, partitioning, run_dir, train, train_step
from flan_jax.models import t5_config

pytestmark = pytest.mark.xdist_group("train")


def _config(model_dir, **kw):
    fields = dict(
        model_dir=str(model_dir),
        mixture_or_task_name="demo:compare:t0",
        task_feature_lengths={"inputs": 32, "targets": 8},
        train_steps=3,
        batch_size=2,
        model=t5_config("tiny", vocab_size=384, num_encoder_layers=1, num_decoder_layers=1),
        mesh=partitioning.MeshConfig(data=1),
        save_every=100,
        log_every=1,
        progress_bar=False,
        async_checkpoint=False,
        pack=False,
    )
    return train.TrainConfig(**{**fields, **kw})


def _traces(model_dir, pattern):
    return sorted(pathlib.Path(run_dir.RunDir(model_dir).profile_dir()).rglob(pattern))


@pytest.mark.slow
def test_profile_steps_write_a_trace_and_may_change_on_resume(tmp_path):
    one = jax.devices()[:1]
    train.train(_config(tmp_path, profile_steps="2:3", train_steps=2), devices=one)
    xplanes = _traces(tmp_path, "*.xplane.pb")
    assert len(xplanes) == 1 and xplanes[0].stat().st_size > 0
    assert _traces(tmp_path, "*.trace.json.gz")  # Perfetto's format beside TensorBoard's
    # The run ended inside the range: the trace was stopped, so a resume may trace again, and
    # with other steps (no run-record refusal).
    result = train.train(_config(tmp_path, profile_steps="3:3"), devices=one)
    assert result["step"] == 3
    assert len(_traces(tmp_path, "*.xplane.pb")) == 2


def test_no_trace_without_profile_steps(tmp_path):
    train.train(_config(tmp_path, train_steps=1), devices=jax.devices()[:1])
    assert not _traces(tmp_path, "*")


@pytest.mark.parametrize("value", ["3", "0:2", "4:2", "a:b", "1:2:3", ""])
def test_malformed_profile_steps(value):
    with pytest.raises(ValueError, match=r"TrainConfig.profile_steps=.* is invalid; give \"N:M\""):
        _config("/x", profile_steps=value)
    assert train_step.parse_profile_steps(" 2 : 5 ") == (2, 5)


@pytest.mark.parametrize("form", ["flag", "gin"])
def test_malformed_profile_steps_on_the_command_line_is_one_line(tmp_path, capsys, form):
    setting = "--profile_steps=5" if form == "flag" else '--gin.TrainConfig.profile_steps="5"'
    code = cli.main(
        [
            "train",
            "--gin_file=experiments/demo_smoke.gin",
            f'--gin.MODEL_DIR="{tmp_path}"',
            setting,
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "profile_steps='5' is invalid" in err and err.count("\n") == 1
    assert not (tmp_path / "profile").exists()
