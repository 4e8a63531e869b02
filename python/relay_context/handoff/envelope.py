"""ContextRelay's JSON push envelope, ``{"data": "<text>", "channel"?, "metadata"?, "ttl"?,
"encrypted"?}``, parsed as it streams in.

The ``data`` string can be 25 MB (more as JSON, which escapes text), so it is never held
whole: :meth:`EnvelopeParser.data` yields its UTF-8 bytes piece by piece while the body
arrives, and the other members (small: each at most ``field_limit`` bytes of JSON) are kept
for :attr:`EnvelopeParser.fields`, complete once the data is exhausted. Members may come in
any order. Each piece of the string is decoded by the C JSON decoder (a piece is cut where no
escape, surrogate pair or UTF-8 sequence is split), so the parser keeps ``json``'s rules and
speed: control characters, bad escapes and invalid UTF-8 are malformed JSON; a lone surrogate
is refused, as it is not text. The other members are as strict as
:func:`relay_context.checks.parse_json` (no ``NaN``, no out-of-range numbers, bounded nesting).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from relay_context.checks import JSON_SURROGATE_ESCAPE, STRICT_JSON_DECODER, check_json_text
from relay_context.errors import (
    InvalidArgumentError,
    InvalidJsonError,
    InvalidUnicodeError,
    PayloadTooLargeError,
)

_WHITESPACE = re.compile(rb"[ \t\n\r]*")
_HIGH_SURROGATE = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}")


def _malformed(why: str) -> InvalidJsonError:
    return InvalidJsonError(f"the body is not valid JSON: {why}")


def _starts_escape(raw: bytes | bytearray, index: int) -> bool:
    """Whether the backslash at ``index`` starts an escape (an odd run of backslashes ends
    there; in an even run it is the second half of ``\\\\``)."""
    run = index
    while run > 0 and raw[run - 1] == 0x5C:
        run -= 1
    return (index - run) % 2 == 0


def _complete_prefix(raw: bytes) -> int:
    """How much of ``raw`` (string content, escapes intact) decodes on its own: no escape,
    surrogate pair or UTF-8 sequence cut at the end."""
    end = len(raw)
    # Only the last escape can be cut short.
    last = raw.rfind(b"\\", max(0, end - 6))
    if last >= 0 and _starts_escape(raw, last):
        need = 6 if raw[last + 1 : last + 2] == b"u" else 2
        if end - last < need:
            end = last
    # The first half of a surrogate pair: its second half may be in the next piece.
    if end >= 6 and _HIGH_SURROGATE.match(raw, end - 6, end) and _starts_escape(raw, end - 6):
        end -= 6
    # A UTF-8 sequence cut short (escapes are ASCII, so this only looks at raw text).
    back = end - 1
    while back >= max(0, end - 3) and 0x80 <= raw[back] < 0xC0:
        back -= 1
    if back >= 0 and raw[back] >= 0xC0:
        length = 2 if raw[back] < 0xE0 else 3 if raw[back] < 0xF0 else 4
        if end - back < length:
            end = back
    return end


def _decode(raw: bytes) -> bytes:
    try:
        text = STRICT_JSON_DECODER.decode('"' + raw.decode("utf-8") + '"')
    except UnicodeDecodeError:
        raise _malformed('"data" is not UTF-8') from None
    except json.JSONDecodeError as exc:
        raise _malformed(f'"data": {exc.msg}') from None
    try:
        return str(text).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidUnicodeError('"data" holds a lone surrogate (not UTF-8)') from None


class EnvelopeParser:
    """``async for piece in parser.data(body)`` — the data's bytes; then ``parser.fields``."""

    def __init__(self, *, field_limit: int, piece_bytes: int = 256 * 1024) -> None:
        self.field_limit = field_limit
        self.piece_bytes = piece_bytes
        self.fields: dict[str, Any] = {}
        self.saw_data = False
        self._buffer = b""
        self._position = 0
        self._body: AsyncIterator[bytes] | None = None
        self._ended = False

    # --- input ---------------------------------------------------------------------------------
    async def _more(self) -> bool:
        """Read another piece of the body into the buffer (consumed bytes dropped first)."""
        assert self._body is not None
        if self._ended:
            return False
        self._buffer = self._buffer[self._position :]
        self._position = 0
        try:
            piece = await anext(self._body)
        except StopAsyncIteration:
            self._ended = True
            return False
        self._buffer += piece
        return True

    async def _skip_whitespace(self) -> None:
        while True:
            match = _WHITESPACE.match(self._buffer, self._position)
            assert match is not None
            self._position = match.end()
            if self._position < len(self._buffer) or not await self._more():
                return

    async def _expect(self, allowed: bytes, what: str) -> int:
        await self._skip_whitespace()
        if self._position >= len(self._buffer):
            raise _malformed(f"the body ended where {what} was expected")
        byte = self._buffer[self._position]
        if byte not in allowed:
            raise _malformed(f"{what} expected at byte {self._position}")
        self._position += 1
        return byte

    async def _small_value(self) -> Any:
        """One JSON value of at most ``field_limit`` bytes (a key or a member other than
        ``data``), decoded by the C decoder once it is complete."""
        await self._skip_whitespace()
        while True:
            text = self._buffer[self._position : self._position + self.field_limit + 1]
            try:
                decoded = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                decoded = text[: exc.start].decode("utf-8")  # a sequence cut at the end
            try:
                value, end = STRICT_JSON_DECODER.raw_decode(decoded)
            except RecursionError:
                raise _malformed("it nests too deeply") from None
            except json.JSONDecodeError as exc:
                complete = len(text) > self.field_limit or self._ended
                if complete or not await self._more():
                    if len(text) > self.field_limit:
                        raise PayloadTooLargeError(
                            f"a member of the JSON body other than data is larger than "
                            f"{self.field_limit} bytes",
                            limit=self.field_limit,
                        ) from None
                    raise _malformed(exc.msg) from None
                continue
            except ValueError as exc:  # the number checks
                raise _malformed(str(exc)) from None
            # A number at the end of the buffer may go on in the next piece.
            if (
                end == len(decoded)
                and not self._ended
                and isinstance(value, int | float)
                and await self._more()
            ):
                continue
            consumed = decoded[:end].encode("utf-8")
            self._position += len(consumed)
            if JSON_SURROGATE_ESCAPE.search(consumed):
                check_json_text("the request body", value)  # a lone surrogate is not text
            return value

    async def _string_pieces(self) -> AsyncIterator[bytes]:
        """The rest of a JSON string (its opening quote read), decoded, piece by piece."""
        pending = bytearray()
        while True:
            quote = self._buffer.find(b'"', self._position)
            while (
                quote > 0
                and self._buffer[quote - 1] == 0x5C
                and _starts_escape(self._buffer, quote - 1)
            ):
                quote = self._buffer.find(b'"', quote + 1)  # an escaped quote
            if quote >= 0:  # the closing quote
                pending += self._buffer[self._position : quote]
                self._position = quote + 1
                if pending:
                    yield _decode(bytes(pending))
                return
            # No closing quote yet: all of it is string content (a cut escape or character is
            # held back below, until the next piece completes it).
            # A backslash at the very end that starts an escape stays in the buffer, so the
            # next piece sees it before its first byte (a quote there is then escaped).
            tail = len(self._buffer)
            if (
                tail > self._position
                and self._buffer[tail - 1] == 0x5C
                and _starts_escape(self._buffer, tail - 1)
            ):
                tail -= 1
            pending += self._buffer[self._position : tail]
            self._position = tail
            if len(pending) >= self.piece_bytes:
                cut = _complete_prefix(bytes(pending))
                yield _decode(bytes(pending[:cut]))
                del pending[:cut]
            if not await self._more():
                raise _malformed('the body ended inside "data"')

    # --- the envelope --------------------------------------------------------------------------
    async def data(self, body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The data's UTF-8 bytes as the body streams in; the whole envelope is checked (and
        :attr:`fields` filled) by the time this ends."""
        self._body = aiter(body)
        await self._expect(b"{", "an object")
        await self._skip_whitespace()
        if self._buffer[self._position : self._position + 1] == b"}":
            self._position += 1
        else:
            while True:
                key = await self._small_value()
                if not isinstance(key, str):
                    raise _malformed("a member name must be a string")
                await self._expect(b":", "':'")
                await self._skip_whitespace()
                if key == "data":
                    if self.saw_data:
                        raise InvalidArgumentError('the body has "data" twice')
                    if self._buffer[self._position : self._position + 1] != b'"':
                        raise InvalidArgumentError(
                            'the body must be a JSON object with a string "data"'
                        )
                    self.saw_data = True
                    self._position += 1
                    async for piece in self._string_pieces():
                        yield piece
                else:
                    self.fields[key] = await self._small_value()
                if await self._expect(b",}", "',' or '}'") == ord("}"):
                    break
        await self._skip_whitespace()
        if self._position < len(self._buffer):
            raise _malformed(f"extra data after the object at byte {self._position}")
        if not self.saw_data:
            raise InvalidArgumentError('the body must be a JSON object with a string "data"')


__all__ = ["EnvelopeParser"]
