"""Where the repository's files are, for tests that read them."""

from __future__ import annotations

from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[2]
DOCS_DIR: Final = ROOT / "docs"
CONTRACT_DIR: Final = DOCS_DIR / "contract"
# The contract as the project's steering keeps it, beside the checkout (absent in some clones).
UPSTREAM_CONTRACT_DIR: Final = ROOT.parent / "shared" / "contract"
#: (seconds -> age text) pairs that the Python and the JavaScript age rule must both give.
AGE_CASES: Final = ROOT / "tests" / "support" / "age_cases.json"
