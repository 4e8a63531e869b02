# Stubs of relay_context._core.rows (cpp/rows/register_rows.cpp).
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any

class MessageRowDecoder:
    def __init__(
        self,
        message_type: type,
        slot_names: Sequence[str],
        roles: dict[str, Any],
        loads: Callable[[str], Any],
        tzinfo: tzinfo,
        fallback: Callable[[Any, str], Any],
    ) -> None: ...
    def decode(self, rows: list[Any], texts: list[str]) -> list[Any]: ...
