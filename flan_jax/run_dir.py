"""MODEL_DIR, owned by one object: its layout, the run record, the launches' configs, the lock.

    MODEL_DIR/run.json              the run record: what defines the run (written at launch 1)
    MODEL_DIR/config.gin            the operative gin config of launch 1
    MODEL_DIR/config.<n>.gin        ... of launch n (n >= 2); earlier ones are never overwritten
    MODEL_DIR/run.lock              held while a trainer runs (host, pid, start time)
    MODEL_DIR/<step>/               a checkpoint (see `flan_jax.checkpoints`)
    MODEL_DIR/input_state/<step>/   the input pipeline's position at that checkpoint, per host
    MODEL_DIR/train/                TensorBoard scalars of training
    MODEL_DIR/profile/              JAX profiler traces (TrainConfig.profile_steps)
    MODEL_DIR/eval/step_<n>/        evaluation reports of step n
    MODEL_DIR/eval/summary/         scores across steps (the --watch eval job)

A resume compares the new launch's record with `run.json` and refuses any difference in what
the run trains on (one line naming each changed field, old -> new); the fields in
`RESUMABLE_CHANGES` may change between launches (a longer run, another mesh, logging). Nothing
is written into MODEL_DIR before those checks pass. Paths go through `etils.epath`, so `gs://`
works like a local directory.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from etils import epath

RECORD = "run.json"
LOCK = "run.lock"
RECORD_VERSION = 1

# TrainConfig fields a resume may change: how long, on what devices, how often to log, save,
# evaluate, which steps to profile, and where to start from when there is no checkpoint yet. Every other field defines
# what the run trains on.
RESUMABLE_CHANGES = frozenset(
    {
        "model_dir",
        "train_steps",
        "mesh",
        "save_every",
        "keep_checkpoints",
        "async_checkpoint",
        "log_every",
        "eval_every",
        "eval_mixture",
        "eval_batch_size",
        "progress_bar",
        "initial_checkpoint_path",
        "microbatches",  # a memory knob: the same batch, accumulated in pieces
        "resume_overrides",
        "profile_steps",  # observing the run (a profiler trace) does not change it
    }
)

# Fields a resume may change only when the launch names them in `TrainConfig.resume_overrides`:
# deliberate changes of how the run learns from here on (a lower learning rate after a spike, no
# dropout for the last steps). They keep the state's shapes and the data stream, so the saved
# state and input position still apply; each accepted change is kept in the run record's history.
# What the run trains on (mixture, lengths, batch, packing, seed, vocabulary, the model's shape,
# the optimizer's kind) never changes in place: that is a new MODEL_DIR with
# INITIAL_CHECKPOINT_PATH pointing at a step of this one.
OVERRIDABLE_ON_RESUME = frozenset(
    {
        "optimizer.learning_rate",
        "optimizer.schedule",
        "optimizer.warmup_steps",
        "optimizer.final_lr_fraction",
        "optimizer.clipping_threshold",
        "optimizer.weight_decay",
        "optimizer.grad_clip_norm",
        "z_loss",
        "label_smoothing",
        "loss_normalizing_factor",
        "model.dropout_rate",
    }
)


class RunDirError(ValueError):
    """MODEL_DIR cannot be used as asked (one line: what, which value, how to fix)."""


def as_path(path: str | os.PathLike) -> epath.Path:
    """An epath for local or cloud paths; local ones made absolute (orbax refuses relative)."""
    text = os.fspath(path) if not isinstance(path, epath.Path) else str(path)
    if "://" in text:
        return epath.Path(text)
    return epath.Path(os.path.abspath(text))


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"__class__": type(value).__name__, **fields}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def run_record(cfg: Any, templates: str = "ours") -> dict[str, Any]:
    """What defines a run: every field of its TrainConfig, as JSON (dataclasses by class name),
    and the templates its collections were registered with (``catalog.templates_identity``:
    another FLAN templates file renders other training text, so it defines the run too)."""
    return {"version": RECORD_VERSION, "config": _jsonable(cfg), "templates": templates}


def _defining(record: Mapping[str, Any]) -> dict[str, Any]:
    # Records written before the templates entry existed were registered with our templates.
    return {**_flatten(record.get("config", {})), "templates": record.get("templates", "ours")}


def _flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"__class__": "T5Config", "d_model": 64}} -> {"model.class": ..., "model.d_model":
    64}: one entry per leaf, so a change names the field."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = prefix + ("class" if key == "__class__" else str(key))
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def record_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, old, new) for each field of the run's config that differs, except the fields
    a resume may change (`RESUMABLE_CHANGES`)."""
    before, after = _defining(old), _defining(new)
    changes = []
    for name in sorted(set(before) | set(after)):
        if name.split(".")[0] in RESUMABLE_CHANGES:
            continue
        if before.get(name, "<unset>") != after.get(name, "<unset>"):
            changes.append((name, before.get(name, "<unset>"), after.get(name, "<unset>")))
    return changes


