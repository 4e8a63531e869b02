"""What every context policy sees and returns, and the rules they share.

The engine turns a session's messages into :class:`Candidate` s (cost in tokens, pinned or not,
tool-call group) after near-duplicates are collapsed, and a policy picks which to keep within the
budget. Rules every policy follows (and the tests check for each):

* pinned candidates (system messages, the latest user turn, ``metadata["pinned"]``) are kept;
  when they alone do not fit, :class:`~relay_context.errors.InfeasibleBudgetError`;
* an assistant turn with ``tool_calls`` and the tool results answering it are one *group*, kept
  or dropped together (a pinned member pins the group);
* conversation order is preserved;
* the sum of the kept messages' tokens is at most ``PolicyContext.budget`` (the request budget
  less the reply priming), so the request never exceeds the budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from relay_context.config.settings import Settings
from relay_context.core.drift import RelevanceIndex
from relay_context.core.message_tokens import TOKENS_PER_MESSAGE, TOKENS_PER_NAME
from relay_context.core.rows import SlottedMaker
from relay_context.core.tokenizer import TokenCounter
from relay_context.engine.models import MessageRole, StoredMessage, slot_setters
from relay_context.engine.window import WindowMessage, make_window_message
from relay_context.errors import InfeasibleBudgetError


@runtime_checkable
class Summarizer(Protocol):
    """Turns dropped messages into one summary text of at most ``max_tokens`` tokens.

    The engine cuts a longer answer to ``max_tokens`` (token boundary), so the budget holds
    whatever the summariser returns. An LLM-backed summariser implements the same method.
    """

    async def summarize(self, messages: Sequence[StoredMessage], max_tokens: int) -> str: ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """A stored message a policy may keep."""

    message: StoredMessage
    #: Billed tokens of the message as sent (framing, role, name, tool fields, content).
    tokens: int
    #: Tokens of the content alone.
    content_tokens: int
    pinned: bool
    #: Seq of the assistant turn whose tool calls this message belongs to (itself included);
    #: ``None`` for a message outside any tool exchange.
    group: int | None = None
    #: ``message.seq``, held rather than a property: every pass over a session reads it.
    seq: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "seq", self.message.seq)

    def window_message(self) -> WindowMessage:
        m = self.message
        return make_window_message(
            m.role, m.content, self.tokens, m.seq, m.name, m.tool_call_id, m.tool_calls
        )


_SET_CANDIDATE = slot_setters(
    Candidate, "message", "tokens", "content_tokens", "pinned", "group", "seq"
)


def make_candidate(
    message: StoredMessage, tokens: int, content_tokens: int, pinned: bool, group: int | None
) -> Candidate:
    """``Candidate(message, tokens, content_tokens, pinned, group)`` for the many candidates of
    a session's plan: no keyword handling and no frozen ``__setattr__`` per field."""
    c = object.__new__(Candidate)
    s_message, s_tokens, s_content, s_pinned, s_group, s_seq = _SET_CANDIDATE
    s_message(c, message)
    s_tokens(c, tokens)
    s_content(c, content_tokens)
    s_pinned(c, pinned)
    s_group(c, group)
    s_seq(c, message.seq)
    return c


_CANDIDATES = SlottedMaker(
    Candidate, ("message", "tokens", "content_tokens", "pinned", "group", "seq")
)


def make_candidates(
    messages: list[StoredMessage],
    tokens: list[int],
    content_tokens: list[int],
    pinned: list[bool],
    groups: list[int | None],
) -> list[Candidate]:
    """:func:`make_candidate` of each row of the columns, in one C++ pass (a session's first
    plan makes a candidate per message)."""
    return _CANDIDATES.make(
        [messages, tokens, content_tokens, pinned, groups, [m.seq for m in messages]]
    )


_T = TypeVar("_T")


