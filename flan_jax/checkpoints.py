"""Checkpoints of global arrays with orbax, restorable onto any mesh.

Layout of MODEL_DIR (one orbax `CheckpointManager`):

    MODEL_DIR/<step>/state/          {"step", "params", "opt_state"}: whole global arrays (OCDBT)
    MODEL_DIR/<step>/data/           JSON: where the input pipeline stood (batches consumed)
    MODEL_DIR/<step>/meta/           JSON: a summary of the run's config
    MODEL_DIR/<step>/integrity.json  size and CRC32 of every other file of the step (below)

Because arrays are stored whole, a restore may target a different mesh: pass abstract arrays
(`jax.ShapeDtypeStruct` with the new `NamedSharding`) and orbax reads each device's slice.
A checkpoint only counts once orbax has finalized it (written in `<step>.orbax-checkpoint-tmp`,
then `commit_success.txt` and an atomic rename; on GCS the commit file alone marks it).
Paths go through `etils.epath`, so `gs://` works like a local directory.

Integrity. orbax's commit says a save finished, not that its files are still what it wrote: a
truncated file fails deep inside OCDBT, flipped bytes in array data restore silently. So each
committed step gets a manifest of its files' sizes and CRC32s (~3.5 GB/s here; it catches
accidents, not someone who can also rewrite the manifest). Saves are asynchronous, so process 0
writes a step's manifest only once orbax has committed it (files final): at the next `save()`
(which waits for the previous save anyway), `wait()`, `close()` or `latest_step()`; a step in
flight waits for a later call. Manifests are checked before every restore (`restore`,
`restore_params`) and by `latest_step`, which returns the newest *intact* step and warns once
naming the corrupted steps it skipped; with several processes, process 0 reads and the others
follow its verdict. A committed step without a manifest (saved before manifests existed, or the
trainer died between orbax's commit and the manifest) is used unverified, with one warning, and
never sealed after the fact: that would bless whatever its files hold now. A corrupted step is
moved aside (`<step>.corrupted`; deleted on cloud storage) only when a run that resumed before
it saves that step again.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from flan_jax.run_dir import as_path  # one definition of MODEL_DIR-style paths

log = logging.getLogger("flan_jax.checkpoints")

PathLike = str | os.PathLike
_COMMIT_FILE = "commit_success.txt"  # written by orbax when a checkpoint is finalized
_TMP_MARK = ".orbax-checkpoint-tmp"  # in the name of a save that has not committed (yet)
_STATE, _DATA, _META = "state", "data", "meta"
MANIFEST = "integrity.json"  # inside each committed checkpoint: size and CRC32 of its files
_MANIFEST_VERSION = 1
_CHUNK = 8 << 20
_barriers = itertools.count()


class CheckpointCorrupted(ValueError):
    """A checkpoint's files no longer match the manifest written when it was saved."""


class CheckpointNotCommitted(FileNotFoundError):
    """A path orbax never finished saving: its temporary directory, or no commit marker."""


