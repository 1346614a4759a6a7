"""The catalog: names -> collections, tasks and mixtures, lazy and with an explicit vocabulary.

Also runs the README's "Adding a dataset" example as a user would write it: a tasks module and a
mixtures module found by name, rendered on TFDS mock data.
"""

from __future__ import annotations

import pathlib
import re
import sys

import pytest
import seqio
import tensorflow_datasets as tfds

import flan_jax.mixtures
import flan_jax.tasks
from flan_jax import catalog, registry, vocab
from flan_jax.registry import RegistryError

VOCAB = vocab.get_vocabulary("byte")
README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_unknown_names():
    with pytest.raises(RegistryError, match="unknown task 'demo:nope:t0'"):
        catalog.get_task_or_mixture("demo:nope:t0", VOCAB)
    with pytest.raises(RegistryError, match="unknown dataset 'nope' in collection 'demo'"):
        catalog.get_task_or_mixture("demo:nope:t0:2shot", VOCAB)
    with pytest.raises(RegistryError, match="no collection 'zzz'.*known collections: demo"):
        catalog.get_task_or_mixture("zzz:a:t0", VOCAB)
    with pytest.raises(RegistryError, match="unknown cluster 'nope' in collection 'demo'"):
        catalog.get_task_or_mixture("demo:heldout_nope:train", VOCAB)
    with pytest.raises(RegistryError, match="is not a task or mixture name"):
        catalog.get_task_or_mixture("not a name", VOCAB)
    assert {"demo", "flan2021"} <= set(catalog.available_collections())


def test_one_registration_per_process_and_vocabulary():
    demo = catalog.get_collection("demo", VOCAB)
    assert catalog.get_collection("demo", seqio.ByteVocabulary()) is demo  # equal: a no-op
    task = catalog.get_task_or_mixture("demo:fact_nli:t0", VOCAB)
    assert task.output_features["targets"].vocabulary == VOCAB
    other = seqio.SentencePieceVocabulary("/nowhere/spm.model")  # never opened
    with pytest.raises(RegistryError) as e:
        catalog.get_task_or_mixture("demo:fact_nli:t0", other)
    message = str(e.value)
    assert "collection 'demo' is registered with vocabulary byte" in message
    assert "not /nowhere/spm.model" in message and "\n" not in message


def test_names_built_on_demand():
    # Few-shot over a rank task draws its exemplars from the generative twin.
    task = catalog.get_task_or_mixture("demo:addition:t0:rank:2shot", VOCAB)
    assert task.name == "demo:addition:t0:rank:2shot"
    assert "demo:addition:t0:2shot" not in seqio.TaskRegistry.names()
    mixture = catalog.get_task_or_mixture("demo:heldout_nli+strings:train:tpl2", VOCAB)
    assert {t.name for t in mixture.tasks} == {
        "demo:product_reviews:mix:tpl2",
        "demo:movie_reviews:mix:tpl2",
        "demo:addition:mix:tpl2",
        "demo:compare:mix:tpl2",
    }


def test_directly_registered_collections_are_found():
    spec = catalog.get_collection("demo", VOCAB).spec("compare")
    registry.register_collection("cattest", [spec], VOCAB)
    assert catalog.get_task_or_mixture("cattest:compare:t1", VOCAB).name == "cattest:compare:t1"
    assert catalog.get_task_or_mixture("cattest:all:train", VOCAB).name == "cattest:all:train"


# ---------------------------------------------------------------------------------------------
# Modules found by name: the README example, and a module that does not follow the protocol.


def _readme_blocks() -> dict[str, str]:
    """``{first-line path comment: code}`` of the python blocks under "Adding a dataset"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Adding a dataset", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return {b.split("\n", 1)[0].lstrip("# ").strip(): b for b in blocks if b.startswith("# ")}


@pytest.fixture
def user_modules(tmp_path, monkeypatch):
    """Folders searched for ``flan_jax.tasks.<c>`` / ``flan_jax.mixtures.<c>`` besides ours."""
    (tmp_path / "tasks").mkdir()
    (tmp_path / "mixtures").mkdir()
    monkeypatch.setattr(
        flan_jax.tasks, "__path__", [*flan_jax.tasks.__path__, str(tmp_path / "tasks")]
    )
    monkeypatch.setattr(
        flan_jax.mixtures, "__path__", [*flan_jax.mixtures.__path__, str(tmp_path / "mixtures")]
    )
    yield tmp_path
    for name in [m for m in sys.modules if m.endswith((".mytasks", ".oldstyle"))]:
        del sys.modules[name]


def test_readme_example_registers_and_renders(user_modules):
    blocks = _readme_blocks()
    assert set(blocks) >= {"tasks/mytasks.py", "mixtures/mytasks.py"}
    for path in ("tasks/mytasks.py", "mixtures/mytasks.py"):
        (user_modules / path).write_text(blocks[path])
    assert "mytasks" in catalog.available_collections()
    task = catalog.get_task_or_mixture("mytasks:rte:t0", VOCAB)
    assert catalog.get_collection("mytasks", VOCAB).clusters == ("nli",)
    assert "mytasks:rte:t1:rank" in seqio.TaskRegistry.names()
    assert "mytasks:all:train" in seqio.MixtureRegistry.names()
    with tfds.testing.mock_data(num_examples=2):
        ex = next(task.get_dataset(None, split="test", shuffle=False).as_numpy_iterator())
    inputs = ex["inputs_pretokenized"].decode()
    assert "\nCan we conclude that " in inputs and inputs.endswith("OPTIONS:\n- yes\n- no")
    assert ex["targets_pretokenized"].decode() in ("yes", "no")


def test_module_without_register_is_one_line(user_modules):
    (user_modules / "tasks" / "oldstyle.py").write_text("SPECS = []\n")
    with pytest.raises(RegistryError) as e:
        catalog.get_collection("oldstyle", VOCAB)
    assert "tasks/oldstyle.py has no register(vocabulary) function" in str(e.value)
    assert "\n" not in str(e.value)
