"""The FLAN 2021 collection: specs, golden renderings, every dataset through seqio (mocked TFDS),
held-out mixtures and rates, overlap removal, missing-data messages, the data card.
"""

from __future__ import annotations

import os
import sys

import pytest
import seqio
import tensorflow as tf
import tensorflow_datasets as tfds

sys.path.insert(0, os.path.dirname(__file__))

from flan2021_raw import RAW, as_tensors, mock_builder_data  # noqa: E402

from flan_jax import catalog, mixing, naming, registry, sources, templates, vocab  # noqa: E402
from flan_jax.mixtures import flan2021 as flan_mixtures  # noqa: E402
from flan_jax.tasks import flan2021  # noqa: E402

VOCAB = vocab.get_vocabulary("byte")
C = catalog.get_collection("flan2021", VOCAB)
SPECS = {s.name: s for s in C.specs}

# dataset -> (template index, inputs, targets) from RAW in flan2021_raw.py: a sample of every
# cluster, checked against FLAN's answer strings and framing (e.g. ANLI "It's impossible to
# say", CoLA "unacceptable", WiC "different meanings", ReCoRD and Winogrande continuations).
GOLDEN = {
    "anli_r1": (
        0,
        "The sun rose at six.\n\nGiven the paragraph above, is this statement true?\nIt was dark at noon.\n\nOPTIONS:\n- Yes\n- It's impossible to say\n- No",
        "No",
    ),
    "cb": (
        1,
        "A dog runs in the park.\n\nIs this sentence implied by what was said?\nAn animal is outside.\n\nOPTIONS:\n- Yes\n- No\n- It's impossible to say",
        "It's impossible to say",
    ),
    "mnli_matched": (
        9,
        'Assume that "A dog runs in the park." is true. Is "An animal is outside." then true?\n\nOPTIONS:\n- yes\n- it is not possible to tell\n- no',
        "yes",
    ),
    "rte": (
        9,
        "Make up a short passage and a sentence that it entails or not.",
        "Premise: A dog runs in the park.\n\nHypothesis: An animal is outside.",
    ),
    "snli": (9, "Write one short sentence describing a scene.", "An animal is outside."),
    "wnli": (
        0,
        'The cup fell off the table because it was round.\n\nAfter reading the sentence above, is "The cup was round." true?\n\nOPTIONS:\n- no\n- yes',
        "yes",
    ),
    "qnli": (9, "Ask a question about a fact that has a clear answer.", "Where is Paris?"),
    "copa": (
        9,
        "Write two sentences, the second following from the first.",
        "He dropped a hammer on his foot. The man broke his toe.",
    ),
    "hellaswag": (
        1,
        "She cracks two eggs into a bowl.\n\nWhat comes next?\n\nOPTIONS:\n- She whisks them.\n- She paints the wall.\n- She swims.\n- She sings to the eggs.",
        "She whisks them.",
    ),
    "story_cloze": (
        8,
        "Write a short story whose last sentence is: Flowers grew.",
        "Ann bought seeds. She planted them. She watered them. Weeks passed. Flowers grew.",
    ),
    "sentiment140": (
        1,
        "What is the sentiment of the following tweet?\n\nrainy monday again\n\nOPTIONS:\n- negative\n- positive",
        "negative",
    ),
    "sst2": (8, "Write a positive movie review sentence.", "a gorgeous, witty film"),
    "mrpc": (
        9,
        'Reply "yes" if these two sentences say the same thing and "no" if they do not.\n\nHe left early.\nHe departed early.\n\nOPTIONS:\n- no\n- yes',
        "yes",
    ),
    "paws_wiki": (
        9,
        'Reply "yes" if these two sentences say the same thing and "no" if they do not.\n\nTom met Ann in May .\nAnn met Tom in May .',
        "yes",
    ),
    "stsb": (
        0,
        "How similar in meaning are these sentences, from 0 (unrelated) to 5 (same)?\n\nA man plays guitar.\nA person plays an instrument.\n\nOPTIONS:\n- 0\n- 1\n- 2\n- 3\n- 4\n- 5",
        "4",
    ),
    "arc_easy": (
        5,
        "Q: Which is a mammal?\nA:\n\nOPTIONS:\n- frog\n- whale\n- shark\n- snake",
        "whale",
    ),
    "natural_questions": (2, "Q: who wrote hamlet?\nA:", "Shakespeare"),
    "trivia_qa": (1, "Answer this question: Which planet is the Red Planet?", "mars"),
    "dart": (
        0,
        "Write a sentence that expresses all of the following facts.\n\nMars | color | red",
        "Mars is red.",
    ),
    "e2e_nlg": (
        0,
        "Write a sentence describing a restaurant with these attributes: name = Aromi, food = Italian",
        "Aromi serves Italian food.",
    ),
    "para_crawl_en_es": (
        1,
        "Translate this Spanish text into English:\n\nBuenos días.",
        "Good morning.",
    ),
    "wmt16_de_en": (
        0,
        "Translate this English text into German:\n\nGood morning.",
        "Guten Morgen.",
    ),
    "bool_q": (
        5,
        "Tomatoes are fruits.\n\nQ: is a tomato a fruit?\n\nOPTIONS:\n- no\n- yes",
        "yes",
    ),
    "squad_v2": (
        0,
        'The Moon orbits Earth.\n\nAnswer this question based on the passage. If the passage does not answer it, reply "unanswerable".\nWho lives on the Moon?',
        "unanswerable",
    ),
    "drop": (
        8,
        "Write a question about the following passage: Ann scored 3 goals and Bo 2.",
        "How many goals in total?",
    ),
    "record": (
        1,
        "Rome is old.\n\nTourists love\n\nOPTIONS:\n- Rome for its ruins.\n- Paris for its ruins.\n- Roma for its ruins.",
        "Rome for its ruins.",
    ),
    "winogrande": (
        5,
        "How should this sentence be completed?\n\nThe trophy did not fit in the case because",
        "the trophy was too big.",
    ),
    "wsc273": (
        0,
        "The city councilmen refused the demonstrators a permit because\n\nOPTIONS:\n- the city councilmen feared violence.\n- the demonstrators feared violence.",
        "the city councilmen feared violence.",
    ),
    "cola": (
        0,
        "Is the following sentence grammatically acceptable?\n\nHim went home.\n\nOPTIONS:\n- unacceptable\n- acceptable",
        "unacceptable",
    ),
    "wic": (
        0,
        'Does the word "bank" mean the same thing in these two sentences?\nHe sat on the river bank.\nShe went to the bank to withdraw cash.\n\nOPTIONS:\n- different meanings\n- the same meaning',
        "different meanings",
    ),
    "fix_punct": (0, "Add punctuation to this text: Hello world Its me", "Hello, world! It's me."),
    "true_case": (
        0,
        "hello, world! it's me.\n\nRewrite the text above with correct capitalization.",
        "Hello, world! It's me.",
    ),
    "word_segment": (3, "Separate the words: Hello,world!It'sme.", "Hello, world! It's me."),
    "aeslc": (
        0,
        "Write a subject line of this email:\n\nPlease review the attached budget.",
        "Budget",
    ),
    "cnn_dailymail": (
        0,
        "Write a list of highlights of this news article:\n\nRain fell in London.",
        "London rain.",
    ),
    "ag_news_subset": (
        8,
        "Write a headline for this news story:\n\nThe local team won.",
        "Team wins cup",
    ),
    "wsc": (
        0,
        'Mark told Pete he was late.\n\nIn the passage above, does "he" refer to "Pete"?\n\nOPTIONS:\n- no\n- yes',
        "yes",
    ),
    "quac": (
        0,
        "Nina Simone (Career)\n\nShe began playing piano at three.\n\nQ: When did she start?\nA:",
        "at three",
    ),
    "trec": (
        6,
        "Determine the question type.\nHow far is the Moon?\n\nOPTIONS:\n- description\n- entity\n- abbreviation\n- human\n- numeric\n- location",
        "numeric",
    ),
    "coqa": (
        0,
        "Kim has a cat named Tom.\n\nAnswer the following questions:\n1. Who has a cat?\n2. What is its name?",
        "1. Kim\n2. Tom",
    ),
    "cosmos_qa": (
        0,
        "I missed the bus, so I walked.\n\nQuestion: Why did I walk?\n\nOPTIONS:\n- I missed the bus.\n- I like rain.\n- I had a car.\n- None of the above.",
        "I missed the bus.",
    ),
    "common_gen": (
        0,
        "Write a sentence that uses all of these words: dog, frisbee, catch",
        "The dog catches a frisbee.",
    ),
    "multirc": (
        1,
        "Read the passage, then decide if the answer is correct.\n\nSam has a red bike.\n\nQ: What color is the bike?\nA: Blue\n\nOPTIONS:\n- no\n- yes",
        "no",
    ),
    "piqa": (
        4,
        "What is the best way to dry wet shoes\n\nOPTIONS:\n- Stuff them with newspaper.\n- Fill them with water.",
        "Stuff them with newspaper.",
    ),
    "imdb_reviews": (
        0,
        "A touching film.\nLoved it.\n\nIs this movie review positive or negative?\n\nOPTIONS:\n- negative\n- positive",
        "positive",
    ),
    "definite_pronoun_resolution": (
        2,
        'In "The cat chased the mouse because it was hungry.", what is "it"?\n\nOPTIONS:\n- the cat\n- the mouse',
        "the cat",
    ),
    "openbookqa": (
        3,
        "Given that plants require sunlight to grow, plants need\n\nOPTIONS:\n- sunlight\n- plastic\n- noise\n- ice",
        "sunlight",
    ),
    "squad_v1": (3, "Eiffel Tower\nThe tower is in Paris.\n\nQ: Where is the tower?", "Paris"),
    "math_dataset": (2, "Math problem: Solve 2*x = 4 for x.\nAnswer:", "2"),
    "xsum": (
        5,
        "Condense the BBC article below into a one-sentence summary.\nThe council approved a new park.",
        "New park approved.",
    ),
}

