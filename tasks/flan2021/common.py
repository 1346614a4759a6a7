"""Shared pieces of the FLAN 2021 task modules: template arrangement, field helpers, metrics.

Split strings come from ``flan_reference`` (FLAN's own, per dataset). Templates are ours;
``arrange`` lays them out in FLAN's structure for the dataset (which positions show options,
which are turned around), so template i of ours plays the role of FLAN's template i.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from flan_jax import metrics as metrics_lib
from flan_jax.templates import Template

from . import flan_reference

Fields = Mapping[str, tf.Tensor]
FieldsFn = Callable[[Fields], dict[str, tf.Tensor]]


def arrange(
    dataset: str, originals: Sequence[str | Template], turned: Sequence[Template] = ()
) -> tuple[Template, ...]:
    """Our templates in FLAN's structure of ``dataset`` (``flan_reference.FLAN[d].structure``).

    ``originals`` (inputs patterns, or Templates with another target) fill the ``O`` (options
    shown) and ``N`` positions in order; ``turned`` fills the ``T`` positions. The counts must
    match FLAN's exactly.
    """
    structure = flan_reference.FLAN[dataset].structure
    n_orig = sum(c in "ON" for c in structure)
    if len(originals) != n_orig or len(turned) != structure.count("T"):
        raise ValueError(
            f"{dataset}: FLAN's structure {structure} needs {n_orig} original and "
            f"{structure.count('T')} turned-around templates, got {len(originals)} and "
            f"{len(turned)}"
        )
    orig, turn = iter(originals), iter(turned)
    out = []
    for c in structure:
        if c == "T":
            t = next(turn)
            if not t.turned_around:
                raise ValueError(f"{dataset}: template {len(out)} must be turned around")
            out.append(t)
            continue
        t = next(orig)
        inputs, targets = (t, "{answer}") if isinstance(t, str) else (t.inputs, t.targets)
        out.append(Template(inputs, targets, options=c == "O"))
    return tuple(out)


def turned(inputs: str, targets: str) -> Template:
    return Template(inputs, targets, turned_around=True)


# ---------------------------------------------------------------------------------------------
# Field helpers (TF ops only: they run inside tf.data).


def pick(options: Sequence[str], label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(options tensor, the option at ``label``) for a fixed list of answer choices."""
    opts = tf.constant(list(options))
    return opts, tf.gather(opts, tf.cast(label, tf.int32))


def first(seq: tf.Tensor, default: str = "") -> tf.Tensor:
    """The first string of a 1-D tensor, ``default`` when it is empty."""
    seq = tf.concat([tf.reshape(seq, [-1]), tf.constant([default])], axis=0)
    return seq[0]


def join(seq: tf.Tensor, separator: str) -> tf.Tensor:
    return tf.strings.reduce_join(tf.reshape(seq, [-1]), separator=separator)


def strip(text: tf.Tensor) -> tf.Tensor:
    return tf.strings.strip(text)


def label_ok(key: str = "label", num_classes: int | None = None) -> Callable[[Fields], tf.Tensor]:
    """Predicate keeping examples with a valid label (drops hidden-label rows marked -1)."""

    def keep(ex: Fields) -> tf.Tensor:
        label = tf.cast(ex[key], tf.int64)
        ok = label >= 0
        if num_classes is not None:
            ok = tf.logical_and(ok, label < num_classes)
        return ok

    return keep


# ---------------------------------------------------------------------------------------------
# Metrics: the dataset's metric as FLAN computes it, from ``flan_jax.metrics``.


def metric(*names: str) -> tuple[Callable, ...]:
    """The named metric functions of ``flan_jax.metrics`` (each must exist)."""
    return tuple(getattr(metrics_lib, n) for n in names)


ACCURACY = (metrics_lib.exact_match,)
# Rank-classification accuracy plus binary F1 of option 1 (the options are ("no", "yes")).
RANK_F1 = (metrics_lib.rank_classification_f1,)
# MultiRC: accuracy, F1 over all answers (F1a) and exact match over questions (T5's metrics).
RANK_MULTIRC = (metrics_lib.rank_classification_multirc,)


def references_postprocessor(text: str, example: Mapping | None = None, is_target: bool = False):
    """Targets become the example's list of references (max-over-references metrics)."""
    if is_target and example is not None and "references" in example:
        refs = [r.decode() if isinstance(r, bytes) else str(r) for r in example["references"]]
        return refs or [text]
    return text


def float_postprocessor(text: str, example: Mapping | None = None, is_target: bool = False):
    """Parses a number (STS-B similarity); unparsable predictions become -1."""
    try:
        return float(text)
    except ValueError:
        return -1.0
