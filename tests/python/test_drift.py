"""Drift and relevance (cpp/drift) against a plain-Python TF-IDF reference."""

from __future__ import annotations

import math
import re
from collections import Counter

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_context._core.drift import RelevanceIndex, word_hashes
from relay_context.core.drift import relevance_scores, topic_drift
from relay_context.errors import InputTypeError, InvalidArgumentError

_WORD = re.compile(rb"[A-Za-z0-9\x80-\xff]+")


def _words(text: str) -> list[bytes]:
    return [w.lower() for w in _WORD.findall(text.encode()) if len(w) >= 2]


_WORDISH = st.text(
    alphabet=st.sampled_from("aZ9 .,-\n\té日\U0001f600") | st.characters(), max_size=80
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(
        st.one_of(_WORDISH, st.integers(250, 700).map(lambda n: "Ab" * (n // 2) + "c" * (n % 2))),
        max_size=6,
    )
)
def test_word_hashes_are_xxh3_of_the_lowercased_words(parts: list[str]) -> None:
    """Word boundaries, ASCII lower-casing, the 2-byte minimum and words longer than the
    kernel's stack buffer (256 bytes), against the regex definition."""
    text = " ".join(parts)
    if any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        return  # not encodable as UTF-8: the binding refuses such text before hashing
    expected = [xxhash.xxh3_64_intdigest(w) for w in _words(text)]
    assert word_hashes(text) == expected


def _idf(docs: list[list[bytes]]) -> dict[bytes, float]:
    df = Counter(w for d in docs for w in set(d))
    n = len(docs)
    return {w: math.log((1 + n) / (1 + c)) + 1 for w, c in df.items()}


def _cosine(a: dict[bytes, float], b: dict[bytes, float]) -> float:
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    if na == 0 or nb == 0:
        return 0.0
    return min(1.0, max(0.0, sum(v * b.get(w, 0.0) for w, v in a.items()) / (na * nb)))


def _weighted(words: list[bytes], idf: dict[bytes, float]) -> dict[bytes, float]:
    return {w: c * idf[w] for w, c in Counter(words).items()}


def reference_drift(earlier: list[str], recent: list[str]) -> float:
    e, r = [_words(t) for t in earlier], [_words(t) for t in recent]
    idf = _idf(e + r)
    a = _weighted([w for d in e for w in d], idf)
    b = _weighted([w for d in r for w in d], idf)
    if not a or not b:
        return 0.0
    return 1.0 - _cosine(a, b)


def reference_relevance(query: str, texts: list[str]) -> list[float]:
    docs = [_words(t) for t in texts]
    q = _words(query)
    idf = _idf([q, *docs])
    qv = _weighted(q, idf)
    return [_cosine(qv, _weighted(d, idf)) for d in docs]


VOCAB = ["python", "list", "sort", "bread", "oven", "Bake", "the", "a", "日本", "café", "42", "!"]
texts = st.lists(
    st.lists(st.sampled_from(VOCAB), max_size=12).map(" ".join) | st.text(max_size=40),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(texts, texts)
def test_drift_matches_reference(earlier: list[str], recent: list[str]) -> None:
    assert topic_drift(earlier, recent) == pytest.approx(reference_drift(earlier, recent), abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40) | st.sampled_from(VOCAB), texts)
def test_relevance_matches_reference(query: str, docs: list[str]) -> None:
    got = relevance_scores(query, docs)
    assert got == pytest.approx(reference_relevance(query, docs), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    st.text(max_size=40) | st.sampled_from(VOCAB),
    texts,
    texts,
    st.lists(st.booleans(), max_size=16),
)
def test_relevance_index_matches_reference(
    query: str, first: list[str], later: list[str], flags: list[bool]
) -> None:
    # The engine's per-session word index: documents appended in batches, a subset included
    # (near-duplicates left out), flags shorter than the index for documents added since.
    index = RelevanceIndex()
    index.add(first)
    index.add(later)
    docs = first + later
    included = (flags + [True] * len(docs))[: len(docs)]
    for mask in (included, included[: len(first)]):
        chosen = [d for d, keep in zip(docs, mask, strict=False) if keep]
        got = index.relevance(query, bytes(mask))
        assert got == pytest.approx(reference_relevance(query, chosen), abs=1e-9)
    with pytest.raises(InvalidArgumentError, match="flags for"):
        index.relevance(query, bytes(len(docs) + 1))


def test_drift_extremes() -> None:
    python = ["how do I sort a list in python", "sorted() or list.sort() in Python"]
    cooking = ["what temperature bakes bread", "preheat the oven to 220 degrees"]
    assert topic_drift(python, python) == pytest.approx(0.0, abs=1e-12)
    assert topic_drift(python, cooking) == pytest.approx(1.0)
    assert 0.0 < topic_drift(python, [python[0], cooking[0]]) < 1.0
    assert topic_drift([], cooking) == 0.0


def test_relevance_prefers_shared_rare_words() -> None:
    docs = ["the weather is nice", "the knapsack solver picks messages", "the the the"]
    scores = relevance_scores("which knapsack solver?", docs)
    assert scores.index(max(scores)) == 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: topic_drift("not a list", []), "earlier must be a sequence of str"),
        (lambda: topic_drift([], ["ok", 3]), r"recent\[1\] must be a str"),
        (lambda: relevance_scores(b"q", []), "query must be a str"),  # type: ignore[arg-type]
    ],
)
def test_bad_input_is_a_type_error(call: object, message: str) -> None:
    with pytest.raises(InputTypeError, match=message):
        call()  # type: ignore[operator]
