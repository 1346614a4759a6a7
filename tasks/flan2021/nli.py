"""NLI cluster: ANLI R1-R3, CB, MNLI (matched, mismatched), QNLI, RTE, SNLI, WNLI."""

from __future__ import annotations

import tensorflow as tf

from flan_jax import metrics as metrics_lib
from flan_jax.registry import TaskSpec
from flan_jax.sources import TfdsSource
from flan_jax.templates import Template

from . import common

NLI3 = ("yes", "it is not possible to tell", "no")
NLI2 = ("yes", "no")
# How a hypothesis relates to its premise, per option (used by turned-around templates).
REL3 = ("follows from", "is neither supported nor contradicted by", "contradicts")
REL2 = ("follows from", "does not follow from")

NLI_FIELDS = ("premise", "hypothesis", "options", "answer", "relation")

NLI_TEMPLATES = (
    Template(
        '{premise}\n\nBased on the passage above, is it true that "{hypothesis}"?', options=True
    ),
    Template(
        "Premise: {premise}\nHypothesis: {hypothesis}\n\nIs the hypothesis entailed by the "
        "premise?",
        options=True,
    ),
    Template(
        "Read the text and decide whether the statement follows from it.\n\nText: {premise}"
        "\n\nStatement: {hypothesis}\n\n{options}",
        options=True,
    ),
    Template('{premise}\n\nQuestion: does this imply that "{hypothesis}"?', options=True),
    Template('Suppose that "{premise}" Can we infer that "{hypothesis}"?', options=True),
    Template(
        'Given the sentence "{premise}", is the sentence "{hypothesis}" true as well?', options=True
    ),
    Template("{premise}\nTherefore, {hypothesis}\n\nIs this reasoning valid?", options=True),
    Template(
        "Determine if the claim is supported by the context.\n\nContext:\n{premise}\n\n"
        "Claim:\n{hypothesis}",
        options=True,
    ),
    Template(
        "Write a sentence that {relation} the following passage.\n\n{premise}",
        targets="{hypothesis}",
        turned_around=True,
    ),
    Template(
        'Here is a statement: "{hypothesis}"\nCompose a short passage that the statement '
        "{relation}.",
        targets="{premise}",
        turned_around=True,
    ),
)


def _nli_fields(premise: str, hypothesis: str, options=NLI3, relations=REL3, order=None):
    """Maps (premise, hypothesis, label) to fields; ``order`` re-indexes the source's labels."""

    def fn(ex):
        label = ex["label"]
        if order is not None:
            label = tf.gather(tf.constant(order), tf.cast(label, tf.int32))
        opts, answer = common.pick(options, label)
        _, relation = common.pick(relations, label)
        return {
            "premise": ex[premise],
            "hypothesis": ex[hypothesis],
            "options": opts,
            "answer": answer,
            "relation": relation,
        }

    return fn


QNLI_TEMPLATES = (
    Template('Does the sentence "{sentence}" answer the question "{question}"?', options=True),
    Template(
        "Question: {question}\nSentence: {sentence}\n\nDoes the sentence contain the answer "
        "to the question?",
        options=True,
    ),
    Template('{question}\n\nIs "{sentence}" a correct answer to the question above?', options=True),
    Template(
        'Is the answer to "{question}" found in the following text?\n\n{sentence}', options=True
    ),
    Template(
        "Someone asked: {question}\nA reply was: {sentence}\nDid the reply answer it?", options=True
    ),
    Template(
        "Check whether the passage answers the question.\n\nPassage: {sentence}\n\n"
        "Question: {question}",
        options=True,
    ),
    Template('Can the question "{question}" be answered from "{sentence}"?', options=True),
    Template("{sentence}\n\nDoes the text above tell us: {question}", options=True),
    Template(
        "Write a question that the following sentence {relation}.\n\n{sentence}",
        targets="{question}",
        turned_around=True,
    ),
)


