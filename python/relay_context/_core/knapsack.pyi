# Stubs of relay_context._core.knapsack (cpp/knapsack/register_knapsack.cpp).
import enum

class Method(enum.Enum):
    TRIVIAL = ...
    EXACT = ...
    APPROXIMATE = ...
    TRUNCATED = ...

class Selection:
    @property
    def chosen(self) -> list[int]: ...
    @property
    def total_tokens(self) -> int: ...
    @property
    def total_value(self) -> float: ...
    @property
    def optimal(self) -> bool: ...
    @property
    def upper_bound(self) -> float: ...
    @property
    def method(self) -> Method: ...
    @property
    def states(self) -> int: ...

def select(
    tokens: list[int],
    values: list[float],
    pinned: list[bool],
    groups: list[int],
    budget: int,
    epsilon: float,
    exact_state_limit: int,
    approximate_state_limit: int,
) -> Selection: ...
def select_greedy(
    tokens: list[int],
    values: list[float],
    pinned: list[bool],
    groups: list[int],
    budget: int,
) -> Selection: ...

class AtomLayout:
    def __init__(self, atom_type: type) -> None: ...

def select_rows(
    rows: list[object],
    layout: AtomLayout,
    budget: int,
    epsilon: float,
    exact_state_limit: int,
    approximate_state_limit: int,
) -> tuple[Selection, tuple[str | int, ...], tuple[str | int, ...]] | None: ...
