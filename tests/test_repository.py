"""The repository keeps its promises about itself: contract copies identical to the originals,
test helpers in tests/support/ rather than imported from a conftest.py."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import CONTRACT_DIR, ROOT, UPSTREAM_CONTRACT_DIR


def test_contract_documents_the_code_cites_are_in_the_repository() -> None:
    names = {p.name for p in CONTRACT_DIR.iterdir()}
    assert {"mqtt.md", "cli-and-api.md", "ble-gatt-formats.md", "ble-vectors.json", "metrics.csv"} <= names


@pytest.mark.skipif(not UPSTREAM_CONTRACT_DIR.is_dir(), reason="no contract beside this checkout")
def test_contract_copies_are_identical_to_the_originals() -> None:
    originals = sorted(p.name for p in UPSTREAM_CONTRACT_DIR.iterdir() if p.is_file())
    assert sorted(p.name for p in CONTRACT_DIR.iterdir() if p.is_file()) == originals
    for name in originals:
        assert (CONTRACT_DIR / name).read_bytes() == (UPSTREAM_CONTRACT_DIR / name).read_bytes(), name


def _conftest_imports(path: Path) -> list[str]:
    """Where ``path`` imports a conftest module or imports from one (as ``line: statement``)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] + [f"{node.module or ''}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        if any("conftest" in module.split(".") for module in modules):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_test_module_imports_from_a_conftest() -> None:
    """conftest.py files are pytest plugins: importing one loads it a second time under another
    name. Helpers live in tests/support/ (or beside the tests that alone use them)."""
    tests_dir = ROOT / "tests"
    offenders = {
        str(path.relative_to(ROOT)): found
        for path in sorted(tests_dir.rglob("*.py"))
        if "node_modules" not in path.parts and (found := _conftest_imports(path))
    }
    assert not offenders, offenders
