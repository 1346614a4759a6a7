"""NLI cluster: ANLI R1-R3, CB, MNLI (matched, mismatched), QNLI, RTE, SNLI, WNLI.

Each dataset has its own template set in FLAN's structure (``flan_reference``): RTE, ANLI and
CB end with one turned-around template that writes a premise and a hypothesis; SNLI's writes a
hypothesis; MNLI and WNLI have none. Answer strings are FLAN's per dataset.
"""

from __future__ import annotations

from flan_jax import metrics as metrics_lib
from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource

from . import common
from .common import arrange, turned
from .flan_reference import splits

NLI_FIELDS = ("premise", "hypothesis", "options", "answer")
PAIR = "Premise: {premise}\n\nHypothesis: {hypothesis}"


def _pair_turned(instruction: str) -> common.Template:
    """Writes a premise and a hypothesis together (FLAN's RTE/ANLI/CB side task)."""
    return turned(instruction, PAIR)


RTE_TEMPLATES = arrange(
    "rte",
    (
        '{premise}\n\nDoes the passage above support the claim "{hypothesis}"?',
        "{premise}\n\nIf the text above is true, is the next sentence true as well?\n{hypothesis}",
        "Text: {premise}\n\nClaim: {hypothesis}\n\nDoes the text entail the claim?",
        "{premise}\nGiven this, must the following also hold?\n{hypothesis}",
        "{premise}\nIs it safe to conclude this?\n{hypothesis}",
        "Decide whether the second statement follows from the first.\n\n"
        "First: {premise}\n\nSecond: {hypothesis}",
        "Passage:\n{premise}\n\nStatement:\n{hypothesis}\n\nIs the statement implied?",
        "Does the conclusion follow from the evidence?\n\nEvidence: {premise}\n\n"
        "Conclusion: {hypothesis}",
        "Check this sentence against the text below: {hypothesis}\n\n{premise}",
    ),
    (_pair_turned("Make up a short passage and a sentence that it entails or not."),),
)

ANLI_TEMPLATES = arrange(
    "anli_r1",
    (
        "{premise}\n\nGiven the paragraph above, is this statement true?\n{hypothesis}",
        '{premise}\n\nIs it correct to say that "{hypothesis}"?',
        "Context: {premise}\n\nStatement: {hypothesis}\n\nIs the statement supported by "
        "the context?",
        "{premise}\nBased on this, can one claim the following?\n{hypothesis}",
        "{premise}\nWhat can be said about this sentence: {hypothesis}",
        "Here is a paragraph:\n{premise}\n\nAnd a claim: {hypothesis}\n\nIs the claim true?",
        "Consider the text and the sentence after it.\n\n{premise}\n\nSentence: {hypothesis}",
        "Evaluate the hypothesis against the context.\n\nContext: {premise}\n\n"
        "Hypothesis: {hypothesis}",
        "Is the following true, judging by the text under it?\n{hypothesis}\n\n{premise}",
    ),
    (_pair_turned("Write a paragraph, then a statement about it."),),
)

CB_TEMPLATES = arrange(
    "cb",
    (
        '{premise}\n\nFrom the dialogue or text above, does it follow that "{hypothesis}"?',
        "{premise}\n\nIs this sentence implied by what was said?\n{hypothesis}",
        "Text: {premise}\n\nQuestion: does the speaker commit to this: {hypothesis}?",
        "{premise}\nWould the author agree with the following?\n{hypothesis}",
        "{premise}\nDoes that mean this is true?\n{hypothesis}",
        "Read the text and say whether the hypothesis holds.\n\n{premise}\n\n"
        "Hypothesis: {hypothesis}",
        "Passage: {premise}\n\nIs it true that {hypothesis}?",
        "Judge the claim from the passage.\n\nPassage:\n{premise}\n\nClaim: {hypothesis}",
        "Is this supported by the text below?\n{hypothesis}\n\n{premise}",
    ),
    (_pair_turned("Write a short text and a sentence that may or may not follow from it."),),
)

