"""Token counter throughput: Relay vs tiktoken, in one process, single-threaded and batched.

    python benchmarks/bench_tokenizer.py [--quick] [--scripts-only] [--natural]

Prints, for both encodings, a per-script table (prose in ~45 languages and scripts, code and
JSON: tests/python/data/scripts.txt), then tokens/s on natural text (prose plus real Python
source) and on adversarial runs ("a" * n, spaces * n), with the ratio tiktoken time / Relay time.
Single-threaded cases run the two side by side on the calling thread's CPU clock, alternating
runs, and report medians. Relay's memo of repeated texts is disabled so that both do the full
work every time.

``--natural`` prints only the per-script tables of natural text found on this machine
(benchmarks/natural_corpus.py: translation catalogues of ~40 languages, C headers, Python
source, English docs; each string once, no repetition), cold (every run on a new thread, so the
piece cache starts empty) and warm (the same thread, after one run).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import threading
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
import natural_corpus  # noqa: E402
from relay_context import TokenCounter  # noqa: E402

Clock = Callable[[], float]


def side_by_side(
    fns: list[Callable[[], object]], reps: int, clock: Clock = time.thread_time
) -> list[float]:
    """Median time of each function, the functions run in turn ``reps`` times (alternating, so
    that a slow spell of a shared machine falls on all of them alike)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times, strict=True):
            t0 = clock()
            fn()
            ts.append(clock() - t0)
    return [statistics.median(ts) for ts in times]


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
    try:
        t_relay, t_tik = side_by_side([relay_fn, tik_fn], reps, clock)
    except BaseException as exc:  # tiktoken panics (a pyo3 BaseException) on some long runs
        (t_relay,) = side_by_side([relay_fn], reps, clock)
        print(f"{label:<40} {amount / t_relay / 1e6:>8.2f} {'failed':>8} {unit:<6}  ({exc})")
        return t_relay, float("nan")
    print(
        f"{label:<40} {amount / t_relay / 1e6:>8.2f} {amount / t_tik / 1e6:>8.2f} "
        f"{unit:<6} {t_tik / t_relay:>6.2f}x"
    )
    return t_relay, t_tik


