"""Few-shot variants (``...:<k>shot``) and promptsource-format templates, on mocked TFDS."""

from __future__ import annotations

import os
import sys

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
