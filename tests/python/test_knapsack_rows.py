"""KnapsackSelector.select on plain data: Atoms, dicts and tuples (read in C++) give exactly the
selection of the Python path, and anything the C++ reader declines gets the Python path's
errors."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import relay_context.core.knapsack as knapsack_module
from relay_context import (
    Atom,
    InfeasibleBudgetError,
    InputTypeError,
    InvalidArgumentError,
    KnapsackSelector,
    Selection,
)

SELECTOR = KnapsackSelector()


def as_dict(a: Atom, full: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"id": a.id, "tokens": a.tokens, "value": a.value}
    if full or a.pinned:
        row["pinned"] = a.pinned
    if full or a.group is not None:
        row["group"] = a.group
    return row


def as_tuple(a: Atom, length: int) -> tuple[Any, ...]:
    fields = (a.id, a.tokens, a.value, a.pinned, a.group)
    if a.group is not None:
        length = 5
    elif a.pinned:
        length = max(length, 4)
    return fields[:length]


def python_path(atoms: list[Atom], budget: int) -> Selection:
    return SELECTOR.select_columns(
        [a.tokens for a in atoms],
        [a.value for a in atoms],
        budget,
        pinned=[a.pinned for a in atoms],
        groups=[a.group for a in atoms],
        ids=[a.id for a in atoms],
    )


atom_st = st.builds(
    lambda i, tokens, value, pinned, group: (i, tokens, value, pinned, group),
    st.integers(0, 10**6),
    st.integers(0, 300),
    st.one_of(st.floats(0, 100, allow_nan=False), st.integers(0, 50)),
    st.integers(0, 9).map(lambda k: k == 0),  # pinned now and then
    st.one_of(st.none(), st.sampled_from(["g1", "g2", 7])),
)


@given(st.lists(atom_st, max_size=40), st.integers(0, 3000), st.randoms())
@settings(max_examples=300, deadline=None)
def test_rows_of_every_form_match_the_python_path(
    raw: list[tuple[Any, ...]], budget: int, rng: random.Random
) -> None:
    atoms = [
        Atom(f"m{i}" if i % 3 else i, tokens, value, pinned=pinned, group=group)
        for i, (_, tokens, value, pinned, group) in enumerate(raw)
    ]
    try:
        want: Selection | type[Exception] = python_path(atoms, budget)
    except InfeasibleBudgetError:
        want = InfeasibleBudgetError
    forms = [
        atoms,
        [as_dict(a, full=True) for a in atoms],
        [as_dict(a, full=False) for a in atoms],
        [as_tuple(a, 3) for a in atoms],
        [as_tuple(a, 5) for a in atoms],
        [
            rng.choice([a, as_dict(a, rng.random() < 0.5), as_tuple(a, rng.choice([3, 4, 5]))])
            for a in atoms
        ],
    ]
    for rows in forms:
        if want is InfeasibleBudgetError:
            with pytest.raises(InfeasibleBudgetError):
                SELECTOR.select(rows, budget)
        else:
            assert SELECTOR.select(rows, budget) == want


def test_plain_rows_never_take_the_python_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(_: object) -> None:
        raise AssertionError("the Python path ran")

    monkeypatch.setattr(knapsack_module, "_columns", refuse)
    rng = random.Random(3)
    atoms = [Atom(f"m{i}", rng.randint(5, 2000), rng.random()) for i in range(2000)]
    rows: list[Any] = [
        atoms[0],
        {"id": "d", "tokens": 3, "value": 1, "pinned": True},
        ("t", 4, 0.5, False, "grp"),
        ("u", 5, 2.0, False, "grp"),
        *atoms[1:],
    ]
    sel = SELECTOR.select(rows, 100_000)
    assert "d" in sel.ids
    assert ("t" in sel.ids) == ("u" in sel.ids)
    assert len(sel.ids) + len(sel.dropped_ids) == len(rows)


@pytest.mark.parametrize(
    ("rows", "error", "match"),
    [
        ([{"id": "a", "tokens": 1}], InvalidArgumentError, "lacks the key"),
        ([{"id": "a", "tokens": 1, "value": 1.0, "x": 1}], InvalidArgumentError, "unknown key"),
        ([("a", 1, 1.0), ("a", 2, 1.0)], InvalidArgumentError, "duplicate atom id 'a'"),
        ([("a", -1, 1.0)], InvalidArgumentError, "negative token count"),
        ([("a", 1, float("nan"))], InvalidArgumentError, "invalid value"),
        ([("a", 1, -0.5)], InvalidArgumentError, "invalid value"),
        ([("a", 2**63, 1.0)], InvalidArgumentError, "more than 2"),
        ([("a", 1, 10**400)], InvalidArgumentError, "invalid value"),
        ([("a", True, 1.0)], InputTypeError, "tokens are int"),
        ([("a", 1, 1.0, 1)], InputTypeError, "pinned is bool"),
        ([("a", 1, 1.0, False, 1.5)], InputTypeError, "groups are str, int or None"),
        ([(None, 1, 1.0)], InputTypeError, "ids are str or int"),
        ([("a", 1)], InputTypeError, "must be an Atom, a dict or a tuple"),
        ([("a", 1, 1.0, False, None, 0)], InputTypeError, "a tuple of 6 items"),
    ],
)
def test_rows_the_reader_declines_get_python_errors(
    rows: list[Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        SELECTOR.select(rows, 10)


def test_subclasses_and_numpy_like_values_still_work() -> None:
    class Name(str):
        pass

    class Count(int):
        pass

    rows: list[Any] = [(Name("a"), Count(3), 1.0), {"id": "b", "tokens": 2, "value": 2.0}]
    sel = SELECTOR.select(rows, 3)
    assert sel.ids == ("b",)
    assert sel.dropped_ids == ("a",)
    with pytest.raises(InvalidArgumentError, match="budget"):
        SELECTOR.select(rows, -1)
    with pytest.raises(InvalidArgumentError, match="lacks the key"):
        SELECTOR.select([{"id": "a"}], -1)  # the atoms' error first, as before
