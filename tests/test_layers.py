"""Which way the imports run: the import-linter contracts in `.importlinter` hold, and can fail.

`lint-imports` is the venv's own (beside this interpreter); it runs from the repo root, where it
finds `.importlinter` and the `tasks/` and `mixtures/` folders as top-level packages.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LINT_IMPORTS = pathlib.Path(sys.executable).parent / "lint-imports"


def _lint(*args: str) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.fail(f"{LINT_IMPORTS} is missing; install the pinned set: make install")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_import_contracts_are_kept():
    result = _lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert " broken" in result.stdout and "0 broken" in result.stdout


def test_a_broken_contract_fails(tmp_path):
    """The check can fail: a contract forbidding an import that exists is reported broken."""
    config = tmp_path / "broken.ini"
    config.write_text(
        "[importlinter]\n"
        "root_packages =\n    flan_jax\n    tasks\n    mixtures\n\n"
        "[importlinter:contract:upside-down]\n"
        "name = registry below templates (deliberately wrong)\n"
        "type = layers\n"
        "layers =\n    flan_jax.templates\n    flan_jax.registry\n"
    )
    result = _lint(str(config))
    assert result.returncode != 0
    assert "flan_jax.registry -> flan_jax.templates" in result.stdout, result.stdout


def _imported_names(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_no_imports_by_installed_task_names():
    """`flan_jax.tasks.*` / `flan_jax.mixtures.*` are invisible to the linter (they live outside
    `flan_jax/`), so nothing may import them by those names: the library loads them through the
    catalog (importlib, by collection name), and task packages import their parts relatively."""
    offenders = []
    for folder in ("flan_jax", "tasks", "mixtures"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            hits = {
                n
                for n in _imported_names(path)
                if n.startswith(("flan_jax.tasks", "flan_jax.mixtures"))
            }
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in sorted(hits)]
    assert not offenders, offenders


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycles_anywhere():
    """No module reaches itself through imports (function-level imports count, as grimp sees
    them), in the library, tasks/ or mixtures/."""
    import grimp

    sys.path.insert(0, str(ROOT))
    try:
        graph = grimp.build_graph("flan_jax", "tasks", "mixtures", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))
    edges = {
        m: {d for d in graph.find_modules_directly_imported_by(m) if d in graph.modules}
        for m in graph.modules
    }
    assert len(edges) > 40  # the graph really holds the package
    assert _cycles(edges) == []
    # The check can fail: a cycle added by hand is found.
    edges["flan_jax.naming"].add("flan_jax.catalog")
    assert any("flan_jax.naming" in c and "flan_jax.catalog" in c for c in _cycles(edges))
