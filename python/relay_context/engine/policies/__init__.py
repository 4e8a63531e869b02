"""Context policies: how :class:`~relay_context.engine.context_engine.ContextEngine` chooses the
messages of a window. One module each; ``get_policy(name)`` returns one by name.

* ``knapsack`` (default): the most valuable messages that fit (recency, role, relevance,
  importance), chosen optimally by the C++ knapsack kernel;
* ``recent``: the system prompt and the tail, long messages truncated;
* ``summarize``: the tail, and the rest folded into one extractive (or LLM) summary.
"""

from __future__ import annotations

from relay_context.engine.policies.base import (
    Candidate,
    ContextPolicy,
    PolicyContext,
    PolicyResult,
    Summarizer,
)
from relay_context.engine.policies.knapsack import KnapsackPolicy
from relay_context.engine.policies.recent import RecentPolicy
from relay_context.engine.policies.summarize import ExtractiveSummarizer, SummarizePolicy
from relay_context.errors import InputTypeError, UnknownPolicyError

POLICIES: dict[str, type[KnapsackPolicy] | type[RecentPolicy] | type[SummarizePolicy]] = {
    "knapsack": KnapsackPolicy,
    "recent": RecentPolicy,
    "summarize": SummarizePolicy,
}


def policy_name(value: object) -> str:
    """``value`` if it names a policy, else :class:`UnknownPolicyError`."""
    if not isinstance(value, str):
        raise InputTypeError(f"policy must be a str, got {type(value).__name__}")
    if value not in POLICIES:
        raise UnknownPolicyError(
            f"unknown context policy {value!r}; expected one of: {', '.join(sorted(POLICIES))}"
        )
    return value


def get_policy(name: str) -> ContextPolicy:
    """A new policy object of that name."""
    policy: ContextPolicy = POLICIES[policy_name(name)]()
    return policy


__all__ = [
    "POLICIES",
    "Candidate",
    "ContextPolicy",
    "ExtractiveSummarizer",
    "KnapsackPolicy",
    "PolicyContext",
    "PolicyResult",
    "RecentPolicy",
    "SummarizePolicy",
    "Summarizer",
    "get_policy",
    "policy_name",
]
