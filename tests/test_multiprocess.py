"""Two processes on 127.0.0.1 with 4 CPU devices each train one model together, and stop together."""

import os
import re
import signal
import subprocess
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from eval_worker import ENV, local_job

from flan_jax import checkpoints, train


def _launch(tmp_path, *flags: str, timeout: int = 600) -> list[str]:
    """launch/local_multiprocess.py running a tiny `flan-jax train` in tmp_path/run."""
    return [
        *local_job(tmp_path / "logs", timeout),
        "train",
        "--gin_file=experiments/demo_smoke.gin",
        f'--gin.MODEL_DIR="{tmp_path / "run"}"',
        "--gin.CPU_DEVICES=None",
        '--gin.MIXTURE_OR_TASK_NAME="demo:compare:t0"',
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 48, 'targets': 8}",
        "--gin.BATCH_SIZE=8",
        "--gin.MeshConfig.data=8",
        "--gin.MeshConfig.model=1",
        "--gin.T5Config.num_encoder_layers=1",
        "--gin.T5Config.num_decoder_layers=1",
        "--gin.TrainConfig.progress_bar=False",
        *flags,
    ]


def _train(tmp_path, steps: int) -> list[str]:
    """Runs the two-process job to `steps` (resuming whatever tmp_path/run holds); the logs."""
    cmd = _launch(tmp_path, f"--gin.TRAIN_STEPS={steps}")
    done = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=700)
    texts = [(tmp_path / "logs" / f"process_{i}.log").read_text() for i in range(2)]
    assert done.returncode == 0, done.stdout + "\n".join(t[-2000:] for t in texts)
    return texts


def _final_loss(text: str) -> float:
    return float(re.search(r"\[train\] done: .*'loss': ([0-9.e+-]+)", text).group(1))


def _saved_state(step_dir) -> list[np.ndarray]:
    """Every array of a saved train state, read back on one device of this process."""
    one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    with ocp.PyTreeCheckpointer() as reader:
        tree = reader.metadata(step_dir / "state").item_metadata.tree
        args = jax.tree.map(lambda _: ocp.ArrayRestoreArgs(sharding=one), tree)
        state = reader.restore(step_dir / "state", restore_args=args)
    return [np.asarray(x) for x in jax.tree.leaves(state)]


def _readable(log: str) -> str:
    """A process log without the runtime's routine INFO lines (barriers passed, gloo peers)."""
    routine = ("has passed with status: OK", "[Gloo]")
    return "\n".join(line for line in log.splitlines() if not any(r in line for r in routine))


@pytest.fixture(scope="module")
def three_steps(tmp_path_factory):
    """One uninterrupted two-process run of 3 steps: (its directory, the processes' logs)."""
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    return tmp_path, _train(tmp_path, 3)


@pytest.mark.slow
def test_two_processes_agree_on_the_loss(three_steps):
    tmp_path, texts = three_steps
    for text in texts:
        assert "mesh {'data': 8, 'fsdp': 1, 'model': 1} over 8 devices" in text
    assert _final_loss(texts[0]) == _final_loss(texts[1])
    assert (tmp_path / "run" / "3" / "commit_success.txt").exists()


@pytest.mark.slow
def test_two_process_resume_is_bit_exact(tmp_path, three_steps):
    # Stop after 2 steps, then relaunch to 3: each process restores its own input position and
    # the sharded state, and the run ends where the uninterrupted one did, bit for bit.
    _train(tmp_path, 2)
    for host in range(2):
        assert list((tmp_path / "run" / "input_state" / "2").glob(f"host{host}.*"))
    texts = _train(tmp_path, 3)
    assert all("resumed from step 2" in text for text in texts)
    assert _final_loss(texts[0]) == _final_loss(three_steps[1][0])
    resumed, uninterrupted = (
        _saved_state(tmp_path / "run" / "3"),
        _saved_state(three_steps[0] / "run" / "3"),
    )
    assert len(resumed) == len(uninterrupted) > 10
    for a, b in zip(resumed, uninterrupted):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_sigterm_to_one_process_stops_both_at_the_same_step(tmp_path):
    # Many steps: the run must still be going when the signal comes (it stops ~1 s later).
    # A stop that never comes ends in the launcher's timeout, which has every process write its
    # Python stacks into its log; the C++ runtime's log lines (JAX's preemption protocol: the
    # notice, the barrier, the agreed step) go there too, so a failure here says where it hung.
    cmd = _launch(tmp_path, "--gin.TRAIN_STEPS=2000", "--gin.TrainConfig.save_every=4", timeout=300)
    env = {**ENV, "TF_CPP_MIN_LOG_LEVEL": "0"}
    launcher = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        started = launcher.stdout.readline()
        pids = [int(p) for p in re.findall(r"process \d+: pid (\d+)", started)]
        assert len(pids) == 2, started
        # Wait (bounded) until the job has trained and checkpointed step 4, then "preempt" one
        # host: JAX's preemption service tells the other one.
        first = tmp_path / "run" / "4" / "commit_success.txt"
        deadline = time.monotonic() + 300
        while not first.exists():
            assert launcher.poll() is None and time.monotonic() < deadline, started
            time.sleep(0.2)
        os.kill(pids[1], signal.SIGTERM)
        out, _ = launcher.communicate(timeout=330)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    texts = [(tmp_path / "logs" / f"process_{i}.log").read_text() for i in range(2)]
    report = started + out + "\n".join(_readable(t)[-6000:] for t in texts)
    assert launcher.returncode == train.PREEMPTED_EXIT_CODE, report
    stops = []
    for text in texts:
        found = re.findall(r"preempted at step (\d+); checkpoint saved in (\S+);", text)
        assert len(found) == 1, report  # one line per process
        stops.append(int(found[0][0]))
        assert found[0][1] == str(tmp_path / "run" / found[0][0])
        assert "Traceback" not in text, report
    assert stops[0] == stops[1] > 4, report
    with checkpoints.Checkpointer(tmp_path / "run") as ckpt:
        assert ckpt.latest_step() == stops[0]  # committed, and nothing after it
    saved = tmp_path / "run" / "input_state" / str(stops[0])
    for host in range(2):  # each process's input position at that step
        assert list(saved.glob(f"host{host}.*")), report
