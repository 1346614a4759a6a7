"""Instruction templates: patterns over named fields, FLAN-style options, strict rendering.

A template is data: an inputs pattern and a targets pattern such as
``"Premise: {premise}\\nDoes it follow that {hypothesis}?"`` / ``"{answer}"``. Patterns use
``str.format`` field syntax without format specs; ``{{`` and ``}}`` are literal braces.

Two field names are special:
- ``options``: a list of answer choices. A template with ``options=True`` renders them as a block
  (a header line, then one ``- choice`` line per option). If the inputs pattern contains
  ``{options}`` the block goes there, otherwise it is appended after a blank line.
- ``answer``: the correct choice (or the reference output). For rank classification the targets
  pattern is rendered once per option with ``answer`` bound to that option.

Rendering happens inside tf.data with string joins (no Python callbacks), so input pipelines stay
fast, deterministic and checkpointable. ``render_py`` is the same logic in Python for inspection.
"""

from __future__ import annotations

import dataclasses
import string
from collections.abc import Mapping, Sequence

import tensorflow as tf

OPTIONS_HEADER = "OPTIONS:"
OPTIONS_FIELD = "options"
ANSWER_FIELD = "answer"


class TemplateError(ValueError):
    """A template that cannot be rendered with the fields its dataset provides."""


# A parsed pattern: alternating literal text and field names (None where the piece is literal).
Piece = tuple[str, str | None]


def parse_pattern(pattern: str) -> tuple[Piece, ...]:
    """Splits a pattern into (literal, field-or-None) pieces; rejects format specs."""
    pieces: list[Piece] = []
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as e:
        raise TemplateError(f"malformed pattern {pattern!r}: {e}; use {{{{ }}}} for braces") from e
    for literal, field, spec, conversion in parsed:
        if literal:
            pieces.append((literal, None))
        if field is None:
            continue
        if not field.isidentifier() or spec or conversion:
            raise TemplateError(
                f"pattern {pattern!r} has field {{{field}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}: only plain {{name}} fields are allowed"
            )
        pieces.append(("", field))
    return tuple(pieces)


@dataclasses.dataclass(frozen=True)
class Template:
    """One instruction template: an (inputs, targets) pattern pair over named fields.

    Attributes:
      inputs: pattern of the model input.
      targets: pattern of the expected output (usually ``"{answer}"``).
      options: whether the options block is rendered into the inputs.
      turned_around: whether the template asks for the reverse task (e.g. write a review with a
        given sentiment). Such templates train but are not used for zero-shot evaluation.
      options_header: the header line of the options block.
    """

    inputs: str
    targets: str = "{answer}"
    options: bool = False
    turned_around: bool = False
    options_header: str = OPTIONS_HEADER

    def __post_init__(self):
        parse_pattern(self.inputs)
        parse_pattern(self.targets)
        if OPTIONS_FIELD in self.target_fields:
            raise TemplateError(f"targets pattern {self.targets!r} may not use {{options}}")
        if OPTIONS_FIELD in self.input_fields and not self.options:
            raise TemplateError(
                f"inputs pattern {self.inputs!r} names {{options}} but options=False; "
                "set options=True to render the options block"
            )

    @property
    def input_fields(self) -> frozenset[str]:
        return frozenset(f for _, f in parse_pattern(self.inputs) if f)

    @property
    def target_fields(self) -> frozenset[str]:
        return frozenset(f for _, f in parse_pattern(self.targets) if f)

    @property
    def fields(self) -> frozenset[str]:
        """Every field the template needs (``options`` included when it renders the block)."""
        needed = self.input_fields | self.target_fields
        return needed | {OPTIONS_FIELD} if self.options else needed

    @property
    def is_rankable(self) -> bool:
        """Whether rank classification applies when the dataset has options: an original-task
        template whose target is the chosen option, whether or not it shows the options (FLAN
        scores every such template of a classification dataset this way)."""
        return not self.turned_around and ANSWER_FIELD in self.target_fields


def check_template_fields(
    dataset: str, index: int, template: Template, available: Sequence[str]
) -> None:
    """Raises TemplateError naming dataset, template index and field if a field is missing."""
    missing = sorted(template.fields - set(available))
    if missing:
        raise TemplateError(
            f"dataset '{dataset}' template {index} uses field '{missing[0]}', which the dataset "
            f"does not provide (it provides: {', '.join(sorted(available))}); "
            "fix the template or add the field to the spec's fields_fn"
        )


# ---------------------------------------------------------------------------------------------
# Rendering in TensorFlow.


def options_block_tf(options: tf.Tensor, header: str = OPTIONS_HEADER) -> tf.Tensor:
    """``header`` then one ``- choice`` line per option, as a scalar string tensor."""
    lines = tf.strings.join(["- ", options])
    return tf.strings.join([header, tf.strings.reduce_join(lines, separator="\n")], separator="\n")


def _join_pieces(pieces: Sequence[Piece], values: Mapping[str, tf.Tensor]) -> tf.Tensor:
    parts = [tf.constant(lit) if field is None else values[field] for lit, field in pieces]
    if not parts:
        return tf.constant("")
    return tf.strings.join(parts) if len(parts) > 1 else tf.identity(parts[0])


def render_inputs_tf(template: Template, fields: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """Renders the inputs pattern (with the options block if the template asks for it)."""
    pieces = parse_pattern(template.inputs)
    values = dict(fields)
    if template.options:
        values[OPTIONS_FIELD] = options_block_tf(fields[OPTIONS_FIELD], template.options_header)
        if OPTIONS_FIELD not in template.input_fields:
            pieces = (*pieces, ("\n\n", None), ("", OPTIONS_FIELD))
    return _join_pieces(pieces, values)


def render_targets_tf(template: Template, fields: Mapping[str, tf.Tensor]) -> tf.Tensor:
    return _join_pieces(parse_pattern(template.targets), fields)


# ---------------------------------------------------------------------------------------------
# The same rendering in Python (inspection, docs, tests of the TF path).


def options_block(options: Sequence[str], header: str = OPTIONS_HEADER) -> str:
    return "\n".join([header, *(f"- {o}" for o in options)])


def render_py(template: Template, fields: Mapping[str, object]) -> tuple[str, str]:
    """Renders (inputs, targets) from Python values; mirrors the TF path exactly."""
    values = {k: v for k, v in fields.items() if k != OPTIONS_FIELD}
    inputs_pattern = template.inputs
    if template.options:
        values[OPTIONS_FIELD] = options_block(list(fields[OPTIONS_FIELD]), template.options_header)
        if OPTIONS_FIELD not in template.input_fields:
            inputs_pattern += "\n\n{options}"
    return inputs_pattern.format(**values), template.targets.format(**values)
