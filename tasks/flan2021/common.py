"""Shared pieces of the FLAN 2021 task modules: split conventions, field helpers, metrics.

Split conventions (FLAN's; see docs/flan2021_datacard.md):
- ``labelled``: the source has labelled validation and test splits: train capped at 30k,
  dev = ``validation[:200]``, test = ``test``.
- ``hidden``: test labels are hidden (GLUE/SuperGLUE style) or there is no test split: the last
  ``holdout`` (200; COPA/WSC 50) train examples are the dev split, the official validation split
  is the test split. ``large=True`` (known to have > 30,200 train examples) caps train with
  ``train[:30000]``; otherwise train is ``train[:-holdout]`` (all but the dev examples).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import tensorflow as tf

from flan_jax import metrics as metrics_lib

CAP = 30_000
DEV_SIZE = 200

Fields = Mapping[str, tf.Tensor]
FieldsFn = Callable[[Fields], dict[str, tf.Tensor]]


def labelled(val: str = "validation", test: str = "test", train: str = "train") -> dict[str, str]:
    """Train capped, dev = first 200 of the validation split, the official test split."""
    return {"train": f"{train}[:{CAP}]", "validation": f"{val}[:{DEV_SIZE}]", "test": test}


def hidden(
    large: bool, test: str = "validation", train: str = "train", holdout: int = DEV_SIZE
) -> dict[str, str]:
    """Dev = last ``holdout`` train examples, test = the official validation split."""
    head = f"{train}[:{CAP}]" if large else f"{train}[:-{holdout}]"
    return {"train": head, "validation": f"{train}[-{holdout}:]", "test": test}


def train_only(holdout: int = DEV_SIZE, test_size: int = 1000) -> dict[str, str]:
    """Sources with one (large) train split: dev and test are carved from its end."""
    return {
        "train": f"train[:{CAP}]",
        "validation": f"train[-{holdout}:]",
        "test": f"train[-{holdout + test_size}:-{holdout}]",
    }


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
# Metrics: the dataset's own metric where metrics.py provides it, else exact match.


def metric(*names: str) -> tuple[Callable, ...]:
    """The named metric functions of ``flan_jax.metrics`` that exist (else EM)."""
    fns = tuple(getattr(metrics_lib, n) for n in names if hasattr(metrics_lib, n))
    return fns or (metrics_lib.exact_match,)


ACCURACY = (metrics_lib.exact_match,)
# Rank-classification accuracy plus binary F1 of option 1 (the options are ("no", "yes")).
RANK_F1 = (metrics_lib.rank_classification_f1,)


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
