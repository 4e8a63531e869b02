# Stubs of relay_context._core.rows (cpp/rows/register_rows.cpp).
from collections.abc import Callable, Sequence
from datetime import tzinfo
from typing import Any

from .compress import Decompressor

class MessageRowDecoder:
    def __init__(
        self,
        message_type: type,
        slot_names: Sequence[str],
        roles: dict[str, Any],
        loads: Callable[[str], Any],
        tzinfo: tzinfo,
        fallback: Callable[[Any, str | None], Any],
        raw_tag: str,
        native_tag: str,
        native: Decompressor | None,
    ) -> None: ...
    def decode(self, rows: list[Any]) -> list[Any]: ...

class SlottedMaker:
    def __init__(self, type: type, slot_names: Sequence[str]) -> None: ...
    def make(self, columns: Sequence[list[Any]]) -> list[Any]: ...
