"""The request's ``Cache-Control`` directives the exact cache obeys: ``no-cache`` (do not answer
from the cache; the fresh answer replaces the entry), ``no-store`` (do not store this answer)
and ``max-age=N`` (only an entry at most N seconds old may answer)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from relay_context.gateway.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class CacheDirectives:
    no_cache: bool = False
    no_store: bool = False
    max_age: float | None = None


NONE = CacheDirectives()


def parse_cache_control(headers: Mapping[str, str]) -> CacheDirectives:
    """The directives of the ``cache-control`` header; unknown ones are ignored (as HTTP says),
    a malformed ``max-age`` is a 400."""
    raw = headers.get("cache-control")
    if not raw:
        return NONE
    no_cache = no_store = False
    max_age: float | None = None
    for item in raw.split(","):
        name, _, value = item.strip().partition("=")
        name = name.strip().lower()
        if name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "max-age":
            text = value.strip().strip('"')
            if not text.isdigit():
                raise InvalidRequestError(
                    f"Cache-Control max-age must be a whole number of seconds, got {value!r}"
                )
            max_age = float(int(text))
    return CacheDirectives(no_cache, no_store, max_age)


__all__ = ["CacheDirectives", "parse_cache_control"]