MNLI_TEMPLATES = arrange(
    "mnli_matched",
    (
        "Premise: {premise}\n\nHypothesis: {hypothesis}\n\nIs the hypothesis entailed by "
        "the premise?",
        '{premise}\n\nGiven this, is it true that "{hypothesis}"?',
        "Sentence A: {premise}\nSentence B: {hypothesis}\n\nIf A is true, is B true?",
        "{premise}\n\nDoes this imply that {hypothesis}?",
        '"{premise}" Does it follow that "{hypothesis}"?',
        "Read the sentence, then decide if the statement after it is true.\n\n{premise}\n\n"
        "{hypothesis}",
        "{premise}\nTherefore, {hypothesis}\n\nIs this reasoning valid?",
        "Here is a premise: {premise}\n\nHere is a hypothesis: {hypothesis}\n\n"
        "Does the premise tell us the hypothesis is true?",
        "Statement: {premise}\n\nCan we say that {hypothesis}?",
        'Assume that "{premise}" is true. Is "{hypothesis}" then true?',
    ),
)

QNLI_TEMPLATES = arrange(
    "qnli",
    (
        'Does the sentence "{sentence}" answer the question "{question}"?',
        "Question: {question}\nSentence: {sentence}\n\nDoes the sentence contain the answer "
        "to the question?",
        '{question}\n\nIs "{sentence}" a correct answer to the question above?',
        'Is the answer to "{question}" found in the following text?\n\n{sentence}',
        "Someone asked: {question}\nA reply was: {sentence}\nDid the reply answer it?",
        "Check whether the passage answers the question.\n\nPassage: {sentence}\n\n"
        "Question: {question}",
        'Can the question "{question}" be answered from "{sentence}"?',
        "{sentence}\n\nDoes the text above tell us: {question}",
        "Q: {question}\nCandidate answer sentence: {sentence}\nIs it a good answer?",
    ),
    (turned("Ask a question about a fact that has a clear answer.", "{question}"),),
)

SNLI_TEMPLATES = arrange(
    "snli",
    (
        '{premise}\n\nBased on the caption above, is it true that "{hypothesis}"?',
        "Photo caption: {premise}\n\nDoes the caption imply this: {hypothesis}?",
        "Scene: {premise}\nClaim: {hypothesis}\n\nDoes the scene support the claim?",
        'If "{premise}", then is it also the case that "{hypothesis}"?',
        'Suppose that "{premise}" Can we infer that "{hypothesis}"?',
        "{premise}\n\nGiven that description, is the following true?\n{hypothesis}",
        "Look at the first sentence and say whether the second follows.\n\n"
        "1: {premise}\n2: {hypothesis}",
        "Description: {premise}\n\nCan we conclude: {hypothesis}?",
        'Sentence one: "{premise}"\nSentence two: "{hypothesis}"\nDoes one entail two?',
    ),
    (turned("Write one short sentence describing a scene.", "{hypothesis}"),),
)

WNLI_TEMPLATES = arrange(
    "wnli",
    (
        '{premise}\n\nAfter reading the sentence above, is "{hypothesis}" true?',
        'Given the sentence "{premise}", is the sentence "{hypothesis}" true as well?',
        "Sentence: {premise}\n\nRewritten: {hypothesis}\n\nDoes the rewrite keep the "
        "meaning of the sentence?",
        "{premise}\n\nDoes this mean that {hypothesis}?",
        "Resolve the pronoun in the first sentence and judge the second.\n\n{premise}\n"
        "{hypothesis}",
        '"{premise}" Can we infer "{hypothesis}"?',
        "Here is a sentence: {premise}\nAnd a reading of it: {hypothesis}\nIs the reading right?",
        "{premise}\nIf that is so, is the following correct?\n{hypothesis}",
        "Text: {premise}\nConclusion: {hypothesis}\n\nDoes the conclusion follow?",
        "Decide if the second sentence follows from the first.\n\n{premise}\n\n{hypothesis}",
    ),
)


def _nli_fields(premise: str, hypothesis: str, options: tuple[str, ...]):
    """Maps (premise, hypothesis, label) to fields; ``options`` are indexed by the label."""

    def fn(ex):
        opts, answer = common.pick(options, ex["label"])
        return {
            "premise": ex[premise],
            "hypothesis": ex[hypothesis],
            "options": opts,
            "answer": answer,
        }

    return fn


