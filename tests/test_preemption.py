"""SIGTERM / SIGINT during training: finish the step, checkpoint, one line, resume bit-exactly.

A subprocess trains a tiny T5 (the driver below calls `train.train`); its batch hook prints each
step and, at GATE, waits on stdin, so the test signals it at a known point (after it has printed
the step) and the stop step is exact: GATE + 1. The driver acknowledges each "next" line (by
then the signal sent before it has been handled), so two signals arrive as two. The two-process
case (every process stops at the same step) is in tests/test_multiprocess.py.
"""

import hashlib
import os
import queue
import signal
import subprocess
import sys
import threading

import jax
import numpy as np
import pytest
import test_train

from flan_jax import checkpoints, models, partitioning, train, train_step
from flan_jax.models import t5_config

TESTS = os.path.dirname(os.path.abspath(__file__))
STEPS = 6
GATE = 2  # the driver waits before step index 2's update: a signal there stops after step 3


def _config(model_dir: str, initial: str) -> train.TrainConfig:
    """The run of every test here (also built by the driver subprocess)."""
    return train.TrainConfig(
        model_dir=str(model_dir),
        mixture_or_task_name="demo:compare:t0",
        task_feature_lengths={"inputs": 32, "targets": 8},
        train_steps=STEPS,
        batch_size=4,
        model=t5_config("tiny", vocab_size=384, num_encoder_layers=1, num_decoder_layers=1),
        mesh=partitioning.MeshConfig(data=1),
        save_every=2,  # step 2's save may still be in flight when the signal's save starts
        log_every=1,
        progress_bar=False,
        async_checkpoint=True,
        pack=False,
        initial_checkpoint_path=initial,
    )


DRIVER = f"""
import json, sys
sys.path.insert(0, {TESTS!r})
import jax
from test_preemption import GATE, _config
from flan_jax import train

def hook(step, batch):
    print(f"batch {{step}}", flush=True)
    if step == GATE:  # the test signals this process, then lets it go on
        while sys.stdin.readline().strip() == "next":
            print("ack", flush=True)

cfg = _config(sys.argv[1], sys.argv[2])
result = train.train(cfg, devices=jax.devices()[:1], batch_hook=hook)
print("result", json.dumps(result), flush=True)
sys.exit(train.PREEMPTED_EXIT_CODE if result.get("preempted") else 0)
"""


initial_params = test_train.initial_params  # the same tiny T5 and draw (module-scoped)


def _train_here(model_dir, initial):
    """train() in this process; returns (result, fingerprints of the batches it consumed)."""
    seen = []

    def hook(step, batch):
        seen.append(hashlib.sha1(batch["encoder_input_tokens"].tobytes()).hexdigest())

    result = train.train(_config(model_dir, initial), devices=jax.devices()[:1], batch_hook=hook)
    return result, seen


def _restore(model_dir, initial, step):
    """(params, input position) of a checkpoint."""
    cfg = _config(model_dir, initial)
    model = models.build_model(cfg.model)
    tx = train.optim.make_optimizer(cfg.optimizer, cfg.train_steps)
    layout = partitioning.Layout.build(partitioning.MeshConfig(data=1), jax.devices()[:1])
    abstract, _, _, _ = train_step.build_state_shardings(model, tx, cfg, layout)
    with checkpoints.Checkpointer(model_dir) as ckpt:
        state, data = ckpt.restore(step, abstract)
    return jax.device_get(state["params"]), data


@pytest.fixture(scope="module")
def reference(tmp_path_factory, initial_params):
    """The uninterrupted run: its batches and final params."""
    model_dir = tmp_path_factory.mktemp("reference")
    result, batches = _train_here(model_dir, initial_params)
    assert result["step"] == STEPS
    params, _ = _restore(model_dir, initial_params, STEPS)
    return {"batches": batches, "params": params}


def _lines(proc: subprocess.Popen) -> queue.Queue:
    """The process's output lines, read by a thread (so waiting on them can be bounded)."""
    lines: queue.Queue = queue.Queue()

    def read():
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _interrupted_run(model_dir, initial, signals):
    """Runs the driver, sends `signals` once it waits at GATE; returns (exit code, output)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(model_dir), initial],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines, out = _lines(proc), []

    def wait_for(text):
        while not out or out[-1] != text:
            line = lines.get(timeout=300)
            assert line is not None, "".join(out)  # the driver ended before printing it
            out.append(line)

    try:
        wait_for(f"batch {GATE}\n")
        for sig in signals:
            proc.send_signal(sig)
            proc.stdin.write("next\n")
            proc.stdin.flush()
            wait_for("ack\n")
        proc.stdin.write("go\n")
        proc.stdin.close()
        while (line := lines.get(timeout=300)) is not None:
            out.append(line)
        return proc.wait(timeout=60), "".join(out)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
def test_sigterm_checkpoints_the_step_and_the_run_resumes_bit_exactly(
    tmp_path, initial_params, reference
):
    code, out = _interrupted_run(tmp_path, initial_params, [signal.SIGTERM])
    assert code == train.PREEMPTED_EXIT_CODE, out
    stop = GATE + 1
    line = (
        f"preempted at step {stop}; checkpoint saved in {tmp_path / str(stop)}; "
        "run the same command to resume"
    )
    assert out.count("preempted at step") == 1 and line in out, out
    assert f'result {{"step": {stop}, "preempted": true}}' in out
    assert f"batch {stop}" not in out  # it stopped after the step the signal came in
    with checkpoints.Checkpointer(tmp_path) as ckpt:
        assert ckpt.all_steps() == [2, stop]  # the regular one (in flight then) and its own
    _, position = _restore(tmp_path, initial_params, stop)
    assert position["input"]["batches_consumed"] == stop

    # Run again: it continues from there, as if it had never stopped.
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    result, batches = _train_here(tmp_path, initial_params)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == handlers
    assert result["step"] == STEPS and "preempted" not in result
    assert batches == reference["batches"][stop:]
    params, _ = _restore(tmp_path, initial_params, STEPS)
    for x, y in zip(jax.tree.leaves(params), jax.tree.leaves(reference["params"]), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_sigint_twice_is_one_stop_without_a_traceback(tmp_path, initial_params):
    code, out = _interrupted_run(tmp_path, initial_params, [signal.SIGINT, signal.SIGINT])
    assert code == train.PREEMPTED_EXIT_CODE, out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out
    assert out.count("preempted at step") == 1 and f"preempted at step {GATE + 1};" in out, out
    assert "already stopping" in out  # the second Ctrl-C is noted, and changes nothing
    with checkpoints.Checkpointer(tmp_path) as ckpt:
        assert ckpt.latest_step() == GATE + 1
