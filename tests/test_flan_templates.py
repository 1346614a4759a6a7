"""FLAN's own templates read as data (``--templates=flan:PATH``) from a stand-in file."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import seqio

sys.path.insert(0, os.path.dirname(__file__))

from flan2021_raw import mock_builder_data  # noqa: E402

from flan_jax import catalog, flan_templates, registry, vocab  # noqa: E402
from flan_jax.tasks import flan2021  # noqa: E402

VOCAB = vocab.get_vocabulary("byte")
SPECS = {s.name: s for s in flan2021.SPECS}

# A small file in FLAN's layout, written by this test (not FLAN's templates).
STAND_IN = '''\
"""Stand-in templates in FLAN's layout."""

# pylint: disable=line-too-long

PATTERNS = {
    "rte": [
        ("{premise}\\n\\nIs it so that \\"{hypothesis}\\"?\\n\\n{options_}", "{answer}"),
        ("Premise {premise} / claim {hypothesis} {{braces}}\\n{options_}", "{answer}"),
        ("Make up a premise and a claim.", "P: {premise}\\nC: {hypothesis}"),
    ],
    "aeslc": [
        ("Subject of this mail?\\n\\n{body}", "{subject}"),
        ("Write a mail titled {subject}.", "{body}"),
    ],
    "common_gen": [
        ("Use all of these:\\n{concepts_newline}", "{target}"),
        ("Words: {concepts}", "{target}"),
    ],
    "wmt16_translate": [
        ("{sent1}\\n\\nTranslate to {lang2}", "{sent2}"),
        ("{sent2}\\n\\nTranslate to {lang1}", "{sent1}"),
        ("Write a sentence not in {lang1}.", "{sent2}"),
    ],
}
'''


def _checkout(tmp_path, text: str = STAND_IN) -> str:
    """A directory laid out like a FLAN checkout holding ``text`` as flan/templates.py."""
    (tmp_path / "flan").mkdir(exist_ok=True)
    (tmp_path / "flan" / "templates.py").write_text(text)
    return str(tmp_path)


def _first(task: str, split: str = "test") -> dict:
    ds = seqio.get_mixture_or_task(task).get_dataset(
        None, split=split, shuffle=False, try_in_mem_cache=False
    )
    return next(ds.as_numpy_iterator())


def test_patterns_are_mapped_onto_our_fields_in_flans_order(tmp_path):
    path = flan_templates.parse_setting("flan:" + _checkout(tmp_path))
    names = ("rte", "aeslc", "common_gen", "wmt16_de_en", "cb")
    result = flan_templates.apply([SPECS[n] for n in names], path)
    assert result.replaced == ("rte", "aeslc", "common_gen", "wmt16_de_en")
    assert result.missing == ("cb",)  # not in the file: keeps our templates
    specs = {s.name: s for s in result.specs}
    assert specs["cb"] is SPECS["cb"]

    rte = specs["rte"].templates
    assert [t.inputs for t in rte] == [
        '{premise}\n\nIs it so that "{hypothesis}"?\n\n{options}',
        "Premise {premise} / claim {hypothesis} {{braces}}\n{options}",
        "Make up a premise and a claim.",
    ]
    assert [(t.options, t.turned_around) for t in rte] == [
        (True, False),
        (True, False),
        (False, True),
    ]
    assert rte[2].targets == "P: {premise}\nC: {hypothesis}"
    aeslc = specs["aeslc"].templates
    assert [(t.inputs, t.targets, t.turned_around) for t in aeslc] == [
        ("Subject of this mail?\n\n{text}", "{answer}", False),
        ("Write a mail titled {answer}.", "{text}", True),
    ]
    wmt = specs["wmt16_de_en"].templates
    # FLAN's language names are constants written into the pattern; both directions are
    # original tasks; a template with no input field is turned around.
    assert [(t.inputs, t.targets, t.turned_around) for t in wmt] == [
        ("{answer}\n\nTranslate to German", "{source}", False),
        ("{source}\n\nTranslate to English", "{answer}", False),
        ("Write a sentence not in English.", "{source}", True),
    ]
    assert "flan_concepts_newline" in specs["common_gen"].fields


def test_flan_templates_register_under_our_task_names_and_render(tmp_path):
    path = flan_templates.parse_setting("flan:" + _checkout(tmp_path))
    specs = flan_templates.apply([SPECS["rte"], SPECS["common_gen"]], path).specs
    registry.register_collection("flantpl", specs, VOCAB)
    names = seqio.TaskRegistry.names()
    assert {"flantpl:rte:t0", "flantpl:rte:t2", "flantpl:rte:t0:rank", "flantpl:rte:mix"} <= set(
        names
    )
    with mock_builder_data(num_examples=2):
        ex = _first("flantpl:rte:t0")
        braces = _first("flantpl:rte:t1")
        rows = list(
            seqio.get_mixture_or_task("flantpl:rte:t0:rank")
            .get_dataset(None, split="test", shuffle=False, try_in_mem_cache=False)
            .as_numpy_iterator()
        )
        gen = _first("flantpl:common_gen:t0")
    # FLAN's options suffix, exactly: "OPTIONS:\n- yes\n- no" where {options_} stood.
    assert ex["inputs_pretokenized"].decode() == (
        'A dog runs in the park.\n\nIs it so that "An animal is outside."?\n\nOPTIONS:\n- yes\n- no'
    )
    assert ex["targets_pretokenized"].decode() == "no"  # rte label 1: not entailment
    assert braces["inputs_pretokenized"].decode().endswith("{braces}\nOPTIONS:\n- yes\n- no")
    assert sorted(r["targets_pretokenized"].decode() for r in rows[:2]) == ["no", "yes"]
    # An extra field computed from the raw example as FLAN does (concepts joined by newlines).
    assert gen["inputs_pretokenized"].decode() == "Use all of these:\ndog\nfrisbee\ncatch"
    assert gen["targets_pretokenized"].decode() == "The dog catches a frisbee."


@pytest.mark.parametrize(
    "body, line, what",
    [
        ('PATTERNS = {\n    "rte": [\n        (make("x"), "{answer}"),\n    ],\n}\n', 3, "Call"),
        ('SUFFIX = "x"\nPATTERNS = {"rte": [("a", "b")]}\n', 1, "Assign"),
        ('PATTERNS = {\n    "rte": [\n        (PREFIX, "{answer}"),\n    ],\n}\n', 3, "Name"),
        ('import os\nPATTERNS = {"rte": [("a", "b")]}\n', 1, "Import"),
        ('PATTERNS = {"rte": [(f"{x}", "b")]}\n', 1, "JoinedStr"),
        ('PATTERNS = {"rte": [("a" + "b", "c")]}\n', 1, "BinOp"),
        ('PATTERNS = dict(rte=[("a", "b")])\n', 1, "Call"),
    ],
)
def test_a_file_that_is_not_plain_data_is_refused_naming_file_and_line(tmp_path, body, line, what):
    path = flan_templates.parse_setting("flan:" + _checkout(tmp_path, body))
    with pytest.raises(flan_templates.FlanTemplatesError) as e:
        flan_templates.apply([SPECS["rte"]], path)
    message = str(e.value)
    assert message.startswith(f"{path}:{line}: ") and "\n" not in message
    assert what in message and "not plain data" in message


def test_unknown_key_missing_path_and_unmapped_field_are_refused(tmp_path):
    unknown = (
        'PATTERNS = {\n    "rte": [("{premise}", "{answer}")],\n    "rtee": [("a", "b")],\n}\n'
    )
    path = flan_templates.parse_setting("flan:" + _checkout(tmp_path, unknown))
    with pytest.raises(
        flan_templates.FlanTemplatesError, match=r"templates\.py:3: unknown dataset key 'rtee'"
    ):
        flan_templates.apply([SPECS["rte"]], path)

    with pytest.raises(flan_templates.FlanTemplatesError, match="no flan/templates.py under"):
        flan_templates.parse_setting("flan:" + str(tmp_path / "nowhere"))
    with pytest.raises(flan_templates.FlanTemplatesError, match="not 'ours' or 'flan:PATH'"):
        flan_templates.parse_setting("flan2021")
    assert flan_templates.parse_setting("ours") is None
    assert flan_templates.parse_setting(None) is None

    bad_field = (
        'PATTERNS = {\n    "rte": [\n        ("{premise} {glm_premise}", "{answer}"),\n    ],\n}\n'
    )
    path = flan_templates.parse_setting("flan:" + _checkout(tmp_path, bad_field))
    with pytest.raises(flan_templates.FlanTemplatesError, match=r":3: FLAN field \{glm_premise\}"):
        flan_templates.apply([SPECS["rte"]], path)


def test_every_mapped_flan_field_exists_in_our_specs(tmp_path):
    """A stand-in with one template per dataset key using every field the table maps."""
    lines = []
    for key in sorted(flan_templates.KNOWN_KEYS):
        used = set()
        for name, m in flan_templates.DATASETS.items():
            if m.key == key and name in SPECS:
                used |= {*m.rename, *m.extra, *m.constants}
        if not used:
            continue
        inputs = " ".join("{" + f + "}" for f in sorted(used))
        lines.append(f'    "{key}": [("{inputs}", "x")],')
    text = "PATTERNS = {\n" + "\n".join(lines) + "\n}\n"
    path = flan_templates.parse_setting("flan:" + _checkout(tmp_path, text))
    result = flan_templates.apply(flan2021.SPECS, path)  # TaskSpec checks every field
    assert set(result.replaced) == {
        n
        for n, m in flan_templates.DATASETS.items()
        if n in SPECS and (m.rename or m.extra or m.constants)
    }


def test_catalog_setting_is_checked_up_front(tmp_path):
    with pytest.raises(flan_templates.FlanTemplatesError, match="no flan/templates.py"):
        catalog.use_templates("flan:" + str(tmp_path / "missing"))
    catalog.use_templates(None)  # the default stays usable


@pytest.mark.slow  # a fresh process registers all of flan2021 (~35 s on 2 cores)
def test_cli_lists_flan2021_with_flans_templates(tmp_path):
    root = _checkout(tmp_path)
    env = {**os.environ, "FLAN_JAX_DEBUG": ""}
    argv = [sys.executable, "-m", "flan_jax.cli", f"--templates=flan:{root}", "list", "flan2021"]
    run = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    rows = {line.split()[0]: line for line in run.stdout.splitlines() if line.startswith("    ")}
    assert " 3 templates" in rows["rte"] and " 2 templates" in rows["aeslc"]
    assert " 10 templates" in rows["cb"]  # not in the stand-in: ours

    bad = [sys.executable, "-m", "flan_jax.cli", "--templates=flan:/no/such/dir", "list"]
    run = subprocess.run(bad, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 2
    assert run.stderr.strip().count("\n") == 0 and "no flan/templates.py" in run.stderr
