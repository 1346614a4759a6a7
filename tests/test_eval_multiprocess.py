"""Evaluation over two processes x 4 CPU devices equals the single-process 8-device run.

* every scoring path (shared input, per option) and decoding method (greedy, sample, beam) of
  both model families, called directly (tests/eval_worker.py in two processes), and the
  reports (results.json, metrics.json, per-example predictions) of generative demo tasks
  decoded with each method;
* length bucketing changes no score or token.

The command-line path (`flan-jax eval` through launch/local_multiprocess.py) is tested in
tests/test_eval_watch.py against the watcher's one-process report of the same checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from eval_worker import (
    ENV,
    MESH,
    ROOT,
    assert_json_close,
    report_examples,
    run_all,
    write_reports,
)

from flan_jax import partitioning


@pytest.fixture(scope="module")
def single():
    """run_all on this process's 8 devices: the reference."""
    return run_all(partitioning.Layout.build(MESH))


@pytest.fixture(scope="module")
def single_reports(tmp_path_factory):
    """write_reports on this process's 8 devices: the reference reports."""
    out = tmp_path_factory.mktemp("single_reports")
    write_reports(partitioning.Layout.build(MESH), str(out))
    return out


def _assert_same(a: dict, b: dict) -> None:
    assert set(a) == set(b)
    for key in a:
        if a[key].dtype.kind == "f":
            np.testing.assert_allclose(a[key], b[key], atol=1e-5, rtol=0, err_msg=key)
        else:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_every_path_on_two_processes_equals_one(single, single_reports, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for i in range(2):
        env = dict(
            ENV,
            JAX_PLATFORMS="cpu",
            XLA_FLAGS="--xla_force_host_platform_device_count=4",
            FLAN_JAX_COORDINATOR=f"127.0.0.1:{port}",
            FLAN_JAX_NUM_PROCESSES="2",
            FLAN_JAX_PROCESS_ID=str(i),
        )
        worker = os.path.join(ROOT, "tests", "eval_worker.py")
        cmd = [sys.executable, worker, str(tmp_path / "o"), str(tmp_path / "reports")]
        log = open(tmp_path / f"p{i}.log", "w")  # noqa: SIM115 (closed below)
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), log))
    try:
        codes = [p.wait(timeout=600) for p, _ in procs]
    finally:
        for p, log in procs:
            if p.poll() is None:
                p.kill()
            log.close()
    logs = "\n".join((tmp_path / f"p{i}.log").read_text()[-3000:] for i in range(2))
    assert codes == [0, 0], logs
    multi = dict(np.load(tmp_path / "o.npz"))
    _assert_same(single, multi)
    # The outputs are real: sampled tokens differ from greedy ones, scores differ by row.
    assert not np.array_equal(multi["t5_sample"], multi["t5_greedy"])
    assert len(set(np.round(multi["lm_shared"], 3))) > 5

    # The reports of decoded tasks: process 0 wrote what one process writes.
    one, two = single_reports / "beam", tmp_path / "reports" / "beam"
    for name in ("results.json", "metrics.json"):
        assert_json_close(
            json.loads((one / name).read_text()), json.loads((two / name).read_text()), name
        )
    examples = report_examples(one)
    assert len(examples) == 2 * 2, sorted(examples)  # splits x tasks
    assert_json_close(examples, report_examples(two), "beam examples")
    assert all(x["prediction"] is not None for rows in examples.values() for x in rows)


@pytest.mark.slow
def test_length_buckets_change_no_score_or_token(single):
    # One family is enough: the bucketing is the family-independent batching.
    unbucketed = run_all(partitioning.Layout.build(MESH), bucket=False, families=("t5",))
    _assert_same({k: v for k, v in single.items() if k.startswith("t5_")}, unbucketed)
