"""FLAN aggregation on a fixed fake result set, the report writers, an end-to-end
seqio.Evaluator run of a tiny random T5 over two demo tasks, and bad-request errors."""

from __future__ import annotations

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from test_scoring import T5_CONFIG, host_params, placed

from flan_jax import catalog, partitioning, vocab
from flan_jax.evaluation import aggregate, evaluator
from flan_jax.evaluation.aggregate import TemplateResult
from flan_jax.models import build_model


def _fake_results() -> list[TemplateResult]:
    rows = []
    # nli/a: test 50, 60, 70; dev picks t1 (dev 80 beats 40 and 10).
    for t, (dev, test) in enumerate([(40, 50), (80, 60), (10, 70)]):
        rows.append(TemplateResult("nli", "a", t, "validation", {"accuracy": dev}))
        rows.append(TemplateResult("nli", "a", t, "test", {"accuracy": test, "f1": 1.0}))
    # nli/b: test 20, 40; dev tie -> the lower template, t0.
    for t, test in enumerate([20, 40]):
        rows.append(TemplateResult("nli", "b", t, "validation", {"accuracy": 50}))
        rows.append(TemplateResult("nli", "b", t, "test", {"accuracy": test}))
    # qa/c: no accuracy -> first metric (bleu); no dev split evaluated.
    rows.append(TemplateResult("qa", "c", 0, "test", {"bleu": 30.0, "rouge1": 5.0}))
    return rows


def test_aggregate_hand_computed():
    s = aggregate.aggregate(_fake_results())
    a, b, c = (s["datasets"][n] for n in "abc")
    assert (a["mean"], a["max"], a["best_dev_template"], a["best_dev"]) == (60.0, 70.0, 1, 60.0)
    assert a["std"] == pytest.approx(np.std([50, 60, 70]))
    assert (b["mean"], b["std"], b["best_dev_template"], b["best_dev"]) == (30.0, 10.0, 0, 20.0)
    assert (c["metric"], c["mean"], c["best_dev"]) == ("bleu", 30.0, None)
    nli = s["clusters"]["nli"]
    assert (nli["mean"], nli["best_dev"], nli["max"]) == (45.0, 40.0, 55.0)
    assert s["clusters"]["qa"]["best_dev"] != s["clusters"]["qa"]["best_dev"]  # NaN: no dev


def test_writers(tmp_path):
    summary = aggregate.aggregate(_fake_results())
    files = aggregate.write_reports(summary, str(tmp_path / "eval"))
    with open(files["json"]) as f:
        loaded = json.load(f)
    assert (
        loaded["clusters"]["nli"]["mean"] == 45.0 and loaded["clusters"]["qa"]["best_dev"] is None
    )
    table = open(files["markdown"]).read()
    assert "| a | accuracy | 3 | 60.0 | 8.2 | 60.0 (t1) | 70.0 |" in table
    assert "**cluster mean**" in table
    assert sorted(os.path.basename(p) for p in files["plots"]) == ["nli.png", "qa.png"]
    for p in files["plots"]:
        assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    path = aggregate.write_examples(str(tmp_path), "demo:a:t0", [{"input": b"x", "scores": [1.0]}])
    assert path.endswith("demo__a__t0.jsonl")
    assert json.loads(open(path).read()) == {"input": "x", "scores": [1.0]}


VOCAB = vocab.get_vocabulary("byte")


@pytest.fixture(scope="module")
def demo():
    catalog.get_collection("demo", VOCAB)


@pytest.fixture(scope="module")
def layout():
    return partitioning.Layout.build(partitioning.MeshConfig())


def test_end_to_end_seqio_evaluator_tiny_t5(demo, layout, tmp_path):
    model = build_model(T5_CONFIG)
    tok = jnp.ones((1, 4), jnp.int32)
    params = placed(model, host_params(model, tok, tok), layout)
    tasks = ["demo:fact_nli:t0:rank", "demo:fact_nli:t4"]  # scored / generated
    out = evaluator.evaluate_mixture(
        model,
        params,
        layout,
        tasks,
        {"inputs": 192, "targets": 16},
        "validation",
        batch_size=16,
        out_dir=str(tmp_path),
        vocabulary=VOCAB,
        num_examples=9,  # 3 examples x 3 options for the rank task
    )
    metrics = out["metrics"]["validation"]
    assert set(metrics) == set(tasks)
    for task in tasks:
        assert 0.0 <= metrics[task]["accuracy"] <= 100.0
    assert out["summary"] is None  # aggregation needs the test split
    rank_file, gen_file = sorted(out["files"]["examples"])
    ranked = [json.loads(line) for line in open(rank_file)]
    assert len(ranked) == 3 and all(len(r["scores"]) == 3 for r in ranked)
    assert all(r["predicted"] == int(np.argmax(r["scores"])) for r in ranked)
    generated = [json.loads(line) for line in open(gen_file)]
    assert len(generated) == 9 and {"input", "target", "prediction"} <= set(generated[0])


def test_rank_classification_of_a_turned_around_template_fails(demo):
    # An original template without options is ranked over the options (FLAN's protocol);
    # a turned-around template has no rank task.
    evaluator.check_rank_task("demo:fact_nli:t4:rank", VOCAB)
    with pytest.raises(evaluator.EvalError) as err:
        evaluator.resolve_eval_tasks("demo:fact_nli:t5:rank", ["validation"], VOCAB)
    message = str(err.value)
    assert "template 5 of 'fact_nli'" in message and "\n" not in message
    assert "'demo:fact_nli:t5'" in message


def test_missing_split_lists_the_task_splits(demo, layout):
    with pytest.raises(evaluator.EvalError) as err:
        evaluator.evaluate_mixture(
            None,
            None,
            layout,
            "demo:fact_nli:t0:rank",
            {"inputs": 8, "targets": 8},
            ["dev"],
            vocabulary=VOCAB,
        )
    message = str(err.value)
    assert "has no 'dev' split (its splits: train, validation, test)" in message