def _qnli_fields(ex):
    opts, answer = common.pick(NLI2, ex["label"])
    _, relation = common.pick(("answers", "does not answer"), ex["label"])
    return {
        "question": ex["question"],
        "sentence": ex["sentence"],
        "options": opts,
        "answer": answer,
        "relation": relation,
    }


def _anli(r: int) -> TaskSpec:
    return TaskSpec(
        name=f"anli_r{r}",
        cluster="nli",
        source=TfdsSource(f"anli/r{r}:0.1.0"),
        fields_fn=_nli_fields("context", "hypothesis"),
        fields=NLI_FIELDS,
        templates=NLI_TEMPLATES,
        splits=common.labelled(),
        description=f"Adversarial NLI round {r}, 3-way entailment",
    )


SPECS = (
    _anli(1),
    _anli(2),
    _anli(3),
    TaskSpec(
        name="cb",
        cluster="nli",
        source=TfdsSource("super_glue/cb:1.0.2"),
        # CB's labels are (entailment, contradiction, neutral): reorder to NLI3's order.
        fields_fn=_nli_fields("premise", "hypothesis", order=(0, 2, 1)),
        fields=NLI_FIELDS,
        templates=NLI_TEMPLATES,
        metrics=common.metric("accuracy", "f1_macro"),
        rank_metrics=(metrics_lib.rank_classification_f1_macro,),
        splits=common.hidden(large=False),
        description="CommitmentBank, 3-way entailment of embedded clauses",
    ),
    TaskSpec(
        name="mnli_matched",
        cluster="nli",
        source=TfdsSource("glue/mnli:2.0.0"),
        fields_fn=_nli_fields("premise", "hypothesis"),
        fields=NLI_FIELDS,
        templates=NLI_TEMPLATES,
        splits=common.hidden(large=True, test="validation_matched"),
        description="MultiNLI, evaluated on the matched-genre validation set",
    ),
    TaskSpec(
        name="mnli_mismatched",
        cluster="nli",
        source=TfdsSource("glue/mnli:2.0.0"),
        fields_fn=_nli_fields("premise", "hypothesis"),
        fields=NLI_FIELDS,
        templates=NLI_TEMPLATES,
        splits=common.hidden(large=True, test="validation_mismatched"),
        description="MultiNLI, evaluated on the mismatched-genre validation set",
    ),
    TaskSpec(
        name="qnli",
        cluster="nli",
        source=TfdsSource("glue/qnli:2.0.0"),
        fields_fn=_qnli_fields,
        fields=("question", "sentence", "options", "answer", "relation"),
        templates=QNLI_TEMPLATES,
        splits=common.hidden(large=True),
        description="Question NLI: does the sentence answer the question (from SQuAD)",
    ),
    TaskSpec(
        name="rte",
        cluster="nli",
        source=TfdsSource("super_glue/rte:1.0.2"),
        fields_fn=_nli_fields("premise", "hypothesis", NLI2, REL2),
        fields=NLI_FIELDS,
        templates=NLI_TEMPLATES,
        splits=common.hidden(large=False),
        description="Recognizing Textual Entailment, 2-way",
    ),
    TaskSpec(
        name="snli",
        cluster="nli",
        source=TfdsSource("snli:1.1.0"),
        fields_fn=_nli_fields("premise", "hypothesis"),
        fields=NLI_FIELDS,
        templates=NLI_TEMPLATES,
        splits=common.labelled(),
        filter_fn=common.label_ok(),  # SNLI marks pairs without a gold label with -1
        description="Stanford NLI over image captions, 3-way",
    ),
    TaskSpec(
        name="wnli",
        cluster="nli",
        source=TfdsSource("glue/wnli:2.0.0"),
        # WNLI's labels are (not_entailment, entailment): reorder to NLI2's (yes, no).
        fields_fn=_nli_fields("sentence1", "sentence2", NLI2, REL2, order=(1, 0)),
        fields=NLI_FIELDS,
        templates=NLI_TEMPLATES,
        splits=common.hidden(large=False),
        description="Winograd NLI: entailment after resolving a pronoun",
    ),
)
