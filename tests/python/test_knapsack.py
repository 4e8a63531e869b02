"""KnapsackSelector against brute force (hypothesis) and OR-Tools' knapsack solver, plus groups,
pinned atoms, errors, determinism and the (1 - epsilon) guarantee of the approximate path."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ortools.algorithms.python import knapsack_solver

from relay_context import (
    Atom,
    InfeasibleBudgetError,
    InputTypeError,
    InvalidArgumentError,
    KnapsackSelector,
    Selection,
    SelectionMethod,
)

SELECTOR = KnapsackSelector()


# --- references ------------------------------------------------------------------------------


def merged_items(atoms: Sequence[Atom]) -> tuple[list[int], list[float], list[bool]]:
    """Groups merged into single items, in order of their first atom."""
    index: dict[object, int] = {}
    tokens: list[int] = []
    values: list[float] = []
    pinned: list[bool] = []
    for i, a in enumerate(atoms):
        key: object = ("group", a.group) if a.group is not None else ("atom", i)
        if key not in index:
            index[key] = len(tokens)
            tokens.append(0)
            values.append(0.0)
            pinned.append(False)
        k = index[key]
        tokens[k] += a.tokens
        values[k] += a.value
        pinned[k] = pinned[k] or a.pinned
    return tokens, values, pinned


def brute_force(atoms: Sequence[Atom], budget: int) -> float | None:
    """Best value of any selection that keeps groups whole and pinned atoms; None if none fits."""
    tokens, values, pinned = merged_items(atoms)
    best: float | None = None
    for choice in itertools.product((False, True), repeat=len(tokens)):
        if any(p and not c for p, c in zip(pinned, choice, strict=True)):
            continue
        w = sum(t for t, c in zip(tokens, choice, strict=True) if c)
        if w <= budget:
            v = sum(x for x, c in zip(values, choice, strict=True) if c)
            best = v if best is None else max(best, v)
    return best


def ortools_optimum(atoms: Sequence[Atom], budget: int) -> int:
    """OR-Tools' exact optimum (integer values): pinned items are taken off the capacity."""
    tokens, values, pinned = merged_items(atoms)
    fixed_w = sum(t for t, p in zip(tokens, pinned, strict=True) if p)
    fixed_v = sum(v for v, p in zip(values, pinned, strict=True) if p)
    free = [(t, int(v)) for t, v, p in zip(tokens, values, pinned, strict=True) if not p]
    capacity = budget - fixed_w
    # The DP solver is exact in O(n * capacity) time; branch and bound is fast on realistic
    # instances but exponential on correlated ones, so it is used only where the DP is too big.
    kind = (
        knapsack_solver.SolverType.KNAPSACK_DYNAMIC_PROGRAMMING_SOLVER
        if len(free) * capacity <= 50_000_000
        else knapsack_solver.SolverType.KNAPSACK_MULTIDIMENSION_BRANCH_AND_BOUND_SOLVER
    )
    solver = knapsack_solver.KnapsackSolver(kind, "reference")
    solver.init([v for _, v in free], [[t for t, _ in free]], [capacity])
    return int(solver.solve()) + int(fixed_v)


def check_feasible(atoms: Sequence[Atom], budget: int, sel: Selection) -> None:
    by_id = {a.id: a for a in atoms}
    kept = set(sel.ids)
    order = [a.id for a in atoms]
    assert list(sel.ids) == [i for i in order if i in kept]  # original order
    assert list(sel.dropped_ids) == [i for i in order if i not in kept]
    assert sel.total_tokens == sum(by_id[i].tokens for i in sel.ids) <= budget
    assert sel.total_value == pytest.approx(sum(by_id[i].value for i in sel.ids))
    assert sel.upper_bound >= sel.total_value - 1e-9
    for a in atoms:
        if a.pinned:
            assert a.id in kept
    groups: dict[object, set[bool]] = {}
    for a in atoms:
        if a.group is not None:
            groups.setdefault(a.group, set()).add(a.id in kept)
    assert all(len(states) == 1 for states in groups.values())


