"""TaskSpec -> seqio tasks: per-template, mixed-template training and rank-classification tasks."""

import collections

import pytest
import seqio
import tensorflow as tf

from flan_jax import catalog, naming, registry
from flan_jax.registry import RegistryError, TaskSpec
from flan_jax.sources import FunctionSource
from flan_jax.templates import Template, TemplateError

VOCAB = seqio.ByteVocabulary()


def _rows(n: int) -> list[dict]:
    return [{"text": f"item {i}", "label": i % 2} for i in range(n)]


def _source(sizes=None) -> FunctionSource:
    sizes = sizes or {"train": 40, "validation": 4, "test": 6}

    def fn(split):
        rows = _rows(sizes[split])
        return tf.data.Dataset.from_tensor_slices({k: [r[k] for r in rows] for k in rows[0]})

    return FunctionSource(fn, sizes)


def _fields(ex):
    options = tf.constant(["bad", "good"])
    return {"text": ex["text"], "options": options, "answer": tf.gather(options, ex["label"])}


TEMPLATES = (
    Template("Is {text} good?", options=True),
    Template("Rate: {text}", options=True),
    Template("{text}\nGood or bad?"),
    Template("Write something {answer}.", targets="{text}", turned_around=True),
)


def _spec(
    name="toy", cluster="alpha", templates=TEMPLATES, fields=("text", "options", "answer"), **kw
):
    return TaskSpec(
        name=name,
        cluster=cluster,
        source=kw.pop("source", _source()),
        fields_fn=kw.pop("fields_fn", _fields),
        fields=fields,
        templates=templates,
        **kw,
    )


@pytest.fixture(scope="module")
def toy():
    return registry.register_collection("regtest", [_spec()], VOCAB)


def _texts(task_name, split="validation"):
    task = seqio.get_mixture_or_task(task_name)
    ds = task.get_dataset(None, split=split, shuffle=False)
    return [
        {k: (v.decode() if isinstance(v, bytes) else v) for k, v in ex.items()}
        for ex in ds.as_numpy_iterator()
    ]


def test_registers_every_task_kind(toy):
    names = {n for n in seqio.TaskRegistry.names() if n.startswith("regtest:")}
    assert names == {
        "regtest:toy:mix",
        "regtest:toy:t0",
        "regtest:toy:t1",
        "regtest:toy:t2",
        "regtest:toy:t3",
        "regtest:toy:t0:rank",
        "regtest:toy:t1:rank",
        "regtest:toy:t2:rank",  # no options shown, still ranked over the options (FLAN)
    }
    assert toy.clusters == ("alpha",)
    assert toy.spec("toy").eval_templates == (0, 1, 2)


def test_per_template_golden_rendering(toy):
    task = seqio.get_mixture_or_task("regtest:toy:t0")
    ds = task.get_dataset(None, split="validation", shuffle=False).take(2)
    expected = [
        {
            "inputs_pretokenized": "Is item 0 good?\n\nOPTIONS:\n- bad\n- good",
            "targets_pretokenized": "bad",
            "targets": VOCAB.encode("bad") + [1],
            "idx": 0,
        },
        {
            "inputs_pretokenized": "Is item 1 good?\n\nOPTIONS:\n- bad\n- good",
            "targets_pretokenized": "good",
            "targets": VOCAB.encode("good") + [1],
            "idx": 1,
        },
    ]
    # assert_dataset compares the given keys exactly (strings and token ids, EOS included).
    seqio.test_utils.assert_dataset(
        ds.map(
            lambda ex: {
                k: ex[k] for k in ("inputs_pretokenized", "targets_pretokenized", "targets", "idx")
            }
        ),
        expected,
    )
    turned = _texts("regtest:toy:t3")[0]
    assert (turned["inputs_pretokenized"], turned["targets_pretokenized"]) == (
        "Write something bad.",
        "item 0",
    )


def test_rank_task_rows(toy):
    rows = _texts("regtest:toy:t1:rank")
    assert len(rows) == 2 * 4  # 4 validation examples x 2 options
    first = rows[:2]
    assert [r["targets_pretokenized"] for r in first] == ["bad", "good"]
    assert {r["inputs_pretokenized"] for r in first} == {"Rate: item 0\n\nOPTIONS:\n- bad\n- good"}
    assert [(r["idx"], r["option_index"], bool(r["is_correct"])) for r in first] == [
        (0, 0, True),
        (0, 1, False),
    ]
    # Every group has exactly one correct option.
    correct = collections.Counter(r["idx"] for r in rows if r["is_correct"])
    assert correct == {0: 1, 1: 1, 2: 1, 3: 1}
    post = registry.rank_postprocessor(b"bad", example=rows[1], is_target=True)
    assert post == (0, 1, False)


