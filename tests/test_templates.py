"""Templates: parsing, options rendering, strict field checks, TF == Python rendering."""

import pytest
import tensorflow as tf

from flan_jax import templates
from flan_jax.templates import Template, TemplateError


def _tf_render(template: Template, fields: dict) -> tuple[str, str]:
    tensors = {k: tf.constant(v) for k, v in fields.items()}
    inputs = templates.render_inputs_tf(template, tensors).numpy().decode()
    targets = templates.render_targets_tf(template, tensors).numpy().decode()
    return inputs, targets


FIELDS = {
    "premise": "It rains.",
    "hypothesis": "It is wet.",
    "options": ["yes", "no"],
    "answer": "yes",
}


def test_options_block_appended_after_blank_line():
    t = Template("{premise}\nDoes it follow that {hypothesis}?", options=True)
    expected = (
        "It rains.\nDoes it follow that It is wet.?\n\nOPTIONS:\n- yes\n- no",
        "yes",
    )
    assert _tf_render(t, FIELDS) == expected
    assert templates.render_py(t, FIELDS) == expected


def test_options_placeholder_and_custom_header():
    t = Template("Choices:\n{options}\nPremise: {premise}", options=True, options_header="Pick:")
    assert _tf_render(t, FIELDS)[0] == "Choices:\nPick:\n- yes\n- no\nPremise: It rains."


def test_literal_braces_and_turned_around():
    t = Template(
        "Write a {{sentence}} that is {answer}.", targets="{hypothesis}", turned_around=True
    )
    assert _tf_render(t, FIELDS) == ("Write a {sentence} that is yes.", "It is wet.")
    assert not t.is_rankable


def test_template_fields():
    t = Template("{premise} {hypothesis}", options=True)
    assert t.fields == {"premise", "hypothesis", "answer", "options"}
    assert t.is_rankable


def test_missing_field_names_dataset_template_and_field():
    t = Template("{premise} {conclusion}")
    with pytest.raises(TemplateError) as e:
        templates.check_template_fields("rte", 3, t, ["premise", "answer"])
    msg = str(e.value)
    assert "dataset 'rte' template 3 uses field 'conclusion'" in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(inputs="{x!r}"), "only plain {name} fields"),
        (dict(inputs="{x:>10}"), "only plain {name} fields"),
        (dict(inputs="{options}"), "set options=True"),
        (dict(inputs="x", targets="{options}"), "may not use {options}"),
        (dict(inputs="unclosed {brace"), "malformed pattern"),
    ],
)
def test_bad_patterns(kwargs, message):
    with pytest.raises(TemplateError, match=message.replace("{", r"\{").replace("}", r"\}")):
        Template(**kwargs)