def chat_like(n: int, seed: int, *, integral: bool = True) -> list[Atom]:
    """Lognormal token counts (20..4000), value from recency decay plus noise, some tool pairs."""
    rng = random.Random(seed)
    atoms = []
    for i in range(n):
        tokens = min(4000, max(20, round(rng.lognormvariate(5.0, 1.2))))
        age = n - 1 - i
        value = math.exp(-age / (n / 5)) * max(0.0, 1.0 + rng.gauss(0.0, 0.2))
        group = f"tool-{i // 2}" if rng.random() < 0.1 else None
        atoms.append(
            Atom(
                id=f"m{i}",
                tokens=tokens,
                value=float(round(value * 1_000_000)) if integral else value,
                pinned=i == 0,
                group=group,
            )
        )
    return atoms


def correlated(n: int, seed: int) -> list[Atom]:
    """Strongly correlated values (value = tokens + 20): the hard case for branch and bound."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t = rng.randint(1, 300)
        out.append(Atom(i, t, float(t + 20)))
    return out


# --- optimality ------------------------------------------------------------------------------

atom_lists = st.lists(
    st.tuples(
        st.integers(0, 60),
        st.one_of(st.integers(0, 50).map(float), st.floats(0.0, 50.0)),
        st.sampled_from([False, False, False, True]),  # pinned now and then
        st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["a", "b"])),
    ),
    max_size=10,
).map(
    lambda rows: [
        Atom(id=i, tokens=t, value=v, pinned=p, group=g) for i, (t, v, p, g) in enumerate(rows)
    ]
)


@settings(max_examples=300, deadline=None)
@given(atoms=atom_lists, budget=st.integers(0, 400))
def test_matches_brute_force(atoms: list[Atom], budget: int) -> None:
    best = brute_force(atoms, budget)
    if best is None:
        with pytest.raises(InfeasibleBudgetError):
            SELECTOR.select(atoms, budget)
        return
    sel = SELECTOR.select(atoms, budget)
    check_feasible(atoms, budget, sel)
    assert sel.optimal
    assert sel.total_value == pytest.approx(best, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("n", [10, 100, 500, 1000, 2000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_matches_ortools_on_chat_like_instances(n: int, seed: int) -> None:
    atoms = chat_like(n, seed)
    budget = max(5000, n * 60)
    sel = SELECTOR.select(atoms, budget)
    check_feasible(atoms, budget, sel)
    assert sel.optimal
    assert sel.method in (SelectionMethod.EXACT, SelectionMethod.TRIVIAL)
    assert sel.total_value == ortools_optimum(atoms, budget)


@pytest.mark.parametrize(
    ("n", "kind"), [(200, "uncorrelated"), (2000, "uncorrelated"), (300, "correlated")]
)
def test_matches_ortools_on_classic_instances(n: int, kind: str) -> None:
    rng = random.Random(n)
    if kind == "correlated":
        atoms = correlated(n, n)
    else:
        atoms = [Atom(i, rng.randint(1, 1000), float(rng.randint(1, 1000))) for i in range(n)]
    budget = sum(a.tokens for a in atoms) // 3
    sel = SELECTOR.select(atoms, budget)
    check_feasible(atoms, budget, sel)
    assert sel.optimal
    assert sel.total_value == ortools_optimum(atoms, budget)


def test_float_values_are_optimal_against_integer_scaling() -> None:
    # Non-integer values: the optimum of the values scaled by 10^6 and rounded is within n/10^6
    # of ours (in scaled units), so both select sets of (almost) the same value.
    atoms = chat_like(800, 11, integral=False)
    budget = 40_000
    sel = SELECTOR.select(atoms, budget)
    assert sel.optimal
    scaled = [Atom(a.id, a.tokens, float(round(a.value * 1e6)), a.pinned, a.group) for a in atoms]
    ref = ortools_optimum(scaled, budget) / 1e6
    assert sel.total_value == pytest.approx(ref, abs=len(atoms) * 1e-6)


def test_greedy_is_never_better() -> None:
    atoms = chat_like(3000, 5)
    exact = SELECTOR.select(atoms, 128_000)
    greedy = SELECTOR.select_greedy(atoms, 128_000)
    check_feasible(atoms, 128_000, greedy)
    assert greedy.total_value <= exact.total_value
    assert greedy.upper_bound >= exact.total_value
    trap = [Atom("big", 60, 61.0), Atom("a", 50, 50.0), Atom("b", 50, 50.0)]
    assert SELECTOR.select_greedy(trap, 100).ids == ("big",)
    assert SELECTOR.select(trap, 100).ids == ("a", "b")


# --- groups, pinned, edge cases -----------------------------------------------------------------


def test_groups_and_pinned_semantics() -> None:
    atoms = [
        Atom("system", 50, 1.0, pinned=True),
        Atom("call", 30, 100.0, group=7),
        Atom("result", 30, 0.0, group=7),
        Atom("note", 40, 60.0),
        Atom("pinned-call", 10, 5.0, group="p"),
        Atom("pinned-result", 5, 0.0, pinned=True, group="p"),
    ]
    sel = SELECTOR.select(atoms, 125)
    assert sel.ids == ("system", "call", "result", "pinned-call", "pinned-result")
    assert sel.dropped_ids == ("note",)
    assert (sel.total_tokens, sel.total_value) == (125, 106.0)
    assert SELECTOR.select(atoms, 110).ids == ("system", "note", "pinned-call", "pinned-result")
    assert SELECTOR.select(atoms, 65).ids == ("system", "pinned-call", "pinned-result")
    with pytest.raises(InfeasibleBudgetError, match=r"need 65 tokens.*budget of 64"):
        SELECTOR.select(atoms, 64)
    # InfeasibleBudgetError is an InvalidArgumentError and a ValueError
    with pytest.raises(ValueError, match="pinned"):
        SELECTOR.select(atoms, 0)


def test_edge_cases() -> None:
    assert SELECTOR.select([], 0).ids == ()
    assert SELECTOR.select([], 10).method is SelectionMethod.TRIVIAL
    free = [Atom("free", 0, 0.0), Atom("worthless", 10, 0.0), Atom("x", 10, 3.0)]
    assert SELECTOR.select(free, 100).ids == ("free", "x")
    assert SELECTOR.select(free, 0).ids == ("free",)
    assert SELECTOR.select([Atom(1, 5, 1.0)], 2**70).ids == (1,)  # budget beyond int64 is fine
    assert SELECTOR.select([Atom(1, 5, 1.0), Atom("1", 5, 2.0)], 5).ids == ("1",)  # distinct ids


def test_dicts_and_atoms_mix() -> None:
    atoms: list[Any] = [
        {"id": "a", "tokens": 10, "value": 1},
        Atom("b", 10, 2.0),
        {"id": "c", "tokens": 10, "value": 3.0, "pinned": False, "group": None},
    ]
    assert SELECTOR.select(atoms, 20).ids == ("b", "c")
    assert SELECTOR.select(tuple(atoms), 20).ids == ("b", "c")
    assert SELECTOR.select(iter(atoms), 20).ids == ("b", "c")


def test_select_columns_matches_select() -> None:
    atoms = chat_like(1500, 9)
    sel = SELECTOR.select(atoms, 50_000)
    cols = SELECTOR.select_columns(
        [a.tokens for a in atoms],
        [a.value for a in atoms],
        50_000,
        pinned=[a.pinned for a in atoms],
        groups=[a.group for a in atoms],
        ids=[a.id for a in atoms],
    )
    assert cols == sel
    by_index = SELECTOR.select_columns([5, 5, 5], [1.0, 3.0, 2.0], 10)
    assert by_index.ids == (1, 2)
    with pytest.raises(InvalidArgumentError, match="differ in length"):
        SELECTOR.select_columns([1, 2], [1.0], 10)


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("atoms", "budget", "match"),
    [
        ([Atom("a", -1, 1.0)], 10, r"'a' \(index 0\) has a negative token count \(-1\)"),
        ([Atom("a", 1, -0.5)], 10, r"invalid value \(-0.5\)"),
        ([Atom("a", 1, math.nan)], 10, r"invalid value \(nan\)"),
        ([Atom("a", 1, math.inf)], 10, r"invalid value \(inf\)"),
        ([Atom("a", 1, 10**400)], 10, "invalid value"),
        ([Atom("a", 1, 1.0)], -1, r"budget must be >= 0, got -1"),
        ([Atom("a", 1, 1.0), Atom("a", 2, 1.0)], 10, "duplicate atom id 'a' at indices 0 and 1"),
        ([Atom("a", 2**64, 1.0)], 10, "more than 2"),
        ([Atom("a", 1, 1e308), Atom("b", 1, 1e308)], 10, "scale them down"),
        ([Atom("a", 2**62, 1.0), Atom("b", 2**62, 1.0)], 10, "sum beyond 2"),
        ([{"id": "a", "tokens": 1}], 10, "lacks the key"),
        ([{"id": "a", "tokens": 1, "value": 1.0, "pined": True}], 10, "unknown key"),
    ],
)
def test_invalid_arguments(atoms: list[Any], budget: int, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        SELECTOR.select(atoms, budget)


@pytest.mark.parametrize(
    ("atoms", "budget", "match"),
    [
        ("abc", 10, "sequence of Atom, dict or tuple"),
        (None, 10, "sequence of Atom, dict or tuple"),
        ({"id": 1}, 10, "sequence of Atom, dict or tuple"),
        ([("a", 1)], 10, "must be an Atom, a dict or a tuple"),
        ([["a", 1, 1.0]], 10, "must be an Atom, a dict or a tuple"),
        ([Atom(1.5, 1, 1.0)], 10, "ids are str or int"),  # type: ignore[arg-type]
        ([Atom(True, 1, 1.0)], 10, "ids are str or int"),
        ([Atom("a", 1.0, 1.0)], 10, "tokens are int"),  # type: ignore[arg-type]
        ([Atom("a", True, 1.0)], 10, "tokens are int"),
        ([Atom("a", 1, "high")], 10, "values are float or int"),  # type: ignore[arg-type]
        ([Atom("a", 1, 1.0, pinned=1)], 10, "pinned is bool"),  # type: ignore[arg-type]
        ([Atom("a", 1, 1.0, group=1.5)], 10, "groups are str, int or None"),  # type: ignore[arg-type]
        ([Atom("a", 1, 1.0)], 10.0, "budget must be an int"),
        ([Atom("a", 1, 1.0)], True, "budget must be an int"),
    ],
)
def test_wrong_types(atoms: Any, budget: Any, match: str) -> None:
    with pytest.raises(InputTypeError, match=match):
        SELECTOR.select(atoms, budget)


def test_bad_options() -> None:
    for eps in (-0.1, 1.0, math.nan):
        with pytest.raises(InvalidArgumentError, match="epsilon"):
            KnapsackSelector(epsilon=eps)
    with pytest.raises(InputTypeError, match="epsilon"):
        KnapsackSelector(epsilon="0.1")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="exact_state_limit"):
        KnapsackSelector(exact_state_limit=-1)
    with pytest.raises(InvalidArgumentError, match="approximate_state_limit"):
        KnapsackSelector(approximate_state_limit=10**12)
    with pytest.raises(InputTypeError, match="exact_state_limit"):
        KnapsackSelector(exact_state_limit=1.5)  # type: ignore[arg-type]


# --- determinism -----------------------------------------------------------------------------


def test_deterministic_and_ties_by_index() -> None:
    equal = [Atom(f"x{i}", 10, 10.0) for i in range(10)]
    assert SELECTOR.select(equal, 50).ids == ("x0", "x1", "x2", "x3", "x4")
    atoms = chat_like(5000, 3, integral=False)
    first = SELECTOR.select(atoms, 100_000)
    assert all(SELECTOR.select(atoms, 100_000) == first for _ in range(3))
    assert KnapsackSelector().select(list(atoms), 100_000) == first


def test_threads_give_the_same_answers() -> None:
    instances = [chat_like(3000, seed) for seed in range(6)]
    expected = [SELECTOR.select(a, 64_000) for a in instances]
    with ThreadPoolExecutor(max_workers=3) as pool:
        got = list(pool.map(lambda a: SELECTOR.select(a, 64_000), instances))
    assert got == expected


async def test_select_async() -> None:
    small = chat_like(50, 1)
    large = chat_like(3000, 2)
    assert await SELECTOR.select_async(small, 2000) == SELECTOR.select(small, 2000)
    both = await asyncio.gather(
        SELECTOR.select_async(large, 30_000), SELECTOR.select_async(iter(large), 30_000)
    )
    assert both[0] == both[1] == SELECTOR.select(large, 30_000)
    with pytest.raises(InfeasibleBudgetError):
        await SELECTOR.select_async(large, 1)


# --- approximate and truncated paths -----------------------------------------------------------


@pytest.mark.parametrize("epsilon", [0.3, 0.1, 0.02])
def test_forced_approximation_keeps_its_guarantee(epsilon: float) -> None:
    selector = KnapsackSelector(epsilon=epsilon, exact_state_limit=0)
    not_optimal = 0
    for seed in range(6):
        atoms = correlated(400, seed)
        budget = sum(a.tokens for a in atoms) // 3 + seed
        opt = ortools_optimum(atoms, budget)
        sel = selector.select(atoms, budget)
        check_feasible(atoms, budget, sel)
        assert sel.method is SelectionMethod.APPROXIMATE
        assert sel.total_value >= (1 - epsilon) * opt
        assert sel.upper_bound >= opt
        assert sel.gap <= epsilon
        if sel.optimal:
            assert sel.total_value == opt
        else:
            not_optimal += 1
    assert not_optimal > 0  # the approximation really cut something


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 60),
    epsilon=st.sampled_from([0.5, 0.2, 0.05]),
)
def test_forced_approximation_small_instances(seed: int, n: int, epsilon: float) -> None:
    rng = random.Random(seed)
    atoms = [Atom(i, rng.randint(1, 40), float(rng.randint(0, 40))) for i in range(n)]
    budget = rng.randint(0, sum(a.tokens for a in atoms))
    opt = ortools_optimum(atoms, budget)
    sel = KnapsackSelector(epsilon=epsilon, exact_state_limit=0).select(atoms, budget)
    check_feasible(atoms, budget, sel)
    assert sel.total_value >= (1 - epsilon) * opt - 1e-9
    assert sel.upper_bound >= opt - 1e-9


def test_truncated_search_certifies_its_bound() -> None:
    atoms = correlated(600, 42)
    budget = sum(a.tokens for a in atoms) // 2 + 1
    opt = ortools_optimum(atoms, budget)
    sel = KnapsackSelector(epsilon=0.0, exact_state_limit=0).select(atoms, budget)
    check_feasible(atoms, budget, sel)
    assert sel.method is SelectionMethod.TRUNCATED
    assert sel.total_value <= opt <= sel.upper_bound
    # With room to search, the same instance is solved exactly.
    assert KnapsackSelector(epsilon=0.0).select(atoms, budget).total_value == opt
