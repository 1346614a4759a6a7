"""`flan-jax eval` over two processes x 4 CPU devices (launch/local_multiprocess.py) writes the
report of the single-process 8-device run: the same results.json, metrics.json and per-example
outputs, for a tiny trained checkpoint on the demo held-out and held-in mixtures.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from eval_worker import ENV, ROOT, SMALL, assert_json_close, local_job, report_examples

from flan_jax import cli


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny T5 (1 layer per stack) trained for 2 steps on the demo held-out-NLI mixture."""
    run = tmp_path_factory.mktemp("trained") / "run"
    argv = [
        "train",
        *SMALL,
        f'--gin.MODEL_DIR="{run}"',
        "--gin.TRAIN_STEPS=2",
        "--gin.BATCH_SIZE=8",
        "--gin.TrainConfig.progress_bar=False",
    ]
    assert cli.main(argv) == 0
    return run / "2"


def _eval_args(checkpoint, out_dir) -> list[str]:
    return [
        "eval",
        *SMALL,
        f'--gin.CHECKPOINT_PATH="{checkpoint}"',
        "--include_heldin",
        "--gin.EvalConfig.heldin_clusters=('sentiment',)",
        "--gin.EvalConfig.num_examples=6",
        f'--gin.EvalConfig.output_dir="{out_dir}"',
    ]


@pytest.mark.slow
def test_eval_on_two_processes_writes_the_single_process_report(checkpoint, tmp_path):
    assert cli.main(_eval_args(checkpoint, tmp_path / "one")) == 0
    cmd = [
        *local_job(tmp_path / "logs", timeout=600),
        *_eval_args(checkpoint, tmp_path / "two"),
        "--gin.CPU_DEVICES=None",
    ]
    done = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=700)
    logs = [(tmp_path / "logs" / f"process_{i}.log").read_text() for i in range(2)]
    assert done.returncode == 0, done.stdout + "\n".join(t[-3000:] for t in logs)
    one, two = tmp_path / "one", tmp_path / "two"
    summary = json.loads((one / "results.json").read_text())
    assert set(summary["clusters"]) == {"nli", "sentiment"}
    assert_json_close(summary, json.loads((two / "results.json").read_text()), "results.json")
    assert_json_close(
        json.loads((one / "metrics.json").read_text()),
        json.loads((two / "metrics.json").read_text()),
    )
    examples = report_examples(one)
    assert len(examples) >= 2 * 4  # splits x datasets, at least one template each
    assert_json_close(examples, report_examples(two), "examples")
    for name in ("results.md", "nli.png", "sentiment.png"):
        assert (two / name).exists(), name
