"""`relay count` from a real subprocess and through click's runner."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from relay_context import TokenCounter
from relay_context.cli import main

RELAY = [sys.executable, "-m", "relay_context.cli"]


def test_count_files_and_total(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("hello world", encoding="utf-8")
    b.write_text("The quick brown fox jumps over the lazy dog.\n" * 3, encoding="utf-8")
    tc = TokenCounter.for_model("gpt-4o")
    out = subprocess.run(
        [*RELAY, "count", str(a), str(b), "--model", "gpt-4o"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.splitlines()
    assert lines[0].split() == [str(tc.count(a.read_text())), str(a)]
    assert lines[1].split() == [str(tc.count(b.read_text())), str(b)]
    assert lines[2].split() == [str(tc.count(a.read_text()) + tc.count(b.read_text())), "total"]


def test_count_stdin() -> None:
    out = subprocess.run(
        [*RELAY, "count", "--encoding", "cl100k_base"],
        input="hello world",
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["2", "<stdin>"]


def test_count_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["count", str(tmp_path / "missing.txt")])
    assert res.exit_code != 0
    assert "no such file" in res.output
    res = runner.invoke(main, ["count", "--model", "nope-model"], input="x")
    assert res.exit_code == 1
    assert "no known encoding" in res.output
    binary = tmp_path / "bin.dat"
    binary.write_bytes(b"\xff\xfe\x00bad")
    res = runner.invoke(main, ["count", str(binary)])
    assert res.exit_code == 1
    assert "not UTF-8" in res.output
    res = runner.invoke(main, ["count", "--model", "gpt-4o", "--encoding", "o200k_base"], input="x")
    assert res.exit_code == 2


def test_progress_bar_on_large_input(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_text("lorem ipsum dolor sit amet " * 40_000, encoding="utf-8")
    res = CliRunner().invoke(main, ["count", str(big), "--progress"])
    assert res.exit_code == 0
    assert res.output.split()[0] == f"{TokenCounter('o200k_base').count(big.read_text()):,}"


def test_help() -> None:
    res = CliRunner().invoke(main, ["count", "--help"])
    assert res.exit_code == 0
    assert "standard input" in res.output
