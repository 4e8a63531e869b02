"""One cached answer, :class:`CachedAnswer`, and its bytes in a store.

A whole answer is its JSON body; a streamed one is its SSE events, each as the client received
it (so a replay sends the same events with every field). Either is in the client's API family
(the key names the family), with the usage and the cost the original call was charged, which a
hit counts as saved.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from relay_context.gateway.schema import Usage

#: Bump when the stored form changes (an entry of another version is a miss).
ENTRY_VERSION = 1


@dataclass(slots=True)
class CachedAnswer:
    family: Literal["openai", "anthropic", "gemini"]
    kind: Literal["whole", "stream"]
    #: The client-facing model and the deployment that answered.
    model: str
    upstream_model: str
    provider: str
    deployment: str
    usage: Usage
    cost_usd: float
    created_at: float = field(default_factory=time.time)
    expires_at: float = 0.0
    #: ``kind == "whole"``: the JSON body.
    body: bytes = b""
    #: ``kind == "stream"``: each SSE event with its blank line.
    events: list[bytes] = field(default_factory=list)

    def fresh(self, now: float, max_age: float | None) -> bool:
        """Not expired, and not older than the client's ``max-age`` when it sent one."""
        if now >= self.expires_at:
            return False
        return max_age is None or now - self.created_at <= max_age

    def size(self) -> int:
        return len(self.body) + sum(len(e) for e in self.events)


def encode_answer(answer: CachedAnswer) -> bytes:
    u = answer.usage
    head: dict[str, Any] = {
        "v": ENTRY_VERSION,
        "family": answer.family,
        "kind": answer.kind,
        "model": answer.model,
        "upstream_model": answer.upstream_model,
        "provider": answer.provider,
        "deployment": answer.deployment,
        "usage": [u.input_tokens, u.output_tokens, u.cached_input_tokens, u.cache_write_tokens],
        "cost_usd": answer.cost_usd,
        "created_at": answer.created_at,
        "expires_at": answer.expires_at,
        "sizes": [len(answer.body), *(len(e) for e in answer.events)],
    }
    header = json.dumps(head, separators=(",", ":")).encode()
    return b"".join([len(header).to_bytes(4, "big"), header, answer.body, *answer.events])


def decode_answer(data: bytes) -> CachedAnswer | None:
    """The answer in ``data``, or ``None`` for bytes of another version or damaged ones."""
    try:
        size = int.from_bytes(data[:4], "big")
        head = json.loads(data[4 : 4 + size])
        if not isinstance(head, dict) or head.get("v") != ENTRY_VERSION:
            return None
        offset = 4 + size
        pieces: list[bytes] = []
        for n in head["sizes"]:
            pieces.append(data[offset : offset + n])
            offset += n
        if offset != len(data):
            return None
        return CachedAnswer(
            family=head["family"],
            kind=head["kind"],
            model=head["model"],
            upstream_model=head["upstream_model"],
            provider=head["provider"],
            deployment=head["deployment"],
            usage=Usage(*head["usage"]),
            cost_usd=float(head["cost_usd"]),
            created_at=float(head["created_at"]),
            expires_at=float(head["expires_at"]),
            body=pieces[0],
            events=pieces[1:],
        )
    except (ValueError, KeyError, TypeError):
        return None


__all__ = ["ENTRY_VERSION", "CachedAnswer", "decode_answer", "encode_answer"]