# FLAN's split strings (flan/tasks.py), copied by hand for a sample of every cluster.
FLAN_SPLITS = {
    "cb": ("train[:-50]", "train[-50:]", "validation"),
    "wnli": ("train[:-30]", "train[-30:]", "validation"),
    "anli_r1": ("train", "validation[:200]", "test"),
    "mnli_mismatched": ("train[:30000]", "train[-200:]", "validation_mismatched"),
    "piqa": ("train[:-100]", "train[-100:]", "validation"),
    "story_cloze": ("validation[:-200]", "validation[-200:]", "test"),
    "sentiment140": ("train[:30000]", "train[-200:]", "test"),
    "stsb": ("train[:-100]", "train[-100:]", "validation"),
    "paws_wiki": ("train[:30000]", "validation[:200]", "test"),
    "arc_challenge": ("train[:-200]", "train[-200:]", "test"),
    "dart": ("train[:30000]", "train[-200:]", "validation"),
    "e2e_nlg": ("train[:30000]", "train[-200:]", "validation"),
    "para_crawl_en_es": ("train[:30000]", "train[-1200:-1000]", "train[-1000:]"),
    "wmt16_ro_en": ("train[:30000]", "validation[:200]", "test"),
    "drop": ("train[:30000]", "train[-200:]", "dev"),
    "openbookqa": ("train", "validation[:200]", "test"),
    "record": ("train[:30000]", "train[-200:]", "validation"),
    "cosmos_qa": ("train[:-200]", "train[-200:]", "validation"),
    "winogrande": ("train_xl[:30000]", "train_xl[-200:]", "validation"),
    "coqa": ("train[:-100]", "train[-100:]", "test"),
    "true_case": ("train[:30000]", "train[30000:30200]", "train[-3000:]"),
    "fix_punct": ("train[30200:60200]", "train[60200:60400]", "train[-3000:]"),
    "word_segment": ("train[60400:90400]", "train[90400:90600]", "train[-3000:]"),
    "aeslc": ("train", "validation[-200:]", "test"),
    "opinion_abstracts_idebate": ("train[:-600]", "train[-600:-500]", "train[-500:]"),
    "samsum": ("train", "validation[:200]", "test"),
}

