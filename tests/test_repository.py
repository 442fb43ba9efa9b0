"""The repository keeps its promises about itself: contract copies identical to the originals."""

from __future__ import annotations

import pytest

from tests.support.paths import CONTRACT_DIR, UPSTREAM_CONTRACT_DIR


def test_contract_documents_the_code_cites_are_in_the_repository() -> None:
    names = {p.name for p in CONTRACT_DIR.iterdir()}
    assert {"mqtt.md", "cli-and-api.md", "ble-gatt-formats.md", "ble-vectors.json", "metrics.csv"} <= names


@pytest.mark.skipif(not UPSTREAM_CONTRACT_DIR.is_dir(), reason="no contract beside this checkout")
def test_contract_copies_are_identical_to_the_originals() -> None:
    originals = sorted(p.name for p in UPSTREAM_CONTRACT_DIR.iterdir() if p.is_file())
    assert sorted(p.name for p in CONTRACT_DIR.iterdir() if p.is_file()) == originals
    for name in originals:
        assert (CONTRACT_DIR / name).read_bytes() == (UPSTREAM_CONTRACT_DIR / name).read_bytes(), name
