"""The truncation report: which share of each task's examples TASK_FEATURE_LENGTHS would cut."""

import logging

from flan_jax import catalog, input_pipeline, train, vocab

BYTES = vocab.get_vocabulary("byte")


def test_report_matches_counting_by_hand():
    lengths = {"inputs": 150, "targets": 8}
    (report,) = input_pipeline.truncation_report("demo:fact_nli:mix", BYTES, lengths, 40)
    task = catalog.get_task_or_mixture("demo:fact_nli:mix", BYTES)
    ds = task.get_dataset(None, split="train", shuffle=False, try_in_mem_cache=False).take(40)
    rows = list(ds.as_numpy_iterator())
    # Byte vocabulary: one token per UTF-8 byte, plus EOS.
    by_hand = {
        key: sum(len(r[f"{key}_pretokenized"]) + 1 > lengths[key] for r in rows) / len(rows)
        for key in lengths
    }
    assert report.task == "demo:fact_nli:mix" and report.examples == 40
    assert (report.inputs, report.targets) == (by_hand["inputs"], by_hand["targets"])
    assert 0 < report.inputs < 1  # the chosen length cuts some prompts, not all
    roomy = input_pipeline.truncation_report(
        "demo:fact_nli:mix", BYTES, {"inputs": 4096, "targets": 4096}, 40
    )
    assert (roomy[0].inputs, roomy[0].targets) == (0.0, 0.0)


def test_training_warns_per_task_at_start(caplog):
    cfg = train.TrainConfig(
        model_dir="/unused",
        mixture_or_task_name="demo:heldout_nli:train",
        task_feature_lengths={"inputs": 16, "targets": 64},
        train_steps=1,
    )
    with caplog.at_level(logging.WARNING, logger="flan_jax.train"):
        train._warn_truncation(cfg, BYTES)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 6  # one per member task of the mixture
    assert all("cut the inputs of 100%" in line for line in lines)
