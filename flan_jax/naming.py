"""The one grammar for task and mixture names, and the helper that builds and parses them.

Task names::

    <collection>:<dataset>:mix              training task, one template per example
    <collection>:<dataset>:t<i>             template i, inputs -> target (zero-shot eval of it)
    <collection>:<dataset>:t<i>:rank        template i, one row per (example, option)
    <collection>:<dataset>:mix:tpl<n>       training task over the first n templates only
                                            (template-count ablation)
    <collection>:<dataset>:mix[:tpl<n>]:dedup_<c1>[+<c2>...]
                                            training task without the examples that overlap
                                            the eval data of the held-out clusters c1, c2...
    ...:<k>shot                             k-shot variant of any of the above (k exemplars
                                            from the train split, pruned to a token budget)

Mixture names::

    <collection>:heldout_<c1>[+<c2>...]:train   all clusters but the held-out ones (and the
                                                clusters the exclusion rules drop with them)
    <collection>:heldout_<c1>[+<c2>...]:eval    the held-out clusters' per-template eval tasks
    <collection>:heldout_<c1>[+<c2>...]:train_fewshot
                                                the training mixture, every task few-shot
                                                (FLAN's multi-shot: up to 16 within budget)
    <collection>:heldout_<c1>[+<c2>...]:eval_<k>shot
                                                the eval mixture, every task k-shot
    <collection>:all:train                      every cluster
    ...:train:tpl<n>                            ablation: first n templates per dataset
    ...:train:clusters<n>                       ablation: only the first n training clusters
                                                (in the collection's documented order)

Collection, dataset and cluster names are lower-case snake case. The collection is the name of the
module in ``tasks/`` (and ``mixtures/``) that registers it, so a name alone tells which module to
import.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

_IDENT = re.compile(r"^[a-z][a-z0-9_]*$")
# Shots of every task in a ``:train_fewshot`` mixture (FLAN's multi-shot).
FEWSHOT_TRAIN_SHOTS = 16


class InvalidNameError(ValueError):
    """A malformed task or mixture name."""


def check_ident(kind: str, value: str) -> str:
    if not _IDENT.match(value):
        raise InvalidNameError(
            f"{kind} name {value!r} is not lower-case snake case (letters, digits, '_', "
            "starting with a letter); rename it"
        )
    return value


def task_name(
    collection: str,
    dataset: str,
    template: int | None = None,
    *,
    rank: bool = False,
    shots: int = 0,
    num_templates: int | None = None,
    dedup: Sequence[str] = (),
) -> str:
    """Builds a task name; ``template=None`` is the mixed-template training task.

    ``num_templates`` and ``dedup`` only apply to the training task (``template=None``).
    """
    check_ident("collection", collection)
    check_ident("dataset", dataset)
    if template is None:
        if rank:
            raise InvalidNameError("a rank-classification task needs a template index")
        parts = [collection, dataset, "mix"]
        if num_templates is not None:
            parts.append(f"tpl{num_templates}")
        if dedup:
            for c in dedup:
                check_ident("cluster", c)
            parts.append("dedup_" + "+".join(dedup))
    else:
        if num_templates is not None or dedup:
            raise InvalidNameError("num_templates and dedup apply to the ':mix' training task only")
        parts = [collection, dataset, f"t{template}"] + (["rank"] if rank else [])
    if shots:
        parts.append(f"{shots}shot")
    return ":".join(parts)


def mixture_name(
    collection: str,
    heldout: Sequence[str] = (),
    kind: str = "train",
    *,
    templates: int | None = None,
    clusters: int | None = None,
    shots: int = 0,
) -> str:
    """Builds a mixture name; no held-out clusters means the all-clusters mixture.

    ``shots``: a few-shot mixture (``train_fewshot`` takes ``FEWSHOT_TRAIN_SHOTS``,
    ``eval_<k>shot`` any k >= 1).
    """
    check_ident("collection", collection)
    if kind not in ("train", "eval"):
        raise InvalidNameError(f"mixture kind {kind!r} must be 'train' or 'eval'")
    for c in heldout:
        check_ident("cluster", c)
    if kind == "eval" and not heldout:
        raise InvalidNameError("an eval mixture needs at least one held-out cluster")
    if shots and kind == "train" and shots != FEWSHOT_TRAIN_SHOTS:
        raise InvalidNameError(
            f"few-shot training mixtures use {FEWSHOT_TRAIN_SHOTS} shots (':train_fewshot'), "
            f"got {shots}"
        )
    if shots < 0:
        raise InvalidNameError(f"few-shot mixtures need shots >= 1, got {shots}")
    suffix = ("_fewshot" if kind == "train" else f"_{shots}shot") if shots else ""
    parts = [collection, "heldout_" + "+".join(heldout) if heldout else "all", kind + suffix]
    if templates is not None:
        parts.append(f"tpl{templates}")
    if clusters is not None:
        parts.append(f"clusters{clusters}")
    return ":".join(parts)


@dataclasses.dataclass(frozen=True)
class ParsedName:
    """What a task or mixture name says."""

    collection: str
    is_mixture: bool
    dataset: str | None = None
    template: int | None = None
    rank: bool = False
    shots: int = 0
    heldout: tuple[str, ...] = ()
    kind: str | None = None
    num_templates: int | None = None  # ':tpl<n>' (task or mixture)
    num_clusters: int | None = None  # ':clusters<n>' (mixture)
    dedup: tuple[str, ...] = ()  # ':dedup_<c1>+<c2>' (training task)


_TASK_RE = re.compile(
    r"^(?P<c>[a-z][a-z0-9_]*):(?P<d>[a-z][a-z0-9_]*):(?:mix(?::tpl(?P<n>\d+))?"
    r"(?::dedup_(?P<x>[a-z0-9_+]+))?|t(?P<t>\d+)(?P<r>:rank)?)(?::(?P<k>\d+)shot)?$"
)
_MIX_RE = re.compile(
    r"^(?P<c>[a-z][a-z0-9_]*):(?:all|heldout_(?P<h>[a-z0-9_+]+)):"
    r"(?P<kind>train(?P<f>_fewshot)?|eval(?:_(?P<k>[1-9]\d*)shot)?)"
    r"(?::tpl(?P<n>\d+))?(?::clusters(?P<m>\d+))?$"
)


def parse_name(name: str) -> ParsedName:
    """Parses a task or mixture name built by this module."""
    if m := _MIX_RE.match(name):
        heldout = tuple(m["h"].split("+")) if m["h"] else ()
        return ParsedName(
            m["c"],
            True,
            heldout=heldout,
            kind="train" if m["kind"].startswith("train") else "eval",
            shots=FEWSHOT_TRAIN_SHOTS if m["f"] else int(m["k"] or 0),
            num_templates=int(m["n"]) if m["n"] else None,
            num_clusters=int(m["m"]) if m["m"] else None,
        )
    if m := _TASK_RE.match(name):
        return ParsedName(
            m["c"],
            False,
            dataset=m["d"],
            template=int(m["t"]) if m["t"] is not None else None,
            rank=bool(m["r"]),
            shots=int(m["k"] or 0),
            num_templates=int(m["n"]) if m["n"] else None,
            dedup=tuple(m["x"].split("+")) if m["x"] else (),
        )
    raise InvalidNameError(
        f"{name!r} is not a task or mixture name: expected e.g. 'demo:sentiment_products:t0', "
        "'demo:sentiment_products:mix' or 'demo:heldout_nli:train' (see flan_jax/naming.py)"
    )
