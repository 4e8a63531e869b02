"""A session's plan: the query-independent part of its context windows in one encoding.

Made once per list of messages by :class:`SessionPlanner` and reused while the messages stay
the same: each message's token cost, the candidates (pins, tool-call groups), near-duplicates,
drift, and the word index relevance is measured with. A new message extends the last plan (its
token costs and word index are reused), so a window after an append costs work for that message
only. The :class:`~relay_context.engine.context_engine.ContextEngine` owns one planner.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

from relay_context.config.settings import Settings
from relay_context.core.drift import RelevanceIndex, topic_drift
from relay_context.core.message_tokens import REPLY_PRIMING_TOKENS
from relay_context.core.tokenizer import TokenCounter
from relay_context.engine.dedup import DedupCache
from relay_context.engine.models import MessageRole, StoredMessage
from relay_context.engine.policies.base import (
    Candidate,
    PreparedCandidates,
    billed_tokens,
    make_candidates,
)

#: Counting more content than this (characters) at once runs in a worker thread.
OFFLOAD_CHARS = 200_000
#: Sessions whose plans the planner keeps (LRU).
PLANNED_SESSIONS = 64


#: Token costs of a session's messages in one encoding, by seq: (message, billed, content).
KnownTokens = dict[int, tuple[StoredMessage, int, int]]


@dataclass
class SessionPlan:
    """The query-independent part of a session's windows in one encoding, made once per list
    of messages: candidates, near-duplicates, drift, and what the policies precompute."""

    messages: Sequence[StoredMessage]
    threshold: float
    known: KnownTokens
    candidates: list[Candidate]
    #: Seqs of the candidates, in order.
    seqs: list[int]
    kept: list[Candidate]
    collapsed: list[Candidate]
    total_tokens: int
    default_query: str
    drift_score: float
    index: RelevanceIndex
    prepared: PreparedCandidates


def same_messages(old: Sequence[StoredMessage], new: Sequence[StoredMessage]) -> bool:
    """Whether ``new`` starts with the very objects of ``old`` (messages are immutable)."""
    return len(old) <= len(new) and all(map(operator.is_, old, new))


def pinned_flag(message: StoredMessage) -> bool:
    return message.metadata.get("pinned") is True


class SessionPlanner:
    """Makes and keeps (LRU, :data:`PLANNED_SESSIONS`) the plans of sessions.

    ``counter(encoding)`` gives the shared token counter of an encoding; ``settings()`` the
    settings in force (read at every plan: the dedup threshold and drift windows may change).
    """

    def __init__(
        self, counter: Callable[[str], TokenCounter], settings: Callable[[], Settings]
    ) -> None:
        self._counter = counter
        self._settings = settings
        self.dedup = DedupCache()
        self._plans: OrderedDict[tuple[str, str], SessionPlan] = OrderedDict()

    def forget(self, session_id: str) -> None:
        """Drop everything kept of the session (it was deleted)."""
        self.dedup.forget(session_id)
        for key in [k for k in self._plans if k[0] == session_id]:
            del self._plans[key]

    async def content_tokens(self, messages: Sequence[StoredMessage], encoding: str) -> list[int]:
        """Content tokens of each message in ``encoding``: the count stored at ``add_message``,
        or counted now for messages stored without one."""
        counts: list[int | None] = [m.token_counts.get(encoding) for m in messages]
        missing = [i for i, c in enumerate(counts) if c is None]
        if missing:
            counter = self._counter(encoding)
            texts = [messages[i].content for i in missing]
            if sum(len(t) for t in texts) >= OFFLOAD_CHARS:
                found = await counter.count_tokens_batch(texts)
            else:
                found = counter.count_batch(texts, num_threads=1)
            for i, n in zip(missing, found, strict=True):
                counts[i] = n
        return [c for c in counts if c is not None]

    async def candidates(
        self,
        messages: Sequence[StoredMessage],
        encoding: str,
        known: KnownTokens | None = None,
        previous: Sequence[Candidate] = (),
    ) -> list[Candidate]:
        """The candidates of ``messages``; token costs found in ``known`` (made for the very same
        message objects) are reused, the others are made and added to it. ``previous``: the
        candidates of an earlier plan whose messages start ``messages``; those that stay the
        same (same message object, pin and group: all but the user turn a new one unpinned)
        are reused, so the window messages made for them are too."""
        counter = self._counter(encoding)
        if known is None:
            known = {}
        costs: list[tuple[StoredMessage, int, int] | None]
        if known:
            get = known.get
            found = [get(m.seq) for m in messages]
            costs = [
                e if e is not None and e[0] is m else None
                for e, m in zip(found, messages, strict=True)
            ]
            missing = [i for i, e in enumerate(costs) if e is None]
        else:  # a session's first plan: every cost is made
            costs = [None] * len(messages)
            missing = list(range(len(messages)))
        if missing:
            fresh = (
                list(messages) if len(missing) == len(messages) else [messages[i] for i in missing]
            )
            content_tokens = await self.content_tokens(fresh, encoding)
            billed = billed_tokens(counter, fresh, content_tokens)
            for i, m, b, ct in zip(missing, fresh, billed, content_tokens, strict=True):
                costs[i] = known[m.seq] = (m, b, ct)
        user, system = MessageRole.USER, MessageRole.SYSTEM  # hoisted: enum lookups cost
        latest_user = max((m.seq for m in messages if m.role is user), default=None)
        call_group = {call.id: m.seq for m in messages if m.tool_calls for call in m.tool_calls}
        group_of = call_group.get
        # Column by column (a session's first plan makes a candidate per message, in one call).
        groups = [
            m.seq
            if m.tool_calls
            else (None if m.tool_call_id is None else group_of(m.tool_call_id))
            for m in messages
        ]
        pinned = [
            m.role is system
            or m.seq == latest_user
            or (bool(m.metadata) and m.metadata.get("pinned") is True)  # pinned_flag, inlined
            for m in messages
        ]
        out: list[Candidate | None] = [None] * len(messages)
        for i, c in enumerate(previous[: len(messages)]):
            # Its costs are known[m.seq]'s, made for this very message.
            if c.message is messages[i] and c.pinned == pinned[i] and c.group == groups[i]:
                out[i] = c
        todo = [i for i, c in enumerate(out) if c is None] if previous else range(len(out))
        if todo:
            made_costs = cast("list[tuple[StoredMessage, int, int]]", costs)  # all set above
            made = make_candidates(
                [messages[i] for i in todo],
                [made_costs[i][1] for i in todo],
                [made_costs[i][2] for i in todo],
                [pinned[i] for i in todo],
                [groups[i] for i in todo],
            )
            for i, c in zip(todo, made, strict=True):
                out[i] = c
        return cast("list[Candidate]", out)  # every position is filled

    async def plan(
        self, session_id: str, messages: Sequence[StoredMessage], encoding: str
    ) -> SessionPlan:
        """The session's plan for ``messages``: the last one if made from the same messages,
        else a new one reusing the token costs and the word index of the last one."""
        key = (session_id, encoding)
        threshold = self._settings().dedup_threshold
        old = self._plans.get(key)
        if (
            old is not None
            and old.threshold == threshold
            and len(old.messages) == len(messages)
            and same_messages(old.messages, messages)
        ):
            self._plans.move_to_end(key)
            return old
        known: KnownTokens = {} if old is None else old.known
        # The plan of a prefix of these very messages: what did not change is taken from it.
        grown = old if old is not None and same_messages(old.messages, messages) else None
        previous = grown.candidates if grown is not None else []
        candidates = await self.candidates(messages, encoding, known, previous)
        if len(known) != len(messages):
            # Only the current messages' costs are kept (a deleted prefix is forgotten).
            known = {m.seq: known[m.seq] for m in messages if m.seq in known}
        kept, collapsed = self.dedup.collapse(session_id, candidates, threshold)
        # From here on nothing awaits, so the word index is extended by one build at a time.
        current = self._plans.get(key)
        if (
            current is not None
            and len(current.index) == len(current.messages)
            and same_messages(current.messages, messages)
        ):
            index = current.index
            index.add([m.content for m in messages[len(current.messages) :]])
        else:
            index = RelevanceIndex()
            index.add([m.content for m in messages])
        if collapsed:
            gone = {c.seq for c in collapsed}
            included = bytes([c.seq not in gone for c in candidates])
        else:
            included = b"\x01" * len(candidates)
        plan = SessionPlan(
            messages=list(messages),
            threshold=threshold,
            known=known,
            candidates=candidates,
            seqs=[m.seq for m in messages],
            kept=kept,
            collapsed=collapsed,
            total_tokens=REPLY_PRIMING_TOKENS + sum(c.tokens for c in candidates),
            default_query=next(
                (
                    c.message.content
                    for c in reversed(candidates)
                    if c.message.role is MessageRole.USER
                ),
                "",
            ),
            drift_score=self.drift(messages),
            index=index,
            prepared=PreparedCandidates(kept, index, included),
        )
        if grown is not None:
            plan.prepared.adopt_window_messages(grown.prepared)
        self._plans[key] = plan
        self._plans.move_to_end(key)
        while len(self._plans) > PLANNED_SESSIONS:
            self._plans.popitem(last=False)
        return plan

    def drift(self, messages: Sequence[StoredMessage]) -> float:
        """Topic drift of the last ``drift_recent_messages`` user/assistant turns from the
        ``drift_earlier_messages`` before them (0 when there are too few)."""
        turns = (MessageRole.USER, MessageRole.ASSISTANT)  # hoisted: enum lookups cost
        texts = [m.content for m in messages if m.role in turns and m.content]
        recent_n = self._settings().drift_recent_messages
        if len(texts) <= recent_n:
            return 0.0
        recent = texts[-recent_n:]
        earlier = texts[:-recent_n][-self._settings().drift_earlier_messages :]
        return float(topic_drift(earlier, recent))


__all__ = ["KnownTokens", "SessionPlan", "SessionPlanner", "pinned_flag", "same_messages"]
