"""Two processes on 127.0.0.1 with 4 CPU devices each train one model together."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_two_processes_agree_on_the_loss(tmp_path):
    logs = tmp_path / "logs"
    cmd = [
        sys.executable,
        os.path.join(ROOT, "launch", "local_multiprocess.py"),
        "--num_processes=2",
        "--devices_per_process=4",
        f"--log_dir={logs}",
        "--timeout=600",
        "--",
        "train",
        "--gin_file=experiments/demo_smoke.gin",
        f'--gin.MODEL_DIR="{tmp_path / "run"}"',
        "--gin.CPU_DEVICES=None",
        "--gin.TRAIN_STEPS=3",
        '--gin.MIXTURE_OR_TASK_NAME="demo:compare:t0"',
        "--gin.TASK_FEATURE_LENGTHS={'inputs': 48, 'targets': 8}",
        "--gin.BATCH_SIZE=8",
        "--gin.MeshConfig.data=8",
        "--gin.MeshConfig.model=1",
        "--gin.T5Config.num_encoder_layers=1",
        "--gin.T5Config.num_decoder_layers=1",
        "--gin.TrainConfig.progress_bar=False",
    ]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=700)
    texts = [(logs / f"process_{i}.log").read_text() for i in range(2)]
    assert done.returncode == 0, done.stdout + "\n".join(t[-2000:] for t in texts)
    losses = []
    for text in texts:
        assert "mesh {'data': 8, 'fsdp': 1, 'model': 1} over 8 devices" in text
        losses.append(float(re.search(r"\[train\] done: .*'loss': ([0-9.e+-]+)", text).group(1)))
    assert losses[0] == losses[1]
    assert (tmp_path / "run" / "3" / "commit_success.txt").exists()
