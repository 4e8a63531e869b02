from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHARED = REPO.parent / "shared"
BPE_DIR = SHARED / "data" / "bpe"

sys.path.insert(0, str(HERE))  # for `import corpus`
# The real tiktoken is the oracle; its rank files come from ../shared, never from the network.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(BPE_DIR / "tiktoken-cache"))


@pytest.fixture(scope="session")
def bpe_dir() -> Path:
    if not BPE_DIR.is_dir():
        pytest.fail(f"{BPE_DIR} is missing: the shared data must sit beside the checkout")
    return BPE_DIR
