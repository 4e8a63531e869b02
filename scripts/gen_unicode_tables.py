#!/usr/bin/env python3
"""Generate cpp/tokenizer/unicode_tables.cpp: per-code-point character-class flags for the
hand-written pre-tokenisers (cpp/tokenizer/pretokenizer.cpp).

The tables must match the Unicode version of the regex engine inside tiktoken 0.14.0 (Rust
`regex` / `fancy-regex`), which is **Unicode 16.0.0**. Python's own `unicodedata` is older, so
this script reads the Unicode Character Database from the `unicodedata2` backport instead:

    pip install unicodedata2==16.0.0
    python scripts/gen_unicode_tables.py            # rewrites cpp/tokenizer/unicode_tables.cpp

Flags per code point (see unicode_tables.hpp):
  kL  general category L (Lu, Ll, Lt, Lm, Lo)        -> \\p{L}
  kN  general category N (Nd, Nl, No)                -> \\p{N}
  kWS White_Space property                           -> \\s of the regex crate
  kU  Lu | Lt | Lm | Lo | M                          -> o200k's [\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]
  kW  Ll | Lm | Lo | M                               -> o200k's [\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]
  kM  general category M (Mn, Mc, Me)

White_Space is not exposed by unicodedata; its 25 code points are listed below from PropList.txt
(unchanged since Unicode 6.3) and checked against the bidirectional classes in the database.

The contraction letters of the `(?i:...)` groups are matched with Unicode simple case folding,
as the regex crate does. The non-ASCII code points whose simple case fold is one of
s, d, m, t, l, v, r, e are computed here from the case data of the running Python
(`str.lower`/`str.casefold`, restricted to single-code-point results, i.e. CaseFolding.txt status
C/S) and emitted into the table; the result is {U+017F LATIN SMALL LETTER LONG S -> 's'}.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

try:
    import unicodedata2 as ucd
except ImportError:  # pragma: no cover
    sys.exit("needs unicodedata2: pip install unicodedata2==16.0.0")

EXPECTED_VERSION = "16.0.0"

K_L, K_N, K_WS, K_U, K_W, K_M = 1, 2, 4, 8, 16, 32

# PropList.txt, White_Space=yes (Unicode 16.0.0).
WHITE_SPACE = [
    *range(0x0009, 0x000E),
    *(0x0020, 0x0085, 0x00A0, 0x1680),
    *range(0x2000, 0x200B),
    *(0x2028, 0x2029, 0x202F, 0x205F, 0x3000),
]

CONTRACTION_LETTERS = "sdmtlvre"


def flags_of(cp: int) -> int:
    cat = ucd.category(chr(cp))
    f = 0
    if cat[0] == "L":
        f |= K_L
    if cat[0] == "N":
        f |= K_N
    if cat[0] == "M":
        f |= K_M
    if cat in ("Lu", "Lt", "Lm", "Lo") or cat[0] == "M":
        f |= K_U
    if cat in ("Ll", "Lm", "Lo") or cat[0] == "M":
        f |= K_W
    return f


def build_flags() -> list[int]:
    flags = [flags_of(cp) for cp in range(0x110000)]
    for cp in WHITE_SPACE:
        assert flags[cp] == 0, hex(cp)
        flags[cp] |= K_WS
    return flags


def fold_table() -> list[tuple[int, str]]:
    out = []
    for cp in range(0x80, 0x110000):
        c = chr(cp)
        if 0xD800 <= cp < 0xE000:
            continue
        folded = c.casefold()
        if len(folded) != 1:
            folded = c.lower()
        if len(folded) == 1 and folded in CONTRACTION_LETTERS:
            out.append((cp, folded))
    return out


def two_stage(flags: list[int], shift: int) -> tuple[list[int], list[int]]:
    size = 1 << shift
    blocks: dict[tuple[int, ...], int] = {}
    stage1: list[int] = []
    stage2: list[int] = []
    for start in range(0, 0x110000, size):
        block = tuple(flags[start : start + size])
        idx = blocks.get(block)
        if idx is None:
            idx = len(blocks)
            blocks[block] = idx
            stage2.extend(block)
        stage1.append(idx)
    return stage1, stage2


def emit_array(ctype: str, name: str, values: list[int], per_line: int) -> str:
    lines = [f"const {ctype} {name}[{len(values)}] = {{"]
    for i in range(0, len(values), per_line):
        lines.append("    " + ",".join(str(v) for v in values[i : i + per_line]) + ",")
    lines.append("};")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = (
        pathlib.Path(__file__).resolve().parent.parent / "cpp/tokenizer/unicode_tables.cpp"
    )
    ap.add_argument("--output", type=pathlib.Path, default=default_out)
    args = ap.parse_args()
    if ucd.unidata_version != EXPECTED_VERSION:
        sys.exit(
            f"unicodedata2 has Unicode {ucd.unidata_version}, need {EXPECTED_VERSION}: "
            f"pip install unicodedata2=={EXPECTED_VERSION}"
        )
    flags = build_flags()
    best = None
    for shift in range(4, 10):
        s1, s2 = two_stage(flags, shift)
        if max(s1) >= 256:  # the header declares stage 1 as bytes
            continue
        elem = 1
        cost = len(s1) * elem + len(s2)
        if best is None or cost < best[0]:
            best = (cost, shift, s1, s2, elem)
    _, shift, stage1, stage2, elem = best
    folds = fold_table()
    assert all(cp > 0x7F for cp, _ in folds)
    stage1_type = "std::uint8_t"
    fold_lines = "\n".join(f"    {{0x{cp:04X}, '{ch}'}}," for cp, ch in folds)
    text = f"""\
// GENERATED FILE - do not edit. Regenerate with:
//   pip install unicodedata2==16.0.0 && python scripts/gen_unicode_tables.py
// Source: Unicode Character Database 16.0.0 (UnicodeData.txt general categories via the
// unicodedata2 16.0.0 package from PyPI; White_Space from PropList.txt 16.0.0), the Unicode
// version of tiktoken 0.14.0's Rust regex tables.
// clang-format off
#include "tokenizer/unicode_tables.hpp"

namespace relay::tokenizer::unicode {{

static_assert(kStage1Shift == {shift}, "set kStage1Shift = {shift} in unicode_tables.hpp");

{emit_array(stage1_type, "kStage1", stage1, 32)}

{emit_array("std::uint8_t", "kStage2", stage2, 40)}

const FoldEntry kContractionFolds[{len(folds)}] = {{
{fold_lines}
}};
const std::size_t kContractionFoldCount = {len(folds)};

}}  // namespace relay::tokenizer::unicode
"""
    args.output.write_text(text)
    print(
        f"wrote {args.output}: shift={shift}, stage1={len(stage1)}x{elem}B, "
        f"stage2={len(stage2)}B, folds={folds}, {len(text)} chars"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
