"""Held-out mixtures: members, exclusion rules and examples-proportional rates, by hand."""

import pytest
import seqio
import tensorflow as tf

from flan_jax import catalog, mixing, registry, vocab
from flan_jax.registry import RegistryError, TaskSpec
from flan_jax.sources import FunctionSource
from flan_jax.templates import Template


def _spec(name: str, cluster: str, n_train: int) -> TaskSpec:
    sizes = {"train": n_train, "validation": 2, "test": 3}

    def fn(split):
        return tf.data.Dataset.from_tensor_slices(
            {"text": ["x"] * sizes[split], "label": [0] * sizes[split]}
        )

    def fields(ex):
        options = tf.constant(["no", "yes"])
        return {"text": ex["text"], "options": options, "answer": tf.gather(options, ex["label"])}

    return TaskSpec(
        name=name,
        cluster=cluster,
        source=FunctionSource(fn, sizes),
        fields_fn=fields,
        fields=("text", "options", "answer"),
        templates=(
            Template("{text}?", options=True),
            Template("{text}"),
            Template("say {answer}", targets="{text}", turned_around=True),
        ),
    )


@pytest.fixture(scope="module")
def collection():
    specs = [
        _spec("big", "nli", 50_000),
        _spec("mid", "nli", 2_000),
        _spec("para", "paraphrase", 10_000),
        _spec("senti", "sentiment", 700),
        _spec("qa", "qa", 40_000),
    ]
    return registry.register_collection(
        "mixtest",
        specs,
        seqio.ByteVocabulary(),
        exclusions={"nli": ("paraphrase",), "paraphrase": ("nli",)},
    )


def test_rate_rule():
    assert mixing.examples_proportional_rate(50_000, 30_000, 3_000) == 3_000  # max rate binds
    assert mixing.examples_proportional_rate(2_000, 30_000, 3_000) == 2_000
    assert mixing.examples_proportional_rate(50_000, 1_000, 3_000) == 1_000  # cap binds
    assert mixing.examples_proportional_rate(500, None, None) == 500


def test_heldout_members_and_rates(collection):
    plan = mixing.register_heldout_mixtures(collection, ("sentiment",), cap=30_000, max_rate=3_000)
    assert plan.excluded == ("sentiment",)
    assert [s.name for s in plan.train_datasets] == ["big", "mid", "para", "qa"]
    mixture = seqio.get_mixture_or_task("mixtest:heldout_sentiment:train")
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
    assert rates == {
        "mixtest:big:mix": 3_000.0,
        "mixtest:mid:mix": 2_000.0,
        "mixtest:para:mix": 3_000.0,
        "mixtest:qa:mix": 3_000.0,
    }
    # The eval mixture holds the held-out cluster's zero-shot templates (no turned-around one),
    # each scored by rank classification over the dataset's options whether or not the
    # template shows them (FLAN's protocol), weighted by the test size.
    eval_mix = seqio.get_mixture_or_task("mixtest:heldout_sentiment:eval")
    assert sorted(t.name for t in eval_mix.tasks) == [
        "mixtest:senti:t0:rank",
        "mixtest:senti:t1:rank",
    ]
    assert all(eval_mix.get_rate(t) == 3.0 for t in eval_mix.tasks)


def test_cap_and_max_rate_both_bind(collection):
    plan = mixing.register_heldout_mixtures(collection, ("qa",), cap=1_000, max_rate=5_000)
    assert plan.excluded == ("qa",)
    mixture = seqio.get_mixture_or_task(plan.train_name)
    rates = {t.name: mixture.get_rate(t) for t in mixture.tasks}
    # cap=1000 binds for every dataset above it, then nothing exceeds max_rate.
    assert rates == {
        "mixtest:big:mix": 1_000.0,
        "mixtest:mid:mix": 1_000.0,
        "mixtest:para:mix": 1_000.0,
        "mixtest:senti:mix": 700.0,
    }


def test_extra_exclusion_rule(collection):
    plan = mixing.plan_heldout(collection, ("nli",))
    assert plan.excluded == ("nli", "paraphrase")
    assert [s.name for s in plan.train_datasets] == ["senti", "qa"]
    plan = mixing.plan_heldout(collection, ("paraphrase",))
    assert plan.excluded == ("nli", "paraphrase")
    # Evaluated clusters are only the held-out ones, not the ones dropped with them.
    assert all(t.startswith("mixtest:para:") for t in plan.eval_tasks)
    # Extra exclusions given at build time add to the collection's rules.
    plan = mixing.plan_heldout(collection, ("sentiment",), extra_exclusions={"sentiment": ["qa"]})
    assert plan.excluded == ("sentiment", "qa")


def test_bad_heldout(collection):
    with pytest.raises(
        RegistryError,
        match="unknown cluster 'summaries' in collection 'mixtest'; known clusters: nli, paraphrase, sentiment, qa",
    ):
        mixing.plan_heldout(collection, ("summaries",))
    with pytest.raises(RegistryError, match="leaves no training data"):
        mixing.plan_heldout(collection, ("nli", "sentiment", "qa"))


def test_demo_mixtures_registered():
    catalog.get_collection("demo", vocab.get_vocabulary("byte"))
    names = seqio.MixtureRegistry.names()
    for cluster in ("nli", "sentiment", "arithmetic", "strings"):
        assert f"demo:heldout_{cluster}:train" in names
        assert f"demo:heldout_{cluster}:eval" in names
    mixture = seqio.get_mixture_or_task("demo:heldout_nli:train")
    assert not any(":fact_nli:" in t.name or ":order_nli:" in t.name for t in mixture.tasks)
    assert len(mixture.tasks) == 6