def _ensure_writable(path: epath.Path) -> None:
    """Fails now, in one line, rather than deep inside an async save thread."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if jax.process_index() == 0:
            probe = path / f".write_probe_{os.getpid()}"
            probe.write_text("ok")
            probe.unlink()
    except Exception as e:  # OSError locally; GCS backends raise their own types
        raise PermissionError(
            f"MODEL_DIR {path} is not writable ({type(e).__name__}: {e}); "
            "pass a directory you can create and write to"
        ) from e


def _check_json(what: str, value: dict[str, Any], step: int) -> None:
    try:
        json.dumps(value)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"checkpoint {what} for step {step} is not JSON-serializable ({e}); "
            "pass plain dicts of str/int/float/bool/list"
        ) from e


# -- integrity manifests ------------------------------------------------------------------------


def _is_cloud(path: epath.Path) -> bool:
    return "://" in str(path)


def _files(root: epath.Path) -> dict[str, epath.Path]:
    """Every file under `root` by its path relative to it (the manifest itself excluded)."""
    prefix = len(str(root).rstrip("/")) + 1
    found = {}
    for dirpath, _, filenames in root.walk():
        for name in filenames:
            path = epath.Path(dirpath) / name
            found[str(path)[prefix:]] = path
    found.pop(MANIFEST, None)
    return found


def _checksum(path: epath.Path) -> tuple[int, str]:
    size, crc = 0, 0
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            size += len(chunk)
            crc = zlib.crc32(chunk, crc)
    return size, f"{crc:08x}"


def write_manifest(path: PathLike, checksums: bool | None = None) -> None:
    """Records the size and CRC32 of every file of the committed checkpoint at `path`.

    `checksums=None` means: on local or network filesystems yes, on object stores (gs://, s3://)
    sizes only. An object store checks each object's own checksum when it is uploaded, and a
    CRC32 here would read the whole checkpoint back over the network at every save (tens of GB
    for T5 XXL); sizes still catch a missing or truncated file.
    """
    path = as_path(path)
    if checksums is None:
        checksums = not _is_cloud(path)
    if checksums:
        files = {rel: list(_checksum(p)) for rel, p in sorted(_files(path).items())}
    else:
        files = {rel: [p.stat().length, None] for rel, p in sorted(_files(path).items())}
    kind = "crc32" if checksums else "size"
    text = json.dumps({"version": _MANIFEST_VERSION, "checksum": kind, "files": files})
    target = path / MANIFEST
    if _is_cloud(path):
        target.write_text(text)  # an object appears whole or not at all
        return
    tmp = path / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, target)


def has_manifest(path: PathLike) -> bool:
    """Whether the checkpoint at `path` has an integrity manifest."""
    return (as_path(path) / MANIFEST).exists()


def verify(path: PathLike) -> str | None:
    """Why the checkpoint at `path` no longer matches its manifest, or None if it does (or has
    no manifest: see `has_manifest`). Sizes are compared first (cheap), then checksums."""
    path = as_path(path)
    if not has_manifest(path):
        return None
    try:
        files = json.loads((path / MANIFEST).read_text())["files"]
    except (ValueError, KeyError, TypeError) as e:
        return f"its {MANIFEST} is unreadable ({type(e).__name__})"
    present = _files(path)
    problems = []
    for rel, (size, _) in files.items():
        if rel not in present:
            problems.append(f"{rel} is missing")
        elif (actual := present[rel].stat().length) != size:
            problems.append(f"{rel} has {actual} bytes, its manifest says {size}")
    if not problems:
        for rel, (_, crc) in files.items():
            if crc is None:  # a sizes-only manifest (object stores)
                continue
            if (actual := _checksum(present[rel])[1]) != crc:
                problems.append(f"{rel} has CRC32 {actual}, its manifest says {crc}")
    if not problems:
        return None
    more = f" (and {len(problems) - 1} more files)" if len(problems) > 1 else ""
    return problems[0] + more


def from_process_0(value: int) -> int:
    """Process 0's `value` on every process: one process reads and checks, all agree."""
    if jax.process_count() == 1:
        return value
    return int(ocp.multihost.broadcast_one_to_all(np.int32(value)))


def _agreed_problem(path: epath.Path) -> str | None:
    """`verify(path)` as process 0 sees it (only it reads the files), on every process."""
    problem = verify(path) if jax.process_index() == 0 else None
    if from_process_0(int(problem is not None)) and problem is None:
        problem = "process 0 found it corrupted; its log names the file"
    return problem


@jax.jit
def _finite(tree: Any) -> jax.Array:
    leaves = [
        jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.stack(leaves).all() if leaves else jnp.array(True)


def all_finite(tree: Any) -> bool:
    """Whether every float leaf of a pytree of (global) arrays is finite: one fused reduction on
    the devices and one bool fetched, so only a finite state becomes a checkpoint."""
    return bool(_finite(tree))


def is_committed(path: epath.Path) -> bool:
    """Whether orbax finished the save at `path` (its commit marker is there)."""
    return (path / _COMMIT_FILE).exists()


def committed_steps(model_dir: epath.Path) -> list[int]:
    """Steps of `model_dir` whose saves orbax finished, ascending."""
    if not model_dir.is_dir():
        return []
    steps = (p for p in model_dir.iterdir() if p.name.isdigit() and (p / _COMMIT_FILE).exists())
    return sorted(int(p.name) for p in steps)


# -- training checkpoints ----------------------------------------------------------------------


class Checkpointer:
    """Saves and restores training checkpoints in `model_dir`, keeping the last `keep`.

    With `async_save`, `save` returns once the arrays are copied off the devices and the
    writing happens in the background; call `wait()` before reading the files and `close()`
    at the end (both also write the integrity manifests of the steps that committed).
    """

    def __init__(self, model_dir: PathLike, keep: int = 3, async_save: bool = True) -> None:
        if not isinstance(keep, int) or keep < 1:
            raise ValueError(f"Checkpointer keep={keep!r} is invalid; keep at least 1 checkpoint")
        self.directory = as_path(model_dir)
        _ensure_writable(self.directory)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=async_save, create=True
        )
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                _STATE: ocp.StandardCheckpointHandler(),
                _DATA: ocp.JsonCheckpointHandler(),
                _META: ocp.JsonCheckpointHandler(),
            },
        )
        self._unsealed: list[int] = []  # saved here; manifest not written yet
        self._problems: dict[int, str | None] = {}  # verify() results, by step (files are final)
        self._warned: set[tuple] = set()  # what was warned about: skipped steps, unverified ones

    def _step_dir(self, step: int) -> epath.Path:
        return self.directory / str(step)

    def _is_finalized(self, step: int) -> bool:
        return (self._step_dir(step) / _COMMIT_FILE).exists()

    def _seal(self) -> None:
        """Writes the manifest of each step saved here that orbax has committed since (process 0
        writes; the files of a committed step are final). Steps still in flight wait."""
        in_flight = self._manager.is_saving_in_progress()  # asked first: it may end meanwhile
        pending, self._unsealed = self._unsealed, []
        for step in pending:
            if not self._is_finalized(step):
                if in_flight:
                    self._unsealed.append(step)  # not committed yet: sealed at a later call
                continue  # else removed by orbax's retention (or its save failed)
            if jax.process_index() == 0:
                try:
                    write_manifest(self._step_dir(step))
                except FileNotFoundError:
                    continue  # removed by retention while we read it
            self._problems[step] = None

    def _problem(self, step: int) -> str | None:
        if step not in self._problems:
            self._problems[step] = _agreed_problem(self._step_dir(step))
        return self._problems[step]

    def all_steps(self) -> list[int]:
        """Steps of all finalized checkpoints, ascending (intact or not: see `latest_step`)."""
        return [s for s in sorted(self._manager.all_steps()) if self._is_finalized(s)]

    def live_steps(self) -> list[int]:
        """Steps whose checkpoint is on disk (committed, including one that orbax's retention
        will delete when the save in flight finalizes) or still being written here: the steps
        whose input states a resume may need."""
        return sorted(set(committed_steps(self.directory)) | set(self._unsealed))

    def latest_step(self, before: int | None = None) -> int | None:
        """The newest finalized checkpoint whose files match its manifest, or None; with
        `before`, the newest such step below it.

        orbax's own `latest_step` also reports a save still in flight (only its tmp dir
        exists), so we check the commit file, newest first. Corrupted steps are skipped with
        one warning naming them and the step used. Raises CheckpointCorrupted when every
        checkpoint is corrupted (and `before` is None): starting over would silently discard
        the run.
        """
        self._seal()
        steps = [s for s in self.all_steps() if before is None or s < before]
        chosen, skipped = None, {}
        for step in reversed(steps):
            problem = self._problem(step)
            if problem is None:
                chosen = step
                break
            skipped[step] = problem
        why = "; ".join(f"step {s} ({p})" for s, p in skipped.items())
        if skipped and chosen is None and before is None:
            raise CheckpointCorrupted(
                f"every checkpoint in {self.directory} is corrupted: {why}; restore them from "
                "a copy, or move them away to train again from the start"
            )
        if skipped and ("skip", *skipped) not in self._warned and jax.process_index() == 0:
            self._warned.add(("skip", *skipped))
            using = f"using step {chosen}" if chosen is not None else "no intact step is older"
            log.warning(
                "skipping corrupted checkpoint(s) in %s: %s; %s", self.directory, why, using
            )
        if chosen is not None:
            self._warn_unverified(chosen)
        return chosen

    def _warn_unverified(self, step: int) -> None:
        if ("unverified", step) in self._warned or jax.process_index() != 0:
            return
        self._warned.add(("unverified", step))
        if has_manifest(self._step_dir(step)):
            return
        log.warning(
            "checkpoint step %d in %s has no integrity manifest (saved before flan_jax wrote "
            "them, or the trainer stopped right after orbax committed it); using it unverified",
            step,
            self.directory,
        )

    def save(
        self,
        step: int,
        state: Any,
        data: dict[str, Any],
        meta: dict[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Saves `state` (a pytree of global arrays) with the JSON `data` and `meta`.

        Returns False (writing nothing) when `step` is already saved and intact; a corrupted or
        uncommitted step of that number is moved aside first. Every process must call it.
        """
        meta = {} if meta is None else meta
        _check_json("data", data, step)
        _check_json("meta", meta, step)
        # orbax's save waits for the previous one anyway; waiting first lets us seal it.
        self._manager.wait_until_finished()
        self._seal()
        if step in self._manager.all_steps():
            if self._is_finalized(step):
                problem = self._problem(step)
            else:
                problem = f"no {_COMMIT_FILE}: the save never finished"
            if problem is None:
                return False
            self._set_aside(step, problem)
        args = ocp.args.Composite(
            **{
                _STATE: ocp.args.StandardSave(state),
                _DATA: ocp.args.JsonSave(data),
                _META: ocp.args.JsonSave(meta),
            }
        )
        saved = self._manager.save(step, args=args, force=force)
        if saved:
            self._unsealed.append(step)
        return saved

    def _set_aside(self, step: int, problem: str) -> None:
        """Moves a bad step out of orbax's way (deletes it on cloud storage, which cannot
        rename a directory), so that the step can be saved again."""
        src = self._step_dir(step)
        if jax.process_index() == 0:
            if _is_cloud(src):
                src.rmtree()
                where = "deleted it"
            else:
                dst, n = self.directory / f"{step}.corrupted", 1
                while dst.exists():
                    dst, n = self.directory / f"{step}.corrupted.{n}", n + 1
                src.rename(dst)
                where = f"moved it to {dst}"
            log.warning(
                "checkpoint step %d in %s is corrupted (%s); %s before saving step %d again",
                step,
                self.directory,
                problem,
                where,
                step,
            )
        # Barrier names must be unique for the job's lifetime (same count on every process).
        ocp.multihost.sync_global_processes(f"flan_jax_set_aside_{next(_barriers)}")
        self._manager.reload()
        self._problems.pop(step, None)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        """Restores (state, data) of `step` onto the shardings in `abstract_state`.

        `abstract_state` mirrors the saved state with `jax.ShapeDtypeStruct(shape, dtype,
        sharding=NamedSharding(mesh, spec))` leaves; the mesh may differ from the saving one.
        Raises CheckpointCorrupted if the step's files do not match its manifest.
        """
        if step not in self.all_steps():
            raise FileNotFoundError(
                f"checkpoint step {step} does not exist in {self.directory}; "
                f"finalized steps there: {self.all_steps()}"
            )
        problem = self._problem(step)
        if problem is not None:
            raise CheckpointCorrupted(
                f"checkpoint step {step} in {self.directory} is corrupted ({problem}); restore "
                "it from a copy, or use another step (latest_step() finds the newest intact one)"
            )
        self._warn_unverified(step)
        args = ocp.args.Composite(
            **{_STATE: ocp.args.StandardRestore(abstract_state), _DATA: ocp.args.JsonRestore()}
        )
        restored = self._manager.restore(step, args=args)
        return restored[_STATE], restored[_DATA]

    def restore_meta(self, step: int) -> dict[str, Any]:
        """The JSON `meta` saved with `step`."""
        restored = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
        return restored[_META]

    def wait(self) -> None:
        """Blocks until every background save is finalized, and writes their manifests."""
        self._manager.wait_until_finished()
        self._seal()

    def close(self) -> None:
        """Waits for pending saves, writes their manifests and releases orbax's threads."""
        try:
            self.wait()
        finally:
            self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- params-only checkpoints -------------------------------------------------------------------


def save_params(path: PathLike, params: Any, force: bool = False) -> None:
    """Writes a params-only checkpoint (e.g. weights imported from Hugging Face), with its
    integrity manifest."""
    path = as_path(path)
    if path.exists() and not force:
        raise FileExistsError(
            f"params checkpoint path {path} already exists; choose a new path or pass force=True"
        )
    _ensure_writable(path.parent)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, params, force=force)
        checkpointer.wait_until_finished()
    if jax.process_index() == 0:
        write_manifest(path)


