"""relay_context.fuzzy's rapidfuzz behaviours (process.extract/extractOne, processors,
utils.default_process) against the real rapidfuzz."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process, utils
from rapidfuzz.distance import Indel, Levenshtein

from relay_context import fuzzy
from relay_context.errors import InvalidArgumentError, InvalidScoreCutoffError

WORDS = ["new", "york", "mets", "jets", "giants", "NEW", "York!", "caf\u00e9", "\u4e2d\u6587", "a"]
choice_text = st.lists(st.sampled_from(WORDS), max_size=5).map(" ".join)
maybe_choice = st.one_of(choice_text, choice_text, st.none())
FUZZ = [
    ("ratio", fuzz.ratio),
    ("token_set_ratio", fuzz.token_set_ratio),
    ("partial_ratio", fuzz.partial_ratio),
    ("token_sort_ratio", fuzz.token_sort_ratio),
    ("WRatio", fuzz.WRatio),
    ("QRatio", fuzz.QRatio),
]


@given(
    query=st.one_of(choice_text, st.none()),
    choices=st.lists(maybe_choice, max_size=30),
    limit=st.one_of(st.none(), st.integers(0, 6)),
    cutoff=st.one_of(st.none(), st.floats(0.0, 100.0)),
    processed=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_extract_lists_with_none_and_processor(
    query: str | None,
    choices: list[str | None],
    limit: int | None,
    cutoff: float | None,
    processed: bool,
) -> None:
    processor = utils.default_process if processed else None
    ours_processor = fuzzy.default_process if processed else None
    for name, theirs in FUZZ:
        want = process.extract(
            query, choices, scorer=theirs, limit=limit, score_cutoff=cutoff, processor=processor
        )
        got = fuzzy.extract(
            query, choices, scorer=name, limit=limit, score_cutoff=cutoff, processor=ours_processor
        )
        assert got == want, name
        # rapidfuzz's scorer functions themselves are accepted (and run in C++).
        assert (
            fuzzy.extract(
                query, choices, scorer=theirs, limit=limit, score_cutoff=cutoff, processor=processor
            )
            == want
        )
    want = process.extractOne(query, choices, score_cutoff=cutoff, processor=processor)
    assert fuzzy.extractOne(query, choices, score_cutoff=cutoff, processor=ours_processor) == want


@given(
    query=choice_text,
    mapping=st.dictionaries(
        st.one_of(st.text(max_size=3), st.integers()), maybe_choice, max_size=20
    ),
    limit=st.one_of(st.none(), st.integers(0, 6)),
)
@settings(max_examples=200, deadline=None)
def test_extract_dicts_return_keys(
    query: str, mapping: dict[Any, str | None], limit: int | None
) -> None:
    for name, theirs in FUZZ:
        want = process.extract(query, mapping, scorer=theirs, limit=limit)
        assert fuzzy.extract(query, mapping, scorer=name, limit=limit) == want
    assert fuzzy.extract(query, mapping, limit=limit) == process.extract(
        query, mapping, limit=limit
    )
    assert fuzzy.extractOne(query, mapping) == process.extractOne(query, mapping)


@given(
    query=choice_text,
    values=st.lists(st.one_of(choice_text, st.none(), st.just(math.nan)), max_size=20),
    labels=st.sampled_from(["int", "str", "default"]),
)
@settings(max_examples=150, deadline=None)
def test_extract_pandas_series_return_index_labels(
    query: str, values: list[Any], labels: str
) -> None:
    if labels == "int":
        index: Any = [10 * i + 3 for i in range(len(values))]
    elif labels == "str":
        index = [f"row-{i}" for i in range(len(values))]
    else:
        index = None
    series = pd.Series(values, index=index, dtype=object)
    for name, theirs in FUZZ:
        want = process.extract(query, series, scorer=theirs, limit=None)
        assert fuzzy.extract(query, series, scorer=name, limit=None) == want
    assert fuzzy.extractOne(query, series) == process.extractOne(query, series)


def test_nan_in_lists_is_skipped() -> None:
    choices = ["new york", math.nan, "york", None]
    assert fuzzy.extract("new york", choices, limit=None) == process.extract(  # type: ignore[arg-type]
        "new york", choices, limit=None
    )


def test_limit_zero_and_none_query() -> None:
    choices = ["a", "b"]
    assert fuzzy.extract("a", choices, limit=0) == process.extract("a", choices, limit=0) == []
    assert fuzzy.extract(None, choices) == process.extract(None, choices) == []
    assert fuzzy.extractOne(None, choices) is process.extractOne(None, choices) is None
    assert fuzzy.extractOne("a", []) is process.extractOne("a", []) is None
    assert fuzzy.extractOne("a", ["zzz"], score_cutoff=90) is None


@pytest.mark.parametrize("cutoff", [-5.0, -0.001, 100.5, 150.0, math.inf])
def test_extract_out_of_range_cutoff_raises_as_rapidfuzz(cutoff: float) -> None:
    with pytest.raises(TypeError, match="score_cutoff"):
        process.extract("a", ["a"], score_cutoff=cutoff)
    with pytest.raises(TypeError, match="score_cutoff"):
        fuzzy.extract("a", ["a"], score_cutoff=cutoff)
    with pytest.raises(InvalidArgumentError, match="score_cutoff"):
        fuzzy.extractOne("a", ["a"], score_cutoff=cutoff)
    with pytest.raises(InvalidScoreCutoffError):
        fuzzy.extract("a", ["a"], scorer="indel_normalized_similarity", score_cutoff=cutoff / 100)


def test_distance_scorers_in_extract() -> None:
    choices = ["kitten", "sitting", "mitten", None]
    for name, theirs in (
        ("levenshtein_normalized_similarity", Levenshtein.normalized_similarity),
        ("indel_normalized_similarity", Indel.normalized_similarity),
    ):
        for cutoff in (None, 0.5, 0.8):
            want = process.extract("kitten", choices, scorer=theirs, score_cutoff=cutoff)
            assert fuzzy.extract("kitten", choices, scorer=name, score_cutoff=cutoff) == want
            assert fuzzy.extract("kitten", choices, scorer=theirs, score_cutoff=cutoff) == want


def test_python_callable_scorers() -> None:
    def first_letters(a: str, b: str, **_: Any) -> float:
        return 100.0 if a[:1] == b[:1] else 10.0

    choices = ["apple", "banana", "avocado", None, "cherry"]
    for limit in (None, 1, 2):
        for cutoff in (None, 50.0):
            want = process.extract(
                "apricot", choices, scorer=first_letters, limit=limit, score_cutoff=cutoff
            )
            got = fuzzy.extract(
                "apricot", choices, scorer=first_letters, limit=limit, score_cutoff=cutoff
            )
            assert got == want


@pytest.mark.parametrize(("name", "theirs"), FUZZ)
def test_processor_on_pairwise_scorers(name: str, theirs: Any) -> None:
    ours = getattr(fuzzy, name)
    for a, b in [("New York!", "new york"), ("  A_b  ", "a b"), ("", "!!")]:
        want = theirs(a, b, processor=utils.default_process)
        assert ours(a, b, processor=fuzzy.default_process) == want
        assert ours(a, b, processor=utils.default_process) == want


@given(st.text(max_size=40))
@settings(max_examples=2000)
def test_default_process_matches(text: str) -> None:
    assert fuzzy.default_process(text) == utils.default_process(text)
    assert fuzzy.utils.default_process(text) == utils.default_process(text)


def test_default_process_every_code_point() -> None:
    # Each code point between letters and at both ends (where strip decides).
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000]
    for start in range(0, len(points), 4096):
        chunk = points[start : start + 4096]
        text = "a".join(chunk)
        assert fuzzy.default_process(text) == utils.default_process(text)
        for c in chunk[::64]:
            assert fuzzy.default_process(c) == utils.default_process(c)
