"""Checkpoints of global arrays with orbax, restorable onto any mesh.

Layout of MODEL_DIR (one orbax `CheckpointManager`):

    MODEL_DIR/<step>/state/   {"step", "params", "opt_state"}: whole global arrays (OCDBT)
    MODEL_DIR/<step>/data/    JSON: where the input pipeline stood, e.g. {"batches_consumed": n}
    MODEL_DIR/<step>/meta/    JSON: a summary of the run's config

Because arrays are stored whole, a restore may target a different mesh: pass abstract arrays
(`jax.ShapeDtypeStruct` with the new `NamedSharding`) and orbax reads each device's slice.
A checkpoint only counts once orbax has finalized it (written in `<step>.orbax-checkpoint-tmp`,
then `commit_success.txt` and an atomic rename; on GCS the commit file alone marks it).
Paths go through `etils.epath`, so `gs://` works like a local directory.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath

PathLike = str | os.PathLike
_COMMIT_FILE = "commit_success.txt"  # written by orbax when a checkpoint is finalized
_STATE, _DATA, _META = "state", "data", "meta"


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


def as_path(path: PathLike) -> epath.Path:
    """An epath for local or cloud paths; local ones made absolute (orbax refuses relative)."""
    text = os.fspath(path) if not isinstance(path, epath.Path) else str(path)
    if "://" in text:
        return epath.Path(text)
    return epath.Path(os.path.abspath(text))


class Checkpointer:
    """Saves and restores training checkpoints in `model_dir`, keeping the last `keep`.

    With `async_save`, `save` returns once the arrays are copied off the devices and the
    writing happens in the background; call `wait()` before reading the files and `close()`
    at the end.
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

    def _is_finalized(self, step: int) -> bool:
        return (self.directory / str(step) / _COMMIT_FILE).exists()

    def all_steps(self) -> list[int]:
        """Steps of all finalized checkpoints, ascending."""
        return [s for s in sorted(self._manager.all_steps()) if self._is_finalized(s)]

    def latest_step(self) -> int | None:
        """The newest finalized checkpoint's step, or None.

        orbax's own `latest_step` also reports a save still in flight (only its tmp dir
        exists), so we check the commit file, newest first.
        """
        for step in sorted(self._manager.all_steps(), reverse=True):
            if self._is_finalized(step):
                return step
        return None

    def save(
        self,
        step: int,
        state: Any,
        data: dict[str, Any],
        meta: dict[str, Any] | None = None,
        force: bool = False,
    ) -> bool:
        """Saves `state` (a pytree of global arrays) with the JSON `data` and `meta`.

        Returns False (writing nothing) when `step` is already saved. Every process must call it.
        """
        meta = {} if meta is None else meta
        _check_json("data", data, step)
        _check_json("meta", meta, step)
        if step in self._manager.all_steps():
            return False
        args = ocp.args.Composite(
            **{
                _STATE: ocp.args.StandardSave(state),
                _DATA: ocp.args.JsonSave(data),
                _META: ocp.args.JsonSave(meta),
            }
        )
        return self._manager.save(step, args=args, force=force)

    def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict[str, Any]]:
        """Restores (state, data) of `step` onto the shardings in `abstract_state`.

        `abstract_state` mirrors the saved state with `jax.ShapeDtypeStruct(shape, dtype,
        sharding=NamedSharding(mesh, spec))` leaves; the mesh may differ from the saving one.
        """
        if step not in self.all_steps():
            raise FileNotFoundError(
                f"checkpoint step {step} does not exist in {self.directory}; "
                f"finalized steps there: {self.all_steps()}"
            )
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
        """Blocks until every background save is finalized."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        """Waits for pending saves and releases orbax's threads."""
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def save_params(path: PathLike, params: Any, force: bool = False) -> None:
    """Writes a params-only checkpoint (e.g. weights imported from Hugging Face)."""
    path = as_path(path)
    if path.exists() and not force:
        raise FileExistsError(
            f"params checkpoint path {path} already exists; choose a new path or pass force=True"
        )
    _ensure_writable(path.parent)
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(path, params, force=force)
        checkpointer.wait_until_finished()


def restore_params(path: PathLike, abstract_params: Any) -> Any:
    """Restores only the params, for fine-tuning from INITIAL_CHECKPOINT_PATH.

    `path` is either a step directory of a MODEL_DIR (`MODEL_DIR/<step>`, whose optimizer
    state is skipped) or a params-only checkpoint written by `save_params`. Leaves of
    `abstract_params` should carry the target `NamedSharding`s.
    """
    path = as_path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"checkpoint path {path} does not exist; pass MODEL_DIR/<step> of a run or a "
            "params-only checkpoint directory written by save_params"
        )
    if (path / _STATE).is_dir():
        # Read just the "params" sub-tree of the training state.
        target = {"params": abstract_params}
        args = ocp.args.PyTreeRestore(
            item=target,
            restore_args=ocp.checkpoint_utils.construct_restore_args(target),
            partial_restore=True,
        )
        with ocp.PyTreeCheckpointer() as checkpointer:
            return checkpointer.restore(path / _STATE, args=args)["params"]
    if (path / "_METADATA").exists():
        with ocp.StandardCheckpointer() as checkpointer:
            return checkpointer.restore(path, abstract_params)
    steps = sorted(int(p.name) for p in path.iterdir() if p.name.isdigit())
    hint = f" (it looks like a MODEL_DIR: pass {path / str(steps[-1])})" if steps else ""
    raise FileNotFoundError(
        f"checkpoint path {path} holds no checkpoint{hint}; pass MODEL_DIR/<step> or a "
        "params-only checkpoint directory written by save_params"
    )
