"""Token counter throughput: Relay vs tiktoken, in one process, single-threaded and batched.

    python benchmarks/bench_tokenizer.py [--quick]

Prints tokens/s for both libraries on natural text (prose in ~30 languages plus real Python
source) and on adversarial runs ("a" * n, spaces * n), and the ratio Relay / tiktoken. Relay's
memo of repeated texts is disabled so that both do the full work every time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared/data/bpe/tiktoken-cache"))

import tiktoken  # noqa: E402

import corpus  # noqa: E402
from relay_context import TokenCounter  # noqa: E402


def best_of(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def compare(
    label: str,
    amount: float,
    unit: str,
    relay_fn: Callable[[], object],
    tik_fn: Callable[[], object],
    reps: int,
) -> None:
    """Prints the throughput of both (``amount`` units per call) and tiktoken's time / Relay's."""
    t_relay, t_tik = best_of(relay_fn, reps), best_of(tik_fn, reps)
    print(
        f"{label:<40} {amount / t_relay / 1e6:>8.2f} {amount / t_tik / 1e6:>8.2f} "
        f"{unit:<6} {t_tik / t_relay:>6.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    reps = 2 if args.quick else 5
    threads = os.cpu_count() or 1

    text = corpus.natural_text()
    lines = [ln for ln in text.splitlines(keepends=True) if ln.strip()]
    mb = len(text.encode()) / 1e6
    print(f"natural text: {mb:.2f} MB, {len(lines)} lines; {threads} cores; best of {reps}")
    print(f"{'case':<40} {'relay':>8} {'tiktoken':>8} {'unit':<6} {'ratio':>7}")
    for name in ("cl100k_base", "o200k_base"):
        relay = TokenCounter(name, memo_size=0)  # no memo: both do the full work every call
        tik = tiktoken.get_encoding(name)
        assert relay.encode_ordinary(text) == tik.encode_ordinary(text)
        n = len(tik.encode_ordinary(text))
        compare(
            f"{name} natural, 1 thread, encode",
            n,
            "Mtok/s",
            partial(relay.encode_ordinary, text),
            partial(tik.encode_ordinary, text),
            reps,
        )
        compare(
            f"{name} natural, 1 thread, count",
            n,
            "Mtok/s",
            partial(relay.count, text),
            partial(tik.encode_ordinary, text),
            reps,
        )
        compare(
            f"{name} {len(lines)} lines, batch, {threads} thr",
            n,
            "Mtok/s",
            partial(relay.count_batch, lines),
            partial(tik.encode_ordinary_batch, lines, num_threads=threads),
            reps,
        )
        # Adversarial runs: throughput in MB/s, and growth from 10k to 100k characters.
        for unit, label in (("a", "'a'"), (" ", "' '"), ("\n", "'\\n'")):
            for size in (10_000, 100_000):
                s = unit * size
                compare(
                    f"{name} {label} * {size:,}",
                    size / 1e0,
                    "Mch/s",
                    partial(relay.encode_ordinary, s),
                    partial(tik.encode_ordinary, s),
                    max(1, reps // 2),
                )


if __name__ == "__main__":
    main()