# FLAN's template structure (flan/templates.py; O options shown, N original without options,
# T turned around), by hand for a sample of every cluster.
FLAN_STRUCTURE = {
    "rte": "OOOOOOOOOT",
    "mnli_matched": "OOOOOOOOOO",
    "snli": "OOOOOOOOOT",
    "copa": "OOOOOOOOTT",
    "sentiment140": "OOOOOOTTTT",
    "paws_wiki": "OOOOOOOOON",
    "arc_easy": "OOOOOOOTTT",
    "common_gen": "NNNNNNTTTT",
    "wmt16_de_en": "NNNNNNNNTT",
    "squad_v2": "NNNNNNNNNN",
    "record": "OOOOOOOOOO",
    "winogrande": "OOOOONNNNN",
    "coqa": "NNNNNNNNNT",
    "true_case": "NNNNNNNNNT",
    "opinion_abstracts_idebate": "NNNNNNTTTT",
}

PRIMARY = {
    "anli_r2": "accuracy", "copa": "accuracy", "imdb_reviews": "accuracy", "mrpc": "accuracy",
    "trivia_qa": "em", "web_nlg_en": "rougeL", "wmt14_fr_en": "bleu", "squad_v1": "f1",
    "record": "accuracy", "wsc273": "accuracy", "fix_punct": "edit_distance", "xsum": "rougeL",
}  # fmt: skip


