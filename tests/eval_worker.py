"""Every scoring path and decoding method on tiny random models of both families, and the
eval reports of generative demo tasks decoded with each method.

Run as one process of a two-process job by tests/test_eval_multiprocess.py (process 0 saves
the outputs to the .npz named first on the command line and writes the reports under the
directory named second); `run_all` and `write_reports` are also called in the test's own
process for the single-process reference.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from flan_jax import partitioning  # noqa: E402

MESH = partitioning.MeshConfig(data=4, model=2)
BATCH = 8  # several batches per call, so each process feeds several shares
# Generative demo tasks (the demo eval mixtures are all rank classification), two clusters.
REPORT_TASKS = ("demo:addition:t0", "demo:reverse_word:t0")
REPORT_LENGTHS = {"inputs": 64, "targets": 8}

# For the tests that launch processes through launch/local_multiprocess.py:
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The processes get their device count from the launcher, not from the test's XLA_FLAGS.
ENV = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
SMALL = [
    "--gin_file=experiments/demo_smoke.gin",
    "--gin.TASK_FEATURE_LENGTHS={'inputs': 64, 'targets': 8}",
    "--gin.T5Config.num_encoder_layers=1",
    "--gin.T5Config.num_decoder_layers=1",
    "--gin.MeshConfig.data=4",
    "--gin.MeshConfig.model=2",
]


def local_job(log_dir, timeout: int) -> list[str]:
    """The command prefix of a two-process x 4-device job through launch/local_multiprocess.py;
    the flan-jax arguments follow."""
    return [
        sys.executable,
        os.path.join(ROOT, "launch", "local_multiprocess.py"),
        "--num_processes=2",
        "--devices_per_process=4",
        f"--log_dir={log_dir}",
        f"--timeout={timeout}",
        "--",
    ]


def report_examples(out_dir) -> dict:
    """Per-example outputs of an eval report directory, by relative path."""
    found = {}
    for path in sorted(out_dir.glob("examples/*/*.jsonl")):
        found[str(path.relative_to(out_dir))] = [
            json.loads(x) for x in path.read_text().split("\n") if x
        ]
    return found


def assert_json_close(a, b, where: str = "") -> None:
    """Equal JSON, floats within 1e-5 (reports of two runs of the same checkpoint)."""
    if isinstance(a, float) or isinstance(b, float):
        assert abs(a - b) <= 1e-5, f"{where}: {a} != {b}"
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_json_close(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_json_close(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def _methods() -> dict:
    from flan_jax.evaluation import decoding

    return {
        "greedy": decoding.DecodeConfig(),
        "sample": decoding.DecodeConfig("sample", temperature=1.0, top_k=20, seed=3),
        "beam": decoding.DecodeConfig("beam", num_beams=3),
    }


def _t5():
    from flan_jax.models import t5_config

    # Vocab 260: the logits split over model=2 (rows draw ids below 259).
    return t5_config("tiny", vocab_size=260, num_encoder_layers=1, num_decoder_layers=1)


def run_all(
    layout: partitioning.Layout, bucket: bool = True, families: tuple[str, ...] = ("t5", "lm")
) -> dict[str, np.ndarray]:
    """{"<family>_<path or method>": scores or tokens} for T5 and the decoder-only LM."""
    import jax.numpy as jnp
    from test_scoring import LENGTHS, host_params, make_rows, placed

    from flan_jax.evaluation import decoding, scoring
    from flan_jax.models import build_model, decoder_config

    t5 = _t5()
    lm = decoder_config("tiny", vocab_size=260, num_layers=1)

    rows = make_rows(seed=3)
    prompts = [r["inputs"] for r in rows]  # repeated prompts too: each decoded on its own
    methods = _methods()
    tok = jnp.ones((1, 4), jnp.int32)
    out = {}
    for family, config in (("t5", t5), ("lm", lm)):
        if family not in families:
            continue
        model = build_model(config)
        args = (tok, tok) if family == "t5" else (tok,)
        params = placed(model, host_params(model, *args, seed=5), layout)
        for shared in (True, False):
            key = f"{family}_{'shared' if shared else 'per_option'}"
            out[key] = scoring.score_rows(
                model, params, rows, layout, BATCH, LENGTHS, shared=shared, bucket=bucket
            )
        for name, cfg in methods.items():
            out[f"{family}_{name}"] = decoding.decode_rows(
                model, params, prompts, layout, BATCH, LENGTHS, cfg, bucket=bucket
            )
    return out


def write_reports(layout: partitioning.Layout, out_dir: str) -> None:
    """`flan-jax eval`'s reports (results.json, metrics.json, per-example JSONL) of
    REPORT_TASKS with the random T5 of `run_all`, decoded by beam search (`run_all` compares
    every method's tokens; the reports need one)."""
    import jax.numpy as jnp
    from test_scoring import host_params, placed

    from flan_jax import vocab
    from flan_jax.evaluation import evaluator
    from flan_jax.models import build_model

    model = build_model(_t5())
    tok = jnp.ones((1, 4), jnp.int32)
    params = placed(model, host_params(model, tok, tok, seed=5), layout)
    evaluator.evaluate_mixture(
        model,
        params,
        layout,
        list(REPORT_TASKS),
        REPORT_LENGTHS,
        ("validation", "test"),
        BATCH,
        os.path.join(out_dir, "beam"),
        vocabulary=vocab.get_vocabulary("byte"),
        num_examples=6,
        decode_config=_methods()["beam"],
    )


if __name__ == "__main__":
    partitioning.init_distributed(
        os.environ["FLAN_JAX_COORDINATOR"],
        int(os.environ["FLAN_JAX_NUM_PROCESSES"]),
        int(os.environ["FLAN_JAX_PROCESS_ID"]),
    )
    import jax

    layout = partitioning.Layout.build(MESH)
    outputs = run_all(layout)
    if jax.process_index() == 0:
        np.savez(sys.argv[1], **outputs)
    write_reports(layout, sys.argv[2])
    print("worker done", jax.process_index(), flush=True)
