"""Choosing what fits in a context window: knapsack selection versus "the newest that fit".

Run: ``python examples/knapsack_selection.py``

Each atom (a message, a tool call, a retrieved chunk) costs tokens and is worth something; the
window is the budget. ``KnapsackSelector`` keeps the most valuable set that fits, always keeps
pinned atoms, keeps a tool call and its result together or not at all, and says whether its
answer is provably optimal.
"""

from __future__ import annotations

from relay_context import Atom, InfeasibleBudgetError, KnapsackSelector, Selection

BUDGET = 1500

# A conversation, oldest first. Values would normally come from recency x role x relevance
# (that is what the context engine computes); here they are written out so the example is easy
# to follow. The user's original requirements (msg-1) are old but still worth a lot.
ATOMS = [
    Atom("system", tokens=150, value=1.0, pinned=True),  # the system prompt: always sent
    Atom("msg-1", tokens=400, value=3.0),  # the requirements, old but important
    Atom("msg-2", tokens=250, value=0.4),  # small talk
    Atom("call-1", tokens=40, value=0.3, group="tool-1"),  # the assistant calls a tool ...
    Atom("result-1", tokens=750, value=2.5, group="tool-1"),  # ... and this is its result
    Atom("msg-3", tokens=250, value=0.6),
    Atom("msg-4", tokens=200, value=0.9),
    Atom("msg-5", tokens=120, value=1.6, pinned=True),  # the latest user turn: always sent
]


def newest_that_fit(atoms: list[Atom], budget: int) -> list[Atom]:
    """The usual baseline: the pinned atoms, then walk back from the newest message and stop at
    the first one that no longer fits. It ignores value, and it can split a tool call from its
    result (an API error at the provider)."""
    kept = [a for a in atoms if a.pinned]
    room = budget - sum(a.tokens for a in kept)
    for atom in reversed([a for a in atoms if not a.pinned]):
        if atom.tokens > room:
            break
        kept.append(atom)
        room -= atom.tokens
    return sorted(kept, key=atoms.index)  # back in conversation order


def describe(name: str, ids: list[str], atoms: list[Atom]) -> float:
    chosen = [a for a in atoms if a.id in ids]
    tokens = sum(a.tokens for a in chosen)
    value = sum(a.value for a in chosen)
    print(f"{name:<16} value {value:4.1f}, {tokens:>4} / {BUDGET} tokens: {', '.join(ids)}")
    return value


def split_groups(ids: list[str], atoms: list[Atom]) -> list[str]:
    """Groups with some members kept and others dropped."""
    groups = {a.group for a in atoms if a.group is not None}
    members = {g: {a.id for a in atoms if a.group == g} for g in groups}
    return sorted(str(g) for g, m in members.items() if m & set(ids) and not m <= set(ids))


def main() -> None:
    selector = KnapsackSelector()
    sel: Selection = selector.select(ATOMS, budget=BUDGET)

    naive = [str(a.id) for a in newest_that_fit(ATOMS, BUDGET)]
    best = [str(i) for i in sel.ids]
    naive_value = describe("newest that fit", naive, ATOMS)
    best_value = describe("knapsack", best, ATOMS)

    # The certificate: `optimal` says the search proved no other selection within the budget
    # is worth more; `upper_bound` bounds every selection that fits (equal to the value when
    # optimal), `gap` is the relative distance to it, `method` how the answer was found.
    print(
        f"certificate: optimal={sel.optimal}, method={sel.method.value}, "
        f"upper_bound={sel.upper_bound:.1f}, gap={sel.gap:.3f}, states={sel.states}"
    )
    print(f"dropped: {', '.join(str(i) for i in sel.dropped_ids)}")
    print(f"split tool groups: newest-that-fit {split_groups(naive, ATOMS)}, knapsack []")

    assert sel.optimal
    assert best_value >= naive_value
    assert sel.total_tokens <= BUDGET
    assert {"system", "msg-5"} <= set(best)  # pinned atoms are always kept
    assert not split_groups(best, ATOMS)  # a tool call and its result travel together

    # If the pinned atoms alone exceed the budget there is no valid window: a typed error
    # (a ValueError) naming both numbers, rather than a silently broken request.
    try:
        selector.select(ATOMS, budget=200)
    except InfeasibleBudgetError as exc:
        print(f"budget 200: {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
