"""Fits a chat request into its model's window before it leaves (``GATEWAY_CONTEXT_POLICY``).

Every request is counted exactly with Relay's tokenizer (the model's encoding; ``o200k_base``
for models outside OpenAI's families, whose own tokenizers are not public, so there it is a close
estimate). OpenAI-format messages are counted by OpenAI's chat rule
(:mod:`relay_context.core.message_tokens`), so ``x-relay-prompt-tokens`` equals
``TokenCounter.count_messages``; tools add the tokens of their JSON, an image
:data:`IMAGE_TOKENS`.

* ``off``: count only.
* ``reject``: 400 ``context_length_exceeded`` when prompt + reserved output > window.
* ``truncate`` (brief 002): messages over ``truncate_message_tokens`` are cut on a token boundary
  and marked ``[...content truncated]``; past ``truncate_threshold_tokens`` only the system
  prompt and the last ``truncate_keep_messages`` messages stay.
* ``fit`` (default): when the prompt does not fit the window minus the reserved output, the
  oldest messages are cut prefix-stably (:func:`_stable_cut`: at fixed boundaries
  ``stable_step`` tokens apart, so the kept prefix stays byte-identical for many turns and the
  provider's prompt cache keeps hitting); when no boundary fits, or without ``stable_step``, the
  knapsack (:class:`~relay_context.core.knapsack.KnapsackSelector`) keeps the most valuable
  messages (value = tokens, halved every :data:`RECENCY_HALF_LIFE` messages of age) with the
  system prompt and the latest user turn pinned.

Under every policy a tool call and its results are kept or dropped together, so the pairing
stays valid for both APIs. The reserved output is the request's ``max_tokens``, else
``min(DEFAULT_RESERVED_OUTPUT, the model's max output)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from relay_context.core.knapsack import Atom, KnapsackSelector
from relay_context.core.message_tokens import (
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TOKENS_PER_NAME,
)
from relay_context.core.tokenizer import TokenCounter, counter_for_model
from relay_context.errors import InfeasibleBudgetError, RelayError
from relay_context.gateway.errors import ContextLengthExceededError
from relay_context.gateway.schema import (
    ChatRequest,
    ImagePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from relay_context.gateway.wire_formats import WireFormat

Policy = Literal["fit", "truncate", "reject", "off"]
IMAGE_TOKENS = 765
DEFAULT_RESERVED_OUTPUT = 4096
RECENCY_HALF_LIFE = 20.0
TRUNCATION_MARK = "\n[...content truncated]"
FALLBACK_ENCODING = "o200k_base"


@dataclass(frozen=True, slots=True)
class FitResult:
    prompt_tokens: int
    #: Client message indices kept, in order (``None``: all of them).
    kept: tuple[int, ...] | None
    dropped: int
    truncated: int
    policy: Policy
    #: The prompt before fitting.
    original_tokens: int


@dataclass(frozen=True, slots=True)
class FitLimits:
    policy: Policy
    window: int | None
    reserved_output: int
    truncate_threshold: int
    truncate_keep: int
    truncate_message_tokens: int
    #: ``fit``: cut the oldest messages on boundaries this many tokens apart (prefix-stable
    #: fitting); ``None``: the knapsack alone.
    stable_step: int | None = None


def _openai_strings(m: dict[str, Any]) -> tuple[list[str], int]:
    """The strings OpenAI's chat rule counts for one message, and its extra (name) tokens."""
    out: list[str] = []
    images = 0
    for key, value in m.items():
        if isinstance(value, str):
            out.append(value)
        elif key == "content" and isinstance(value, list):
            for part in value:
                if isinstance(part, dict):
                    if part.get("type") == "text":
                        out.append(str(part.get("text", "")))
                    elif part.get("type") == "image_url":
                        images += 1
        elif key == "tool_calls" and isinstance(value, list):
            for call in value:
                fn = call.get("function", {}) if isinstance(call, dict) else {}
                if isinstance(fn, dict):
                    out.extend(str(fn.get(k, "")) for k in ("name", "arguments"))
    extra = (TOKENS_PER_NAME if m.get("name") is not None else 0) + images * IMAGE_TOKENS
    return out, extra


def _neutral_strings(m: Message) -> tuple[list[str], int]:
    out: list[str] = [m.role]
    images = 0
    for p in m.parts:
        if isinstance(p, TextPart):
            out.append(p.text)
        elif isinstance(p, ImagePart):
            images += 1
        elif isinstance(p, ToolCallPart):
            out += [p.name, p.arguments]
        elif isinstance(p, ToolResultPart):
            out.append(p.tool_call_id)
            for c in p.content:
                if isinstance(c, TextPart):
                    out.append(c.text)
                else:
                    images += 1
        elif isinstance(p, ThinkingPart):
            out.append(p.text)
    return out, images * IMAGE_TOKENS


def _count_all(counter: TokenCounter, groups: Sequence[list[str]]) -> list[int]:
    flat = [s for g in groups for s in g]
    size = sum(len(s) for s in flat)
    counts = counter.count_batch(flat, num_threads=1 if size < 1_000_000 else None) if flat else []
    out: list[int] = []
    at = 0
    for g in groups:
        out.append(sum(counts[at : at + len(g)]))
        at += len(g)
    return out


