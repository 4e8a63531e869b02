"""The fuzzy cache guard's false-hit and false-miss rates on the labelled near-miss pairs.

    python benchmarks/bench_fuzzy_guard.py

The pairs (``tests/python/data/fuzzy_near_misses.json``, written for Relay) are a base message
and a variant: variants that must match (typos, case, punctuation, contractions, fillers) and
variants that must not (one digit, one negation, one code identifier, one name or one meaning
word changed). Side by side on the same pairs:

* Relay's guard (``gateway/cache/fuzzy_guard.py``, default thresholds);
* distance alone at Relay's threshold (normalised Levenshtein similarity >= 0.9, no guard);
* a similarity-threshold cache as the peers' semantic caches run it: ``token_set_ratio`` >= 79
  (LiteLLM's documented 0.79-style threshold, on the words instead of embeddings).

Printed: false hits (must-not pairs answered) and false misses (must-match pairs refused), per
kind of change, and the time per judgement.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from relay_context.core import fuzzy
from relay_context.gateway.cache import fuzzy_guard as guard
from relay_context.gateway.cache.fuzzy_guard import FuzzyThresholds

DATA = (
    Path(__file__).resolve().parent.parent / "tests" / "python" / "data" / "fuzzy_near_misses.json"
)


def load() -> list[tuple[str, str, bool, str]]:
    out: list[tuple[str, str, bool, str]] = []
    for item in json.loads(DATA.read_text())["items"]:
        out += [(item["base"], v, True, "match") for v in item["match"]]
        out += [
            (item["base"], v, False, k.rstrip("0123456789")) for k, v in item["distinct"].items()
        ]
    return out


def main() -> None:
    pairs = load()
    thresholds = FuzzyThresholds()
    deciders: dict[str, Callable[[str, str], bool]] = {
        "relay guard": lambda a, b: guard.judge(a, b, thresholds).ok,
        "distance only (>= 0.9)": lambda a, b: guard.similarity(a, b) >= thresholds.min_similarity,
        "similarity >= 0.79": lambda a, b: (
            fuzzy.token_set_ratio(a, b, processor=fuzzy.default_process) >= 79
        ),
    }
    must = sum(1 for p in pairs if p[2])
    must_not = len(pairs) - must
    print(f"{len(pairs)} pairs: {must} must match, {must_not} must not")
    print(f"{'decider':<26}{'false hits':>14}{'false misses':>15}{'us / pair':>11}")
    for name, decide in deciders.items():
        guard.normalise.cache_clear()  # every decider starts cold
        guard.spell_out.cache_clear()
        started = time.perf_counter()
        verdicts = [decide(a, b) for a, b, _, _ in pairs]
        per_pair = (time.perf_counter() - started) / len(pairs) * 1e6
        hits = [p for p, v in zip(pairs, verdicts, strict=True) if v and not p[2]]
        misses = [p for p, v in zip(pairs, verdicts, strict=True) if not v and p[2]]
        print(
            f"{name:<26}{len(hits):>5} ({len(hits) / must_not:>6.1%}){len(misses):>5} "
            f"({len(misses) / must:>6.1%}){per_pair:>10.1f}"
        )
        if hits:
            print("    false hits by kind:", dict(Counter(p[3] for p in hits)))
    refusals = Counter(guard.judge(a, b, thresholds).reason for a, b, m, _ in pairs if not m)
    print("relay guard, why must-not pairs were refused:", dict(refusals))
    missed = [(a, b, guard.judge(a, b, thresholds).reason) for a, b, m, _ in pairs if m]
    missed = [x for x in missed if x[2] != "match"]
    print("relay guard, must-match pairs refused:")
    for a, b, reason in missed:
        print(f"    [{reason}] {a!r} / {b!r}")


if __name__ == "__main__":
    main()
