"""Token counter throughput: Relay vs tiktoken, in one process, single-threaded and batched.

    python benchmarks/bench_tokenizer.py [--quick]

Prints tokens/s for both libraries on natural text (prose in ~30 languages plus real Python
source) and on adversarial runs ("a" * n, spaces * n), and the ratio Relay / tiktoken. Relay's
memo of repeated texts is disabled so that both do the full work every time.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(REPO.parent / "shared/data/bpe/tiktoken-cache"))
os.environ["RUST_BACKTRACE"] = "0"  # tiktoken panics on some long runs; keep its report short

import tiktoken  # noqa: E402

import corpus  # noqa: E402
from relay_context import TokenCounter  # noqa: E402

Clock = Callable[[], float]


def best_of(fn: Callable[[], object], reps: int, clock: Clock) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def compare(
    label: str,
    amount: float,
    unit: str,
    relay_fn: Callable[[], object],
    tik_fn: Callable[[], object],
    reps: int,
    clock: Clock = time.thread_time,
) -> tuple[float, float]:
    """Prints the throughput of both (``amount`` units per call) and tiktoken's time / Relay's.

    Single-threaded cases are timed with the calling thread's CPU time, so that other load on a
    shared machine does not tilt the ratio; multi-threaded ones with the wall clock.
    """
    t_relay = best_of(relay_fn, reps, clock)
    try:
        t_tik = best_of(tik_fn, reps, clock)
    except BaseException as exc:  # tiktoken panics (a pyo3 BaseException) on some long runs
        print(f"{label:<40} {amount / t_relay / 1e6:>8.2f} {'failed':>8} {unit:<6}  ({exc})")
        return t_relay, float("nan")
    print(
        f"{label:<40} {amount / t_relay / 1e6:>8.2f} {amount / t_tik / 1e6:>8.2f} "
        f"{unit:<6} {t_tik / t_relay:>6.2f}x"
    )
    return t_relay, t_tik


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
            clock=time.perf_counter,
        )
        # Adversarial runs: throughput, then the growth of the time from 10k to 1M characters
        # (linear growth is 10x per step).
        for unit, label in (("a", "'a'"), (" ", "' '"), ("\n", "'\\n'")):
            times: list[tuple[float, float]] = []
            for size in (10_000, 100_000, 1_000_000):
                s = unit * size
                times.append(
                    compare(
                        f"{name} {label} * {size:,}",
                        size,
                        "Mch/s",
                        partial(relay.encode_ordinary, s),
                        partial(tik.encode_ordinary, s),
                        max(1, reps // 2),
                    )
                )
            growth = " ".join(
                f"{b[0] / a[0]:.1f}x/{b[1] / a[1]:.1f}x" for a, b in itertools.pairwise(times)
            )
            print(f"{'':<4}time growth per 10x length (relay/tiktoken): {growth}")


if __name__ == "__main__":
    main()