class ContextFitter:
    def __init__(self, selector: KnapsackSelector | None = None) -> None:
        self.selector = selector or KnapsackSelector()

    @staticmethod
    def counter(model: str) -> TokenCounter:
        try:
            return counter_for_model(model, FALLBACK_ENCODING)
        except RelayError:
            return counter_for_model("gpt-4o")

    def count(
        self, fmt: WireFormat, body: dict[str, Any], request: ChatRequest, counter: TokenCounter
    ) -> tuple[dict[int, int], int]:
        """Tokens of each client message (by index) and the fixed rest (system, tools,
        priming)."""
        strings: list[list[str]] = []
        extras: list[int] = []
        indices: list[int] = []
        if fmt == "openai":
            for i, m in enumerate(body["messages"]):
                s, extra = _openai_strings(m)
                strings.append(s)
                extras.append(extra)
                indices.append(i)
        else:
            for m in request.messages:
                s, extra = _neutral_strings(m)
                strings.append(s)
                extras.append(extra)
                indices.append(m.source_index)
        fixed_strings: list[str] = []
        fixed = REPLY_PRIMING_TOKENS
        if fmt != "openai" and request.system:
            fixed_strings += ["system", *(p.text for p in request.system)]
            fixed += TOKENS_PER_MESSAGE
        tools = body.get("tools")
        if tools:
            fixed_strings.append(json.dumps(tools, separators=(",", ":")))
        counts = _count_all(counter, [*strings, fixed_strings])
        per_message = {
            index: counts[k] + extras[k] + TOKENS_PER_MESSAGE for k, index in enumerate(indices)
        }
        return per_message, fixed + counts[-1]

    def truncate_messages(
        self, fmt: WireFormat, body: dict[str, Any], counter: TokenCounter, cap: int
    ) -> int:
        """Cuts, in ``body``, every message text longer than ``cap`` tokens; how many."""
        cut = 0

        def shorten(text: str) -> str:
            nonlocal cut
            if len(text) <= cap or counter.count(text) <= cap:
                return text
            cut += 1
            return counter.truncate_to_budget(text, cap) + TRUNCATION_MARK

        for i, m in enumerate(body["messages"]):
            if not isinstance(m, dict):
                continue
            content = m.get("content")
            if isinstance(content, str):
                new = shorten(content)
                if new is not content:
                    body["messages"][i] = {**m, "content": new}
            elif isinstance(content, list):
                parts = []
                for part in content:
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        part = {**part, "text": shorten(part["text"])}
                    elif (
                        fmt == "anthropic"
                        and isinstance(part, dict)
                        and part.get("type") == "tool_result"
                        and isinstance(part.get("content"), str)
                    ):
                        part = {**part, "content": shorten(part["content"])}
                    parts.append(part)
                body["messages"][i] = {**m, "content": parts}
        return cut

    def fit(
        self,
        fmt: WireFormat,
        body: dict[str, Any],
        request: ChatRequest,
        counter: TokenCounter,
        limits: FitLimits,
        *,
        truncated: int = 0,
    ) -> FitResult:
        per_message, fixed = self.count(fmt, body, request, counter)
        total = fixed + sum(per_message.values())
        policy = limits.policy
        unchanged = FitResult(total, None, 0, truncated, policy, total)
        if policy == "off":
            return unchanged
        window = limits.window
        if policy == "reject":
            if window is not None and total + limits.reserved_output > window:
                raise ContextLengthExceededError(
                    f"This model's maximum context length is {window} tokens. However, you "
                    f"requested {total + limits.reserved_output} tokens ({total} in the messages, "
                    f"{limits.reserved_output} in the completion). Please reduce the length of "
                    "the messages or completion.",
                    param="messages",
                )
            return unchanged
        order = list(per_message)
        pinned = self._pinned(fmt, body, request)
        groups = _tool_groups(request.messages)
        if policy == "truncate":
            if total <= limits.truncate_threshold:
                return unchanged
            tail = [i for i in order if i not in pinned][-limits.truncate_keep :]
            keep = set(pinned) | set(tail)
            keep = _close_over_groups(keep, groups, drop_incomplete=True)
        else:
            if window is None:
                return unchanged
            budget = window - limits.reserved_output - fixed
            if sum(per_message.values()) <= budget:
                return unchanged
            stable = (
                _stable_cut(order, per_message, pinned, groups, request, budget, limits.stable_step)
                if limits.stable_step
                else None
            )
            if stable is not None:
                prompt = fixed + sum(per_message[i] for i in stable)
                return FitResult(prompt, stable, len(order) - len(stable), truncated, policy, total)
            n = len(order)
            atoms = [
                Atom(
                    i,
                    per_message[i],
                    per_message[i] * 0.5 ** ((n - 1 - pos) / RECENCY_HALF_LIFE),
                    pinned=i in pinned,
                    group=groups.get(i),
                )
                for pos, i in enumerate(order)
            ]
            try:
                selection = self.selector.select(atoms, max(0, budget))
            except InfeasibleBudgetError as exc:
                raise ContextLengthExceededError(
                    f"This model's maximum context length is {window} tokens; the system prompt "
                    f"and the latest turn alone need {fixed + sum(per_message[i] for i in pinned)} "
                    f"tokens plus {limits.reserved_output} for the completion.",
                    param="messages",
                ) from exc
            keep = {int(i) for i in selection.ids}
        kept = tuple(i for i in order if i in keep)
        prompt = fixed + sum(per_message[i] for i in kept)
        return FitResult(prompt, kept, len(order) - len(kept), truncated, policy, total)

    @staticmethod
    def _pinned(fmt: WireFormat, body: dict[str, Any], request: ChatRequest) -> set[int]:
        """System messages and the latest user turn (its last user text and all after it)."""
        pinned: set[int] = set()
        if fmt == "openai":
            for i, m in enumerate(body["messages"]):
                if isinstance(m, dict) and m.get("role") in ("system", "developer"):
                    pinned.add(i)
        last_user = -1
        for m in request.messages:
            if m.role == "user" and any(isinstance(p, TextPart | ImagePart) for p in m.parts):
                last_user = max(last_user, m.source_index)
        if last_user < 0 and request.messages:
            last_user = request.messages[-1].source_index
        pinned.update(m.source_index for m in request.messages if m.source_index >= last_user)
        return pinned


