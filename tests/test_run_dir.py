"""A MODEL_DIR is a contract: checked before anything is written, resumed only as recorded.

Each refusal is asserted three ways: exit status 2, one line naming the value and the fix, and
MODEL_DIR's files (checkpoints, configs, record) byte-for-byte unchanged.
"""

import hashlib
import json
import os
import shutil
import socket

import pytest

from flan_jax import cli, run_dir

GIN = [
    "--gin_file=experiments/demo_smoke.gin",
    "--gin.TrainConfig.save_every=2",
    "--gin.TrainConfig.progress_bar=False",
    '--gin.TASK_FEATURE_LENGTHS={"inputs": 48, "targets": 8}',
    "--gin.BATCH_SIZE=8",
]


def _train(model_dir, *extra):
    return cli.main(["train", *GIN, f'--gin.MODEL_DIR="{model_dir}"', *extra])


def _snapshot(root) -> dict[str, str]:
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = hashlib.sha1(f.read()).hexdigest()
    return out


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run") / "run"
    assert _train(model_dir, "--gin.TRAIN_STEPS=2") == 0
    return model_dir


def _refused(capsys, model_dir, *extra) -> str:
    before = _snapshot(model_dir)
    assert _train(model_dir, *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert _snapshot(model_dir) == before  # nothing written, nothing overwritten
    return err


@pytest.mark.slow
def test_first_launch_writes_record_config_and_releases_the_lock(finished_run):
    names = set(os.listdir(finished_run))
    assert {"2", "run.json", "config.gin", "input_state", "train"} <= names
    assert "run.lock" not in names
    record = json.loads((finished_run / "run.json").read_text())
    assert record["config"]["mixture_or_task_name"] == "demo:heldout_nli:train"
    assert record["config"]["model"]["__class__"] == "T5Config"


@pytest.mark.parametrize(
    "extra, named",
    [
        (['--gin.MIXTURE_OR_TASK_NAME="demo:heldout_sentiment:train"'], "mixture_or_task_name"),
        (["--gin.BATCH_SIZE=16"], "batch_size: 8 -> 16"),
        (['--gin.TASK_FEATURE_LENGTHS={"inputs": 64, "targets": 8}'], "inputs: 48 -> 64"),
        (["--gin.T5Config.d_ff=64"], "model.d_ff: 128 -> 64"),
        (["--gin.OptimizerConfig.learning_rate=0.1"], "optimizer.learning_rate"),
        (['--gin.VOCABULARY="t5"'], "vocabulary"),
    ],
)
def test_resume_refuses_another_config(finished_run, capsys, extra, named):
    # Even a finished run: re-launching it with another setting must not rewrite its record.
    err = _refused(capsys, finished_run, "--gin.TRAIN_STEPS=2", *extra)
    assert "is a run of another config" in err and named in err
    if named.startswith("optimizer.learning_rate"):  # may change, but only when asked for
        assert 'resume_overrides=\\"optimizer.learning_rate\\"' in err
    else:
        assert "new MODEL_DIR" in err and "resume_overrides" not in err


@pytest.mark.slow
def test_resume_overrides_change_the_learning_rate_on_the_record(finished_run, tmp_path):
    run = shutil.copytree(finished_run, tmp_path / "run")
    lr = "--gin.OptimizerConfig.learning_rate=0.0005"
    accept = '--gin.TrainConfig.resume_overrides="optimizer.learning_rate"'
    last = max(int(p) for p in os.listdir(run) if p.isdigit())
    assert _train(run, f"--gin.TRAIN_STEPS={last + 2}", lr, accept) == 0
    record = json.loads((run / "run.json").read_text())
    assert record["config"]["optimizer"]["learning_rate"] == 0.0005
    assert record["history"] == [
        {"from_step": last, "changes": {"optimizer.learning_rate": [0.003, 0.0005]}}
    ]
    # From now on the record says 0.0005: a plain resume with it needs no override.
    assert _train(run, f"--gin.TRAIN_STEPS={last + 3}", lr) == 0


def test_resume_overrides_refuse_what_defines_the_data(finished_run, capsys):
    err = _refused(
        capsys,
        finished_run,
        "--gin.TRAIN_STEPS=2",
        "--gin.BATCH_SIZE=16",
        '--gin.TrainConfig.resume_overrides="batch_size"',
    )
    assert "resume_overrides names 'batch_size', which cannot change in place" in err


@pytest.mark.slow
def test_resume_may_train_longer_and_keeps_every_launch_config(finished_run):
    first = (finished_run / "config.gin").read_text()
    record = (finished_run / "run.json").read_text()
    assert _train(finished_run, "--gin.TRAIN_STEPS=4", "--gin.TrainConfig.log_every=1") == 0
    assert {"4", "config.gin", "config.2.gin"} <= set(os.listdir(finished_run))
    assert (finished_run / "config.gin").read_text() == first  # never overwritten
    assert "TRAIN_STEPS = 4" in (finished_run / "config.2.gin").read_text()
    assert (finished_run / "run.json").read_text() == record  # the run's definition stays


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--gin.TrainConfig.save_evry=3", "did you mean save_every?"),
        ("--gin.TRAIN_STEP=20", "sets a macro no gin file uses; did you mean TRAIN_STEPS?"),
        ("--gin.MIXTURE_OR_TASK_NAME=demo:x", "strings need quotes" if False else "quoted string"),
        ("--gin.TrainConfg.save_every=3", "unknown configurable 'TrainConfg'"),
    ],
)
def test_gin_mistakes_are_one_line_and_write_nothing(tmp_path, capsys, flag, message):
    model_dir = tmp_path / "never"
    assert _train(model_dir, "--gin.TRAIN_STEPS=2", flag) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not model_dir.exists()


