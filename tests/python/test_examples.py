"""Every example in examples/ runs: each script as a user would run it (a subprocess of this
environment's python, from an unrelated directory), and the notebook under a real Jupyter kernel
(nbclient), so that the examples cannot silently rot as the code moves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLES = REPO / "examples"
NOTEBOOK = EXAMPLES / "explore_window.ipynb"
TIMEOUT_SECONDS = 300

#: What each script must print (fragments of its output); a new example needs an entry here.
EXPECTED_OUTPUT: dict[str, tuple[str, ...]] = {
    "agent_handoff.py": (
        "handoff: 82,000 characters became a",
        "handoff: agent B pulled 82,000 characters",
        "fan-in: report assembled from 3 sections",
        "checkpoint: peek says 2000 rows; pulled 2000",
        "encrypted: pointer carries the key in its fragment: True",
        "encrypted: decrypted locally: 'the migration plan'",
        "bridge: 'fix tests' -> 'done: fix tests'",
        "bridge: 'refactor auth' -> 'done: refactor auth'",
        "server stopped (exit code 0)",
        "temporary data removed: True",
    ),
    "count_and_budget.py": (
        "gpt-4o  o200k_base",
        "gpt-4   cl100k_base",
        "billed",
        "(budget 50)",
        "batch: 1000 documents",
        "'Hello world' = 2 tokens",
    ),
    "knapsack_selection.py": (
        "newest that fit",
        "certificate: optimal=True",
        "split tool groups: newest-that-fit ['tool-1'], knapsack []",
        "InfeasibleBudgetError",
    ),
    "context_engine.py": (
        "knapsack ",
        "recent ",
        "summarize ",
        "summary of seqs",
        "to_openai():",
        "to_anthropic():",
        "stats: 10 messages",
    ),
    "context_service.py": (
        "API key key_",
        "health: healthy",
        "POST user ",
        "GET window:",
        "stats: 4 messages",
        "server stopped (exit code 0)",
        "temporary data removed: True",
    ),
}

SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py"))


def isolated_env(tmp_path: Path) -> dict[str, str]:
    """This environment with a fresh HOME and TMPDIR (both checked empty afterwards: the
    examples must leave nothing behind, e.g. no ~/.relay) and without settings that would point
    Relay at shared servers, or test-suite data such as ../shared."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k.upper()
        not in {"DATABASE_URL", "REDIS_URL", "CONFIG_FILE", "TIKTOKEN_CACHE_DIR", "PYTHONPATH"}
    }
    for name in ("home", "tmp"):
        (tmp_path / name).mkdir()
    env["HOME"] = str(tmp_path / "home")
    env["TMPDIR"] = str(tmp_path / "tmp")
    env["MPLBACKEND"] = "Agg"  # never a GUI window, whatever the machine's matplotlibrc says
    return env


def assert_left_nothing(tmp_path: Path) -> None:
    for name in ("home", "tmp"):
        left = sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / name).rglob("*"))
        assert not left, f"the example left files behind: {left}"


def test_every_script_has_expectations() -> None:
    assert SCRIPTS, f"no examples in {EXAMPLES}"
    assert sorted(EXPECTED_OUTPUT) == SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs(script: str, tmp_path: Path) -> None:
    work = tmp_path / "cwd"
    work.mkdir()  # not the repository: examples must not depend on its layout or ../shared
    env = isolated_env(tmp_path)
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}\n{result.stderr}"
    for fragment in EXPECTED_OUTPUT.get(script, ()):
        assert fragment in result.stdout, f"{fragment!r} not in the output of {script}:\n" + (
            result.stdout
        )
    assert_left_nothing(tmp_path)
    assert not list(work.iterdir())


def test_notebook_is_committed_without_outputs() -> None:
    # Outputs hold machine-specific figures and timings and bloat diffs: commit it cleared.
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], cell["source"]
            assert cell["execution_count"] is None, cell["source"]


def outputs_of(nb: Any, mime: str) -> list[Any]:
    return [
        out["data"][mime]
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") in {"display_data", "execute_result"} and mime in out["data"]
    ]


def test_notebook_executes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    # A kernel spec of our own, naming this environment's python: a "python3" spec installed
    # for the user or the system could otherwise start a kernel of another environment.
    spec_dir = tmp_path / "kernels" / "relay-venv"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Relay (.venv)",
                "language": "python",
            }
        )
    )
    env = isolated_env(tmp_path)
    # The kernel inherits this process's environment.
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))  # connection files
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # the kernel's profile
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "matplotlib"))  # matplotlib's font cache

    nb = nbformat.read(NOTEBOOK, as_version=4)
    km = KernelManager(
        kernel_name="relay-venv",
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]),
    )
    work = tmp_path / "cwd"
    work.mkdir()
    client = nbclient.NotebookClient(
        nb, km=km, timeout=TIMEOUT_SECONDS, resources={"metadata": {"path": str(work)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error

    html = outputs_of(nb, "text/html")
    assert any("<b>ContextWindow</b>" in h and "policy <code>knapsack</code>" in h for h in html)
    assert any("policy <code>summarize</code>" in h for h in html)
    assert outputs_of(nb, "image/png"), "the kept-vs-dropped plot was not drawn"
    assert_left_nothing(tmp_path)
    assert not list(work.iterdir())
