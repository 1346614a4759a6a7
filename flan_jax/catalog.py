"""Names -> registered collections, tasks and mixtures: the top of the data layer.

A name's collection part names the module that declares it: ``tasks/<collection>.py`` (or
package), installed as ``flan_jax.tasks.<collection>``, and optionally
``mixtures/<collection>.py``. Such a module imports nothing but the data machinery and chooses
no vocabulary; it exposes two functions the catalog calls, once per process:

- ``flan_jax.tasks.<c>.register(vocabulary) -> Collection`` (usually one
  ``registry.register_collection`` call); a collection that can swap in FLAN's own templates
  also takes ``templates=PATH`` (the FLAN templates file of ``use_templates``);
- ``flan_jax.mixtures.<c>.register(collection)`` (optional): its mixtures.

``get_collection(name, vocabulary)`` imports and registers a collection the first time it is
asked for; asking again with an equal vocabulary returns the same collection, asking with another
one fails (seqio's task registry is process-global, so one process holds one registration of a
name). ``get_task_or_mixture`` also builds, on first lookup, the names nothing registers up front:
training variants (``:mix:tpl<n>``, ``:dedup_...``) and held-out mixtures of any cluster
combination through ``flan_jax.mixing``, few-shot tasks (``:<k>shot``) through
``flan_jax.fewshot``.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import os
import pkgutil

import seqio

from flan_jax import fewshot, flan_templates, mixing, naming, registry, vocab
from flan_jax.registry import Collection, RegistryError

TASKS_PACKAGE = "flan_jax.tasks"
MIXTURES_PACKAGE = "flan_jax.mixtures"

# Collections whose mixtures module has run (or that have none), so it runs once.
_MIXTURES_DONE: set[str] = set()

# The templates setting of this process (``--templates`` / gin ``TEMPLATES``): None for each
# collection's own templates, else the FLAN templates file a collection module may read
# (``flan_jax.flan_templates``). Like the vocabulary, one per process: set it before first use.
_TEMPLATES: dict[str, str | None] = {"setting": None, "path": None}
_REGISTERED_WITH: dict[str, str | None] = {}


def use_templates(setting: str | None) -> None:
    """Sets the templates of collections registered from now on: ``None``/``"ours"`` or
    ``"flan:PATH/TO/FLAN"`` (checked now: a missing file fails here, in one line)."""
    path = flan_templates.parse_setting(setting)
    setting = setting if path else None
    for name, registered in _REGISTERED_WITH.items():
        if registered != setting:
            raise RegistryError(
                f"collection '{name}' is registered with templates {registered or 'ours'} in "
                f"this process, not {setting or 'ours'}; use one templates setting per process"
            )
    _TEMPLATES.update(setting=setting, path=path)


def templates_identity() -> str:
    """The templates setting of this process as a run records it: ``"ours"``, or the FLAN
    templates file's absolute path and the SHA-256 of its content (an edited file differs)."""
    path = _TEMPLATES["path"]
    if path is None:
        return "ours"
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    return f"flan:{os.path.abspath(path)} (sha256 {digest})"


def available_collections() -> list[str]:
    """Collections that can be loaded: the modules of the installed ``tasks/`` package."""
    package = importlib.import_module(TASKS_PACKAGE)  # by name: the library imports no task module
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__))


def get_collection(name: str, vocabulary: seqio.Vocabulary) -> Collection:
    """The collection ``name`` with its tasks registered with ``vocabulary`` (loaded once).

    Collections registered directly with ``registry.register_collection`` are found too.
    """
    naming.check_ident("collection", name)
    collection = registry.registered_collection(name)
    if collection is None:
        collection = _register_tasks(name, vocabulary)
    elif collection.vocabulary != vocabulary:
        have, want = vocab.describe(collection.vocabulary), vocab.describe(vocabulary)
        raise RegistryError(
            f"collection '{name}' is registered with vocabulary {have} in this process, "
            f"not {want}; use one vocabulary per process"
        )
    if name not in _MIXTURES_DONE:
        _register_mixtures(collection)
        _MIXTURES_DONE.add(name)
    return collection