def _check_committed(path: epath.Path) -> None:
    """Refuses a save orbax never finished (its tmp directory, or no commit marker)."""
    tmp = next((p for p in [path, *path.parents] if _TMP_MARK in p.name), None)
    if tmp is not None:
        what, parent = "is an unfinished save (orbax's temporary directory)", tmp.parent
    elif not (path / _COMMIT_FILE).exists():
        what, parent = (
            f"was never committed (no {_COMMIT_FILE}: its save did not finish)",
            path.parent,
        )
    else:
        return
    steps = committed_steps(parent)
    if steps:
        fix = f"pass {parent / str(steps[-1])} (committed steps: {steps})"
    else:
        fix = "pass a committed MODEL_DIR/<step> or a params checkpoint written by save_params"
    raise CheckpointNotCommitted(f"checkpoint path {path} {what}; {fix}")


def restore_params(path: PathLike, abstract_params: Any) -> Any:
    """Restores only the params, for fine-tuning from INITIAL_CHECKPOINT_PATH.

    `path` is either a step directory of a MODEL_DIR (`MODEL_DIR/<step>`, whose optimizer
    state is skipped) or a params-only checkpoint written by `save_params`. Leaves of
    `abstract_params` should carry the target `NamedSharding`s. Refuses, in one line, a save
    that never committed (CheckpointNotCommitted) and one whose files no longer match its
    manifest (CheckpointCorrupted).
    """
    path = as_path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint path {path} does not exist; pass MODEL_DIR/<step> of a run or a "
            "params-only checkpoint directory written by save_params"
        )
    is_step, is_params = (path / _STATE).is_dir(), (path / "_METADATA").exists()
    if is_step or is_params or _TMP_MARK in path.name:
        _check_committed(path)
        problem = _agreed_problem(path)
        if problem is not None:
            steps = [s for s in committed_steps(path.parent) if str(s) != path.name]
            other = f"pass another step (committed: {steps}) or " if is_step and steps else ""
            raise CheckpointCorrupted(
                f"checkpoint path {path} is corrupted ({problem}); {other}restore its files "
                "from a copy"
            )
        if jax.process_index() == 0 and not has_manifest(path):
            log.warning("checkpoint %s has no integrity manifest; restoring it unverified", path)
    if is_step:
        # Read just the "params" sub-tree of the training state.
        target = {"params": abstract_params}
        args = ocp.args.PyTreeRestore(
            item=target,
            restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True,
        )
        with ocp.PyTreeCheckpointer() as checkpointer:
            return checkpointer.restore(path / _STATE, args=args)["params"]
    if is_params:
        with ocp.StandardCheckpointer() as checkpointer:
            return checkpointer.restore(path, abstract_params)
    steps = committed_steps(path)
    hint = f" (it looks like a MODEL_DIR: pass {path / str(steps[-1])})" if steps else ""
    raise FileNotFoundError(
        f"checkpoint path {path} holds no checkpoint{hint}; pass MODEL_DIR/<step> or a "
        "params-only checkpoint directory written by save_params"
    )