class RunDir:
    """A training run's MODEL_DIR: the one place that knows its layout."""

    def __init__(self, model_dir: str | os.PathLike) -> None:
        text = os.fspath(model_dir) if model_dir is not None else ""
        if not text.strip():
            raise RunDirError(
                'MODEL_DIR is empty; set it to a new directory, e.g. --gin.MODEL_DIR=\\"runs/x\\"'
            )
        self.path = as_path(text)
        self.given = text

    # -- layout --------------------------------------------------------------------------------

    def __str__(self) -> str:
        return self.given

    def step_dir(self, step: int) -> epath.Path:
        return self.path / str(step)

    def input_state_dir(self, step: int) -> epath.Path:
        return self.path / "input_state" / str(step)

    def input_state_prefix(self, step: int, host: int) -> str:
        return str(self.input_state_dir(step) / f"host{host}")

    def has_checkpoints(self) -> bool:
        """Whether any checkpoint step (committed or not) is here: a run has trained here."""
        if not self.path.exists() or not self.path.is_dir():
            return False
        return any(p.name.split(".")[0].isdigit() for p in self.path.iterdir() if p.is_dir())

    def input_state_steps(self) -> list[int]:
        root = self.path / "input_state"
        if not root.exists():
            return []
        return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit())

    def train_log_dir(self) -> str:
        return str(self.path / "train")

    def profile_dir(self) -> str:
        """JAX profiler traces: TensorBoard's profile tab (``--logdir MODEL_DIR``) or Perfetto
        (the ``*.trace.json.gz`` under ``plugins/profile/<time>/``)."""
        return str(self.path / "profile")

    def eval_dir(self, step: int | None, root: str | None = None) -> str:
        """A step's eval reports, under MODEL_DIR/eval or under `root` (EvalConfig.output_dir)."""
        base = as_path(root) if root else self.path / "eval"
        return str(base / (f"step_{step}" if step is not None else "params"))

    def eval_summary_dir(self, root: str | None = None) -> str:
        """Scores across steps (`flan-jax eval --watch`): TensorBoard, JSON, a plot."""
        return str((as_path(root) if root else self.path / "eval") / "summary")

    @property
    def record_path(self) -> epath.Path:
        return self.path / RECORD

    @property
    def lock_path(self) -> epath.Path:
        return self.path / LOCK

    def config_paths(self) -> list[epath.Path]:
        """The operative configs of the launches so far, in launch order."""
        if not self.path.exists():
            return []
        numbered = []
        for p in self.path.iterdir():
            m = re.fullmatch(r"config(?:\.(\d+))?\.gin", p.name)
            if m:
                numbered.append((int(m.group(1) or 1), p))
        return [p for _, p in sorted(numbered)]

    def next_config_path(self) -> epath.Path:
        """Where this launch's operative config goes: never over an earlier launch's."""
        n = len(self.config_paths()) + 1
        return self.path / ("config.gin" if n == 1 else f"config.{n}.gin")

    # -- checks (nothing written) ------------------------------------------------------------

    def check_usable(self) -> None:
        """MODEL_DIR is a directory (or can become one) we may write into; one line if not."""
        if self.path.exists() and not self.path.is_dir():
            raise RunDirError(f"MODEL_DIR {self.given} is a file, not a directory; pick another")
        if "://" in str(self.path):
            return  # cloud storage: writability shows at the first write
        existing = self.path
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise RunDirError(
                f"MODEL_DIR {self.given} is not writable ({existing} does not let us create "
                "files); pick a directory you can write to"
            )

    def read_record(self) -> dict[str, Any] | None:
        if not self.record_path.exists():
            return None
        try:
            return json.loads(self.record_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunDirError(
                f"{self.record_path} is not a run record ({e}); restore it, or start a new "
                "MODEL_DIR"
            ) from None

    def check_resume(self, record: Mapping[str, Any], has_checkpoints: bool) -> None:
        """Refuses a launch that would change what an existing run trains on."""
        old = self.read_record()
        if old is None:
            if has_checkpoints:
                raise RunDirError(
                    f"MODEL_DIR {self.given} holds checkpoints but no {RECORD} (written by an "
                    "older flan_jax or another tool); resume it with that tool or start a new "
                    "MODEL_DIR"
                )
            return
        overrides = tuple(record.get("config", {}).get("resume_overrides") or ())
        for name in overrides:
            if name not in OVERRIDABLE_ON_RESUME:
                raise RunDirError(
                    f"resume_overrides names {name!r}, which cannot change in place; the fields "
                    f"a resume may override are {', '.join(sorted(OVERRIDABLE_ON_RESUME))}"
                )
        changes = [c for c in record_changes(old, record) if c[0] not in overrides]
        if changes:
            what = "; ".join(f"{name}: {a!r} -> {b!r}" for name, a, b in changes)
            names = [name for name, _, _ in changes]
            if all(name in OVERRIDABLE_ON_RESUME for name in names):
                fix = (
                    "resume it with the same settings, or accept the change(s) explicitly with "
                    "--gin.TrainConfig.resume_overrides=" + '\\"' + ",".join(names) + '\\"'
                )
            else:
                fix = (
                    "resume it with the same settings, or give a new MODEL_DIR (with "
                    "INITIAL_CHECKPOINT_PATH set to a step of this one to continue from it)"
                )
            raise RunDirError(f"MODEL_DIR {self.given} is a run of another config ({what}); {fix}")

    def accepted_overrides(self, record: Mapping[str, Any]) -> dict[str, list[Any]]:
        """{field: [old, new]} for the changes this launch makes through resume_overrides."""
        old = self.read_record()
        if old is None:
            return {}
        overrides = tuple(record.get("config", {}).get("resume_overrides") or ())
        return {n: [a, b] for n, a, b in record_changes(old, record) if n in overrides}

    # -- writes (after the checks) -------------------------------------------------------------

    def write_record(self, record: Mapping[str, Any], at_step: int | None = None) -> None:
        """Writes run.json at the first launch. Later launches keep it, except that changes
        accepted through resume_overrides update its config and are appended to its `history`
        (the step they apply from, each field old -> new), so the record always says what the
        run trains on now and since when."""
        old = self.read_record()
        if old is not None:
            accepted = self.accepted_overrides(record)
            if not accepted:
                return
            history = [*old.get("history", []), {"from_step": at_step, "changes": accepted}]
            record = {**record, "history": history}
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write(self.record_path, json.dumps(record, indent=2, sort_keys=True) + "\n")

    def write_config(self, text: str) -> epath.Path:
        """Keeps this launch's operative config beside the earlier launches' ones."""
        self.path.mkdir(parents=True, exist_ok=True)
        path = self.next_config_path()
        atomic_write(path, text)
        return path

    # -- the lock ------------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        """Stops a second trainer on this MODEL_DIR. A lock left by a process that is gone
        (same host, dead pid) is taken over; one from another host must be removed by hand.
        The first write of a launch: an unwritable MODEL_DIR fails here, in one line."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(
                f"MODEL_DIR {self.given} cannot be created ({e.strerror or e}); pick a "
                "directory you can write to"
            ) from None
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        }
        if self.lock_path.exists():
            try:
                held = json.loads(self.lock_path.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError):
                held = {}
            if held and not _is_stale(held) and held.get("pid") != os.getpid():
                raise RunDirError(
                    f"MODEL_DIR {self.given} is in use by a trainer (host {held.get('host')}, "
                    f"pid {held.get('pid')}, since {held.get('started')}); wait for it, or "
                    f"delete {self.lock_path} if that trainer is gone"
                )
        if "://" in str(self.path):
            self.lock_path.write_text(json.dumps(me))  # cloud storage has no O_EXCL
            return
        tmp = self.path / f".{LOCK}.{os.getpid()}"
        tmp.write_text(json.dumps(me))
        os.replace(tmp, self.lock_path)

    def release_lock(self) -> None:
        if not self.lock_path.exists():
            return
        try:
            held = json.loads(self.lock_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return
        if held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
            self.lock_path.unlink()


def _is_stale(held: Mapping[str, Any]) -> bool:
    """A lock of this host whose process no longer runs."""
    if held.get("host") != socket.gethostname():
        return False
    pid = held.get("pid")
    if not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def atomic_write(path: epath.Path, text: str) -> None:
    """Writes `text` to `path` in one step (a temporary file renamed over it; object stores
    write whole objects anyway)."""
    if "://" in str(path):
        path.write_text(text)
        return
    tmp = path.parent / f".{path.name}.tmp{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, path)
