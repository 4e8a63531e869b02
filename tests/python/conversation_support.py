"""Random but realistic conversations for the context-engine tests and benchmark.

A conversation is a list of turn descriptions (``dict`` with ``role``, ``content`` and the
optional ``tool_calls``/``tool_call_id``/``metadata``/``name``) that can be fed to
``ContextEngine.add_message(**turn)`` or turned into ``StoredMessage`` s directly.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from typing import Any

from chat_corpus import _content, _free_text
from relay_context.engine.models import StoredMessage

SESSION = "conv-test"


def conversation(
    n: int,
    seed: int = 0,
    *,
    system: bool = True,
    tool_rate: float = 0.1,
    long_rate: float = 0.0,
    long_words: int = 3000,
    pin_rate: float = 0.0,
) -> list[dict[str, Any]]:
    """``n`` turns (tool exchanges count one per message): system prompt, then user and
    assistant alternating, sometimes an assistant tool call followed by its results."""
    rng = random.Random(seed)
    turns: list[dict[str, Any]] = []
    if system:
        turns.append({"role": "system", "content": _content(rng, "system") or "Be helpful."})
    call = 0
    while len(turns) < n:
        user = {"role": "user", "content": _content(rng, "user") or "Hello?"}
        if rng.random() < long_rate:
            user["content"] += " " + " ".join(_free_text(rng) for _ in range(long_words // 40))
        if rng.random() < pin_rate:
            user["metadata"] = {"pinned": True}
        turns.append(user)
        if len(turns) >= n:
            break
        if rng.random() < tool_rate and len(turns) + 3 <= n:
            calls = []
            for _ in range(rng.randint(1, 2)):
                call += 1
                calls.append(
                    {
                        "id": f"call_{call}",
                        "type": "function",
                        "function": {
                            "name": rng.choice(("get_weather", "search_orders", "run_sql")),
                            "arguments": json.dumps({"q": _free_text(rng)[:60]}),
                        },
                    }
                )
            turns.append({"role": "assistant", "content": "", "tool_calls": calls})
            for c in calls:
                turns.append(
                    {
                        "role": "tool",
                        "content": _content(rng, "tool") or "{}",
                        "tool_call_id": c["id"],
                    }
                )
            if len(turns) >= n:
                break
        text = _content(rng, "assistant") or _free_text(rng)
        turns.append({"role": "assistant", "content": text})
    return turns[:n] if not _cuts_group(turns[:n]) else _trim_group(turns[:n])


def _cuts_group(turns: list[dict[str, Any]]) -> bool:
    return bool(turns) and bool(turns[-1].get("tool_calls"))


def _trim_group(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return turns[:-1]


def stored(turns: list[dict[str, Any]], session_id: str = SESSION) -> list[StoredMessage]:
    """The turns as stored messages with seqs 1..n (no token counts: counted on demand)."""
    now = datetime.now(timezone.utc)
    return [
        StoredMessage(
            session_id=session_id,
            seq=i + 1,
            role=t["role"],
            content=t["content"],
            created_at=now,
            name=t.get("name"),
            tool_call_id=t.get("tool_call_id"),
            tool_calls=t.get("tool_calls") or (),
            metadata=t.get("metadata", {}),
        )
        for i, t in enumerate(turns)
    ]
