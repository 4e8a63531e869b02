"""``rapidfuzz.utils`` for :mod:`relay_context.fuzzy`: the default text preprocessing."""

from __future__ import annotations

import bisect
import functools

from relay_context.errors import InputTypeError

__all__ = ["default_process"]

_ASCII = str.maketrans({chr(i): chr(i).lower() if chr(i).isalnum() else " " for i in range(128)})


# Letters and digits of Unicode 14 that rapidfuzz 3's tables (Unicode 13) do not count as such:
# they become spaces there, so they do here (Python 3.10 agrees on its own).
_NOT_ALNUM_RANGES = (
    (0x870, 0x887),
    (0x889, 0x88E),
    (0x8B5, 0x8B5),
    (0x8C8, 0x8C9),
    (0xC5D, 0xC5D),
    (0xCDD, 0xCDD),
    (0x170D, 0x170D),
    (0x171F, 0x171F),
    (0x1B4C, 0x1B4C),
    (0x2C2F, 0x2C2F),
    (0x2C5F, 0x2C5F),
    (0x9FFD, 0x9FFF),
    (0xA7C0, 0xA7C1),
    (0xA7D0, 0xA7D1),
    (0xA7D3, 0xA7D3),
    (0xA7D5, 0xA7D9),
    (0xA7F2, 0xA7F4),
    (0x10570, 0x1057A),
    (0x1057C, 0x1058A),
    (0x1058C, 0x10592),
    (0x10594, 0x10595),
    (0x10597, 0x105A1),
    (0x105A3, 0x105B1),
    (0x105B3, 0x105B9),
    (0x105BB, 0x105BC),
    (0x10780, 0x10785),
    (0x10787, 0x107B0),
    (0x107B2, 0x107BA),
    (0x10F70, 0x10F81),
    (0x11071, 0x11072),
    (0x11075, 0x11075),
    (0x11740, 0x11746),
    (0x11AB0, 0x11ABF),
    (0x12F90, 0x12FF0),
    (0x16A70, 0x16ABE),
    (0x16AC0, 0x16AC9),
    (0x1AFF0, 0x1AFF3),
    (0x1AFF5, 0x1AFFB),
    (0x1AFFD, 0x1AFFE),
    (0x1B11F, 0x1B122),
    (0x1DF00, 0x1DF1E),
    (0x1E290, 0x1E2AD),
    (0x1E7E0, 0x1E7E6),
    (0x1E7E8, 0x1E7EB),
    (0x1E7ED, 0x1E7EE),
    (0x1E7F0, 0x1E7FE),
    (0x2A6DE, 0x2A6DF),
    (0x2B735, 0x2B738),
)
_NOT_ALNUM_STARTS = [start for start, _ in _NOT_ALNUM_RANGES]


def _rapidfuzz_alnum(c: str) -> bool:
    if not c.isalnum():
        return False
    cp = ord(c)
    i = bisect.bisect_right(_NOT_ALNUM_STARTS, cp) - 1
    return i < 0 or cp > _NOT_ALNUM_RANGES[i][1]


@functools.lru_cache(maxsize=65536)
def _process_char(c: str) -> str:
    if not _rapidfuzz_alnum(c):
        return " "
    lower = c.lower()
    # One code point per code point (simple case mapping): U+0130 lowercases to "i", not "i̇".
    return lower if len(lower) == 1 else lower[0]


def default_process(sentence: str) -> str:
    """``rapidfuzz.utils.default_process``: every character that is not a letter or a digit
    becomes a space, letters are lowercased, and spaces at both ends are removed."""
    if not isinstance(sentence, str):
        raise InputTypeError(f"sentence must be a str, not {type(sentence).__name__}")
    if sentence.isascii():
        return sentence.translate(_ASCII).strip(" ")
    return "".join(map(_process_char, sentence)).strip(" ")
