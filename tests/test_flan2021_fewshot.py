"""Few-shot variants (``...:<k>shot``) and promptsource-format templates, on mocked TFDS."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import seqio

sys.path.insert(0, os.path.dirname(__file__))

from flan2021_raw import RAW, mock_builder_data  # noqa: E402

from flan_jax import catalog, fewshot, naming, promptsource, registry, vocab  # noqa: E402
from flan_jax.tasks import flan2021  # noqa: E402

VOCAB = vocab.get_vocabulary("byte")
SPECS = {s.name: s for s in flan2021.SPECS}


def _examples(task: seqio.Task, split: str) -> list[dict]:
    ds = task.get_dataset(None, split=split, shuffle=False, try_in_mem_cache=False)
    return list(ds.as_numpy_iterator())


def test_fewshot_exemplars_come_from_train_and_never_the_example():
    with mock_builder_data(num_examples=6, vary=True):
        task = catalog.get_task_or_mixture("flan2021:rte:t0:3shot", VOCAB)
        assert naming.parse_name(task.name).shots == 3
        for ex in _examples(task, "test"):
            text = ex["inputs_pretokenized"].decode()
            assert int(ex["num_shots"]) == 3
            assert text.count(fewshot.EXEMPLAR_SEPARATOR) == 3
            *shots, own = text.split(fewshot.EXEMPLAR_SEPARATOR)
            # rte: our test split is the source validation split
            assert "#validation" in own
            assert all("#train" in s and "#validation" not in s for s in shots)
        for ex in _examples(task, "train"):
            *shots, own = ex["inputs_pretokenized"].decode().split(fewshot.EXEMPLAR_SEPARATOR)
            own_premise = own.split("\n")[0]
            assert len(shots) == 3 and all(own_premise not in s for s in shots)


def test_fewshot_respects_the_token_budget():
    budget = 420
    with mock_builder_data(num_examples=20, vary=True):
        base = catalog.get_task_or_mixture("flan2021:cb:t1", VOCAB)
        task = fewshot.register_fewshot_task(base, 16, budget=budget)
        assert task.name == "flan2021:cb:t1:16shot"
        exs = _examples(task, "test")
    vocabulary = task.output_features["inputs"].vocabulary
    for ex in exs:
        assert 1 <= int(ex["num_shots"]) < 16
        assert len(vocabulary.encode(ex["inputs_pretokenized"].decode())) <= budget
        assert len(ex["inputs"]) <= budget + 1  # + EOS


def test_fewshot_rank_rows_share_their_exemplars():
    with mock_builder_data(num_examples=4, vary=True):
        rows = _examples(catalog.get_task_or_mixture("flan2021:rte:t0:rank:2shot", VOCAB), "test")
    by_idx: dict[int, set] = {}
    for r in rows:
        by_idx.setdefault(int(r["idx"]), set()).add(r["inputs_pretokenized"])
    assert len(by_idx) == 4 and all(len(v) == 1 for v in by_idx.values())
    assert all(len(r["targets_pretokenized"]) <= 3 for r in rows)  # "yes" / "no"


# ---------------------------------------------------------------------------------------------
# FLAN's protocol on the demo collection (2,000 generated train examples, no TFDS).


def _rows(name: str, split: str, n: int) -> list[dict]:
    task = catalog.get_task_or_mixture(name, VOCAB)
    ds = task.get_dataset(None, split=split, shuffle=False, try_in_mem_cache=False)
    return list(ds.take(n).as_numpy_iterator())


def test_exemplars_come_from_the_whole_train_split_never_the_example_itself():
    rows = _rows("demo:fact_nli:t0:3shot", "train", 150)
    drawn = np.concatenate([r["exemplar_ids"] for r in rows])
    assert all(int(r["num_shots"]) == 3 for r in rows)
    # Each example's exemplars are other train examples (position in the split) ...
    assert all(int(r["idx"]) not in set(r["exemplar_ids"].tolist()) for r in rows)
    assert all(len(set(r["exemplar_ids"].tolist())) == 3 for r in rows)
    # ... drawn from all of it, not only the first 512 (P[all 450 draws < 512] ~ 0).
    assert drawn.max() >= 512 and drawn.min() < 512
    # The same example gets the same exemplars every time (seeded by its inputs).
    again = _rows("demo:fact_nli:t0:3shot", "train", 150)
    assert [r["exemplar_ids"].tolist() for r in again] == [r["exemplar_ids"].tolist() for r in rows]
    text = rows[0]["inputs_pretokenized"].decode()
    assert text.count(fewshot.EXEMPLAR_SEPARATOR) == 3


def test_fewshot_budget_counts_exemplars_and_the_example_as_flan_prunes():
    base = catalog.get_task_or_mixture("demo:product_reviews:t1", VOCAB)
    budget = 300
    task = fewshot.register_fewshot_task(base, 16, budget=budget)
    rows = _rows(task.name, "test", 40)
    vocabulary = task.output_features["inputs"].vocabulary
    for r in rows:
        shots = int(r["num_shots"])
        assert 0 < shots < 16
        assert len(vocabulary.encode(r["inputs_pretokenized"].decode())) <= budget
        # Pruning keeps a prefix of the drawn exemplars: one more would not have fit.
        assert r["inputs_pretokenized"].decode().count(fewshot.EXEMPLAR_SEPARATOR) == shots


def test_fewshot_mixture_names_resolve_to_the_zero_shot_members_k_shot():
    for cluster in ("nli",):
        zero_train = catalog.get_task_or_mixture(f"demo:heldout_{cluster}:train", VOCAB)
        few_train = catalog.get_task_or_mixture(f"demo:heldout_{cluster}:train_fewshot", VOCAB)
        assert sorted(t.name for t in few_train.tasks) == sorted(
            f"{t.name}:16shot" for t in zero_train.tasks
        )
        zero_eval = catalog.get_task_or_mixture(f"demo:heldout_{cluster}:eval", VOCAB)
        few_eval = catalog.get_task_or_mixture(f"demo:heldout_{cluster}:eval_2shot", VOCAB)
        assert sorted(t.name for t in few_eval.tasks) == sorted(
            f"{t.name}:2shot" for t in zero_eval.tasks
        )
        # Same rates as the zero-shot mixtures (3k-capped train sizes; uncapped eval sizes).
        for few, zero in ((few_train, zero_train), (few_eval, zero_eval)):
            rates = {t.name: zero.get_rate(t) for t in zero.tasks}
            for t in few.tasks:
                assert few.get_rate(t) == rates[t.name.rsplit(":", 1)[0]]


def test_flan2021_fewshot_mixture_names_resolve():
    names = naming.parse_name("flan2021:heldout_nli:eval_5shot")
    assert (names.kind, names.shots, names.heldout) == ("eval", 5, ("nli",))
    assert naming.parse_name("flan2021:heldout_nli:train_fewshot").shots == 16
    assert naming.mixture_name("flan2021", ("nli",), "eval", shots=5) == (
        "flan2021:heldout_nli:eval_5shot"
    )
    assert naming.mixture_name("flan2021", ("nli",), "train", shots=16) == (
        "flan2021:heldout_nli:train_fewshot"
    )
    for bad in ("flan2021:heldout_nli:eval_0shot", "flan2021:heldout_nli:train_3shot"):
        with pytest.raises(naming.InvalidNameError):
            naming.parse_name(bad)
    train = catalog.get_task_or_mixture("flan2021:heldout_nli:train_fewshot", VOCAB)
    zero = catalog.get_task_or_mixture("flan2021:heldout_nli:train", VOCAB)
    assert len(train.tasks) == len(zero.tasks) > 30
    assert all(t.name.endswith(":16shot") for t in train.tasks)
    evals = catalog.get_task_or_mixture("flan2021:heldout_nli:eval_3shot", VOCAB)
    zero_eval = catalog.get_task_or_mixture("flan2021:heldout_nli:eval", VOCAB)
    assert {t.name for t in evals.tasks} == {f"{t.name}:3shot" for t in zero_eval.tasks}


PROMPTSOURCE_YAML = """\
dataset: super_glue
subset: rte
templates:
  0b2f-1: !Template
    answer_choices: yes ||| no
    id: 0b2f-1
    jinja: '{{premise}} Does this mean "{{hypothesis}}"? {{ answer_choices | join(" or ") }}
      ||| {{ answer_choices[label] }}'
    metadata: !TemplateMetadata
      choices_in_prompt: true
      metrics:
      - Accuracy
      original_task: true
    name: does_this_mean
    reference: ''
  0b2f-2: !Template
    id: 0b2f-2
    jinja: 'Write a sentence implied by: {{premise}} ||| {{hypothesis}}'
    metadata: !TemplateMetadata
      original_task: false
    name: write_implied
    reference: ''
