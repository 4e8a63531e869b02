"""``KnapsackSelector``: what fits in a context window, chosen as a 0/1 knapsack in the C++ core.

>>> selector = KnapsackSelector()
>>> sel = selector.select(
...     [
...         Atom("system", tokens=120, value=1.0, pinned=True),
...         Atom("call-1", tokens=40, value=0.5, group="t1"),
...         Atom("result-1", tokens=900, value=2.0, group="t1"),
...         Atom("msg-7", tokens=300, value=1.5),
...     ],
...     budget=1100,
... )
>>> sel.ids, sel.total_tokens, sel.optimal
(('system', 'call-1', 'result-1'), 1060, True)

Atoms are messages or chunks with a token cost and a value. Pinned atoms are always kept; atoms
sharing a group are kept or dropped together (a tool call and its result), and a group with a
pinned member is pinned as a whole. The answer is optimal unless the instance is too hard for the
exact search's state limit; then it is worth at least ``(1 - epsilon)`` times the optimum and
``Selection.upper_bound`` says how far from optimal it can be at most.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from relay_context import _core
from relay_context.checks import check_int
from relay_context.errors import InputTypeError, InvalidArgumentError, RelayError

AtomId = str | int
GroupKey = str | int

DEFAULT_EPSILON = 0.01
DEFAULT_EXACT_STATE_LIMIT = 2_000_000
DEFAULT_APPROXIMATE_STATE_LIMIT = 20_000_000
#: Largest state limit the core accepts (its state ids are 32-bit).
MAX_STATE_LIMIT = 1_000_000_000
#: ``select_async`` runs inputs at least this long in a worker thread (the solve drops the GIL).
ASYNC_OFFLOAD_ATOMS = 2048

_INT64_MAX = 2**63 - 1
_ATOM_KEYS = frozenset({"id", "tokens", "value", "pinned", "group"})
_REQUIRED_KEYS = ("id", "tokens", "value")
_INVERT = bytes([1, 0]) + bytes(254)  # bytes.translate table: 0 <-> 1


@dataclass(frozen=True, slots=True)
class Atom:
    """One unit of context: a message, a chunk of one, a tool call or its result.

    ``tokens`` is its cost, ``value`` what keeping it is worth (finite, >= 0). ``pinned`` atoms
    are always kept. Atoms with the same ``group`` are kept or dropped together.
    """

    id: AtomId
    tokens: int
    value: float
    pinned: bool = False
    group: GroupKey | None = None


#: Where the C++ reader finds Atom's fields (its slots).
_ATOM_LAYOUT = _core.knapsack.AtomLayout(Atom)


#: What ``select`` takes per atom: an Atom, a dict of its fields, or ``(id, tokens, value[,
#: pinned[, group]])``.
AtomRow = Atom | Mapping[str, Any] | tuple[Any, ...]


class SelectionMethod(str, enum.Enum):
    """How a :class:`Selection` was obtained."""

    TRIVIAL = "trivial"
    """Everything worth keeping fits (or nothing does): optimal without a search."""
    EXACT = "exact"
    """The exact search finished: optimal."""
    APPROXIMATE = "approximate"
    """The exact search hit its state limit; the value is >= (1 - epsilon) x the optimum."""
    TRUNCATED = "truncated"
    """Every state limit was hit: the best selection found; only ``upper_bound`` is certified."""


_METHODS = {
    _core.knapsack.Method.TRIVIAL: SelectionMethod.TRIVIAL,
    _core.knapsack.Method.EXACT: SelectionMethod.EXACT,
    _core.knapsack.Method.APPROXIMATE: SelectionMethod.APPROXIMATE,
    _core.knapsack.Method.TRUNCATED: SelectionMethod.TRUNCATED,
}


@dataclass(frozen=True)
class Selection:
    """The atoms to keep.

    ``ids`` and ``dropped_ids`` are in the atoms' original order. ``upper_bound`` bounds the
    value of every selection that fits the budget; it equals ``total_value`` when ``optimal``.
    """

    ids: tuple[AtomId, ...]
    dropped_ids: tuple[AtomId, ...]
    total_tokens: int
    total_value: float
    budget: int
    optimal: bool
    upper_bound: float
    method: SelectionMethod
    states: int
    """Search states visited (a measure of how hard the instance was)."""

    @property
    def gap(self) -> float:
        """Relative distance to the upper bound: 0 when optimal, at most epsilon if approximate."""
        if self.upper_bound <= 0.0:
            return 0.0
        return max(0.0, (self.upper_bound - self.total_value) / self.upper_bound)


class _Columns:
    """The atoms as validated columns, ready for the core."""

    __slots__ = ("groups", "ids", "pinned", "tokens", "values")

    def __init__(
        self,
        ids: list[AtomId],
        tokens: list[int],
        values: list[float],
        pinned: list[bool],
        groups: list[int],
    ) -> None:
        self.ids = ids
        self.tokens = tokens
        self.values = values
        self.pinned = pinned
        self.groups = groups


def _describe(ids: Sequence[object], index: int) -> str:
    return f"atom {ids[index]!r} (index {index})" if index < len(ids) else f"atom at index {index}"


def _atom_rows(atoms: object) -> list[Any]:
    if isinstance(atoms, (str, bytes, Mapping)) or not isinstance(atoms, Iterable):
        raise InputTypeError(
            f"atoms must be a sequence of Atom, dict or tuple, not {type(atoms).__name__}"
        )
    return list(atoms)


def _row_kind(row: object) -> str:
    if isinstance(row, tuple):
        return f"a tuple of {len(row)} items"
    return type(row).__name__


def _split(rows: list[Any]) -> tuple[list[Any], list[Any], list[Any], list[Any], list[Any]]:
    """Reads the five fields of every atom (Atom instances, dicts or tuples)."""
    if set(map(type, rows)) == {Atom}:  # the common case, without a per-atom branch
        return (
            [a.id for a in rows],
            [a.tokens for a in rows],
            [a.value for a in rows],
            [a.pinned for a in rows],
            [a.group for a in rows],
        )
    ids: list[Any] = []
    tokens: list[Any] = []
    values: list[Any] = []
    pinned: list[Any] = []
    groups: list[Any] = []
    for index, atom in enumerate(rows):
        if isinstance(atom, Atom):
            ids.append(atom.id)
            tokens.append(atom.tokens)
            values.append(atom.value)
            pinned.append(atom.pinned)
            groups.append(atom.group)
        elif isinstance(atom, Mapping):
            missing = [k for k in _REQUIRED_KEYS if k not in atom]
            if missing:
                raise InvalidArgumentError(
                    f"atom at index {index} lacks the key(s) {', '.join(missing)}"
                )
            unknown = sorted(str(k) for k in atom if k not in _ATOM_KEYS)
            if unknown:
                raise InvalidArgumentError(
                    f"atom at index {index} has unknown key(s) {', '.join(unknown)}; "
                    f"atoms take {', '.join(sorted(_ATOM_KEYS))}"
                )
            ids.append(atom["id"])
            tokens.append(atom["tokens"])
            values.append(atom["value"])
            pinned.append(atom.get("pinned", False))
            groups.append(atom.get("group"))
        elif isinstance(atom, tuple) and 3 <= len(atom) <= 5:
            ids.append(atom[0])
            tokens.append(atom[1])
            values.append(atom[2])
            pinned.append(atom[3] if len(atom) > 3 else False)
            groups.append(atom[4] if len(atom) > 4 else None)
        else:
            raise InputTypeError(
                f"atom at index {index} must be an Atom, a dict or a tuple "
                f"(id, tokens, value[, pinned[, group]]), not {_row_kind(atom)}"
            )
    return ids, tokens, values, pinned, groups


def _check_ids(ids: list[Any]) -> None:
    if not set(map(type, ids)) <= {str, int}:
        for index, atom_id in enumerate(ids):
            if not isinstance(atom_id, (str, int)) or isinstance(atom_id, bool):
                raise InputTypeError(
                    f"atom at index {index} has an id of type {type(atom_id).__name__}; "
                    "ids are str or int"
                )
    if len(set(ids)) != len(ids):
        seen: dict[AtomId, int] = {}
        for index, atom_id in enumerate(ids):
            if atom_id in seen:
                raise InvalidArgumentError(
                    f"duplicate atom id {atom_id!r} at indices {seen[atom_id]} and {index}"
                )
            seen[atom_id] = index


def _check_tokens(ids: list[Any], tokens: list[Any]) -> list[int]:
    if not set(map(type, tokens)) <= {int}:
        converted: list[int] = []
        for index, t in enumerate(tokens):
            if isinstance(t, bool) or not isinstance(t, Integral):
                raise InputTypeError(
                    f"{_describe(ids, index)} has tokens of type {type(t).__name__}; tokens are int"
                )
            converted.append(int(t))
        tokens = converted
    if tokens and min(tokens) < 0:
        index = next(i for i, t in enumerate(tokens) if t < 0)
        raise InvalidArgumentError(
            f"{_describe(ids, index)} has a negative token count ({tokens[index]})"
        )
    if tokens and max(tokens) > _INT64_MAX:
        index = next(i for i, t in enumerate(tokens) if t > _INT64_MAX)
        raise InvalidArgumentError(
            f"{_describe(ids, index)} has {tokens[index]} tokens, more than 2^63 - 1"
        )
    return tokens


def _check_values(ids: list[Any], values: list[Any]) -> list[float]:
    if not set(map(type, values)) <= {float, int}:
        converted: list[float] = []
        for index, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, Real):
                raise InputTypeError(
                    f"{_describe(ids, index)} has a value of type {type(v).__name__}; "
                    "values are float or int"
                )
            converted.append(float(v))
        values = converted
    try:
        all_finite = all(map(math.isfinite, values))
    except OverflowError:  # an int too large for a float
        all_finite = False
    if not all_finite or (values and min(values) < 0):
        for index, v in enumerate(values):
            try:
                bad = not math.isfinite(v) or v < 0
            except OverflowError:
                bad = True
            if bad:
                raise InvalidArgumentError(
                    f"{_describe(ids, index)} has an invalid value ({v!r}): "
                    "values must be finite and >= 0"
                )
    return values


def _check_pinned(ids: list[Any], pinned: list[Any]) -> None:
    if not set(map(type, pinned)) <= {bool}:
        for index, p in enumerate(pinned):
            if not isinstance(p, bool):
                raise InputTypeError(
                    f"{_describe(ids, index)} has pinned of type {type(p).__name__}; pinned is bool"
                )


def _group_indices(ids: list[Any], groups: list[Any]) -> list[int]:
    if not set(map(type, groups)) <= {str, int, type(None)}:
        for index, g in enumerate(groups):
            if g is not None and (not isinstance(g, (str, int)) or isinstance(g, bool)):
                raise InputTypeError(
                    f"{_describe(ids, index)} has a group of type {type(g).__name__}; "
                    "groups are str, int or None"
                )
    numbers: dict[GroupKey, int] = {}
    return [-1 if g is None else numbers.setdefault(g, len(numbers)) for g in groups]


def _columns(atoms: object) -> _Columns:
    ids, tokens, values, pinned, groups = _split(_atom_rows(atoms))
    _check_ids(ids)
    checked_tokens = _check_tokens(ids, tokens)
    checked_values = _check_values(ids, values)
    _check_pinned(ids, pinned)
    return _Columns(ids, checked_tokens, checked_values, pinned, _group_indices(ids, groups))


def _check_budget(budget: object) -> int:
    # A budget beyond any possible total changes nothing; the C++ side takes an int64.
    return min(check_int(budget, "budget", minimum=0), _INT64_MAX)


class KnapsackSelector:
    """Chooses which atoms fit a token budget so that their total value is as high as possible.

    The selection is deterministic (the same input gives the same output; ties go to the atom
    that comes first) and thread-safe. The C++ search runs without the GIL, so threads (and
    :meth:`select_async`) solve in parallel.
    """

    __slots__ = ("approximate_state_limit", "epsilon", "exact_state_limit")

    def __init__(
        self,
        *,
        epsilon: float = DEFAULT_EPSILON,
        exact_state_limit: int = DEFAULT_EXACT_STATE_LIMIT,
        approximate_state_limit: int = DEFAULT_APPROXIMATE_STATE_LIMIT,
    ) -> None:
        """Sets the limits of the search.

        ``epsilon`` (in ``[0, 1)``): when the exact search visits more than ``exact_state_limit``
        states, the selector switches to an approximation whose answer is worth at least
        ``(1 - epsilon)`` times the optimum. ``epsilon=0`` disables the approximation: the best
        selection found within the exact limit is returned, marked
        :attr:`SelectionMethod.TRUNCATED`. ``approximate_state_limit`` caps the approximation the
        same way, so that no input can make a call run unbounded. Realistic chat histories of
        10,000 atoms need a few thousand states; the defaults take well under a second in the
        worst case.
        """
        if isinstance(epsilon, bool) or not isinstance(epsilon, Real):
            raise InputTypeError(f"epsilon must be a float, not {type(epsilon).__name__}")
        eps = float(epsilon)
        if not (math.isfinite(eps) and 0.0 <= eps < 1.0):
            raise InvalidArgumentError(f"epsilon must be in [0, 1), got {epsilon!r}")
        self.epsilon: float = eps
        self.exact_state_limit: int = check_int(
            exact_state_limit, "exact_state_limit", minimum=0, maximum=MAX_STATE_LIMIT
        )
        self.approximate_state_limit: int = check_int(
            approximate_state_limit, "approximate_state_limit", minimum=0, maximum=MAX_STATE_LIMIT
        )

    def select(self, atoms: Iterable[AtomRow], budget: int) -> Selection:
        """The atoms to keep within ``budget`` tokens.

        ``atoms`` is a sequence of :class:`Atom`, of dicts with the keys ``id``, ``tokens``,
        ``value`` and optionally ``pinned`` and ``group``, or of tuples ``(id, tokens, value[,
        pinned[, group]])``, in any mix. Rows of exact types (``str``/``int`` ids and groups,
        ``int`` tokens, ``float``/``int`` values, ``bool`` pinned) are read in C++ without a
        Python call per atom. Raises
        :class:`~relay_context.errors.InfeasibleBudgetError` when the pinned atoms (with their
        groups) alone exceed the budget, :class:`~relay_context.errors.InvalidArgumentError` for
        negative tokens or budget, negative/NaN/infinite values, duplicate ids, and
        :class:`~relay_context.errors.InputTypeError` for wrong types.
        """
        rows = _atom_rows(atoms)
        try:
            checked_budget = _check_budget(budget)
        except RelayError:
            _columns(rows)  # the atoms' errors come first
            raise
        # Plain data (Atom, dict, tuple rows of exact types) is read and checked in C++; the
        # Python path below answers everything else, with its precise errors.
        fast = _core.knapsack.select_rows(
            rows,
            _ATOM_LAYOUT,
            checked_budget,
            self.epsilon,
            self.exact_state_limit,
            self.approximate_state_limit,
        )
        if fast is not None:
            raw, kept, dropped = fast
            return Selection(
                ids=kept,
                dropped_ids=dropped,
                total_tokens=raw.total_tokens,
                total_value=raw.total_value,
                budget=checked_budget,
                optimal=raw.optimal,
                upper_bound=raw.upper_bound,
                method=_METHODS[raw.method],
                states=raw.states,
            )
        return self._solve(_columns(rows), checked_budget)

    async def select_async(self, atoms: Iterable[AtomRow], budget: int) -> Selection:
        """:meth:`select` for event loops: large inputs are solved in a worker thread."""
        rows = _atom_rows(atoms)
        if len(rows) >= ASYNC_OFFLOAD_ATOMS:
            return await asyncio.to_thread(self.select, rows, budget)
        return self.select(rows, budget)

    def select_columns(
        self,
        tokens: Sequence[int],
        values: Sequence[float],
        budget: int,
        *,
        pinned: Sequence[bool] | None = None,
        groups: Sequence[GroupKey | None] | None = None,
        ids: Sequence[AtomId] | None = None,
    ) -> Selection:
        """:meth:`select` for atoms held as columns (the fastest way in).

        ``ids`` default to the positions ``0..n-1``; ``pinned`` to all False, ``groups`` to none.
        """
        n = len(tokens)
        id_list: list[Any] = list(range(n)) if ids is None else list(ids)
        pinned_list: list[Any] = [False] * n if pinned is None else list(pinned)
        group_list: list[Any] = [None] * n if groups is None else list(groups)
        lengths = {len(id_list), len(values), len(pinned_list), len(group_list)}
        if lengths != {n}:
            raise InvalidArgumentError(
                f"columns differ in length: tokens {n}, values {len(values)}, "
                f"pinned {len(pinned_list)}, groups {len(group_list)}, ids {len(id_list)}"
            )
        if ids is not None:
            _check_ids(id_list)
        _check_pinned(id_list, pinned_list)
        columns = _Columns(
            id_list,
            _check_tokens(id_list, list(tokens)),
            _check_values(id_list, list(values)),
            pinned_list,
            _group_indices(id_list, group_list),
        )
        return self._solve(columns, _check_budget(budget))

    def select_greedy(self, atoms: Iterable[AtomRow], budget: int) -> Selection:
        """The greedy baseline: atoms by value per token, each kept while it fits.

        Same rules (pinned, groups) and errors as :meth:`select`; never better than it.
        ``upper_bound`` is the LP bound.
        """
        c = _columns(atoms)
        raw = _core.knapsack.select_greedy(
            c.tokens, c.values, c.pinned, c.groups, _check_budget(budget)
        )
        return self._result(c, raw, _check_budget(budget))

    def _solve(self, c: _Columns, budget: int) -> Selection:
        raw = _core.knapsack.select(
            c.tokens,
            c.values,
            c.pinned,
            c.groups,
            budget,
            self.epsilon,
            self.exact_state_limit,
            self.approximate_state_limit,
        )
        return self._result(c, raw, budget)

    @staticmethod
    def _result(c: _Columns, raw: _core.knapsack.Selection, budget: int) -> Selection:
        chosen = raw.chosen
        ids = c.ids
        kept = bytearray(len(ids))
        for index in chosen:
            kept[index] = 1
        dropped = itertools.compress(ids, kept.translate(_INVERT))
        return Selection(
            ids=tuple(map(ids.__getitem__, chosen)),
            dropped_ids=tuple(dropped),
            total_tokens=raw.total_tokens,
            total_value=raw.total_value,
            budget=budget,
            optimal=raw.optimal,
            upper_bound=raw.upper_bound,
            method=_METHODS[raw.method],
            states=raw.states,
        )

    def __repr__(self) -> str:
        return (
            f"KnapsackSelector(epsilon={self.epsilon}, exact_state_limit={self.exact_state_limit}, "
            f"approximate_state_limit={self.approximate_state_limit})"
        )