def _builder(spec: registry.TaskSpec) -> tfds.core.DatasetBuilder:
    return tfds.builder(spec.source.builder)


def _raw_key(spec: registry.TaskSpec) -> str:
    b = _builder(spec)
    return f"{b.name}/{b.builder_config.name}" if b.builder_config else b.name


# ---------------------------------------------------------------------------------------------
# The collection as data.


def _structure(spec) -> str:
    return "".join("T" if t.turned_around else ("O" if t.options else "N") for t in spec.templates)


def test_collection_has_every_flan2021_dataset():
    assert len(C.specs) == 70
    assert set(C.clusters) == {
        "nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text",
        "translation", "reading_comprehension", "reading_comprehension_commonsense",
        "coreference", "misc", "summarization",
    }  # fmt: skip
    counts = {c: len(C.datasets(c)) for c in C.clusters}
    assert counts == {
        "nli": 10, "commonsense": 4, "sentiment": 4, "paraphrase": 4, "closed_book_qa": 4,
        "struct_to_text": 4, "translation": 8, "reading_comprehension": 6,
        "reading_comprehension_commonsense": 2, "coreference": 4, "misc": 9, "summarization": 11,
    }  # fmt: skip
    assert {"true_case", "word_segment", "wsc273"} <= set(SPECS)
    assert {SPECS[d].cluster for d in GOLDEN} == set(C.clusters)  # goldens cover every cluster


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_conventions(name):
    spec = SPECS[name]
    ref = flan2021.FLAN[name]
    assert len(spec.templates) == 10 and _structure(spec) == ref.structure
    assert dict(spec.splits) == dict(ref.splits)
    for split in spec.splits.values():
        tfds.core.ReadInstruction.from_spec(split)  # a valid TFDS split string
    assert ":" in spec.source.builder  # a pinned version (seqio requires one)
    assert spec.primary_metric  # named explicitly, never "the first key"
    if spec.has_options:
        # Every original-task template is scored by rank classification, options shown or not.
        assert [i for i in spec.eval_templates if spec.templates[i].is_rankable] == list(
            spec.eval_templates
        )


@pytest.mark.parametrize("name", sorted(FLAN_SPLITS))
def test_flan_split_strings(name):
    train, dev, test = FLAN_SPLITS[name]
    assert dict(SPECS[name].splits) == {"train": train, "validation": dev, "test": test}


def test_flan_template_structure_and_eval_only():
    for name, structure in FLAN_STRUCTURE.items():
        assert _structure(SPECS[name]) == structure, name
    for name in ("anli_r1", "anli_r3"):  # the NLI datasets have their own template sets
        assert SPECS[name].templates != SPECS["rte"].templates
    assert SPECS["mnli_matched"].templates != SPECS["wnli"].templates != SPECS["cb"].templates
    assert SPECS["wsc273"].splits == {"test": "test"} and not SPECS["wsc273"].trains
    assert "flan2021:wsc273:mix" not in seqio.TaskRegistry.names()


@pytest.mark.parametrize("name", sorted(PRIMARY))
def test_primary_metric(name):
    assert SPECS[name].primary_metric == PRIMARY[name]


def test_answer_strings():
    def options(name):
        spec = SPECS[name]
        fields = spec.fields_fn(as_tensors(_builder(spec), RAW[_raw_key(spec)]))
        return [o.decode() for o in fields["options"].numpy()]

    assert options("anli_r3") == ["Yes", "It's impossible to say", "No"]
    assert options("cb") == ["Yes", "No", "It's impossible to say"]
    assert options("snli") == ["yes", "it is not possible to tell", "no"]
    assert options("cola") == ["unacceptable", "acceptable"]
    assert options("wic") == ["different meanings", "the same meaning"]
    assert options("wnli") == ["no", "yes"] and options("rte") == ["yes", "no"]
    assert options("winogrande") == ["the trophy was too big.", "the case was too big."]
    for t in SPECS["squad_v2"].templates:  # every SQuAD 2.0 template names the fallback answer
        assert '"unanswerable"' in t.inputs


