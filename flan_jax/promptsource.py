"""Promptsource-format templates as extra templates of a dataset.

A promptsource file (``templates.yaml``) holds ``templates: {id: !Template {name, jinja,
answer_choices, ...}}``. ``jinja`` renders a raw example into ``inputs ||| target``;
``answer_choices`` (itself Jinja) renders to choices separated by ``|||`` and is available to the
template as the list ``answer_choices``.

How they join our machinery: ``with_promptsource(spec, templates)`` returns a copy of a
``registry.TaskSpec``
whose ``fields_fn`` also pre-renders each promptsource template into two string fields
(``ps<j>_inputs``, ``ps<j>_targets``) and whose templates gain ``Template("{ps<j>_inputs}",
"{ps<j>_targets}")``. Rendering Jinja needs Python, so it runs in ``tf.py_function`` inside
tf.data (slower than our TF-only templates and not serializable into a tf.data snapshot, but
otherwise the same tasks: ``:t<i>``, ``:mix``, few-shot). Jinja sees the raw TFDS example (nested
dicts, bytes decoded to str, sequences as lists), optionally renamed with ``field_map`` (TFDS and
Hugging Face field names differ). Their choices are in the prompt text already, so these
templates are generative (no ``:rank`` task). Rendering uses Jinja's sandbox: the files are
user input.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import jinja2.sandbox
import numpy as np
import tensorflow as tf
import yaml

from flan_jax.templates import Template

SEPARATOR = "|||"


class _SpecLike(Protocol):
    """What ``with_promptsource`` needs of a ``registry.TaskSpec`` (a frozen dataclass).

    Typed structurally so this module stays at the bottom of the data layer, beside templates,
    without importing the registry.
    """

    fields_fn: Callable[..., Mapping[str, tf.Tensor]]
    fields: tuple[str, ...]
    templates: tuple[Template, ...]


SpecT = TypeVar("SpecT", bound=_SpecLike)


class PromptsourceError(ValueError):
    """A promptsource file or template that cannot be loaded or rendered."""


@dataclasses.dataclass(frozen=True)
class PromptsourceTemplate:
    """One promptsource template: its Jinja source and (optional) answer-choices Jinja."""

    name: str
    jinja: str
    answer_choices: str | None = None
    id: str = ""


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads promptsource's ``!Template``/``!TemplateMetadata`` as mappings."""


def _mapping(loader: yaml.SafeLoader, node: yaml.Node) -> dict:
    return loader.construct_mapping(node, deep=True)


_Loader.add_constructor("!Template", _mapping)
_Loader.add_constructor("!TemplateMetadata", _mapping)


def load_templates(path: str) -> list[PromptsourceTemplate]:
    """Templates of a promptsource YAML file, or of every ``*.yaml`` under a directory."""
    if os.path.isdir(path):
        files = sorted(
            os.path.join(root, f)
            for root, _, names in os.walk(path)
            for f in names
            if f.endswith((".yaml", ".yml"))
        )
    elif os.path.exists(path):
        files = [path]
    else:
        raise FileNotFoundError(f"promptsource templates {path} do not exist")
    out = []
    for file in files:
        with open(file, encoding="utf-8") as f:
            data = yaml.load(f, Loader=_Loader) or {}
        for key, t in sorted((data.get("templates") or {}).items(), key=lambda kv: str(kv[0])):
            if not isinstance(t, Mapping) or SEPARATOR not in str(t.get("jinja", "")):
                raise PromptsourceError(
                    f"{file}: template {key} has no jinja with '{SEPARATOR}' between input "
                    "and target"
                )
            out.append(
                PromptsourceTemplate(
                    name=str(t.get("name", key)),
                    jinja=str(t["jinja"]),
                    answer_choices=t.get("answer_choices"),
                    id=str(t.get("id", key)),
                )
            )
    if not out:
        raise PromptsourceError(f"no promptsource templates found in {path}")
    return out


_ENV = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)


def _python(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _python(v) for k, v in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return [_python(v) for v in value.tolist()] if value.ndim else _python(value.item())
    if isinstance(value, list):
        return [_python(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def render(template: PromptsourceTemplate, example: Mapping[str, Any]) -> tuple[str, str]:
    """(inputs, target) of one raw example (Python values); choices bound as answer_choices."""
    context = dict(_python(example))
    try:
        if template.answer_choices:
            choices = _ENV.from_string(template.answer_choices).render(**context)
            context["answer_choices"] = [c.strip() for c in choices.split(SEPARATOR)]
        text = _ENV.from_string(template.jinja).render(**context)
    except jinja2.TemplateError as e:
        raise PromptsourceError(f"promptsource template '{template.name}': {e}") from None
    parts = text.split(SEPARATOR)
    if len(parts) != 2:
        raise PromptsourceError(
            f"promptsource template '{template.name}' rendered {len(parts) - 1} '{SEPARATOR}' "
            "separators; expected exactly one"
        )
    return parts[0].strip(), parts[1].strip()


def with_promptsource(
    spec: SpecT,
    templates: Sequence[PromptsourceTemplate],
    field_map: Mapping[str, str] | None = None,
) -> SpecT:
    """A copy of ``spec`` whose templates end with the promptsource ``templates``."""
    field_map = dict(field_map or {})
    base_fn = spec.fields_fn

    def fields_fn(ex):
        out = dict(base_fn(ex))
        flat = tf.nest.flatten(ex)

        def py_render(*tensors):
            raw = tf.nest.pack_sequence_as(ex, [t.numpy() for t in tensors])
            raw = {field_map.get(k, k): v for k, v in raw.items()}
            rendered = [s for t in templates for s in render(t, raw)]
            return [tf.constant(s) for s in rendered]

        rendered = tf.py_function(py_render, flat, [tf.string] * (2 * len(templates)))
        for j in range(len(templates)):
            out[f"ps{j}_inputs"] = tf.ensure_shape(rendered[2 * j], [])
            out[f"ps{j}_targets"] = tf.ensure_shape(rendered[2 * j + 1], [])
        return out

    extra_fields = tuple(f"ps{j}_{k}" for j in range(len(templates)) for k in ("inputs", "targets"))
    extra_templates = tuple(
        Template(f"{{ps{j}_inputs}}", targets=f"{{ps{j}_targets}}") for j in range(len(templates))
    )
    return dataclasses.replace(
        spec,
        fields_fn=fields_fn,
        fields=(*spec.fields, *extra_fields),
        templates=(*spec.templates, *extra_templates),
    )
