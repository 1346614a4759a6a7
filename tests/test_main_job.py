"""The main job end to end (a shortened `make smoke`), then eval and infer on its checkpoint."""

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


def test_eval_entry_on_a_checkpoint(smoke_run, tmp_path, capsys):
    out_dir = tmp_path / "eval"
    argv = [
        "eval",
        *GIN,
        f'--gin.CHECKPOINT_PATH="{smoke_run}/125"',
        '--gin.MIXTURE_OR_TASK_NAME="demo:heldout_sentiment:eval"',
        "--gin.EvalConfig.num_examples=24",
        f'--gin.EvalConfig.output_dir="{out_dir}"',
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "product_reviews" in out and "movie_reviews" in out
    assert (out_dir / "results.md").exists() and (out_dir / "sentiment.png").exists()


def test_infer_answers_prompts(smoke_run, tmp_path, capsys):
    base = ["infer", *GIN, f'--gin.CHECKPOINT_PATH="{smoke_run}"']
    # Phrased like the training template it was tuned on (demo product reviews, template 0).
    prompt = (
        "This kettle is superb and sturdy. Five stars from me.\n"
        "What is the sentiment of this review?\n\nOPTIONS:\n- negative\n- positive"
    )
    assert cli.main([*base, "--prompt", prompt, "--options", "negative", "positive"]) == 0
    answer = json.loads(capsys.readouterr().out)
    scores = answer["option_scores"]
    assert set(scores) == {"negative", "positive"} and all(v < 0 for v in scores.values())
    assert answer["choice"] == max(scores, key=scores.get)  # rank classification: the argmax
    assert isinstance(answer["prediction"], str)
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(
        json.dumps({"prompt": "Compute 2 + 3."})
        + "\n"
        + json.dumps({"prompt": prompt, "options": ["negative", "positive"]})
        + "\n"
    )
    assert cli.main([*base, "--input", str(src), "--output", str(dst)]) == 0
    rows = [json.loads(line) for line in dst.read_text().splitlines()]
    assert len(rows) == 2 and "option_scores" not in rows[0]
    assert rows[1]["option_scores"] == pytest.approx(scores, abs=1e-4)  # same prompt, same scores
    # The output is never overwritten.
    assert cli.main([*base, "--input", str(src), "--output", str(dst)]) == 2
    assert "exists; choose a new output path" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ['--gin.CHECKPOINT_PATH="/nonexistent/ckpt"'],
            "checkpoint path /nonexistent/ckpt does not exist",
        ),
        ([], "CHECKPOINT_PATH is not set"),
        (
            ['--gin.CHECKPOINT_PATH="/tmp"', '--gin.MIXTURE_OR_TASK_NAME="demo:nope:t0"'],
            "unknown task 'demo:nope:t0'",
        ),
    ],
)
def test_eval_bad_input_is_one_line(extra, message, capsys):
    assert cli.main(["eval", *GIN, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