"""


def test_promptsource_yaml_renders_through_our_tasks(tmp_path):
    path = tmp_path / "templates.yaml"
    path.write_text(PROMPTSOURCE_YAML)
    loaded = promptsource.load_templates(str(tmp_path))
    assert [t.name for t in loaded] == ["does_this_mean", "write_implied"]
    assert promptsource.render(loaded[0], RAW["super_glue/rte"]) == (
        'A dog runs in the park. Does this mean "An animal is outside."? yes or no',
        "no",
    )
    spec = promptsource.with_promptsource(SPECS["rte"], loaded)
    assert len(spec.templates) == len(SPECS["rte"].templates) + 2
    registry.register_collection("ps_rte", [spec], VOCAB)
    n = len(SPECS["rte"].templates)
    with mock_builder_data(num_examples=2):
        exs = _examples(seqio.get_mixture_or_task(f"ps_rte:rte:t{n}"), "test")
        second = _examples(seqio.get_mixture_or_task(f"ps_rte:rte:t{n + 1}"), "test")
        mixed = _examples(seqio.get_mixture_or_task("ps_rte:rte:mix"), "train")
    assert exs[0]["inputs_pretokenized"].decode() == (
        'A dog runs in the park. Does this mean "An animal is outside."? yes or no'
    )
    assert exs[0]["targets_pretokenized"].decode() == "no"
    assert second[0]["inputs_pretokenized"].decode() == (
        "Write a sentence implied by: A dog runs in the park."
    )
    assert len(mixed) == 2


def test_promptsource_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("templates:\n  x: !Template\n    jinja: 'no separator'\n    name: x\n")
    with pytest.raises(promptsource.PromptsourceError, match="no jinja with"):
        promptsource.load_templates(str(bad))
    with pytest.raises(FileNotFoundError):
        promptsource.load_templates(str(tmp_path / "missing.yaml"))
