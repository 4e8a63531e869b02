"""The fuzzy cache's guard: may a cached answer to one last user message answer another?

Semantic caches answer "what is 2+3?" with the answer to "what is 2+4?" (LiteLLM #12234 measured
7-15% false hits). Relay's fuzzy cache reuses an answer only for a near-identical message —
typos, case, punctuation, spacing, contractions, politeness words — and the guard refuses
anything that can change the answer, even within that small distance:

1. **distance**: after normalisation (case folded, contractions spelled out, punctuation and
   spacing collapsed) the normalised Levenshtein similarity is at least ``min_similarity`` and
   the edit distance at most ``max_edits`` characters; messages shorter than ``min_chars`` are
   never matched (one character there is a different question);
2. **numbers**: the same numbers, digits or number words (``3`` vs ``4``, ``three`` vs
   ``four``, ``1,000`` = ``1000``), in order;
3. **negations**: the same negations in order (``not``, ``never``, ``no``, ``without``...; ``isn't``
   and ``is not`` are one);
4. **code identifiers**: the same identifiers, case-sensitive (``snake_case``, ``camelCase``,
   ``dotted.names``, ``calls()``, ``paths/and.ext``, anything in backticks);
5. **proper names**: the same capitalised words not starting a sentence (``Iran`` vs ``Iraq``);
6. **words**: aligned word by word, every difference must be a filler word inserted or dropped
   (``please``, ``the``...), two words joined or split (``set up``/``setup``), or a typo of a
   word of five letters or more: one inserted, dropped or transposed letter, or one letter
   replaced by a neighbour on the keyboard (``effect``/``affect`` is refused: ``a`` and ``e``
   are not neighbours, and both are words).

The context around the message (model, tools, system prompt, earlier turns, sampling settings)
must be *equal*: :class:`FuzzyContext` compares digests of each. Thresholds are the operator's
settings (``fuzzy_cache``), never a request's.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass

from relay_context.core import fuzzy

CONTRACTIONS = {
    "n't": " not",
    "'re": " are",
    "'ve": " have",
    "'ll": " will",
    "'d": " would",
    "'m": " am",
}
#: ``won't`` and ``can't`` spell out irregularly.
IRREGULAR = {
    "won't": "will not",
    "can't": "can not",
    "cannot": "can not",
    "shan't": "shall not",
    "let's": "let us",
    **{
        f"{w}'s": f"{w} is"
        for w in ("what", "that", "it", "there", "here", "who", "where", "how", "he", "she")
    },
}
NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "none",
        "nothing",
        "nobody",
        "nowhere",
        "neither",
        "nor",
        "without",
        "except",
        "excluding",
        "unless",
        "non",
    }
)
NUMBER_WORDS = frozenset(
    {
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
        "thirty",
        "forty",
        "fifty",
        "sixty",
        "seventy",
        "eighty",
        "ninety",
        "hundred",
        "thousand",
        "million",
        "billion",
        "trillion",
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "once",
        "twice",
        "thrice",
        "half",
        "quarter",
        "double",
        "triple",
        "dozen",
        "single",
        "pair",
    }
)
#: Words that may be inserted or dropped without changing what is asked.
FILLERS = frozenset(
    {
        "please",
        "pls",
        "plz",
        "kindly",
        "thanks",
        "thank",
        "you",
        "hi",
        "hey",
        "hello",
        "the",
        "a",
        "an",
        "just",
        "quick",
        "quickly",
    }
)
MIN_TYPO_WORD = 5
#: Two neighbouring letters swapped is the commonest typo: allowed in shorter words.
MIN_TRANSPOSED_WORD = 4
_KEYBOARD = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, set[str]] = {}
for _r, _row in enumerate(_KEYBOARD):
    for _c, _ch in enumerate(_row):
        near = _NEIGHBOURS.setdefault(_ch, set())
        for _dr in (-1, 0, 1):
            if 0 <= _r + _dr < len(_KEYBOARD):
                other = _KEYBOARD[_r + _dr]
                for _dc in (-1, 0, 1):
                    if (_dr or _dc) and 0 <= _c + _dc < len(other):
                        near.add(other[_c + _dc])

_IRREGULAR = re.compile(
    r"\b(?:" + "|".join(re.escape(k) for k in sorted(IRREGULAR, key=len, reverse=True)) + r")\b"
)
_CONTRACTED = re.compile(r"(?<=[a-z])(?:" + "|".join(re.escape(k) for k in CONTRACTIONS) + r")\b")
_NUMBER = re.compile(r"[-+]?\d[\d,_]*(?:\.\d+)?%?")
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)
_BACKTICKS = re.compile(r"`([^`]+)`")
_IDENTIFIER = re.compile(
    r"(?<![\w.])(?:[A-Za-z_$][\w$]*(?:[./:\\-]+[\w$]+)+|[A-Za-z_$][\w$]*\(\)?|[A-Za-z_$][\w$]*)"
)
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")


@dataclass(frozen=True, slots=True)
class FuzzyThresholds:
    """The operator's limits (``fuzzy_cache`` settings); the defaults are strict."""

    min_similarity: float = 0.9
    max_edits: int = 8
    min_chars: int = 16


