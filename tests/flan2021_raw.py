"""Hand-written raw examples in the exact feature structure of each FLAN 2021 TFDS builder.

Keys are builder names without version. ``mock_builder_data`` serves them through
``tfds.testing.mock_data`` (casting every leaf to the builder's own tensor spec, so a missing or
misnamed feature fails loudly): the structure is the builder's, the content is ours and
consistent (labels in range, the answer among the choices).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import tensorflow as tf
import tensorflow_datasets as tfds

NLI = {"premise": "A dog runs in the park.", "hypothesis": "An animal is outside.", "label": 0}


ANLI = {
    "uid": "a1",
    "context": "The sun rose at six.",
    "hypothesis": "It was dark at noon.",
    "label": 2,
}


def _translation(code: str, text: str) -> dict:
    return {code: text, "en": "Good morning."}


RAW: dict[str, dict] = {
    "anli/r1": ANLI,
    "anli/r2": ANLI,
    "anli/r3": ANLI,
    "super_glue/cb": {**NLI, "idx": 0, "label": 2},  # CB's 2 is neutral
    "glue/mnli": {**NLI, "idx": 0},
    "glue/qnli": {
        "idx": 0,
        "question": "Where is Paris?",
        "sentence": "Paris is in France.",
        "label": 0,
    },
    "super_glue/rte": {**NLI, "idx": 0, "label": 1},
    "snli": dict(NLI),
    "glue/wnli": {
        "idx": 0,
        "sentence1": "The cup fell off the table because it was round.",
        "sentence2": "The cup was round.",
        "label": 1,
    },
    "super_glue/copa": {
        "premise": "The man broke his toe.",
        "question": "cause",
        "choice1": "He dropped a hammer on his foot.",
        "choice2": "He got a hole in his sock.",
        "idx": 0,
        "label": 0,
    },
    "hellaswag": {
        "activity_label": "Baking",
        "context": "She cracks two eggs into a bowl.",
        "endings": [
            "She whisks them.",
            "She paints the wall.",
            "She swims.",
            "She sings to the eggs.",
        ],
        "label": 0,
        "source_id": "s1",
        "split_type": "indomain",
    },
    "piqa": {
        "goal": "Dry wet shoes",
        "id": "p1",
        "sol1": "Stuff them with newspaper.",
        "sol2": "Fill them with water.",
        "label": 0,
    },
    "story_cloze/2016": {
        "context": "Ann bought seeds. She planted them. She watered them. Weeks passed.",
        "endings": ["Flowers grew.", "Ann flew away."],
        "label": 1,
    },
    "imdb_reviews/plain_text": {"text": "A touching film.<br />Loved it.", "label": 1},
    "sentiment140": {
        "text": "rainy monday again",
        "polarity": 0,
        "date": "d",
        "query": "q",
        "user": "u",
    },
    "glue/sst2": {"idx": 0, "sentence": "a gorgeous, witty film", "label": 1},
    "yelp_polarity_reviews": {"text": "Cold food and slow service.", "label": 0},
    "glue/mrpc": {
        "idx": 0,
        "sentence1": "He left early.",
        "sentence2": "He departed early.",
        "label": 1,
    },
    "glue/qqp": {
        "idx": 0,
        "question1": "How do I learn Python?",
        "question2": "What is the best way to learn Python?",
        "label": 1,
    },
    "paws_wiki/labeled_final_tokenized": {
        "sentence1": "Tom met Ann in May .",
        "sentence2": "Ann met Tom in May .",
        "label": 1,
    },
    "glue/stsb": {
        "idx": 0,
        "sentence1": "A man plays guitar.",
        "sentence2": "A person plays an instrument.",
        "label": 3.6,
    },
    "ai2_arc/ARC-Easy": {
        "id": "q1",
        "question": "Which is a mammal?",
        "answerKey": 1,
        "choices": {"label": [0, 1, 2, 3], "text": ["frog", "whale", "shark", "snake"]},
    },
    "ai2_arc/ARC-Challenge": {
        "id": "q2",
        "question": "What melts ice?",
        "answerKey": 0,
        "choices": {"label": [0, 1, 2, 3], "text": ["heat", "cold", "wind", "dark"]},
    },
    "natural_questions_open": {
        "question": "who wrote hamlet",
        "answer": ["Shakespeare", "W. Shakespeare"],
    },
    "trivia_qa/rc": {
        "question": "Which planet is the Red Planet?",
        "question_id": "t1",
        "question_source": "web",
        "answer": {
            "aliases": ["Mars", "Planet Mars"],
            "matched_wiki_entity_name": "",
            "normalized_aliases": ["mars"],
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": "mars",
            "type": "WikipediaEntity",
            "value": "Mars",
        },
        "entity_pages": {"doc_source": [], "filename": [], "title": [], "wiki_context": []},
        "search_results": {
            "description": [],
            "filename": [],
            "rank": [],
            "search_context": [],
            "title": [],
            "url": [],
        },
    },
    "gem/common_gen": {
        "concept_set_id": 0,
        "concepts": ["dog", "frisbee", "catch"],
        "gem_id": "g1",
        "gem_parent_id": "g1",
        "references": ["The dog catches a frisbee."],
        "target": "The dog catches a frisbee.",
    },
    "gem/dart": {
        "dart_id": 0,
        "gem_id": "g2",
        "gem_parent_id": "g2",
        "references": ["Mars is red."],
        "subtree_was_extended": False,
        "target": "Mars is red.",
        "target_sources": ["x"],
        "tripleset": ["Mars | color | red"],
    },
    "gem/e2e_nlg": {
        "gem_id": "g3",
        "gem_parent_id": "g3",
        "meaning_representation": "name[Aromi], food[Italian]",
        "references": ["Aromi serves Italian food."],
        "target": "Aromi serves Italian food.",
    },
    "gem/web_nlg_en": {
        "category": "City",
        "gem_id": "g4",
        "gem_parent_id": "g4",
        "input": ["Rome | country | Italy", "Rome | population | 2.8M"],
        "references": ["Rome, in Italy, has 2.8M people."],
        "target": "Rome, in Italy, has 2.8M people.",
        "webnlg_id": "w",
    },
    "para_crawl/enes": {"en": "Good morning.", "es": "Buenos días."},
    "wmt14_translate/fr-en": _translation("fr", "Bonjour."),
    **{
        f"wmt16_translate/{c}-en": _translation(c, t)
        for c, t in [
            ("cs", "Dobré ráno."),
            ("de", "Guten Morgen."),
            ("fi", "Hyvää huomenta."),
            ("ro", "Bună dimineața."),
            ("ru", "Доброе утро."),
            ("tr", "Günaydın."),
        ]
    },
    "bool_q": {
        "passage": "Tomatoes are fruits.",
        "question": "is a tomato a fruit",
        "title": "Tomato",
        "answer": True,
    },
    "drop": {
        "passage": "Ann scored 3 goals and Bo 2.",
        "question": "How many goals in total?",
        "answer": "5",
        "query_id": "d1",
        "validated_answers": ["five"],
    },
    "super_glue/multirc": {
        "paragraph": "Sam has a red bike.",
        "question": "What color is the bike?",
        "answer": "Blue",
        "label": 0,
        "idx": {"paragraph": 0, "question": 0, "answer": 0},
    },
    "openbookqa": {
        "question": {
            "stem": "Plants need",
            "choice_A": "sunlight",
            "choice_B": "plastic",
            "choice_C": "noise",
            "choice_D": "ice",
        },
        "fact1": "Plants require sunlight to grow.",
        "answerKey": 0,
        "clarity": 1.0,
        "humanScore": 1.0,
        "turkIdAnonymized": "t",
    },
    "squad/v1.1": {
        "id": "s1",
        "title": "Eiffel_Tower",
        "context": "The tower is in Paris.",
        "question": "Where is the tower?",
        "answers": {"text": ["Paris", "in Paris"], "answer_start": [16, 13]},
    },
    "squad/v2.0": {
        "id": "s2",
        "title": "Moon",
        "context": "The Moon orbits Earth.",
        "question": "Who lives on the Moon?",
        "is_impossible": True,
        "answers": {"text": [], "answer_start": []},
        "plausible_answers": {"text": ["Earth"], "answer_start": [16]},
    },
    "cosmos_qa": {
        "context": "I missed the bus, so I walked.",
        "question": "Why did I walk?",
        "answer0": "I missed the bus.",
        "answer1": "I like rain.",
        "answer2": "I had a car.",
        "answer3": "None of the above.",
        "id": "c1",
        "label": 0,
    },
    "super_glue/record": {
        "passage": "Rome is old.\n@highlight\nRome founded early",
        "query": "Tourists love @placeholder for its ruins.",
        "entities": ["Rome", "Paris", "Roma"],
        "answers": ["Rome", "Roma"],
        "idx": {"passage": 0, "query": 0},
    },
    "definite_pronoun_resolution": {
        "sentence": "The cat chased the mouse because it was hungry.",
        "pronoun": "it",
        "candidates": ["the cat", "the mouse"],
        "label": 0,
    },
    "winogrande": {
        "sentence": "The trophy did not fit in the case because _ was too big.",
        "option1": "the trophy",
        "option2": "the case",
        "label": 0,
    },
    "wsc273": {
        "text": "The city councilmen refused the demonstrators a permit because they feared "
        "violence.",
        "pronoun_start": 63,
        "pronoun_end": 67,
        "pronoun_text": "they",
        "option1": "The city councilmen",
        "option1_normalized": "the city councilmen",
        "option2": "The demonstrators",
        "option2_normalized": "the demonstrators",
        "idx": 0,
        "label": 0,
    },
    "super_glue/wsc": {
        "text": "Mark told Pete he was late.",
        "span1_text": "Pete",
        "span1_index": 2,
        "span2_text": "he",
        "span2_index": 3,
        "idx": 0,
        "label": 1,
    },
    "coqa": {
        "source": "mctest",
        "story": "Kim has a cat named Tom.",
        "questions": ["Who has a cat?", "What is its name?"],
        "answers": {"input_text": ["Kim", "Tom"], "answer_start": [0, 19], "answer_end": [3, 22]},
    },
    "quac": {
        "title": "Nina Simone",
        "section_title": "Career",
        "background": "A singer.",
        "context": "She began playing piano at three.",
        "question": "When did she start?",
        "answers": {"text": ["at three"], "answer_start": [25]},
        "orig_answer": {"text": "at three", "answer_start": 25},
        "followup": "y",
        "yesno": "x",
    },
    "trec": {"text": "How far is the Moon?", "label-coarse": 4, "label-fine": 40},
    "glue/cola": {"idx": 0, "sentence": "Him went home.", "label": 0},
    "super_glue/wic": {
        "word": "bank",
        "sentence1": "He sat on the river bank.",
        "sentence2": "She went to the bank to withdraw cash.",
        "start1": 0,
        "start2": 0,
        "end1": 0,
        "end2": 0,
        "idx": 0,
        "label": 0,
    },
    "math_dataset/algebra__linear_1d": {
        "question": "b'Solve 2*x = 4 for x.\\n'",
        "answer": "b'2\\n'",
    },
    "para_crawl/enda": {"en": "Hello, world! It's me.", "da": "Hej, verden!"},
    "aeslc": {"email_body": "Please review the attached budget.", "subject_line": "Budget"},
    "ag_news_subset": {"title": "Team wins cup", "description": "The local team won.", "label": 1},
    "cnn_dailymail": {
        "article": "Rain fell in London.",
        "highlights": "London rain.",
        "id": "c",
        "publisher": "cnn",
    },
    "gigaword": {"document": "stocks rose sharply on monday", "summary": "stocks rise"},
    "multi_news": {"document": "Story one. ||||| Story two.", "summary": "Two stories."},
    "newsroom": {
        "text": "The mayor resigned.",
        "summary": "Mayor quits.",
        "title": "T",
        "url": "u",
        "date": "d",
        "density_bin": "x",
        "coverage_bin": "x",
        "compression_bin": "x",
        "density": 1.0,
        "coverage": 1.0,
        "compression": 1.0,
    },
    "opinion_abstracts/idebate": {
        "_debate_name": "d",
        "_claim": "Ban cars in cities.",
        "_claim_id": "c",
        "_argument_sentences": {
            "key": ["1", "2"],
            "value": ["Cars pollute.", "Streets get safer."],
        },
    },
    "opinion_abstracts/rotten_tomatoes": {
        "_movie_name": "M",
        "_movie_id": "m",
        "_critic_consensus": "A fun ride.",
        "_critics": {"key": ["a"], "value": ["So fun."]},
    },
    "samsum": {"id": "s", "dialogue": "Ann: Lunch?\nBo: Sure.", "summary": "They will eat."},
    "gem/wiki_lingua_english_en": {
        "gem_id": "w",
        "gem_parent_id": "w",
        "source": "Boil water. Add tea.",
        "target": "Make tea.",
        "references": ["Make tea."],
        "source_aligned": {"en": "x"},
        "target_aligned": {"en": "y"},
    },
    "xsum": {"document": "The council approved a new park.", "summary": "New park approved."},
}


def builder_key(builder: tfds.core.DatasetBuilder) -> str:
    name = builder.name
    config = builder.builder_config.name if builder.builder_config else None
    return f"{name}/{config}" if config else name


def _vary(value, suffix: str):
    """Makes string leaves distinct per (split, index) for tests that need many examples."""
    if isinstance(value, str) and value not in ("cause", "effect"):
        return value + suffix
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [v + suffix for v in value]
    if isinstance(value, dict):
        return {k: _vary(v, suffix) for k, v in value.items()}
    return value


def _cast(spec, value, path: str):
    if isinstance(spec, dict):
        if not isinstance(value, dict) or set(spec) != set(value):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"{path}: expected keys {sorted(spec)}, got {got}")
        return {k: _cast(spec[k], value[k], f"{path}/{k}") for k in spec}
    t = tf.constant(value, dtype=spec.dtype)
    if not spec.shape.is_compatible_with(t.shape):
        raise ValueError(f"{path}: shape {t.shape} does not fit {spec.shape}")
    return t


def as_tensors(builder: tfds.core.DatasetBuilder, example: dict) -> dict:
    """Casts a raw example to the builder's tensor spec (structure must match exactly)."""
    return _cast(builder.info.features.get_tensor_spec(), example, builder_key(builder))


@contextlib.contextmanager
def mock_builder_data(num_examples: int = 3, vary: bool = False) -> Iterator[None]:
    """``tfds.testing.mock_data`` serving ``RAW`` (optionally made distinct per split/index)."""

    def as_dataset(self, split, decoders=None, read_config=None, shuffle_files=False, **kw):
        raw = RAW[builder_key(self)]
        base = str(split).split("[")[0]
        rows = []
        for i in range(num_examples):
            ex = _vary(copy.deepcopy(raw), f" #{base}{i}") if vary else raw
            rows.append(as_tensors(self, ex))
        ds = tf.data.Dataset.from_tensors(rows[0])
        for r in rows[1:]:
            ds = ds.concatenate(tf.data.Dataset.from_tensors(r))
        return ds

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        yield
