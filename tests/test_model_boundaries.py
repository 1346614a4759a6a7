"""Nothing outside `flan_jax/models/` (and the checkpoint converters) asks which family a model is.

The import contracts in `.importlinter` (checked in tests/test_layers.py) keep the family modules
behind `flan_jax.models`; this test also catches what imports cannot: a family's class or config
named through `flan_jax.models` (`models.T5`, `isinstance(x, DecoderConfig)`), or a comparison
with a family's layout name. Tests and benchmarks may name a family to build a fixture.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Where family knowledge belongs: the family modules and the converters.
ALLOWED = ("flan_jax/models/", "flan_jax/conversion/")
SCANNED = ("flan_jax", "tasks", "mixtures", "launch")
FAMILY_NAMES = {
    "T5",
    "T5Config",
    "T5_SIZES",
    "t5_config",
    "DecoderOnly",
    "DecoderConfig",
    "DECODER_SIZES",
    "decoder_config",
    "LlamaConfig",
    "Qwen2Config",
    "GemmaConfig",
    "LLAMA_SIZES",
    "QWEN2_SIZES",
    "GEMMA_SIZES",
    "llama_config",
    "qwen2_config",
    "gemma_config",
}
FAMILY_STRINGS = {"encoder_decoder", "decoder_only"}


def _library_files() -> list[pathlib.Path]:
    files = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            if not path.relative_to(ROOT).as_posix().startswith(ALLOWED):
                files.append(path)
    return files


def _family_mentions(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif isinstance(node, ast.alias):
            name = node.name.rsplit(".", 1)[-1]
        if name in FAMILY_NAMES:
            found.append((getattr(node, "lineno", 0), name))
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                for const in ast.walk(operand):
                    if isinstance(const, ast.Constant) and const.value in FAMILY_STRINGS:
                        found.append((node.lineno, f"comparison with {const.value!r}"))
        if (
            isinstance(node, ast.MatchValue)
            and getattr(node.value, "value", None) in FAMILY_STRINGS
        ):
            found.append((node.lineno, f"case {node.value.value!r}"))
    return found


def test_no_family_names_outside_models_and_converters():
    files = _library_files()
    assert any(p.name == "scoring.py" for p in files)  # the scan sees the library
    offences = [
        f"{path.relative_to(ROOT)}:{line}: {what}"
        for path in files
        for line, what in _family_mentions(ast.parse(path.read_text(), str(path)))
    ]
    assert not offences, "ask flan_jax.models instead of naming a family:\n" + "\n".join(offences)


def test_the_grep_catches_family_switches():
    source = (
        "from flan_jax.models import DecoderOnly\n"
        "def f(model, kind):\n"
        "    if isinstance(model, models.T5):\n"
        "        return kind == 'encoder_decoder'\n"
        "    return kind in ('decoder_only',)\n"
    )
    found = {what for _, what in _family_mentions(ast.parse(source))}
    assert found == {
        "DecoderOnly",
        "T5",
        "comparison with 'encoder_decoder'",
        "comparison with 'decoder_only'",
    }


def test_compute_path_contract_sees_external_packages(tmp_path):
    """The "no TensorFlow on the compute path" contract can fail: the same kind of contract on
    a module that does import seqio is reported broken."""
    config = tmp_path / "broken.ini"
    config.write_text(
        "[importlinter]\n"
        "root_packages =\n    flan_jax\n    tasks\n    mixtures\n"
        "include_external_packages = True\n\n"
        "[importlinter:contract:evaluator-without-seqio]\n"
        "name = evaluator without seqio (deliberately wrong)\n"
        "type = forbidden\n"
        "source_modules =\n    flan_jax.evaluation.evaluator\n"
        "forbidden_modules =\n    seqio\n"
    )
    lint = pathlib.Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint), "--no-cache", "--no-logo", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0 and "BROKEN" in result.stdout, result.stdout + result.stderr
