"""`flan-jax eval --watch MODEL_DIR` following a two-process training run with periodic eval.

The watcher (one process, 8 devices) evaluates each checkpoint as the trainer (two processes x
4 devices) commits it and exits after the final step; the trainer's periodic eval of step 2
equals the watcher's evaluation of checkpoint 2; a second watcher finds nothing left to do;
`flan-jax eval` of checkpoint 4 over two processes x 4 devices writes the watcher's (one
process, 8 devices) report of it. Bad input is one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from eval_worker import ENV, ROOT, SMALL, assert_json_close, local_job

from flan_jax import cli


def _one_line_error(argv, capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_watch_bad_input_is_one_line(tmp_path, capsys):
    plain = tmp_path / "not_a_run"
    plain.mkdir()
    err = _one_line_error(["eval", *SMALL, "--watch", str(plain)], capsys)
    assert "is not a MODEL_DIR (no run.json)" in err
    err = _one_line_error(["eval", *SMALL, "--watch", str(tmp_path / "missing")], capsys)
    assert "no such directory" in err

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"version": 1, "config": {"train_steps": 4}}))
    err = _one_line_error(["eval", *SMALL, "--watch", str(run), "--gin.MeshConfig.data=3"], capsys)
    assert "mesh data=3 x fsdp=1 x model=2 needs 6 devices but 8 are available" in err
    err = _one_line_error(
        ["eval", *SMALL, "--watch", str(run), f'--gin.CHECKPOINT_PATH="{run}/2"'], capsys
    )
    assert "drop --gin.CHECKPOINT_PATH" in err
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]  # nothing written


def test_watch_with_another_vocabulary_or_model_is_one_line(tmp_path, capsys):
    """A watcher must read the run the way it was trained (its run.json): another VOCABULARY
    or model shape is refused before anything waits, loads or writes; dropout may differ."""
    from flan_jax import run_dir
    from flan_jax.evaluation import jobs, watch
    from flan_jax.models import t5_config

    run = tmp_path / "run"
    run.mkdir()
    trained = t5_config("tiny", vocab_size=384)
    record = {
        "train_steps": 4,
        "vocabulary": "byte",
        "model": run_dir.run_record(trained)["config"],
    }
    (run / "run.json").write_text(json.dumps({"version": 1, "config": record}))
    base = dict(checkpoint_path="", mixture_or_task_name="demo:heldout_nli:train")
    lengths = {"inputs": 64, "targets": 8}
    same = jobs.EvalConfig(**base, task_feature_lengths=lengths, model=trained)
    watch.check_config(same, watch.check_model_dir(str(run)))  # accepted
    wider = t5_config("tiny", vocab_size=384, d_model=128)
    with pytest.raises(run_dir.RunDirError, match=r"MODEL's d_model 128 differs from the run's 64"):
        watch.check_config(
            jobs.EvalConfig(**base, task_feature_lengths=lengths, model=wider),
            watch.check_model_dir(str(run)),
        )
    err = _one_line_error(
        ["eval", *SMALL, "--watch", str(run), "--gin.T5Config.num_encoder_layers=2",
         "--gin.T5Config.num_decoder_layers=2", '--gin.VOCABULARY="t5"'],
        capsys,
    )  # fmt: skip
    assert "VOCABULARY 't5' differs from the run's 'byte'" in err
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]  # nothing written


def test_eval_mesh_that_does_not_fit_is_one_line(tmp_path, capsys):
    params = tmp_path / "params"
    params.mkdir()
    argv = ["eval", *SMALL, f'--gin.CHECKPOINT_PATH="{params}"', "--gin.MeshConfig.data=-1"]
    argv.append("--gin.MeshConfig.model=3")
    err = _one_line_error(argv, capsys)
    assert "8 devices are not divisible by fsdp=1 x model=3" in err


def _examples(out_dir) -> dict:
    return {
        p.name: [json.loads(x) for x in p.read_text().splitlines() if x]
        for p in sorted(out_dir.glob("examples/validation/*.jsonl"))
    }


@pytest.mark.slow
def test_watch_follows_a_two_process_run_with_periodic_eval(tmp_path, capsys):
    run, watched = tmp_path / "run", tmp_path / "watched"
    train = [
        *local_job(tmp_path / "logs", timeout=900),
        "train",
        *SMALL,
        f'--gin.MODEL_DIR="{run}"',
        "--gin.CPU_DEVICES=None",
        "--gin.TRAIN_STEPS=4",
        "--gin.BATCH_SIZE=8",
        "--gin.EVAL_EVERY=2",
        "--gin.TrainConfig.save_every=2",
        "--gin.TrainConfig.progress_bar=False",
    ]
    watch = [
        "eval",
        *SMALL,
        "--watch",
        str(run),
        "--poll_seconds=1",
        "--gin.EvalConfig.splits=('validation',)",
        f'--gin.EvalConfig.output_dir="{watched}"',
    ]
    trainer = subprocess.Popen(
        train, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    watcher = None
    try:
        deadline = time.monotonic() + 600
        while not (run / "run.json").exists():  # the watcher starts once the run exists
            assert trainer.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "flan_jax.cli", *watch],
            cwd=ROOT,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        train_out, _ = trainer.communicate(timeout=900)
        watch_out, _ = watcher.communicate(timeout=900)
    finally:
        for p in (trainer, watcher):
            if p is not None and p.poll() is None:
                p.kill()
    logs = "\n".join((tmp_path / "logs" / f"process_{i}.log").read_text()[-3000:] for i in range(2))
    assert trainer.returncode == 0, train_out + logs
    assert watcher.returncode == 0, watch_out[-5000:]
    assert "[eval] step 2 (validation): nli " in watch_out, watch_out[-3000:]
    assert "[eval] step 4 (validation): nli " in watch_out, watch_out[-3000:]
    assert "to its final step 4: evaluated steps [2, 4]" in watch_out, watch_out[-3000:]

    # The periodic eval inside the two-process run == the watcher's eval of checkpoint 2.
    periodic, followed = run / "eval" / "step_2", watched / "step_2"
    assert_json_close(
        json.loads((periodic / "metrics.json").read_text()),
        json.loads((followed / "metrics.json").read_text()),
        "metrics",
    )
    examples = _examples(periodic)
    assert examples
    assert_json_close(examples, _examples(followed), "examples")
    assert not (run / "eval" / "step_4").exists()  # no periodic eval at the last step

    summary = json.loads((watched / "summary" / "summary.json").read_text())
    assert sorted(summary["steps"]) == ["2", "4"] and summary["heldout"] == ["nli"]
    assert (watched / "summary" / "heldout_vs_step.png").exists()
    assert list((watched / "summary").glob("events.out.tfevents.*"))

    # A watcher started again (e.g. after its own preemption) has nothing left to evaluate.
    capsys.readouterr()
    assert cli.main(watch) == 0
    assert "evaluated steps [], already evaluated [2, 4]" in capsys.readouterr().out

    # `flan-jax eval` of the last checkpoint over two processes x 4 devices (both splits, so it
    # also writes the FLAN report) scores the validation split as the one-process watcher did.
    two = tmp_path / "two_process_eval"
    evaluate = [
        *local_job(tmp_path / "eval_logs", timeout=600),
        "eval",
        *SMALL,
        f'--gin.CHECKPOINT_PATH="{run / "4"}"',
        f'--gin.EvalConfig.output_dir="{two}"',
        "--gin.CPU_DEVICES=None",
    ]
    done = subprocess.run(evaluate, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=700)
    eval_logs = [(tmp_path / "eval_logs" / f"process_{i}.log").read_text() for i in range(2)]
    assert done.returncode == 0, done.stdout + "\n".join(t[-3000:] for t in eval_logs)
    one = watched / "step_4"
    assert_json_close(
        json.loads((one / "metrics.json").read_text())["metrics"]["validation"],
        json.loads((two / "metrics.json").read_text())["metrics"]["validation"],
        "metrics",
    )
    examples = _examples(one)
    assert examples
    assert_json_close(examples, _examples(two), "examples")
    assert list((two / "examples" / "test").glob("*.jsonl"))
    assert set(json.loads((two / "results.json").read_text())["clusters"]) == {"nli"}
    for name in ("results.md", "nli.png"):
        assert (two / name).exists(), name