def _stable_cut(
    order: list[int],
    per_message: dict[int, int],
    pinned: set[int],
    groups: dict[int, str],
    request: ChatRequest,
    budget: int,
    step: int,
) -> tuple[int, ...] | None:
    """Prefix-stable fitting: the messages kept when the oldest are cut at the first boundary
    that makes the rest fit, among boundaries ``step`` tokens apart (counted from the
    conversation's start); ``None`` when no such boundary exists.

    A boundary is the first user message at or after each multiple of ``step`` tokens of
    conversation; as later turns only append, the boundaries stay where they were, so the kept
    prefix is the same request after request until the conversation has grown by about
    ``step`` tokens and the cut moves to the next boundary. A cut never parts a tool call from
    its results, and never enters the pinned latest turn; pinned system messages stay."""
    role = {m.source_index: m.role for m in request.messages}
    # A turn starts at a user's own words, never at a tool result.
    turn_starts = {
        m.source_index
        for m in request.messages
        if m.role == "user"
        and any(isinstance(p, TextPart | ImagePart) for p in m.parts)
        and not any(isinstance(p, ToolResultPart) for p in m.parts)
    }
    members: dict[str, list[int]] = {}
    for index, group in groups.items():
        members.setdefault(group, []).append(index)
    # Indices a cut before would part a tool call from its results.
    inside = {k for g in members.values() for k in range(min(g) + 1, max(g) + 1)}
    movable = [i for i in order if i in role]  # OpenAI's system messages are not in there
    movable_set = set(movable)
    staying = [i for i in order if i not in movable_set]  # system messages
    fixed_pinned = sum(per_message[i] for i in staying)
    last_allowed = min((i for i in movable if i in pinned), default=None)
    suffix = [0] * (len(movable) + 1)
    for pos in range(len(movable) - 1, -1, -1):
        suffix[pos] = suffix[pos + 1] + per_message[movable[pos]]
    cumulative = 0
    next_boundary = step
    for pos, index in enumerate(movable):
        if last_allowed is not None and index > last_allowed:
            break
        valid = (
            pos > 0 and index in turn_starts and index not in inside and cumulative >= next_boundary
        )
        if valid:
            next_boundary = (cumulative // step + 1) * step
            if fixed_pinned + suffix[pos] <= budget:
                kept = {*movable[pos:], *staying}
                return tuple(i for i in order if i in kept)
        cumulative += per_message[index]
    return None


def _tool_groups(messages: list[Message]) -> dict[int, str]:
    """Message index -> group of the tool calls it makes or answers."""
    call_owner: dict[str, int] = {}
    groups: dict[int, str] = {}
    for m in messages:
        for p in m.parts:
            if isinstance(p, ToolCallPart):
                call_owner[p.id] = m.source_index
    for m in messages:
        for p in m.parts:
            if isinstance(p, ToolResultPart) and p.tool_call_id in call_owner:
                owner = call_owner[p.tool_call_id]
                groups[owner] = f"tools-{owner}"
                groups[m.source_index] = f"tools-{owner}"
                break
    return groups


def _close_over_groups(
    keep: set[int], groups: dict[int, str], *, drop_incomplete: bool
) -> set[int]:
    """Keeps tool groups whole: a group partly outside ``keep`` is dropped entirely."""
    members: dict[str, set[int]] = {}
    for index, group in groups.items():
        members.setdefault(group, set()).add(index)
    out = set(keep)
    for group_members in members.values():
        if group_members & out and not group_members <= out:
            if drop_incomplete:
                out -= group_members
            else:
                out |= group_members
    return out


__all__ = ["ContextFitter", "FitLimits", "FitResult", "Policy"]
