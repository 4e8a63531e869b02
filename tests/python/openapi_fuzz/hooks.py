"""schemathesis hooks for tests/python/test_service_openapi.py (loaded with SCHEMATHESIS_HOOKS).

``Idempotency-Key`` on ``POST /api/v1/context/messages``: a key reused with another message is
refused (422, as the IETF Idempotency-Key draft says), a rule about earlier requests that no
schema can state; schemathesis, generating keys per case, reuses short ones ("0") for different
messages. So each request gets a key of its own here; replays and reuse are covered by
tests/python/test_service_redis_stall.py and test_store_idempotency.py.
"""

from __future__ import annotations

import itertools
from typing import Any

import schemathesis

_keys = itertools.count(1)


@schemathesis.hook
def map_headers(context: Any, headers: dict[str, Any] | None) -> dict[str, Any] | None:
    if headers and "Idempotency-Key" in headers:
        headers = {**headers, "Idempotency-Key": f"schemathesis-{next(_keys)}"}
    return headers
