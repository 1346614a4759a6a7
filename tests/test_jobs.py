"""`flan-jax eval` and `flan-jax infer` on a tiny random checkpoint made here (seconds, no run).

The trained main job (tests/test_main_job.py) checks that tuning beats chance; these check the
entry points themselves: the report files and their structure, option scores and rank choice,
outputs never overwritten, one-line errors.
"""

import json

import flax.linen as nn
import jax
import numpy as np
import pytest

from flan_jax import checkpoints, cli, models
from flan_jax.models import t5_config

GIN = ["--gin_file=experiments/demo_smoke.gin"]


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    """Params of the demo's tiny T5 (vocab 384), random, as a params-only checkpoint."""
    config = t5_config("tiny", vocab_size=384)
    model = models.build_model(config)
    dummy = models.dummy_batch(config, {"inputs": 8, "targets": 4}, 1)
    boxed = jax.eval_shape(lambda r: model.init(r, **dummy)["params"], jax.random.key(0))
    rng = np.random.default_rng(0)
    params = jax.tree.map(
        lambda a: (rng.standard_normal(a.shape) * 0.05).astype(a.dtype), nn.meta.unbox(boxed)
    )
    path = tmp_path_factory.mktemp("random") / "params"
    checkpoints.save_params(path, params)
    return str(path)


@pytest.mark.slow
def test_eval_writes_the_flan_report(random_checkpoint, tmp_path, capsys):
    out_dir = tmp_path / "eval"
    argv = [
        "eval",
        *GIN,
        f'--gin.CHECKPOINT_PATH="{random_checkpoint}"',
        '--gin.MIXTURE_OR_TASK_NAME="demo:heldout_nli:train"',
        "--gin.EvalConfig.num_examples=6",
        f'--gin.EvalConfig.output_dir="{out_dir}"',
    ]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "fact_nli" in out and "order_nli" in out and "(cluster mean)" in out
    for name in ("results.json", "results.md", "nli.png"):
        assert (out_dir / name).exists(), name
    summary = json.loads((out_dir / "results.json").read_text())
    assert set(summary["clusters"]) == {"nli"}
    assert set(summary["datasets"]) == {"fact_nli", "order_nli"}
    for dataset in summary["datasets"].values():
        assert 0.0 <= dataset["mean"] <= 100.0
    examples = sorted(p.name for p in (out_dir / "examples" / "test").iterdir())
    assert examples and all(name.endswith(".jsonl") for name in examples)


def test_infer_scores_options_and_never_overwrites(random_checkpoint, tmp_path, capsys):
    base = ["infer", *GIN, f'--gin.CHECKPOINT_PATH="{random_checkpoint}"']
    prompt = "Review: I loved it.\nIs this review positive or negative?"
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
    before = dst.read_text()
    assert cli.main([*base, "--input", str(src), "--output", str(dst)]) == 2
    assert "exists; choose a new output path" in capsys.readouterr().err
    assert dst.read_text() == before


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


def test_infer_bad_input_is_one_line(random_checkpoint, tmp_path, capsys):
    base = ["infer", *GIN, f'--gin.CHECKPOINT_PATH="{random_checkpoint}"']
    assert cli.main(base) == 2
    assert "give either --prompt TEXT or --input" in capsys.readouterr().err
    for lines, message in [
        (['{"prompt": "a"}', "{not json"], "line 2 is not JSON"),
        (['{"prompt": "a", "options": "positive"}'], 'line 1: "options" must be a list'),
        (['{"prompt": "a", "options": ["only"]}'], "at least two non-empty strings"),
        (['["a", "b"]'], "line 1 is a list, not an object"),
        (['{"text": "a"}'], "line 1 has unknown key 'text'"),
        (['{"prompt": 3}'], 'line 1 has no "prompt" text'),
    ]:
        bad = tmp_path / "bad.jsonl"
        bad.write_text("\n".join(lines) + "\n")
        out = tmp_path / "o.jsonl"
        assert cli.main([*base, "--input", str(bad), "--output", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(bad) in err and err.count("\n") == 1, err
        assert not out.exists()
    assert cli.main([*base, "--prompt", "Is it?", "--options", "yes"]) == 2
    assert "at least two" in capsys.readouterr().err