def get_task_or_mixture(name: str, vocabulary: seqio.Vocabulary) -> seqio.Task | seqio.Mixture:
    """A task or mixture by name, registering its collection (and the name) on first use."""
    try:
        parsed = naming.parse_name(name)
    except naming.InvalidNameError as e:
        raise RegistryError(f"unknown task or mixture '{name}': {e}") from None
    collection = get_collection(parsed.collection, vocabulary)
    if parsed.is_mixture and parsed.shots and name not in seqio.MixtureRegistry.names():
        _register_fewshot_mixture(collection, parsed, name, vocabulary)
    if parsed.is_mixture:
        if name not in seqio.MixtureRegistry.names():
            # Held-out mixtures of any cluster combination are built on demand.
            mixing.register_heldout_mixtures(
                collection,
                parsed.heldout,
                num_templates=parsed.num_templates,
                num_clusters=parsed.num_clusters,
            )
        if name in seqio.MixtureRegistry.names():
            return seqio.MixtureRegistry.get(name)
        raise RegistryError(f"unknown mixture '{name}'; `flan-jax list` shows the registered names")
    if name in seqio.TaskRegistry.names():
        return seqio.TaskRegistry.get(name)
    if parsed.shots:
        collection.spec(parsed.dataset)  # an unknown dataset fails here, naming the known ones
        base = get_task_or_mixture(name.rsplit(":", 1)[0], vocabulary)
        # The exemplars of a rank task are the examples of its generative twin (same template).
        twin = naming.task_name(parsed.collection, parsed.dataset, parsed.template)
        exemplars = get_task_or_mixture(twin, vocabulary) if parsed.rank else base
        return fewshot.register_fewshot_task(base, parsed.shots, exemplars=exemplars)
    if parsed.template is None and (parsed.num_templates or parsed.dedup):
        collection.spec(parsed.dataset)
        mixing.register_training_variant(
            collection, parsed.dataset, num_templates=parsed.num_templates, dedup=parsed.dedup
        )
        return seqio.TaskRegistry.get(name)
    raise RegistryError(f"unknown task '{name}'; `flan-jax list` shows the registered names")


def _register_fewshot_mixture(
    collection: Collection, parsed: naming.ParsedName, name: str, vocabulary: seqio.Vocabulary
) -> None:
    """``...:train_fewshot`` / ``...:eval_<k>shot``: the zero-shot mixture's members, k-shot.

    As FLAN's few-shot splits: the same training tasks and rates (``min(n, 3k)``; FLAN trains
    its multi-shot variants) or the same held-out eval tasks (uncapped rates), each with
    exemplars from its own train split.
    """
    plan = mixing.register_heldout_mixtures(
        collection,
        parsed.heldout,
        num_templates=parsed.num_templates,
        num_clusters=parsed.num_clusters,
    )
    zero_shot = plan.train_name if parsed.kind == "train" else plan.eval_name
    if zero_shot is None:
        raise RegistryError(f"unknown mixture '{name}': an eval mixture needs held-out clusters")
    members = seqio.MixtureRegistry.get(zero_shot)
    # The zero-shot member's rate (a function or a number), applied to it when first needed:
    # rates read dataset metadata, which registration must not.
    bases = {f"{t.name}:{parsed.shots}shot": t for t in members.tasks}
    tasks = [get_task_or_mixture(few, vocabulary) for few in bases]

    def rate(task: seqio.Task) -> float:
        base = bases[task.name]
        value = members.rate_per_task_name[base.name]
        return float(value(base) if callable(value) else value)

    fewshot.register_fewshot_mixture(name, tasks, rate)


def _register_tasks(name: str, vocabulary: seqio.Vocabulary) -> Collection:
    module = _import_optional(f"{TASKS_PACKAGE}.{name}")
    if module is None:
        raise RegistryError(
            f"no collection '{name}': tasks/{name}.py does not exist; "
            f"known collections: {', '.join(available_collections()) or 'none'}"
        )
    register = getattr(module, "register", None)
    if not callable(register):
        raise RegistryError(
            f"tasks/{name}.py has no register(vocabulary) function; define one that returns "
            "registry.register_collection(...) (see README, 'Adding a dataset')"
        )
    if _TEMPLATES["path"] is None:
        collection = register(vocabulary)
    elif "templates" in inspect.signature(register).parameters:
        collection = register(vocabulary, templates=_TEMPLATES["path"])
    else:
        raise RegistryError(
            f"collection '{name}' has no FLAN templates to swap in (--templates="
            f"{_TEMPLATES['setting']}); drop --templates for it (FLAN's apply to flan2021)"
        )
    _REGISTERED_WITH[name] = _TEMPLATES["setting"]
    if not isinstance(collection, Collection) or collection.name != name:
        raise RegistryError(
            f"tasks/{name}.py: register(vocabulary) must return the Collection '{name}' "
            f"(from registry.register_collection('{name}', ...)), got {collection!r:.80}"
        )
    return collection


def _register_mixtures(collection: Collection) -> None:
    module = _import_optional(f"{MIXTURES_PACKAGE}.{collection.name}")
    if module is None:
        return
    register = getattr(module, "register", None)
    if not callable(register):
        raise RegistryError(
            f"mixtures/{collection.name}.py has no register(collection) function; define one "
            "that registers its mixtures (e.g. mixing.register_all_heldout_mixtures(collection))"
        )
    register(collection)


def _import_optional(module: str):
    """The module, or None when it does not exist (errors inside an existing module propagate)."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            return None
        raise