class PreparedCandidates:
    """What does not change between builds of one list of candidates, computed once.

    The engine keeps one per session (until its messages change) and passes it in
    :attr:`PolicyContext.prepared`; a policy uses it when ``prepared.candidates`` is the list
    it was given, so repeated windows (another query, another budget) skip the per-message
    work. ``index`` holds the words of every message of the session (the candidates and the
    near-duplicates left out, flagged 0 in ``included``), so relevance costs only the postings
    of the query's words.
    """

    __slots__ = ("_memo", "_window_messages", "candidates", "included", "index", "summaries")

    #: Built-in summaries kept per plan (one per dropped set and budget, the latest ones).
    MAX_SUMMARIES = 16

    def __init__(
        self,
        candidates: Sequence[Candidate],
        index: RelevanceIndex,
        included: bytes,
    ) -> None:
        self.candidates = candidates
        self.index = index
        self.included = included
        self._memo: dict[Any, Any] = {}
        self._window_messages: dict[int, tuple[Candidate, WindowMessage]] = {}
        #: Built-in summaries by (dropped seqs, token budget).
        self.summaries: OrderedDict[tuple[tuple[int, ...], int], str] = OrderedDict()

    def memo(self, key: Any, make: Callable[[], _T]) -> _T:
        """``make()``, computed once per ``key``."""
        try:
            value: _T = self._memo[key]
        except KeyError:
            value = self._memo[key] = make()
        return value

    def remember_summary(self, key: tuple[tuple[int, ...], int], text: str) -> None:
        self.summaries[key] = text
        while len(self.summaries) > self.MAX_SUMMARIES:
            self.summaries.popitem(last=False)

    def relevance(self, query: str) -> list[float]:
        """``relevance_scores(query, [c.message.content for c in candidates])``."""
        return self.index.relevance(query, self.included)

    def adopt_window_messages(self, old: PreparedCandidates) -> None:
        """Takes the window messages ``old`` made for candidates that are also among these
        (the plan of a session that grew by a message keeps all but one of its candidates)."""
        made = old._window_messages
        if not made:
            return
        mine = self._window_messages
        for c in self.candidates:
            entry = made.get(id(c))
            if entry is not None and entry[0] is c:
                mine[id(c)] = entry

    def window_message(self, c: Candidate) -> WindowMessage:
        """``c.window_message()``, made once per candidate object."""
        entry = self._window_messages.get(id(c))
        if entry is None or entry[0] is not c:
            entry = self._window_messages[id(c)] = (c, c.window_message())
        return entry[1]


def computed_once(prepared: PreparedCandidates | None, key: Any, make: Callable[[], _T]) -> _T:
    """``make()``, remembered in the session plan under ``key`` when there is one."""
    return make() if prepared is None else prepared.memo(key, make)


def window_message_maker(
    prepared: PreparedCandidates | None,
) -> Callable[[Candidate], WindowMessage]:
    """``Candidate.window_message``, made once per candidate when there is a session plan."""
    return Candidate.window_message if prepared is None else prepared.window_message


def prepared_for(ctx: PolicyContext, candidates: Sequence[Candidate]) -> PreparedCandidates | None:
    """``ctx.prepared`` if it was made for exactly ``candidates``."""
    prepared = ctx.prepared
    return prepared if prepared is not None and prepared.candidates is candidates else None


@dataclass(frozen=True)
class PolicyContext:
    """Everything a policy needs besides the candidates."""

    counter: TokenCounter
    settings: Settings
    #: Tokens the messages may take (the request budget less the reply priming).
    budget: int
    #: The text relevance is measured against: the caller's query or the latest user turn.
    query: str
    summarizer: Summarizer | None = None
    #: Per-session values computed once for these candidates (see :class:`PreparedCandidates`).
    prepared: PreparedCandidates | None = None


@dataclass
class PolicyResult:
    messages: list[WindowMessage]
    #: Stored messages not in the window (not counting near-duplicates; the engine adds those).
    dropped_seqs: list[int] = field(default_factory=list)
    #: Tokens saved by truncation and summaries (original cost less the replacement's).
    compression_tokens_saved: int = 0


class ContextPolicy(Protocol):
    """A way of choosing the window."""

    name: str

    async def select(self, candidates: Sequence[Candidate], ctx: PolicyContext) -> PolicyResult: ...


_ROLE_TOKENS: dict[tuple[str, str], int] = {}


def _framing(counter: TokenCounter, role: MessageRole) -> int:
    """Tokens every message of ``role`` spends on its framing and its role."""
    key = (counter.name, role.value)
    role_tokens = _ROLE_TOKENS.get(key)
    if role_tokens is None:
        role_tokens = _ROLE_TOKENS[key] = counter.count(role.value)
    return TOKENS_PER_MESSAGE + role_tokens


def message_tokens(counter: TokenCounter, message: StoredMessage, content_tokens: int) -> int:
    """Billed tokens of ``message`` (``count_messages`` rule, reply priming excluded), given the
    tokens of its content: framing, then every other string field of ``to_openai()``."""
    return billed_tokens(counter, (message,), (content_tokens,))[0]


