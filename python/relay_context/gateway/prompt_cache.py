"""Makes the provider's own prompt cache hit: Anthropic ``cache_control`` breakpoints on the
stable prefix, OpenAI ``prompt_cache_key`` per caller and conversation.

Anthropic caches a prefix only where a request marks it (at most :data:`MAX_BREAKPOINTS` marks)
and only when it is at least the model's minimum length (:data:`ANTHROPIC_MIN_CACHEABLE`).
When the client marked nothing, Relay marks, in Anthropic's prefix order (tools, system,
messages): the last tool, the last system block, the end of the conversation before its last
turn (written by this request, read by the next), and the end of the conversation before the
turn before (what the previous request of the same conversation wrote, so it is read even when
more than Anthropic's 20-block lookback lies between). A mark is placed only where the prefix
up to it qualifies. OpenAI caches prompts of 1024 tokens and more on its own; the key routes the
requests of one conversation to the same cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from relay_context.core.tokenizer import TokenCounter

MAX_BREAKPOINTS = 4
#: Anthropic's minimum cacheable prompt length by model name prefix (longest prefix wins).
ANTHROPIC_MIN_CACHEABLE: Mapping[str, int] = {
    "claude": 1024,
    "claude-opus-4-5": 4096,
    "claude-haiku-4-5": 4096,
    "claude-3-5-haiku": 2048,
    "claude-3-haiku": 2048,
}
#: OpenAI caches no shorter prompt.
OPENAI_MIN_CACHEABLE = 1024
EPHEMERAL = {"type": "ephemeral"}
_UNMARKABLE = frozenset({"thinking", "redacted_thinking"})


def min_cacheable_tokens(model: str, overrides: Mapping[str, int] | None = None) -> int:
    """Anthropic's minimum for ``model`` (``overrides`` over the shipped table)."""
    name = model.rsplit("/", 1)[-1]
    table = {**ANTHROPIC_MIN_CACHEABLE, **(overrides or {})}
    best = ""
    for prefix in table:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return table[best] if best else ANTHROPIC_MIN_CACHEABLE["claude"]


def _blocks_of(content: Any) -> list[Any]:
    if isinstance(content, list):
        return content
    if isinstance(content, str) and content:
        return [{"type": "text", "text": content}]
    return []


def has_breakpoints(body: Mapping[str, Any]) -> bool:
    """Whether the client marked any part of an Anthropic request itself."""
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and "cache_control" in tool:
            return True
    system = body.get("system")
    groups: list[Any] = [system] if isinstance(system, list) else []
    groups += [m.get("content") for m in body.get("messages") or [] if isinstance(m, dict)]
    for group in groups:
        if isinstance(group, list):
            for block in group:
                if isinstance(block, dict) and "cache_control" in block:
                    return True
    return False


def _markable(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") in _UNMARKABLE:
        return False
    return not (block.get("type") == "text" and not block.get("text"))


class _PrefixCounter:
    """Tokens of the prefix so far; stops counting once the minimum is reached."""

    def __init__(self, counter: TokenCounter, minimum: int) -> None:
        self.counter = counter
        self.minimum = minimum
        self.tokens = 0

    @property
    def qualifies(self) -> bool:
        return self.tokens >= self.minimum

    def add(self, item: Any) -> None:
        if self.qualifies:
            return
        text = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
        self.tokens += self.counter.count(text)


def add_anthropic_breakpoints(body: dict[str, Any], counter: TokenCounter, minimum: int) -> int:
    """Marks ``body`` (an Anthropic Messages request, changed in place; the lists and blocks it
    changes are copied first, so the client's parsed body is never touched); how many marks."""
    prefix = _PrefixCounter(counter, minimum)
    marks: list[tuple[str, int, int]] = []  # (where, message index or -1, block index)
    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        for tool in tools:
            prefix.add(tool)
        if prefix.qualifies and isinstance(tools[-1], dict):
            marks.append(("tools", -1, len(tools) - 1))
    system_blocks = _blocks_of(body.get("system"))
    for block in system_blocks:
        prefix.add(block.get("text", "") if isinstance(block, dict) else block)
    if system_blocks and prefix.qualifies and _markable(system_blocks[-1]):
        marks.append(("system", -1, len(system_blocks) - 1))
    messages = body.get("messages")
    conversation: list[tuple[str, int, int]] = []
    if isinstance(messages, list):
        ends: dict[int, tuple[bool, int]] = {}  # message index -> (qualifies, markable block)
        for i, m in enumerate(messages[:-1]):
            blocks = _blocks_of(m.get("content")) if isinstance(m, dict) else []
            for block in blocks:
                prefix.add(block)
            last = max((j for j, b in enumerate(blocks) if _markable(b)), default=-1)
            ends[i] = (prefix.qualifies, last)
        # The end of the conversation before the last turn, then before the turn before.
        for i in (len(messages) - 2, len(messages) - 4):
            qualifies, block = ends.get(i, (False, -1))
            if qualifies and block >= 0:
                conversation.append(("messages", i, block))
    room = MAX_BREAKPOINTS - len(conversation)
    # When marks are short, the conversation's come first: they save the most.
    kept_marks = marks[-room:] if room > 0 else []
    chosen = sorted([*kept_marks, *conversation], key=_order)
    for where, i, j in chosen:
        _mark(body, where, i, j)
    return len(chosen)


def _order(mark: tuple[str, int, int]) -> tuple[int, int]:
    return ({"tools": 0, "system": 1, "messages": 2}[mark[0]], mark[1])


def _mark(body: dict[str, Any], where: str, i: int, j: int) -> None:
    if where == "tools":
        tools = list(body["tools"])
        tools[j] = {**tools[j], "cache_control": dict(EPHEMERAL)}
        body["tools"] = tools
        return
    if where == "system":
        blocks = [dict(b) for b in _blocks_of(body["system"])]
        blocks[j]["cache_control"] = dict(EPHEMERAL)
        body["system"] = blocks
        return
    messages = list(body["messages"])
    blocks = [dict(b) if isinstance(b, dict) else b for b in _blocks_of(messages[i]["content"])]
    blocks[j]["cache_control"] = dict(EPHEMERAL)
    messages[i] = {**messages[i], "content": blocks}
    body["messages"] = messages


def openai_prompt_cache_key(principal: str, model: str, messages: Any) -> str:
    """A key for one caller's conversation: its system prompt and first user message (which
    stay while the conversation grows) and the model, hashed; never the client's words."""
    head: list[Any] = []
    if isinstance(messages, list):
        for m in messages:
            head.append(m)
            if isinstance(m, dict) and m.get("role") == "user":
                break
    digest = hashlib.sha256()
    for part in (principal, model, json.dumps(head, sort_keys=True, separators=(",", ":"))):
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return "relay-" + digest.hexdigest()[:32]


__all__ = [
    "ANTHROPIC_MIN_CACHEABLE",
    "MAX_BREAKPOINTS",
    "OPENAI_MIN_CACHEABLE",
    "add_anthropic_breakpoints",
    "has_breakpoints",
    "min_cacheable_tokens",
    "openai_prompt_cache_key",
]
