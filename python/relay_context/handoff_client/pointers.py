"""Pointer URLs: ``<base>/pull/<id>`` with an optional ``#key=...`` fragment."""

from __future__ import annotations

from dataclasses import dataclass

from relay_context.errors import InvalidArgumentError


@dataclass(frozen=True)
class Pointer:
    #: The server's base URL, as in the pointer (``https://relay.example.com``).
    base: str
    id: str
    #: The fragment's key (Relay's base64url AES key or a ContextRelay Fernet key), if any.
    key: str | None

    @classmethod
    def parse(cls, url: str) -> Pointer:
        if not isinstance(url, str):
            raise InvalidArgumentError(f"a pointer URL must be a str, got {type(url).__name__}")
        address, _, fragment = url.partition("#")
        base, marker, payload_id = address.rpartition("/pull/")
        if not marker or not payload_id or "/" in payload_id:
            raise InvalidArgumentError(f"not a handoff pointer URL (no /pull/<id>): {url!r}")
        key: str | None = None
        if fragment:
            name, _, value = fragment.partition("=")
            if name != "key":
                raise InvalidArgumentError(f"unknown pointer fragment {fragment!r}")
            key = value
        return cls(base=base, id=payload_id, key=key)

    def with_key(self, key: str) -> str:
        return f"{self.base}/pull/{self.id}#key={key}"

    @property
    def url(self) -> str:
        return f"{self.base}/pull/{self.id}"


__all__ = ["Pointer"]
