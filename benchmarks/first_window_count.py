"""The first window of a 1,000-message session in a new engine, in CPU time and in instructions.

    python benchmarks/first_window_count.py              # CPU time of 30 first windows
    python benchmarks/first_window_count.py --callgrind  # instructions of one, under valgrind

The session (``conversation(1000, seed=42, tool_rate=0.1)``, added with ``add_message``) is
written once into an SQLite file in a temporary folder. Each first window opens a new
``ContextEngine`` on it and asks for a window of 8,000 tokens with a query never asked before.

CPU time moves with other load on a shared machine; instructions do not. ``--callgrind`` runs
this script under ``valgrind --tool=callgrind`` four times (6 windows, 1 window, and the same two
opening and closing the engines without asking for a window) and prints
``((6 - 1) - (6 - 1 without the window)) / 5``: the instructions of one ``get_context`` alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))

from conversation_support import conversation  # noqa: E402
from relay_context.config.settings import Settings  # noqa: E402
from relay_context.engine.context_engine import ContextEngine  # noqa: E402

SESSION = "first-window"
BUDGET = 8000


async def write_session(path: Path) -> None:
    async with ContextEngine(Settings(database_url=f"sqlite:///{path}")) as engine:
        for turn in conversation(1000, seed=42, tool_rate=0.1):
            await engine.add_message(SESSION, **turn, ttl_seconds=86_400)


async def first_windows(path: Path, count: int, ask: bool) -> list[float]:
    """CPU seconds of each first window (of opening and closing the engine when not ``ask``)."""
    settings = Settings(database_url=f"sqlite:///{path}")
    run = secrets.token_hex(4)  # queries never asked before, in this process or another
    times = []
    for i in range(count):
        async with ContextEngine(settings) as engine:
            start = time.process_time()
            if ask:
                await engine.get_context(SESSION, budget=BUDGET, query=f"question {i} {run}")
            times.append(time.process_time() - start)
    return times


def instructions(args: list[str]) -> int:
    """Instructions callgrind counts for this script run with ``args``."""
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}/callgrind.out",
                sys.executable,
                __file__,
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--callgrind", action="store_true", help="count instructions under valgrind")
    ap.add_argument("--windows", type=int, default=30, help="first windows to time")
    ap.add_argument("--db", type=Path, help=argparse.SUPPRESS)  # the runs under valgrind
    ap.add_argument("--no-window", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.db is not None:  # one measured run of --callgrind
        asyncio.run(first_windows(args.db, args.windows, ask=not args.no_window))
        return
    folder = Path(tempfile.mkdtemp(prefix="relay-first-window-"))
    try:
        db = folder / "session.db"
        asyncio.run(write_session(db))
        if not args.callgrind:
            times = sorted(t * 1e3 for t in asyncio.run(first_windows(db, args.windows, True)))
            print(
                f"first window, {args.windows} new engines: CPU median "
                f"{statistics.median(times):.2f} ms, fastest {times[0]:.2f} ms, "
                f"slowest {times[-1]:.2f} ms"
            )
            return
        if shutil.which("valgrind") is None:
            sys.exit("--callgrind needs valgrind on the PATH")
        base = ["--db", str(db)]
        six = instructions([*base, "--windows", "6"])
        one = instructions([*base, "--windows", "1"])
        six_open = instructions([*base, "--windows", "6", "--no-window"])
        one_open = instructions([*base, "--windows", "1", "--no-window"])
        per_window = ((six - one) - (six_open - one_open)) / 5
        print(f"first window: {per_window / 1e6:.2f} M instructions (get_context alone)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")  # read by the children valgrind starts
    main()