@dataclass(frozen=True, slots=True)
class FuzzyContext:
    """Digests of everything around the last user message; two requests may share a fuzzy
    entry only when every one is equal."""

    scope: str
    family: str
    model: str
    tools: str
    system: str
    #: Earlier turns and every other field that changes the answer.
    rest: str


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    #: ``match``, or why not: ``context``, ``too_short``, ``distance``, ``numbers``,
    #: ``negations``, ``identifiers``, ``names``, ``words``.
    reason: str
    similarity: float = 0.0


@functools.lru_cache(maxsize=4096)
def spell_out(text: str) -> str:
    """Lowercased with contractions written in full (``isn't`` -> ``is not``)."""
    out = text.lower().replace("\u2019", "'")
    out = _IRREGULAR.sub(lambda m: IRREGULAR[m.group()], out)
    return _CONTRACTED.sub(lambda m: CONTRACTIONS[m.group()], out)


@functools.lru_cache(maxsize=4096)
def normalise(text: str) -> str:
    """What the distance is measured on: spelled out, letters and digits only, single spaces."""
    return " ".join(fuzzy.default_process(spell_out(text)).split())


def words(text: str) -> list[str]:
    return normalise(text).split()


def numbers(text: str) -> list[str]:
    """Digits (separators dropped) and number words, in order."""
    found = [n.replace(",", "").replace("_", "").lstrip("+") for n in _NUMBER.findall(text)]
    found += [w for w in _WORD.findall(spell_out(text)) if w in NUMBER_WORDS]
    return found


def negations(text: str) -> list[str]:
    spelled = spell_out(text)
    return [w for w in re.findall(r"[a-z]+", spelled) if w in NEGATIONS]


def identifiers(text: str) -> list[str]:
    """Code identifiers, case-sensitive, in order: what is in backticks, and bare words that
    only code spells (an underscore, a digit, an inner capital, a dot or slash inside, a call)."""
    out = [m.strip() for m in _BACKTICKS.findall(text)]
    bare = _BACKTICKS.sub(" ", text)
    for token in _IDENTIFIER.findall(bare):
        name = token.rstrip("(").rstrip(")")
        core = name.strip(".-:/\\")
        if not core:
            continue
        looks_like_code = (
            "_" in core
            or any(c.isdigit() for c in core)
            or re.search(r"[a-z][A-Z]", core) is not None
            or re.search(r"\w[./\\:]\w", core) is not None
            or token.endswith("(")
            or token.endswith("()")
        )
        if looks_like_code:
            out.append(core)
    return out


def proper_names(text: str) -> list[str]:
    """Capitalised words that do not start a sentence (names, places, products, acronyms),
    lowercased."""
    out: list[str] = []
    for m in _WORD.finditer(text):
        w = m.group()
        if not w[:1].isupper() or w == "I":
            continue
        before = text[: m.start()]
        if not before.strip() or _SENTENCE_END.search(before):
            continue
        out.append(w.lower())
    return out


