"""Virtual environments of their own for peers whose dependencies conflict with the main one
(CrewAI pins ``mcp<2``; autogen-core would downgrade protobuf), cached between runs under
``~/.cache/relay-test-venvs`` (``RELAY_TEST_VENVS`` overrides) and keyed by a hash of the
requirements and the Python version, so the first run installs and later ones reuse.

Scripts run there with the project's ``python/`` on ``PYTHONPATH``: the handoff client and
the integrations are pure Python and need no C++ extension.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: What the handoff client itself needs, besides the framework under test.
CLIENT_REQUIREMENTS = ("httpx>=0.27", "websockets>=13", "cryptography>=42", "pydantic>=2")


def _cache_root() -> Path:
    configured = os.environ.get("RELAY_TEST_VENVS")
    return Path(configured) if configured else Path.home() / ".cache" / "relay-test-venvs"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one builder at a time (parallel test runs)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cached_venv(name: str, requirements: list[str], *, timeout: float = 1800) -> Path:
    """The Python of a venv holding ``requirements`` (and the client's), made if missing."""
    wanted = sorted({*requirements, *CLIENT_REQUIREMENTS})
    key = hashlib.sha256(("\n".join(wanted) + "\n" + sys.version).encode()).hexdigest()[:16]
    venv = _cache_root() / f"{name}-{key}"
    python = venv / "bin" / "python"
    ready = venv / ".relay-ready"
    with _locked(_cache_root() / f"{name}-{key}.lock"):
        if ready.exists():
            return python
        shutil.rmtree(venv, ignore_errors=True)  # a half-made one from an interrupted run
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *wanted],
            check=True,
            timeout=timeout,
        )
        ready.write_text("\n".join(wanted) + "\n")
    return python


def run_in(python: Path, script: str, *args: str, timeout: float = 300) -> str:
    """Run ``script`` in that venv with the project on its path; its standard output."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")}
    env.pop("VIRTUAL_ENV", None)
    result = subprocess.run(
        [str(python), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