def test_translation_is_evaluated_both_ways():
    for name in ("para_crawl_en_es", "wmt16_de_en"):
        spec = SPECS[name]
        targets = [spec.templates[i].targets for i in spec.eval_templates]
        assert len(targets) == 8
        assert targets.count("{source}") >= 3 and targets.count("{answer}") >= 3
    evaluation = seqio.get_mixture_or_task("flan2021:heldout_translation:eval")
    names = {t.name for t in evaluation.tasks}
    assert "flan2021:wmt16_de_en:t0" in names and "flan2021:wmt16_de_en:t1" in names


def test_registration_does_no_io(monkeypatch):
    """Rebuilding every seqio task of the collection never opens a TFDS builder."""
    opened = []
    monkeypatch.setattr(tfds, "builder", lambda *a, **k: opened.append(a) or 1 / 0)
    for spec in C.specs:
        spec.source.make(spec.splits)
    assert not opened


# ---------------------------------------------------------------------------------------------
# Golden renderings: fields_fn + template on a hand-written raw example, exact strings.


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_rendering(name):
    spec = SPECS[name]
    index, inputs, target = GOLDEN[name]
    fields = spec.fields_fn(as_tensors(_builder(spec), RAW[_raw_key(spec)]))
    t = spec.templates[index]
    assert templates.render_inputs_tf(t, fields).numpy().decode() == inputs
    assert templates.render_targets_tf(t, fields).numpy().decode() == target
    if spec.has_options:
        options = [o.decode() for o in fields["options"].numpy()]
        assert fields["answer"].numpy().decode() in options


# ---------------------------------------------------------------------------------------------
# Every dataset through seqio on mocked TFDS (schema-true raw examples, see flan2021_raw.py).


def _examples(task_name: str, split: str) -> list[dict]:
    task = seqio.get_mixture_or_task(task_name)
    ds = task.get_dataset(None, split=split, shuffle=False, try_in_mem_cache=False)
    return list(ds.as_numpy_iterator())


@pytest.fixture
def mocked():
    with mock_builder_data(num_examples=2):
        yield


@pytest.mark.parametrize("name", sorted(SPECS))
def test_dataset_yields_examples(mocked, name):
    """Every split reads; the training task renders all templates; rank rows hold the answer.

    The mixed-template training task renders every template in TF, so reading it exercises all
    of the dataset's templates; the :t<i> and :rank tasks share its fields. Each split is read at
    the source, and through a full task on train (mix) and test (rank or t<i>).
    """
    spec = SPECS[name]
    task_names = [t for t in seqio.TaskRegistry.names() if t.startswith(f"flan2021:{name}:")]
    assert len(task_names) >= len(spec.templates)
    task = seqio.get_mixture_or_task(f"flan2021:{name}:t0")
    for split in spec.splits:
        raw = list(task.source.get_dataset(split, shuffle=False).take(1).as_numpy_iterator())
        assert raw, split
    if spec.trains:
        for ex in _examples(f"flan2021:{name}:mix", "train"):
            assert ex["inputs_pretokenized"].strip() and ex["targets_pretokenized"].strip()
            assert len(ex["inputs"]) > 1 and len(ex["targets"]) > 1
    rankable = [i for i in spec.eval_templates if spec.templates[i].is_rankable]
    if spec.has_options:
        i = rankable[-1]
        rows = _examples(f"flan2021:{name}:t{i}:rank", "test")
        by_example: dict[int, list] = {}
        for r in rows:
            assert r["inputs_pretokenized"].strip() and r["targets_pretokenized"].strip()
            by_example.setdefault(int(r["idx"]), []).append(bool(r["is_correct"]))
        assert by_example and all(any(v) for v in by_example.values())  # target among options
    else:
        i = spec.eval_templates[-1]
        for ex in _examples(f"flan2021:{name}:t{i}", "test"):
            assert ex["inputs_pretokenized"].strip() and ex["targets_pretokenized"].strip()


# ---------------------------------------------------------------------------------------------
# Held-out mixtures.

