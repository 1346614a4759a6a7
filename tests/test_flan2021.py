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

OPT2 = "\n\nOPTIONS:\n- yes\n- no"
OPT3 = "\n\nOPTIONS:\n- yes\n- it is not possible to tell\n- no"
NOYES = "\n\nOPTIONS:\n- no\n- yes"
POL = "\n\nOPTIONS:\n- negative\n- positive"
ANLI = (
    0,
    'The sun rose at six.\n\nBased on the passage above, is it true that "It was dark at noon."?'
    + OPT3,
    "no",
)

# dataset -> (template index, inputs, targets), written by hand from RAW in flan2021_raw.py.
GOLDEN = {
    "anli_r1": ANLI,
    "anli_r2": ANLI,
    "anli_r3": ANLI,
    "cb": (
        1,
        "Premise: A dog runs in the park.\nHypothesis: An animal is outside.\n\nIs the "
        "hypothesis entailed by the premise?" + OPT3,
        "it is not possible to tell",
    ),
    "mnli_matched": (
        3,
        'A dog runs in the park.\n\nQuestion: does this imply that "An animal is outside."?' + OPT3,
        "yes",
    ),
    "mnli_mismatched": (
        8,
        "Write a sentence that follows from the following passage.\n\nA dog runs in the park.",
        "An animal is outside.",
    ),
    "qnli": (
        0,
        'Does the sentence "Paris is in France." answer the question "Where is Paris?"?' + OPT2,
        "yes",
    ),
    "rte": (
        2,
        "Read the text and decide whether the statement follows from it.\n\nText: A dog runs "
        "in the park.\n\nStatement: An animal is outside." + OPT2,
        "no",
    ),
    "snli": (
        4,
        'Suppose that "A dog runs in the park." Can we infer that "An animal is outside."?' + OPT3,
        "yes",
    ),
    "wnli": (
        5,
        'Given the sentence "The cup fell off the table because it was round.", is the '
        'sentence "The cup was round." true as well?' + OPT2,
        "yes",
    ),
    "copa": (
        2,
        "The man broke his toe. Because...\n\nOPTIONS:\n- He dropped a hammer on his foot.\n"
        "- He got a hole in his sock.",
        "He dropped a hammer on his foot.",
    ),
    "hellaswag": (
        1,
        "Baking: She cracks two eggs into a bowl.\n\nWhat comes next?\n\nOPTIONS:\n- She whisks "
        "them.\n- She paints the wall.\n- She swims.\n- She sings to the eggs.",
        "She whisks them.",
    ),
    "piqa": (
        4,
        "What is the best way to dry wet shoes\n\nOPTIONS:\n- Stuff them with newspaper.\n"
        "- Fill them with water.",
        "Stuff them with newspaper.",
    ),
    "story_cloze": (
        9,
        "Write a passage that could come right before this ending: Flowers grew.",
        "Ann bought seeds. She planted them. She watered them. Weeks passed.",
    ),
    "imdb_reviews": (
        0,
        "A touching film.\nLoved it.\n\nIs this movie review positive or negative?" + POL,
        "positive",
    ),
    "sentiment140": (
        1,
        "What is the sentiment of the following tweet?\n\nrainy monday again" + POL,
        "negative",
    ),
    "sst2": (8, "Write a positive movie review sentence.", "a gorgeous, witty film"),
    "yelp_polarity_reviews": (
        2,
        "Yelp review: Cold food and slow service.\n\nHow would you describe its tone?" + POL,
        "negative",
    ),
    "mrpc": (
        0,
        "Do these two sentences mean the same thing?\nHe left early.\nHe departed early." + NOYES,
        "yes",
    ),
    "qqp": (
        2,
        '"How do I learn Python?" and "What is the best way to learn Python?": are these '
        "duplicate questions?" + NOYES,
        "yes",
    ),
    "paws_wiki": (
        8,
        "Write a sentence that means the same thing as the following one.\n\nTom met Ann in May.",
        "Ann met Tom in May.",
    ),
    "stsb": (
        6,
        'Rate from 0 to 5 how much meaning these share: "A man plays guitar." / "A person '
        'plays an instrument."',
        "4",
    ),
    "arc_easy": (5, "Q: Which is a mammal?\nA:\n\nOPTIONS:\n- frog\n- whale\n- shark", "whale"),
    "arc_challenge": (0, "What melts ice?\n\nOPTIONS:\n- heat\n- cold", "heat"),
    "natural_questions": (2, "Q: who wrote hamlet?\nA:", "Shakespeare"),
    "trivia_qa": (1, "Answer this question: Which planet is the Red Planet?", "Mars"),
    "common_gen": (
        0,
        "Write a sentence that uses all of these words: dog, frisbee, catch",
        "The dog catches a frisbee.",
    ),
    "dart": (7, "Facts: Mars | color | red\nSentence:", "Mars is red."),
    "e2e_nlg": (
        0,
        "Write a sentence describing a restaurant with these attributes: name[Aromi], "
        "food[Italian]",
        "Aromi serves Italian food.",
    ),
    "web_nlg_en": (
        8,
        "Extract the facts of this sentence as subject | relation | object triples.\n\n"
        "Rome, in Italy, has 2.8M people.",
        "Rome | country | Italy; Rome | population | 2.8M",
    ),
    "para_crawl_en_es": (3, "Spanish: Buenos días.\nEnglish:", "Good morning."),
    "wmt14_fr_en": (0, "Translate this French text into English:\n\nBonjour.", "Good morning."),
    "wmt16_cs_en": (7, "Translate into Czech:\n\nGood morning.", "Dobré ráno."),
    "wmt16_de_en": (8, "English: Good morning.\nGerman:", "Guten Morgen."),
    "wmt16_fi_en": (
        1,
        "Hyvää huomenta.\n\nTranslate the Finnish sentence above to English.",
        "Good morning.",
    ),
    "wmt16_ro_en": (2, "How do you say this in English?\n\nBună dimineața.", "Good morning."),
    "wmt16_ru_en": (5, 'Render this Russian sentence in English: "Доброе утро."', "Good morning."),
    "wmt16_tr_en": (9, 'How would you write "Good morning." in Turkish?', "Günaydın."),
    "bool_q": (5, "Tomatoes are fruits.\n\nQ: is a tomato a fruit?" + NOYES, "yes"),
    "drop": (
        2,
        "Passage: Ann scored 3 goals and Bo 2.\nQuestion: How many goals in total?\nAnswer:",
        "5",
    ),
    "multirc": (
        1,
        "Read the passage, then decide if the answer is correct.\n\nSam has a red bike.\n\n"
        "Q: What color is the bike?\nA: Blue" + NOYES,
        "no",
    ),
    "openbookqa": (
        3,
        "Given that plants require sunlight to grow, plants need\n\nOPTIONS:\n- sunlight\n"
        "- plastic\n- noise\n- ice",
        "sunlight",
    ),
    "squad_v1": (3, "Eiffel Tower\nThe tower is in Paris.\n\nQ: Where is the tower?", "Paris"),
    "squad_v2": (
        5,
        "The Moon orbits Earth.\n\nFrom the passage above, who lives on the Moon?",
        "unanswerable",
    ),
    "cosmos_qa": (
        0,
        "I missed the bus, so I walked.\n\nQuestion: Why did I walk?\n\nOPTIONS:\n- I missed "
        "the bus.\n- I like rain.\n- I had a car.\n- None of the above.",
        "I missed the bus.",
    ),
    "record": (
        6,
        "Rome is old.\n- Rome founded early\n\nQuery: @placeholder is an ancient city.\nAnswer:"
        "\n\nOPTIONS:\n- Rome\n- Paris",
        "Rome",
    ),
    "definite_pronoun_resolution": (
        2,
        'In "The cat chased the mouse because it was hungry.", what is "it"?\n\nOPTIONS:\n'
        "- the cat\n- the mouse",
        "the cat",
    ),
    "winogrande": (
        9,
        'Write a sentence with a blank (_) that should be filled by "the trophy" rather than '
        '"the case".',
        "The trophy did not fit in the case because _ was too big.",
    ),
    "wsc": (
        0,
        'Mark told Pete he was late.\n\nIn the passage above, does "he" refer to "Pete"?' + NOYES,
        "yes",
    ),
    "coqa": (
        0,
        "Kim has a cat named Tom.\n\nAnswer the following questions:\n1. Who has a cat?\n"
        "2. What is its name?",
        "1. Kim\n2. Tom",
    ),
    "quac": (
        0,
        "Nina Simone (Career)\n\nShe began playing piano at three.\n\nQ: When did she start?\nA:",
        "at three",
    ),
    "trec": (
        6,
        "Determine the question type.\nHow far is the Moon?\n\nOPTIONS:\n- description\n"
        "- entity\n- abbreviation\n- human\n- numeric\n- location",
        "numeric",
    ),
    "cola": (9, "Write an English sentence. Its grammar should be broken.", "Him went home."),
    "wic": (
        4,
        'Here is a word: "bank". In "He sat on the river bank." and "She went to the bank to '
        'withdraw cash.", is its meaning identical?' + NOYES,
        "no",
    ),
    "math_dataset": (2, "Math problem: Solve 2*x = 4 for x.\nAnswer:", "2"),
    "fix_punct": (2, "Fix the punctuation: hello world its me", "Hello, world! It's me."),
    "aeslc": (
        0,
        "Write a subject line of this email:\n\nPlease review the attached budget.",
        "Budget",
    ),
    "ag_news_subset": (
        6,
        'What is the subject area of this headline: "Team wins cup"?\n\nOPTIONS:\n- World\n'
        "- Sports\n- Business\n- Science/Tech",
        "Sports",
    ),
    "cnn_dailymail": (3, "News article: Rain fell in London.\n\nSummary:", "London rain."),
    "gigaword": (
        2,
        "Summarize the following sentence.\n\nstocks rose sharply on monday",
        "stocks rise",
    ),
    "multi_news": (
        4,
        "Story one. ||||| Story two.\n\nBriefly, what is this set of news articles about?",
        "Two stories.",
    ),
    "newsroom": (
        1,
        "The mayor resigned.\n\nWhat is a good summary of the article above?",
        "Mayor quits.",
    ),
    "opinion_abstracts_idebate": (
        0,
        "Write a one-sentence claim of this argument:\n\nCars pollute. Streets get safer.",
        "Ban cars in cities.",
    ),
    "opinion_abstracts_rotten_tomatoes": (
        6,
        "Here is a set of movie reviews:\nSo fun.\n\nWrite its critics' consensus.",
        "A fun ride.",
    ),
    "samsum": (2, "Summarize the following dialogue.\n\nAnn: Lunch?\nBo: Sure.", "They will eat."),
    "wiki_lingua_english_en": (
        8,
        "Write a how-to article whose summary is: Make tea.",
        "Boil water. Add tea.",
    ),
    "xsum": (
        5,
        "Condense the BBC article below into a one-sentence summary.\nThe council approved a "
        "new park.",
        "New park approved.",
    ),
}