def test_training_task_spreads_templates_evenly_and_reproducibly(toy):
    a = _texts("regtest:toy:mix", split="train")
    b = _texts("regtest:toy:mix", split="train")
    assert [r["template"] for r in a] == [r["template"] for r in b]
    counts = collections.Counter(r["template"] for r in a)
    assert counts == {0: 10, 1: 10, 2: 10, 3: 10}  # 40 examples, 4 templates: exactly even
    # Each block of 4 consecutive examples uses each template once.
    for start in range(0, 40, 4):
        assert sorted(r["template"] for r in a[start : start + 4]) == [0, 1, 2, 3]
    # A different seed gives a different (still even) assignment.
    other = [int(registry.template_choice(tf.constant(i, tf.int64), 4, seed=1)) for i in range(40)]
    assert other != [r["template"] for r in a]
    assert collections.Counter(other) == {0: 10, 1: 10, 2: 10, 3: 10}


def test_unknown_field_fails_at_registration_with_one_line():
    with pytest.raises(TemplateError) as e:
        _spec(templates=(Template("{text}", options=True), Template("{txt} ok")))
    assert str(e.value).startswith("dataset 'toy' template 1 uses field 'txt'")
    assert "\n" not in str(e.value)


def test_field_missing_at_first_read_names_template():
    spec = _spec(
        name="liar", fields_fn=lambda ex: {"options": tf.constant(["a"]), "answer": ex["text"]}
    )
    registry.register_collection("regtest_liar", [spec], VOCAB)
    task = seqio.get_mixture_or_task("regtest_liar:liar:t0")
    with pytest.raises(
        TemplateError,
        match="dataset 'liar' template 0 uses field 'text', which fields_fn did not return",
    ):
        task.get_dataset(None, split="train", shuffle=False)


def test_empty_options_rejected():
    spec = _spec(
        name="empty",
        fields_fn=lambda ex: {
            "text": ex["text"],
            "options": tf.constant([], tf.string),
            "answer": ex["text"],
        },
    )
    registry.register_collection("regtest_empty", [spec], VOCAB)
    with pytest.raises(TemplateError, match="options are empty"):
        seqio.get_mixture_or_task("regtest_empty:empty:t0").get_dataset(None, split="train")


def test_duplicate_registration(toy):
    with pytest.raises(RegistryError, match="collection 'regtest' is already registered"):
        registry.register_collection("regtest", [_spec()], VOCAB)
    with pytest.raises(RegistryError, match="dataset 'toy' appears twice"):
        registry.register_collection("regtest_dup", [_spec(), _spec()], VOCAB)
    # A clash with tasks of another collection leaves the registry untouched.
    before = set(seqio.TaskRegistry.names())
    with pytest.raises(
        RegistryError, match="exclusion rule for 'alpha' names unknown cluster 'nope'"
    ):
        registry.register_collection("regtest_x", [_spec()], VOCAB, exclusions={"alpha": ("nope",)})
    assert set(seqio.TaskRegistry.names()) == before


def test_bad_collection_rules_leave_the_registry_untouched():
    before = set(seqio.TaskRegistry.names())
    with pytest.raises(RegistryError, match="overlap rule names unknown dataset 'nope'"):
        rule = registry.OverlapRule("toy", lambda ex: ex["text"], "nope", lambda ex: ex["text"])
        registry.register_collection("regtest_ov", [_spec()], VOCAB, overlaps=[rule])
    with pytest.raises(RegistryError, match="cluster_order of 'regtest_co' must list each"):
        registry.register_collection("regtest_co", [_spec()], VOCAB, cluster_order=("beta",))
    assert set(seqio.TaskRegistry.names()) == before
    assert registry.registered_collection("regtest_ov") is None


def test_registration_does_no_io():
    calls = []

    def fn(split):
        calls.append(split)
        return tf.data.Dataset.from_tensor_slices({"text": ["x"], "label": [0]})

    spec = _spec(name="lazy", source=FunctionSource(fn, {"train": 1, "validation": 1, "test": 1}))
    registry.register_collection("regtest_lazy", [spec], VOCAB)
    assert calls == []
    _texts(naming.task_name("regtest_lazy", "lazy", 0))
    assert calls == ["validation"]


def test_demo_golden_rendering():
    catalog.get_collection("demo", VOCAB)
    ex = _texts("demo:fact_nli:t0", split="test")[0]
    assert ex["inputs_pretokenized"] == (
        "Premise: Yara has 9 orange shells and 2 purple shells.\n"
        "Hypothesis: Yara has 9 orange shells.\n"
        "Does the premise entail the hypothesis?\n\n"
        "OPTIONS:\n- yes\n- it is not possible to tell\n- no"
    )
    assert ex["targets_pretokenized"] == "yes"
