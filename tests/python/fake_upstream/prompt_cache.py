"""The fake's prompt cache: the cached-token figures a real provider reports when a prompt's
prefix repeats, so that what Relay does for the providers' caches can be measured.

Tokens are the fake's (one per four bytes, as :func:`~fake_upstream.words.estimate_tokens`).

* Anthropic (``POST /v1/messages``): only prefixes ending at a ``cache_control`` breakpoint are
  written, and only when at least :data:`ANTHROPIC_MIN_TOKENS` long. A breakpoint reads the
  longest written prefix ending at it or at one of the :data:`LOOKBACK_BLOCKS` blocks before it.
  ``cache_read_input_tokens`` is the longest read, ``cache_creation_input_tokens`` what the last
  breakpoint adds beyond it, ``input_tokens`` the rest. Prefix order: tools, system, messages;
  the ``cache_control`` marks themselves are not part of the prefix.
* OpenAI (``POST /v1/chat/completions``): every prompt of :data:`OPENAI_MIN_TOKENS` tokens or more
  is cached in steps of :data:`OPENAI_STEP_TOKENS`; ``prompt_tokens_details.cached_tokens`` is
  the longest stored step that begins the prompt (tools, then messages).

Entries are per model and never expire (the tests and benchmarks run for minutes).
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

ANTHROPIC_MIN_TOKENS = 1024
LOOKBACK_BLOCKS = 20
OPENAI_MIN_TOKENS = 1024
OPENAI_STEP_TOKENS = 128
BYTES_PER_TOKEN = 4
MAX_ENTRIES = 2_000_000


def _canonical(item: Any) -> bytes:
    if isinstance(item, dict):
        item = {k: v for k, v in item.items() if k != "cache_control"}
    return json.dumps(item, sort_keys=True, separators=(",", ":")).encode()


def _blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return list(content) if isinstance(content, list) else []


def _anthropic_items(body: dict[str, Any]) -> list[tuple[bytes, bool]]:
    """The prompt as (block, marked) in prefix order."""
    items: list[tuple[bytes, bool]] = []
    for tool in body.get("tools") or []:
        items.append(
            (b"tool" + _canonical(tool), isinstance(tool, dict) and "cache_control" in tool)
        )
    for block in _blocks(body.get("system")):
        marked = isinstance(block, dict) and "cache_control" in block
        items.append((b"system" + _canonical(block), marked))
    for m in body.get("messages") or []:
        if not isinstance(m, dict):
            continue
        role = str(m.get("role")).encode()
        for block in _blocks(m.get("content")):
            marked = isinstance(block, dict) and "cache_control" in block
            items.append((role + _canonical(block), marked))
    return items


class FakePromptCache:
    def __init__(self) -> None:
        self._stored: set[bytes] = set()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._stored.clear()

    def _store(self, digests: list[bytes]) -> None:
        if len(self._stored) + len(digests) > MAX_ENTRIES:
            self._stored.clear()
        self._stored.update(digests)

    def anthropic(self, body: dict[str, Any], prompt_tokens: int) -> tuple[int, int]:
        """(cache read, cache write) tokens of one Messages request."""
        items = _anthropic_items(body)
        marks = [i for i, (_, marked) in enumerate(items) if marked]
        if not marks:
            return 0, 0
        digest = hashlib.sha256(str(body.get("model")).encode())
        digests: list[bytes] = []
        ends: list[int] = []  # tokens up to and including each block
        tokens = 0
        for data, _ in items:
            digest.update(len(data).to_bytes(8, "big") + data)
            digests.append(digest.copy().digest())
            tokens += len(data) // BYTES_PER_TOKEN
            ends.append(tokens)
        with self._lock:
            read = 0
            for mark in marks:
                for at in range(mark, max(-1, mark - LOOKBACK_BLOCKS - 1), -1):
                    if digests[at] in self._stored:
                        read = max(read, ends[at])
                        break
            written = [digests[m] for m in marks if ends[m] >= ANTHROPIC_MIN_TOKENS]
            self._store(written)
        last = ends[marks[-1]]
        write = last - read if last >= ANTHROPIC_MIN_TOKENS and last > read else 0
        scale = min(1.0, prompt_tokens / tokens) if tokens else 1.0
        return int(read * scale), int(write * scale)

    def openai(self, body: dict[str, Any], prompt_tokens: int) -> int:
        """Cached tokens of one chat completion request."""
        stream = b"".join(
            [str(body.get("model")).encode(), b"\0", _canonical(body.get("tools") or [])]
            + [_canonical(m) for m in body.get("messages") or []]
        )
        usable = min(len(stream) // BYTES_PER_TOKEN, prompt_tokens)
        if usable < OPENAI_MIN_TOKENS:
            return 0
        digest = hashlib.sha256()
        digests: list[tuple[int, bytes]] = []
        at = 0
        for step in range(OPENAI_MIN_TOKENS, usable + 1, OPENAI_STEP_TOKENS):
            end = step * BYTES_PER_TOKEN
            digest.update(stream[at:end])
            at = end
            digests.append((step, digest.copy().digest()))
        with self._lock:
            cached = 0
            for step, d in digests:
                if d not in self._stored:
                    break
                cached = step
            self._store([d for _, d in digests])
        return cached


__all__ = ["FakePromptCache"]