DROPPED_WITH = {
    "nli": {"paraphrase"},
    "paraphrase": {"nli"},
    "reading_comprehension": {"reading_comprehension_commonsense"},
    "commonsense": {"reading_comprehension_commonsense"},
    "reading_comprehension_commonsense": {"reading_comprehension", "commonsense"},
}


@pytest.mark.parametrize("cluster", sorted(C.clusters))
def test_heldout_mixture_members(cluster):
    train = seqio.get_mixture_or_task(f"flan2021:heldout_{cluster}:train")
    dropped = {cluster} | DROPPED_WITH.get(cluster, set())
    expected = {s.name for s in C.specs if s.cluster not in dropped and s.trains}
    members = {naming.parse_name(t.name).dataset for t in train.tasks}
    assert members == expected
    evaluation = seqio.get_mixture_or_task(f"flan2021:heldout_{cluster}:eval")
    eval_datasets = {naming.parse_name(t.name).dataset for t in evaluation.tasks}
    assert eval_datasets == {s.name for s in C.datasets(cluster)}
    for t in evaluation.tasks:  # zero-shot eval never uses turned-around templates
        parsed = naming.parse_name(t.name)
        assert not SPECS[parsed.dataset].templates[parsed.template].turned_around


def test_overlap_dedup_is_off_by_default():
    names = {t.name for t in seqio.get_mixture_or_task("flan2021:heldout_nli:train").tasks}
    assert {"flan2021:squad_v1:mix", "flan2021:wsc:mix"} <= names  # FLAN removes nothing
    assert not any(":dedup_" in n for n in names)
    plan = mixing.plan_heldout(C, ("nli",), dedup_overlaps=True)  # still available on request
    assert {"flan2021:squad_v1:mix:dedup_nli", "flan2021:wsc:mix:dedup_nli"} <= set(
        plan.train_tasks
    )


def test_record_rank_counts_any_gold_answer(mocked):
    rows = _examples("flan2021:record:t1:rank", "test")
    correct = {r["targets_pretokenized"].decode(): bool(r["is_correct"]) for r in rows}
    assert correct == {
        "Rome for its ruins.": True, "Paris for its ruins.": False, "Roma for its ruins.": True
    }  # fmt: skip


def test_multirc_rank_rows_carry_the_question_for_exact_match(mocked):
    rows = _examples("flan2021:multirc:t0:rank", "test")
    task = seqio.get_mixture_or_task("flan2021:multirc:t0:rank")
    targets = [task.postprocess_fn(r["targets"], example=r, is_target=True) for r in rows]
    assert all(len(t) == 4 and t[3] == int(r["group"]) for t, r in zip(targets, rows, strict=True))
    scores = [1.0 if t[1] == 1 else 0.0 for t in targets]  # always answers "yes"
    (metric,) = task.metric_fns
    out = metric(targets, scores)
    assert set(out) == {"accuracy", "exact_match", "f1a"}


@pytest.mark.parametrize("cluster", sorted(C.clusters))
def test_inspect_heldout_training_mixture_without_data(cluster, capsys, tmp_path, monkeypatch):
    from flan_jax import cli

    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))  # nothing prepared there
    assert cli.main(["inspect", f"flan2021:heldout_{cluster}:train"]) == 0
    out = capsys.readouterr().out
    assert "planned from official split sizes" in out and f"held out: {cluster}" in out
    assert "rate     3000" in out


def test_mixture_rates_are_min_n_3000(monkeypatch):
    sizes = {"super_glue/rte:1.0.2": 2290, "glue/mnli:2.0.0": 30000, "super_glue/cb:1.0.2": 50}
    monkeypatch.setattr(
        sources._TfdsDataSource,
        "num_input_examples",
        lambda self, split: sizes.get(self._spec.builder, 1234),
    )
    mixture = seqio.get_mixture_or_task("flan2021:heldout_sentiment:train")
    rates = {naming.parse_name(t.name).dataset: mixture.get_rate(t) for t in mixture.tasks}
    assert rates["rte"] == 2290 and rates["mnli_matched"] == 3000 and rates["cb"] == 50
    assert rates["squad_v1"] == 1234