def _builder(spec: registry.TaskSpec) -> tfds.core.DatasetBuilder:
    return tfds.builder(spec.source.builder)


def _raw_key(spec: registry.TaskSpec) -> str:
    b = _builder(spec)
    return f"{b.name}/{b.builder_config.name}" if b.builder_config else b.name


# ---------------------------------------------------------------------------------------------
# The collection as data.


def test_collection_has_every_flan2021_dataset():
    assert len(C.specs) == 67
    assert set(C.clusters) == {
        "nli", "commonsense", "sentiment", "paraphrase", "closed_book_qa", "struct_to_text",
        "translation", "reading_comprehension", "reading_comprehension_commonsense",
        "coreference", "misc", "summarization",
    }  # fmt: skip
    counts = {c: len(C.datasets(c)) for c in C.clusters}
    assert counts == {
        "nli": 10, "commonsense": 4, "sentiment": 4, "paraphrase": 4, "closed_book_qa": 4,
        "struct_to_text": 4, "translation": 8, "reading_comprehension": 6,
        "reading_comprehension_commonsense": 2, "coreference": 3, "misc": 7, "summarization": 11,
    }  # fmt: skip
    assert set(GOLDEN) == set(SPECS)  # a golden rendering for every dataset


@pytest.mark.parametrize("name", sorted(SPECS))
def test_spec_conventions(name):
    spec = SPECS[name]
    assert 8 <= len(spec.templates) <= 10
    assert 1 <= sum(t.turned_around for t in spec.templates) <= 3
    if spec.has_options:
        assert any(t.is_rankable for t in spec.templates)
    for split in spec.splits.values():
        tfds.core.ReadInstruction.from_spec(split)  # a valid TFDS split string
    assert ":" in spec.source.builder  # a pinned version (seqio requires one)
    assert spec.splits["train"].startswith(("train", "validation"))