def _qnli_fields(ex):
    opts, answer = common.pick(("yes", "no"), ex["label"])
    return {
        "question": ex["question"],
        "sentence": ex["sentence"],
        "options": opts,
        "answer": answer,
    }


# FLAN's answer strings, in each builder's label order.
ANLI_OPTIONS = ("Yes", "It's impossible to say", "No")  # entailment, neutral, contradiction
CB_OPTIONS = ("Yes", "No", "It's impossible to say")  # entailment, contradiction, neutral
MNLI_OPTIONS = ("yes", "it is not possible to tell", "no")  # entailment, neutral, contradiction
RTE_OPTIONS = ("yes", "no")  # entailment, not_entailment
WNLI_OPTIONS = ("no", "yes")  # not_entailment, entailment


def _anli(r: int) -> TaskSpec:
    return TaskSpec(
        name=f"anli_r{r}",
        cluster="nli",
        source=TfdsSource(f"anli/r{r}:0.1.0"),
        fields_fn=_nli_fields("context", "hypothesis", ANLI_OPTIONS),
        fields=NLI_FIELDS,
        templates=ANLI_TEMPLATES,
        splits=splits(f"anli_r{r}"),
        primary_metric="accuracy",
        description=f"Adversarial NLI round {r}, 3-way entailment",
    )


def _mnli(which: str) -> TaskSpec:
    return TaskSpec(
        name=f"mnli_{which}",
        cluster="nli",
        source=TfdsSource("glue/mnli:2.0.0"),
        fields_fn=_nli_fields("premise", "hypothesis", MNLI_OPTIONS),
        fields=NLI_FIELDS,
        templates=MNLI_TEMPLATES,
        splits=splits(f"mnli_{which}"),
        primary_metric="accuracy",
        description=f"MultiNLI, evaluated on the {which}-genre validation set",
    )


SPECS = (
    _anli(1),
    _anli(2),
    _anli(3),
    TaskSpec(
        name="cb",
        cluster="nli",
        source=TfdsSource("super_glue/cb:1.0.2"),
        fields_fn=_nli_fields("premise", "hypothesis", CB_OPTIONS),
        fields=NLI_FIELDS,
        templates=CB_TEMPLATES,
        metrics=common.metric("accuracy", "f1_macro"),
        rank_metrics=(metrics_lib.rank_classification_f1_macro,),
        splits=splits("cb"),
        primary_metric="accuracy",
        description="CommitmentBank, 3-way entailment of embedded clauses",
    ),
    _mnli("matched"),
    _mnli("mismatched"),
    TaskSpec(
        name="qnli",
        cluster="nli",
        source=TfdsSource("glue/qnli:2.0.0"),
        fields_fn=_qnli_fields,
        fields=("question", "sentence", "options", "answer"),
        templates=QNLI_TEMPLATES,
        splits=splits("qnli"),
        primary_metric="accuracy",
        description="Question NLI: does the sentence answer the question (from SQuAD)",
    ),
    TaskSpec(
        name="rte",
        cluster="nli",
        source=TfdsSource("super_glue/rte:1.0.2"),
        fields_fn=_nli_fields("premise", "hypothesis", RTE_OPTIONS),
        fields=NLI_FIELDS,
        templates=RTE_TEMPLATES,
        splits=splits("rte"),
        primary_metric="accuracy",
        description="Recognizing Textual Entailment, 2-way",
    ),
    TaskSpec(
        name="snli",
        cluster="nli",
        source=TfdsSource("snli:1.1.0"),
        fields_fn=_nli_fields("premise", "hypothesis", MNLI_OPTIONS),
        fields=NLI_FIELDS,
        templates=SNLI_TEMPLATES,
        splits=splits("snli"),
        filter_fn=common.label_ok(),  # SNLI marks pairs without a gold label with -1
        primary_metric="accuracy",
        description="Stanford NLI over image captions, 3-way",
    ),
    TaskSpec(
        name="wnli",
        cluster="nli",
        source=TfdsSource("glue/wnli:2.0.0"),
        fields_fn=_nli_fields("sentence1", "sentence2", WNLI_OPTIONS),
        fields=NLI_FIELDS,
        templates=WNLI_TEMPLATES,
        splits=splits("wnli"),
        primary_metric="accuracy",
        description="Winograd NLI: entailment after resolving a pronoun",
    ),
)