def billed_tokens(
    counter: TokenCounter, messages: Sequence[StoredMessage], content_tokens: Sequence[int]
) -> list[int]:
    """:func:`message_tokens` of each message, the names and tool fields of all of them
    counted in one call (a session's first plan has hundreds of tool messages)."""
    framing: dict[MessageRole, int] = {}
    out: list[int] = []
    strings: list[str] = []
    spans: list[tuple[int, int, int]] = []  # (message, first string, end) of the tool fields
    for m, ct in zip(messages, content_tokens, strict=True):
        extra = framing.get(m.role)
        if extra is None:
            extra = framing[m.role] = _framing(counter, m.role)
        if m.name is None and m.tool_call_id is None and not m.tool_calls:
            out.append(extra + ct)
            continue
        start = len(strings)
        if m.name is not None:
            strings.append(m.name)
            extra += TOKENS_PER_NAME
        if m.tool_call_id is not None:
            strings.append(m.tool_call_id)
        for call in m.tool_calls:
            strings.append(call.name)
            strings.append(call.arguments)
        spans.append((len(out), start, len(strings)))
        out.append(extra + ct)
    if strings:
        counts = counter.count_batch(strings, num_threads=1)
        for i, start, end in spans:
            out[i] += sum(counts[start:end])
    return out


def units(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """The candidates as keep-or-drop units in conversation order: a tool group is one unit
    (placed where its first member is), every other message its own."""
    out: list[list[Candidate]] = []
    by_group: dict[int, list[Candidate]] = {}
    for c in candidates:
        if c.group is None:
            out.append([c])
        elif c.group in by_group:
            by_group[c.group].append(c)
        else:
            unit = [c]
            by_group[c.group] = unit
            out.append(unit)
    return out


def unit_tokens(unit: Sequence[Candidate]) -> int:
    return sum(c.tokens for c in unit)


def unit_pinned(unit: Sequence[Candidate]) -> bool:
    return any(c.pinned for c in unit)


@dataclass(frozen=True, slots=True)
class UnitColumns:
    """Units (see :func:`units`) with what the fill rules read of each, computed once."""

    units: list[list[Candidate]]
    costs: list[int]
    pinned: list[bool]
    sizes: list[int]
    #: Members of each unit that are not system messages.
    non_system: list[int]
    #: Tokens of the pinned units.
    required: int

    @classmethod
    def of(cls, all_units: Sequence[Sequence[Candidate]]) -> UnitColumns:
        units: list[list[Candidate]] = []
        costs: list[int] = []
        pinned: list[bool] = []
        sizes: list[int] = []
        non_system: list[int] = []
        required = 0
        system = MessageRole.SYSTEM
        # One pass; most units are one message, which skips the sums (a session's first
        # window makes a unit per message).
        for u in all_units:
            if len(u) == 1:
                (c,) = u
                cost, held, others = c.tokens, c.pinned, int(c.message.role is not system)
            else:
                cost, held = unit_tokens(u), unit_pinned(u)
                others = sum(1 for c in u if not is_system(c))
            units.append(list(u))
            costs.append(cost)
            pinned.append(held)
            sizes.append(len(u))
            non_system.append(others)
            if held:
                required += cost
        return cls(units, costs, pinned, sizes, non_system, required)


def check_required(required: int, budget: int, policy: str) -> int:
    """``required`` (tokens of the pinned units); :class:`InfeasibleBudgetError` if it exceeds
    ``budget``."""
    if required > budget:
        raise InfeasibleBudgetError(
            f"policy {policy!r}: the messages that must be kept (system prompt, latest user turn, "
            f"pinned messages and their tool groups) take {required} tokens, more than the "
            f"{budget} tokens the budget leaves for messages"
        )
    return required


def fill_columns_from_newest(
    columns: UnitColumns, budget: int, *, max_unpinned: int | None = None
) -> set[int]:
    """Indices of the units to keep: every pinned one, then unpinned ones from the newest back
    while they fit (a unit that does not fit is skipped, older smaller ones may still fit);
    ``max_unpinned`` caps how many non-system messages the tail holds (pinned ones passed on
    the way back count too)."""
    pinned = columns.pinned
    keep = {i for i, p in enumerate(pinned) if p}
    room = budget - columns.required
    taken = 0
    costs, sizes, non_system = columns.costs, columns.sizes, columns.non_system
    for i in range(len(pinned) - 1, -1, -1):
        if pinned[i]:
            # A pinned turn in the tail (the latest user turn) is one of the last N.
            taken += non_system[i]
            continue
        size = sizes[i]
        if max_unpinned is not None and taken + size > max_unpinned:
            break
        cost = costs[i]
        if cost <= room:
            keep.add(i)
            room -= cost
            taken += size
    return keep


def is_system(c: Candidate) -> bool:
    return c.message.role is MessageRole.SYSTEM


__all__ = [
    "Candidate",
    "ContextPolicy",
    "PolicyContext",
    "PolicyResult",
    "PreparedCandidates",
    "Summarizer",
    "UnitColumns",
    "billed_tokens",
    "check_required",
    "computed_once",
    "fill_columns_from_newest",
    "make_candidate",
    "message_tokens",
    "prepared_for",
    "unit_pinned",
    "unit_tokens",
    "units",
    "window_message_maker",
]