def test_split_conventions():
    assert SPECS["rte"].splits == {
        "train": "train[:-200]", "validation": "train[-200:]", "test": "validation"
    }  # fmt: skip
    assert SPECS["copa"].splits["validation"] == "train[-50:]"
    assert SPECS["wsc"].splits["train"] == "train[:-50]"
    assert SPECS["mnli_matched"].splits == {
        "train": "train[:30000]", "validation": "train[-200:]", "test": "validation_matched"
    }  # fmt: skip
    assert SPECS["anli_r3"].splits == {
        "train": "train[:30000]", "validation": "validation[:200]", "test": "test"
    }  # fmt: skip


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
    assert len(task_names) >= len(spec.templates) + 1
    task = seqio.get_mixture_or_task(f"flan2021:{name}:mix")
    for split in ("train", "validation", "test"):
        raw = list(task.source.get_dataset(split, shuffle=False).take(1).as_numpy_iterator())
        assert raw, split
    for ex in _examples(f"flan2021:{name}:mix", "train"):
        assert ex["inputs_pretokenized"].strip() and ex["targets_pretokenized"].strip()
        assert len(ex["inputs"]) > 1 and len(ex["targets"]) > 1
    rankable = [i for i in spec.eval_templates if spec.templates[i].is_rankable]
    if rankable:
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
    expected = {s.name for s in C.specs if s.cluster not in dropped}
    members = {naming.parse_name(t.name).dataset for t in train.tasks}
    assert members == expected
    evaluation = seqio.get_mixture_or_task(f"flan2021:heldout_{cluster}:eval")
    eval_datasets = {naming.parse_name(t.name).dataset for t in evaluation.tasks}
    assert eval_datasets == {s.name for s in C.datasets(cluster)}
    for t in evaluation.tasks:  # zero-shot eval never uses turned-around templates
        parsed = naming.parse_name(t.name)
        assert not SPECS[parsed.dataset].templates[parsed.template].turned_around


def test_overlap_variants_in_heldout_mixtures():
    names = {t.name for t in seqio.get_mixture_or_task("flan2021:heldout_nli:train").tasks}
    assert {"flan2021:squad_v1:mix:dedup_nli", "flan2021:wsc:mix:dedup_nli"} <= names
    names = {t.name for t in seqio.get_mixture_or_task("flan2021:heldout_coreference:train").tasks}
    assert "flan2021:wnli:mix:dedup_coreference" in names
    rc = seqio.get_mixture_or_task("flan2021:heldout_reading_comprehension:train")
    assert "flan2021:qnli:mix:dedup_reading_comprehension" in {t.name for t in rc.tasks}


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
    clusters = {SPECS[naming.parse_name(t.name).dataset].cluster for t in seven.tasks}
    assert clusters == set(flan2021.CLUSTER_ORDER[:7])
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
