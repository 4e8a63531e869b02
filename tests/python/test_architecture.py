"""The package's architecture holds: the import contracts (``[tool.importlinter]`` in
pyproject.toml, run by ``lint-imports`` in scripts/test) do catch an upward import, only core's
facades touch the C++ extension, and importing the package stays light."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "python" / "relay_context"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
HEAVY = ("fastapi", "starlette", "uvicorn", "asyncpg", "aiosqlite", "redis")

# Makes a copy of the package importable in place of the editable install (whose import hook
# would otherwise win over PYTHONPATH).
_SITECUSTOMIZE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path.insert(0, {path!r})
"""


def _lint_imports(package_parent: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(path=str(package_parent)))
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_the_contracts_catch_an_upward_import(tmp_path: Path) -> None:
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy / "relay_context", ignore=shutil.ignore_patterns("*.so"))
    kept = _lint_imports(copy, tmp_path)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "0 broken" in kept.stdout
    # A kernel facade reaching up into the service: the layers contract must break.
    tokenizer = copy / "relay_context" / "core" / "tokenizer.py"
    tokenizer.write_text(
        tokenizer.read_text() + "\nfrom relay_context.service import app as _app  # noqa\n"
    )
    broken = _lint_imports(copy, tmp_path)
    assert broken.returncode != 0
    assert "relay_context.core is not allowed to import relay_context.service" in broken.stdout
    assert "relay_context.core.tokenizer -> relay_context.service" in broken.stdout


def _imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_only_core_imports_the_cpp_extension() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "core":
            continue
        if any(
            n == "relay_context._core" or n.startswith("relay_context._core.")
            for n in _imports_of(path)
        ):
            offenders.append(str(relative))
    assert offenders == []


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport json, sys; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "code",
    [
        "import relay_context",
        "from relay_context import TokenCounter, RelayError; TokenCounter('o200k_base').count('a')",
        "from relay_context.core.tokenizer import TokenCounter\nimport relay_context.errors",
        "from relay_context import fuzzy, KnapsackSelector, CompressionEngine, TokenManager",
    ],
)
def test_importing_the_package_and_its_kernels_is_light(code: str) -> None:
    loaded = _modules_after(code)
    assert sorted(m for m in HEAVY if m in loaded) == []
    assert "relay_context.engine" not in loaded
    assert "relay_context.service" not in loaded


def test_the_engine_does_not_load_the_web_stack() -> None:
    loaded = _modules_after("from relay_context import ContextEngine, ContextWindow")
    assert sorted(m for m in ("fastapi", "starlette", "uvicorn", "asyncpg") if m in loaded) == []


def test_lazy_names_are_the_documented_ones() -> None:
    import relay_context

    for name in relay_context.__all__:
        assert getattr(relay_context, name) is not None
    assert set(relay_context.__all__) <= set(dir(relay_context))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        relay_context.nope  # noqa: B018