def per_script(name: str, reps: int, min_chars: int) -> None:
    """The per-script table of one encoding: each script's text (repeated to ``min_chars``) run
    through tiktoken's encode_ordinary, Relay's encode_ordinary and Relay's count, alternating.
    The last row sums the times over all scripts."""
    relay = TokenCounter(name, memo_size=0)
    tik = tiktoken.get_encoding(name)
    print(f"\n{name}: per script, 1 thread, median of {reps} alternating runs (thread CPU time)")
    print(
        f"{'script':<24} {'chars':>7} {'tiktoken':>9} {'encode':>9} {'ratio':>7} "
        f"{'count':>9} {'ratio':>7}   (Mtok/s)"
    )
    totals = [0.0, 0.0, 0.0]
    n_total = 0
    chars_total = 0
    worst = (float("inf"), "")
    for script, body in corpus.scripts().items():
        text = body * (min_chars // len(body) + 1)
        ids = tik.encode_ordinary(text)
        assert relay.encode_ordinary(text) == ids, script
        relay.encode_ordinary(text)  # warm both (the piece caches, the int objects of ids)
        t_tik, t_enc, t_cnt = side_by_side(
            [
                partial(tik.encode_ordinary, text),
                partial(relay.encode_ordinary, text),
                partial(relay.count, text),
            ],
            reps,
        )
        n = len(ids)
        totals = [totals[0] + t_tik, totals[1] + t_enc, totals[2] + t_cnt]
        n_total += n
        chars_total += len(text)
        worst = min(worst, (t_tik / t_enc, script), (t_tik / t_cnt, script))
        print(
            f"{script:<24} {len(text):>7} {n / t_tik / 1e6:>9.2f} {n / t_enc / 1e6:>9.2f} "
            f"{t_tik / t_enc:>6.2f}x {n / t_cnt / 1e6:>9.2f} {t_tik / t_cnt:>6.2f}x"
        )
    t_tik, t_enc, t_cnt = totals
    print(
        f"{'all scripts':<24} {chars_total:>7} {n_total / t_tik / 1e6:>9.2f} "
        f"{n_total / t_enc / 1e6:>9.2f} {t_tik / t_enc:>6.2f}x {n_total / t_cnt / 1e6:>9.2f} "
        f"{t_tik / t_cnt:>6.2f}x"
    )
    print(f"lowest ratio: {worst[0]:.2f}x ({worst[1]})")
    # The rows above repeat each section ~60 times, so Relay's per-thread piece cache answers
    # almost every piece after the first copy. Each section once, on a new thread (an empty
    # piece cache), shows the speed where pieces are seen for the first time.
    once = "".join(corpus.scripts().values())
    n = len(tik.encode_ordinary(once))
    cold: list[list[float]] = [[], []]
    for _ in range(reps):
        for fn, ts in zip((tik.encode_ordinary, relay.encode_ordinary), cold, strict=True):
            ts.append(cpu_on_new_thread(fn, once))
    t_tik, t_enc = (statistics.median(ts) for ts in cold)
    print(
        f"{'each section once':<24} {len(once):>7} {n / t_tik / 1e6:>9.2f} {n / t_enc / 1e6:>9.2f} "
        f"{t_tik / t_enc:>6.2f}x   (a new thread per run: empty piece cache)"
    )


def per_script_natural(name: str, reps: int, scripts: dict[str, str]) -> None:
    """The per-script table of one encoding on natural text: tiktoken's encode_ordinary, Relay's
    encode_ordinary and count, alternating, each run on a new thread (cold: an empty piece
    cache), then on this thread after a warm-up run (warm). The last row sums the times."""
    relay = TokenCounter(name, memo_size=0)
    tik = tiktoken.get_encoding(name)
    print(
        f"\n{name}: natural text per script, 1 thread, median of {reps} alternating runs "
        "(thread CPU time; cold = new thread per run, warm = same thread after one run)"
    )
    print(
        f"{'script':<30} {'chars':>7} {'tiktoken':>8} {'encode':>8} {'ratio':>6} {'count':>6} "
        f"| {'warm':>6} {'count':>6}   (Mtok/s; ratios are tiktoken time / Relay time)"
    )
    fns = (tik.encode_ordinary, relay.encode_ordinary, relay.count)
    totals = [0.0] * 6
    n_total = chars_total = 0
    worst = (float("inf"), "")
    for script, text in scripts.items():
        ids = tik.encode_ordinary(text)
        assert relay.encode_ordinary(text) == ids, script
        cold: list[list[float]] = [[], [], []]
        for _ in range(reps):
            for fn, ts in zip(fns, cold, strict=True):
                ts.append(cpu_on_new_thread(fn, text))
        c_tik, c_enc, c_cnt = (statistics.median(ts) for ts in cold)
        w_tik, w_enc, w_cnt = side_by_side([partial(fn, text) for fn in fns], reps)
        n = len(ids)
        for k, t in enumerate((c_tik, c_enc, c_cnt, w_tik, w_enc, w_cnt)):
            totals[k] += t
        n_total += n
        chars_total += len(text)
        worst = min(worst, (c_tik / c_enc, script))
        print(
            f"{script:<30} {len(text):>7} {n / c_tik / 1e6:>8.2f} {n / c_enc / 1e6:>8.2f} "
            f"{c_tik / c_enc:>5.2f}x {c_tik / c_cnt:>5.2f}x | {w_tik / w_enc:>5.2f}x "
            f"{w_tik / w_cnt:>5.2f}x"
        )
    c_tik, c_enc, c_cnt, w_tik, w_enc, w_cnt = totals
    print(
        f"{'all scripts':<30} {chars_total:>7} {n_total / c_tik / 1e6:>8.2f} "
        f"{n_total / c_enc / 1e6:>8.2f} {c_tik / c_enc:>5.2f}x {c_tik / c_cnt:>5.2f}x | "
        f"{w_tik / w_enc:>5.2f}x {w_tik / w_cnt:>5.2f}x"
    )
    print(f"lowest cold encode ratio: {worst[0]:.2f}x ({worst[1]})")


def cpu_on_new_thread(fn: Callable[[str], object], text: str) -> float:
    """The CPU time of ``fn(text)`` run on a new thread (whose piece cache is empty)."""
    took: list[float] = []

    def run() -> None:
        t0 = time.thread_time()
        fn(text)
        took.append(time.thread_time() - t0)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    return took[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, shorter samples")
    ap.add_argument("--scripts-only", action="store_true", help="only the per-script tables")
    ap.add_argument(
        "--natural", action="store_true", help="only the per-script tables of natural text"
    )
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    if args.natural:
        scripts = natural_corpus.natural_scripts(30_000 if args.quick else 100_000)
        for name in ("cl100k_base", "o200k_base"):
            per_script_natural(name, reps, scripts)
        return
    threads = os.cpu_count() or 1

    for name in ("cl100k_base", "o200k_base"):
        per_script(name, reps, 10_000 if args.quick else 40_000)
    if args.scripts_only:
        return

    text = corpus.natural_text()
    lines = [ln for ln in text.splitlines(keepends=True) if ln.strip()]
    mb = len(text.encode()) / 1e6
    print(f"\nnatural text: {mb:.2f} MB, {len(lines)} lines; {threads} cores; best of {reps}")
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
