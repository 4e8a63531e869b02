"""Fuzzy matching: Relay vs rapidfuzz in one process, and the near-duplicate index's latency.

    python benchmarks/bench_fuzzy.py [--quick] [--index-sizes 100000,1000000]

Prints, for ratio / token_set_ratio / Levenshtein / Indel on short (~25 code points), medium
(~200) and long (~2000) sentence pairs, the time per call of both libraries and the ratio
rapidfuzz / Relay (> 1: Relay is faster); then one query against 100k choices (extract and a
cdist-like row of scores), single-threaded and on every core; then NearDuplicateIndex build
time, memory and query latency (p50 / p99) at each size, with short texts (~60 code points).
Every timing is the best of several repetitions (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable

from rapidfuzz import fuzz, process, utils
from rapidfuzz.distance import Indel, Levenshtein

from relay_context import NearDuplicateIndex, fuzzy

ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def make_vocabulary(rng: random.Random, size: int) -> list[str]:
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(2, 9))) for _ in range(size)]


def sentence(rng: random.Random, vocabulary: list[str], words: int) -> str:
    return " ".join(rng.choice(vocabulary) for _ in range(words))


def edit(rng: random.Random, text: str, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        chars[rng.randrange(len(chars))] = rng.choice(ALPHABET)
    return "".join(chars)


def best_of(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def compare(
    label: str, calls: int, ours: Callable[[], object], theirs: Callable[[], object], reps: int
) -> None:
    # Interleaved repetitions so that both see the same machine load.
    t_ours = t_theirs = float("inf")
    for _ in range(reps):
        t_ours = min(t_ours, best_of(ours, 1))
        t_theirs = min(t_theirs, best_of(theirs, 1))
    print(
        f"{label:<44} {t_ours / calls * 1e6:>10.3f} {t_theirs / calls * 1e6:>10.3f} "
        f"{t_theirs / t_ours:>6.2f}x"
    )


def bench_pairs(rng: random.Random, vocabulary: list[str], reps: int) -> None:
    print(f"{'pairwise (us per call)':<44} {'relay':>10} {'rapidfuzz':>10} {'ratio':>7}")
    scorers = [
        ("ratio", fuzzy.ratio, fuzz.ratio),
        ("token_set_ratio", fuzzy.token_set_ratio, fuzz.token_set_ratio),
        (
            "levenshtein_normalized",
            fuzzy.levenshtein_normalized_similarity,
            Levenshtein.normalized_similarity,
        ),
        ("indel_normalized", fuzzy.indel_normalized_similarity, Indel.normalized_similarity),
        ("partial_ratio", fuzzy.partial_ratio, fuzz.partial_ratio),
        ("token_sort_ratio", fuzzy.token_sort_ratio, fuzz.token_sort_ratio),
        ("WRatio", fuzzy.WRatio, fuzz.WRatio),
        ("QRatio", fuzzy.QRatio, fuzz.QRatio),
    ]
    for size_label, words, count in (("short", 4, 2000), ("medium", 30, 500), ("long", 300, 20)):
        pairs = [
            (sentence(rng, vocabulary, words), sentence(rng, vocabulary, words))
            for _ in range(count)
        ]
        # Half of the pairs are near-duplicates (the case dedup and caches care about).
        pairs[: count // 2] = [
            (a, edit(rng, a, max(1, len(a) // 20))) for a, _ in pairs[: count // 2]
        ]
        mean_len = statistics.mean(len(a) for a, _ in pairs)
        for name, ours, theirs in scorers:

            def run_ours(
                f: Callable[[str, str], float] = ours, pairs: list[tuple[str, str]] = pairs
            ) -> None:
                for a, b in pairs:
                    f(a, b)

            def run_theirs(
                f: Callable[[str, str], float] = theirs, pairs: list[tuple[str, str]] = pairs
            ) -> None:
                for a, b in pairs:
                    f(a, b)

            compare(f"{name} {size_label} (~{mean_len:.0f} cp)", count, run_ours, run_theirs, reps)


def bench_batch(rng: random.Random, vocabulary: list[str], reps: int) -> None:
    choices = [sentence(rng, vocabulary, rng.randint(4, 12)) for _ in range(100_000)]
    query = sentence(rng, vocabulary, 8)
    cores = os.cpu_count() or 1
    print(
        f"\n{'one query vs 100k choices (us per choice)':<44} "
        f"{'relay':>10} {'rapidfuzz':>10} {'ratio':>7}"
    )
    batch_scorers = (
        ("ratio", fuzz.ratio),
        ("token_set_ratio", fuzz.token_set_ratio),
        ("WRatio", fuzz.WRatio),
        ("partial_ratio", fuzz.partial_ratio),
        ("token_sort_ratio", fuzz.token_sort_ratio),
    )
    for name, theirs in batch_scorers:
        assert fuzzy.extract(query, choices, scorer=name, limit=5) == process.extract(  # type: ignore[arg-type]
            query, choices, scorer=theirs, limit=5
        )
        compare(
            f"extract {name}, limit 5, 1 thread",
            len(choices),
            lambda n=name: fuzzy.extract(query, choices, scorer=n, limit=5),  # type: ignore[misc]
            lambda t=theirs: process.extract(query, choices, scorer=t, limit=5),  # type: ignore[misc]
            reps,
        )
        compare(
            f"scores/cdist {name}, 1 thread",
            len(choices),
            lambda n=name: fuzzy.scores(query, choices, scorer=n),  # type: ignore[misc]
            lambda t=theirs: process.cdist([query], choices, scorer=t, workers=1),  # type: ignore[misc]
            reps,
        )
        compare(
            f"scores/cdist {name}, {cores} threads",
            len(choices),
            lambda n=name: fuzzy.scores(query, choices, scorer=n, workers=-1),  # type: ignore[misc]
            lambda t=theirs: process.cdist([query], choices, scorer=t, workers=-1),  # type: ignore[misc]
            reps,
        )
    # rapidfuzz's drop-in cases: a dict of choices (keys returned) and a processor.
    keyed = {f"k{i}": c for i, c in enumerate(choices)}
    assert fuzzy.extract(query, keyed) == process.extract(query, keyed)
    compare(
        "extract WRatio (default), dict choices",
        len(choices),
        lambda: fuzzy.extract(query, keyed),
        lambda: process.extract(query, keyed),
        reps,
    )
    compare(
        "extract WRatio, processor=default_process",
        len(choices),
        lambda: fuzzy.extract(query, choices, processor=fuzzy.default_process),
        lambda: process.extract(query, choices, processor=utils.default_process),
        reps,
    )


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_index(rng: random.Random, vocabulary: list[str], size: int, queries: int) -> None:
    texts = [sentence(rng, vocabulary, rng.randint(6, 10)) for _ in range(size)]
    mean_len = statistics.mean(len(t) for t in texts[:10_000])
    index = NearDuplicateIndex()
    rss_before = rss_mb()
    t0 = time.perf_counter()
    chunk = 100_000
    for start in range(0, size, chunk):
        index.add_many(
            ((f"doc-{i}", texts[i]) for i in range(start, min(size, start + chunk))), workers=-1
        )
    build = time.perf_counter() - t0
    rss_after = rss_mb()
    # Half near-duplicates of stored texts (1-2 edits), half new texts.
    probes = [
        edit(rng, texts[rng.randrange(size)], rng.randint(1, 2))
        if q % 2 == 0
        else sentence(rng, vocabulary, rng.randint(6, 10))
        for q in range(queries)
    ]
    latencies = []
    hits = 0
    for probe in probes:
        t = time.perf_counter()
        found = index.query(probe, threshold=0.8)
        latencies.append(time.perf_counter() - t)
        hits += len(found)
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e3
    p99 = latencies[int(len(latencies) * 0.99)] * 1e3
    print(
        f"index {size:>9,} entries (~{mean_len:.0f} cp): build {build:6.1f} s "
        f"({size / build / 1e3:5.0f}k/s), +{rss_after - rss_before:6.0f} MB RSS "
        f"({(rss_after - rss_before) * 1e6 / size:4.0f} B/entry); query p50 {p50:.3f} ms, "
        f"p99 {p99:.3f} ms, {hits / queries:.2f} hits/query"
    )
    del index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller index")
    ap.add_argument("--index-sizes", default=None, help="comma-separated entry counts")
    args = ap.parse_args()
    reps = 3 if args.quick else 7
    rng = random.Random(2026)
    vocabulary = make_vocabulary(rng, 20_000)
    print(f"{os.cpu_count()} cores; best of {reps}")
    bench_pairs(rng, vocabulary, reps)
    bench_batch(rng, vocabulary, reps)
    sizes = args.index_sizes or ("100000" if args.quick else "100000,1000000")
    print()
    for size in (int(s) for s in sizes.split(",")):
        bench_index(rng, vocabulary, size, queries=2000)


if __name__ == "__main__":
    main()