def _names_agree(a: str, b: str) -> bool:
    """Every name of either text is a word of the other (case aside: ``Python`` = ``python``,
    but ``Iran`` is not ``Iraq``)."""
    words_a, words_b = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    return all(n in words_b for n in proper_names(a)) and all(n in words_a for n in proper_names(b))


def _typo(a: str, b: str) -> bool:
    """One inserted, dropped or transposed letter, or a keyboard neighbour for another, in words
    of :data:`MIN_TYPO_WORD` letters or more."""
    if min(len(a), len(b)) < MIN_TRANSPOSED_WORD or a.isdigit() or b.isdigit():
        return False
    if len(a) == len(b) and len(a) >= MIN_TRANSPOSED_WORD:
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            i = diff[0]
            if a[i] == b[i + 1] and a[i + 1] == b[i]:
                return True
    if min(len(a), len(b)) < MIN_TYPO_WORD:
        return False
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return b[diff[0]] in _NEIGHBOURS.get(a[diff[0]], set())
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            i = diff[0]
            return a[i] == b[i + 1] and a[i + 1] == b[i]
        return False
    if abs(len(a) - len(b)) != 1:
        return False
    short, long_ = (a, b) if len(a) < len(b) else (b, a)
    return any(long_[:i] + long_[i + 1 :] == short for i in range(len(long_)))


def _words_agree(old: list[str], new: list[str]) -> bool:
    """Aligned word by word, every difference is fillers, a join or split, or typos."""
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            continue
        removed, added = old[i1:i2], new[j1:j2]
        if "".join(removed) == "".join(added):
            continue  # "set up" / "setup"
        kept_old = [w for w in removed if w not in FILLERS]
        kept_new = [w for w in added if w not in FILLERS]
        if len(kept_old) != len(kept_new):
            return False
        if not all(x == y or _typo(x, y) for x, y in zip(kept_old, kept_new, strict=True)):
            return False
    return True


def _without_fillers(normalised: str) -> str:
    return " ".join(w for w in normalised.split() if w not in FILLERS)


def similarity(a: str, b: str) -> float:
    """Normalised Levenshtein similarity of the normalised texts (the C++ kernel)."""
    return fuzzy.levenshtein_normalized_similarity(normalise(a), normalise(b))


def judge(cached: str, incoming: str, thresholds: FuzzyThresholds) -> Verdict:
    """Whether the answer to the last user message ``cached`` may answer ``incoming`` (their
    contexts already found equal)."""
    a, b = normalise(cached), normalise(incoming)
    if min(len(a), len(b)) < thresholds.min_chars:
        return Verdict(False, "too_short")
    # Fillers are checked word by word below; the distance is over what is asked.
    core_a, core_b = _without_fillers(a), _without_fillers(b)
    score = fuzzy.levenshtein_normalized_similarity(core_a, core_b)
    edits = round((1.0 - score) * max(len(core_a), len(core_b)))
    if score < thresholds.min_similarity or edits > thresholds.max_edits:
        return Verdict(False, "distance", score)
    if numbers(cached) != numbers(incoming):
        return Verdict(False, "numbers", score)
    if negations(cached) != negations(incoming):
        return Verdict(False, "negations", score)
    if identifiers(cached) != identifiers(incoming):
        return Verdict(False, "identifiers", score)
    if not _names_agree(cached, incoming):
        return Verdict(False, "names", score)
    if not _words_agree(a.split(), b.split()):
        return Verdict(False, "words", score)
    return Verdict(True, "match", score)


def judge_request(
    cached: tuple[FuzzyContext, str],
    incoming: tuple[FuzzyContext, str],
    thresholds: FuzzyThresholds,
) -> Verdict:
    """:func:`judge`, after the contexts (model, tools, system, the rest) are found equal."""
    if cached[0] != incoming[0]:
        return Verdict(False, "context")
    return judge(cached[1], incoming[1], thresholds)


__all__ = [
    "FuzzyContext",
    "FuzzyThresholds",
    "Verdict",
    "identifiers",
    "judge",
    "judge_request",
    "negations",
    "normalise",
    "numbers",
    "proper_names",
    "similarity",
]
