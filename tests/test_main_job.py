"""The main job end to end: a shortened `make smoke` trains, evaluates and beats chance.

`flan-jax eval` / `infer` on their own are tested on a random checkpoint in test_jobs.py.
"""

import json
import os

import pytest

from flan_jax import cli

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("main_job")]

GIN = ["--gin_file=experiments/demo_smoke.gin"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("smoke") / "run")
    argv = ["smoke", "--model_dir", model_dir, "--steps", "250", "--num_examples", "24"]
    argv += ["--heldin", "sentiment"]  # the held-out cluster and one held-in one keep it short
    argv += ["--gin.TrainConfig.progress_bar=False", "--gin.TrainConfig.save_every=125"]
    assert cli.main(argv) == 0
    return model_dir


def test_smoke_trains_checkpoints_evaluates_and_beats_chance(smoke_run, capsys):
    assert {"250", "125", "config.gin", "eval", "train"} <= set(os.listdir(smoke_run))
    report_dir = os.path.join(smoke_run, "eval", "step_250")
    for name in ("results.json", "results.md", "nli.png", "sentiment.png"):
        assert os.path.exists(os.path.join(report_dir, name)), name
    assert os.listdir(os.path.join(report_dir, "examples", "test"))
    summary = json.load(open(os.path.join(report_dir, "results.json")))
    assert set(summary["clusters"]) == {"nli", "sentiment"}
    # A real training signal: the held-in product reviews (2 options) beat chance (50%).
    reviews = summary["datasets"]["product_reviews"]
    assert reviews["best_dev"] > 65.0, reviews
    # Re-running reuses the finished run and its evaluation instead of overwriting them.
    capsys.readouterr()
    argv = ["smoke", "--model_dir", smoke_run, "--steps", "250", "--heldin", "sentiment"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "reusing the finished run" in out and "reusing the evaluation of step 250" in out
    assert "chance" in out and "(cluster mean)" in out