def test_bad_model_dirs_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("mine")
    for model_dir, message in [
        ("", "MODEL_DIR is empty"),
        (a_file, "is a file, not a directory"),
        ("/proc/flan_jax_cannot", "cannot be created"),
    ]:
        assert _train(model_dir, "--gin.TRAIN_STEPS=2") == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1 and message in errors[0], errors
    assert a_file.read_text() == "mine"


def test_a_second_trainer_is_locked_out_and_stale_locks_are_taken_over(tmp_path, capsys):
    model_dir = tmp_path / "locked"
    model_dir.mkdir()
    lock = model_dir / "run.lock"
    alive = {"host": socket.gethostname(), "pid": os.getppid(), "started": "earlier"}
    lock.write_text(json.dumps(alive))
    assert _train(model_dir, "--gin.TRAIN_STEPS=2") == 2
    err = capsys.readouterr().err
    assert "is in use by a trainer" in err and str(lock) in err
    assert json.loads(lock.read_text()) == alive and not (model_dir / "run.json").exists()
    # A lock whose process is gone (this host, a pid that does not run) is stale.
    dead = run_dir.RunDir(model_dir)
    lock.write_text(json.dumps({**alive, "pid": 2**22 + 12345}))
    dead.acquire_lock()
    assert json.loads(lock.read_text())["pid"] == os.getpid()
    dead.release_lock()
    assert not lock.exists()


def test_record_changes_name_each_field_and_ignore_resumable_ones():
    from flan_jax import train

    base = train.TrainConfig(
        model_dir="a", mixture_or_task_name="demo:all:train", task_feature_lengths={"inputs": 8, "targets": 4}, train_steps=10
    )  # fmt: skip
    import dataclasses

    longer = dataclasses.replace(base, model_dir="b", train_steps=20, save_every=5, microbatches=2)
    assert run_dir.record_changes(run_dir.run_record(base), run_dir.run_record(longer)) == []
    other = dataclasses.replace(base, seed=3, pack=False)
    changes = run_dir.record_changes(run_dir.run_record(base), run_dir.run_record(other))
    assert changes == [("pack", True, False), ("seed", 0, 3)]
    flan = run_dir.run_record(base, templates="flan:/x/flan/templates.py (sha256 0123)")
    assert run_dir.record_changes(run_dir.run_record(base), flan) == [
        ("templates", "ours", "flan:/x/flan/templates.py (sha256 0123)")
    ]
    old = {k: v for k, v in run_dir.run_record(base).items() if k != "templates"}
    assert run_dir.record_changes(old, run_dir.run_record(base)) == []  # older records: ours


def test_templates_identity_names_the_file_and_its_content(tmp_path, monkeypatch):
    from flan_jax import catalog

    assert catalog.templates_identity() == "ours"
    (tmp_path / "flan").mkdir()
    file = tmp_path / "flan" / "templates.py"
    file.write_text("PATTERNS = {}\n")
    # What use_templates(f"flan:{tmp_path}") sets, without touching this process's collections.
    monkeypatch.setitem(catalog._TEMPLATES, "path", str(file))
    first = catalog.templates_identity()
    file.write_text("PATTERNS = {'x': []}\n")
    assert first.startswith(f"flan:{file}") and catalog.templates_identity() != first


@pytest.mark.slow
def test_a_full_disk_is_one_line_naming_the_last_checkpoint(tmp_path, capsys):
    """MODEL_DIR on a 3 MiB tmpfs: the first save cannot fit (needs root to mount)."""
    import subprocess

    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        assert _train(mount / "run", "--gin.TRAIN_STEPS=4") == 2
        errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
        assert len(errors) == 1, errors
        assert "no space left in MODEL_DIR" in errors[0] and "while saving step 2" in errors[0]
        assert "the last complete checkpoint is none" in errors[0]
        assert not (mount / "run" / "run.lock").exists()  # the lock is released
    finally:
        subprocess.run(["umount", str(mount)], check=False)
