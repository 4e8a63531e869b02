"""Test and benchmark corpus for the token counter: real text in many scripts, code, JSON, and
adversarial and random strings. Deterministic for a given seed."""

from __future__ import annotations

import json
import random
import re
import sysconfig
import unicodedata
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def multilingual() -> list[str]:
    """Sentences in ~30 languages and scripts, emoji with ZWJ sequences, combining marks."""
    text = _unescape((DATA / "multilingual.txt").read_text(encoding="utf-8"))
    return [*text.splitlines(keepends=True), text]


def scripts(file: str = "scripts.txt") -> dict[str, str]:
    """Prose in ~45 languages and scripts, plus code and JSON, by name (data/scripts.txt, one
    section per ``# script: <name>`` header). Scripts written without spaces (Thai, Lao, Khmer,
    Burmese, Japanese, Chinese) pre-tokenise into long pieces, where BPE merging costs most."""
    out: dict[str, str] = {}
    name = ""
    for line in (DATA / file).read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("# script: "):
            name = line.removeprefix("# script: ").strip()
            out[name] = ""
        elif name:
            out[name] += line
    return out


def natural_sample() -> dict[str, str]:
    """A slice of the benchmark's natural corpus per script (data/natural_sample.txt, written by
    ``benchmarks/natural_corpus.py --sample``): translated strings of the Debian gettext
    catalogues of ~40 languages, C headers, Python stdlib source, English package docs. Kept in
    the repository so that the oracle tests do not depend on what a machine has installed."""
    return scripts("natural_sample.txt")


def code_samples() -> list[str]:
    """C++, Rust, TypeScript, SQL, HTML, YAML, Markdown, mixed indentation."""
    text = (DATA / "code_samples.txt").read_text(encoding="utf-8")
    return [*text.split("-----\n"), text]


def python_sources(limit: int = 60) -> list[str]:
    """Real code and prose: modules of the running Python's standard library."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size < 200_000)
    step = max(1, len(files) // limit)
    return [p.read_text(encoding="utf-8", errors="replace") for p in files[::step][:limit]]


def json_documents(seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    words = [w for line in multilingual() for w in line.split()][:400]

    def value(depth: int) -> object:
        kind = rng.randrange(7 if depth < 4 else 4)
        if kind == 0:
            return rng.choice(words)
        if kind == 1:
            return rng.randint(-(10**12), 10**12)
        if kind == 2:
            return rng.random() * 10 ** rng.randint(-5, 8)
        if kind == 3:
            return rng.choice([None, True, False])
        if kind in (4, 5):
            return {rng.choice(words): value(depth + 1) for _ in range(rng.randint(1, 6))}
        return [value(depth + 1) for _ in range(rng.randint(0, 6))]

    docs = []
    for i in range(30):
        obj = value(0)
        docs.append(json.dumps(obj, ensure_ascii=i % 2 == 0, indent=(2 if i % 3 == 0 else None)))
    return docs


def runs() -> list[str]:
    """Long runs of one class: the inputs on which naive BPE or regex engines go quadratic."""
    out = []
    for n in (1, 2, 3, 4, 5, 17, 100, 1000, 5000):
        for unit in (
            "a",
            " ",
            "\n",
            "\t",
            "1",
            "!",
            "é",
            "字",
            "\u00a0",
            "\u3000",
            "\r\n",
            " \n",
            "ab",
            "12 ",
            "' ",
            "'s",
            "😀",
            "\u0301",
            "-",
            "/",
            ".\n",
            "  a",
        ):
            out.append(unit * n)
    out += [" " * 20 + "x", "x" + " " * 20, "\n\n\n   \n\t\t x", "a" + " \t" * 50 + "b"]
    out += ["1" * 9999 + "a", "x" * 3000 + " " * 3000 + "y" * 3000]
    return out


def contractions() -> list[str]:
    """Apostrophe contractions in every case, including the case-folding ones (ſ, K)."""
    suffixes = [
        "s",
        "t",
        "re",
        "ve",
        "m",
        "ll",
        "d",
        "S",
        "T",
        "RE",
        "rE",
        "Re",
        "VE",
        "vE",
        "M",
        "LL",
        "lL",
        "Ll",
        "D",
        "ſ",
        "K",
        "x",
        "",
    ]
    out = []
    for stem in ("it", "IT", "Ωμέγα", "日本", "123", " ", "", "don", "O'", "'"):
        for suf in suffixes:
            out.append(f"{stem}'{suf}")
            out.append(f"{stem}'{suf} and {stem}'{suf}'{suf}.")
    return out


# Character pools for the random generator, chosen to hit every branch of the patterns.
_POOLS: list[tuple[float, str]] = [
    (3.0, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    (2.0, " \t\n\r\u00a0\u2003\u3000\u0085\u2028\u000b\u000c"),
    (1.5, "0123456789٠١٢٣४५६১২๓①½Ⅻ"),
    (1.5, "'’\"!?.,;:-_/\\()[]{}<>@#$%^&*+=|~`"),
    (1.0, "sStTdDmMlLvVrReEſ"),
    (1.0, "\u0300\u0301\u0308\u0327\u093e\u0bcd\u200d\u20dd\ufe0f\U000e0067"),
    (1.0, "éÉßẞǅǈǋǲʰˆ々〻ªºǅ字日本한국あアｱ"),
    (0.5, "😀👋🏽🇺🇸👩‍💻❤️🔥"),
]


def _random_char(rng: random.Random) -> str:
    r = rng.random() * 12.5
    for weight, pool in _POOLS:
        if r < weight:
            return rng.choice(pool)
        r -= weight
    # Anything at all: any plane, unassigned, private use, noncharacters, surrogates.
    return chr(rng.randrange(0x110000))


def random_strings(count: int, seed: int = 1234, max_len: int = 40) -> list[str]:
    rng = random.Random(seed)
    return [
        "".join(_random_char(rng) for _ in range(rng.randint(0, max_len))) for _ in range(count)
    ]


def random_codepoint_strings(count: int, seed: int = 99) -> list[str]:
    """Uniformly random code points, and runs of characters from one general category."""
    rng = random.Random(seed)
    out = [
        "".join(chr(rng.randrange(0x110000)) for _ in range(rng.randint(1, 30)))
        for _ in range(count // 2)
    ]
    by_cat: dict[str, list[str]] = {}
    for cp in range(0, 0x30000, 7):
        by_cat.setdefault(unicodedata.category(chr(cp)), []).append(chr(cp))
    cats = sorted(by_cat)
    for _ in range(count - len(out)):
        parts = []
        for _ in range(rng.randint(1, 6)):
            pool = by_cat[rng.choice(cats)]
            parts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 5))))
            parts.append(rng.choice(["", " ", "'s", "\n", "  ", "1"]))
        out.append("".join(parts))
    return out


def natural_text() -> str:
    """A natural-text benchmark corpus: prose in many languages plus real code."""
    return "\n".join(multilingual() + python_sources(40))


def all_documents() -> list[str]:
    return (
        multilingual()
        + code_samples()
        + python_sources()
        + json_documents()
        + runs()
        + contractions()
    )