def test_ablation_mixtures():
    held = "nli+closed_book_qa+commonsense"
    one = seqio.get_mixture_or_task(f"flan2021:heldout_{held}:train:clusters1")
    assert {naming.parse_name(t.name).dataset for t in one.tasks} == {
        s.name for s in C.datasets("summarization")
    }
    seven = seqio.get_mixture_or_task(f"flan2021:heldout_{held}:train:clusters7")
    members = {naming.parse_name(t.name).dataset for t in seven.tasks}
    clusters = {SPECS[d].cluster for d in members}
    assert clusters == {
        "summarization", "translation", "reading_comprehension", "sentiment",
        "struct_to_text", "coreference", "misc",
    }  # fmt: skip
    # FLAN's 7th group is conversational QA only, not the whole misc cluster.
    assert {d for d in members if SPECS[d].cluster == "misc"} == {"coqa", "quac"}
    tpl2 = seqio.get_mixture_or_task(f"flan2021:heldout_{held}:train:tpl2")
    assert all(":mix:tpl2" in t.name for t in tpl2.tasks)
    with mock_builder_data(num_examples=4):
        exs = _examples("flan2021:sst2:mix:tpl2", "train")
    assert {int(e["template"]) for e in exs} <= {0, 1}
    for n in flan_mixtures.TEMPLATE_COUNTS:
        assert f"flan2021:heldout_{held}:train:tpl{n}" in seqio.MixtureRegistry.names()


def test_overlap_filter_drops_shared_examples(monkeypatch):
    """QNLI train examples whose question is a SQuAD eval question are dropped."""
    raw = dict(RAW)
    raw["glue/qnli"] = {**RAW["glue/qnli"], "question": RAW["squad/v1.1"]["question"].upper()}
    monkeypatch.setattr(sys.modules["flan2021_raw"], "RAW", raw)
    catalog.get_task_or_mixture("flan2021:qnli:mix:dedup_reading_comprehension", VOCAB)
    catalog.get_task_or_mixture("flan2021:squad_v1:t0", VOCAB)
    with mock_builder_data(num_examples=2):
        assert len(_examples("flan2021:qnli:mix", "train")) == 2
        assert _examples("flan2021:qnli:mix:dedup_reading_comprehension", "train") == []
        # WNLI vs WSC: different sentences, nothing dropped.
        catalog.get_task_or_mixture("flan2021:wnli:mix:dedup_coreference", VOCAB)
        assert len(_examples("flan2021:wnli:mix:dedup_coreference", "train")) == 2


def test_normalized_key_hash():
    a = mixing.normalized_key_hash(tf.constant("Where is the tower?"))
    b = mixing.normalized_key_hash(tf.constant("where is  THE tower"))
    c = mixing.normalized_key_hash(tf.constant("Where is the river?"))
    assert int(a) == int(b) != int(c)


# ---------------------------------------------------------------------------------------------
# Data availability.


def test_missing_data_names_builder_and_data_dir(tmp_path):
    source = sources.TfdsSource("super_glue/rte:1.0.2", data_dir=str(tmp_path))
    with pytest.raises(sources.DataUnavailableError) as e:
        source.make({"train": "train"}).get_dataset("train")
    msg = str(e.value)
    assert "super_glue/rte:1.0.2" in msg and str(tmp_path) in msg and "tfds build" in msg
    assert "\n" not in msg
    assert source.status() == "missing"


def test_manual_download_message(tmp_path):
    spec = SPECS["story_cloze"]
    source = sources.TfdsSource(spec.source.builder, str(tmp_path), spec.source.manual_download)
    with pytest.raises(sources.DataUnavailableError, match="manual download: request the "):
        source.make(spec.splits).get_dataset("test")
    assert source.status() == "manual"
    assert "downloads/manual" in SPECS["newsroom"].source.manual_download


def test_unknown_builder_message():
    source = sources.TfdsSource("no_such_dataset:1.0.0")
    with pytest.raises(sources.DataUnavailableError, match="no_such_dataset"):
        source.make({"train": "train"}).get_dataset("train")


def test_cli_data_status(tmp_path, capsys):
    from flan_jax import cli

    assert cli.main(["data-status", "flan2021:heldout_commonsense:eval", "--data_dir",
                     str(tmp_path)]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "missing   commonsense" in out and "manual    commonsense" in out
    assert "4 datasets" in out and "story_cloze: request" in out


def test_datacard_is_up_to_date():
    from flan_jax.cli import data as cli_data

    path = os.path.join(os.path.dirname(__file__), "..", "docs", "flan2021_datacard.md")
    with open(path, encoding="utf-8") as f:
        assert f.read() == cli_data.datacard_markdown("flan2021", VOCAB), "run `flan-jax datacard`"
