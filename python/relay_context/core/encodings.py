"""The BPE encodings Relay knows: where their ranks come from and how they pre-tokenise.

``cl100k_base``, ``o200k_base`` and ``o200k_harmony`` ship with the package (their official rank
files, xz-compressed, verified by sha256 on load), so they work with no network. Any other
``.tiktoken`` rank file loads from a path with :meth:`relay_context.TokenCounter.from_file`, given
one of the known pre-tokenisation pattern families.
"""

from __future__ import annotations

import enum
import hashlib
import lzma
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from relay_context.errors import ChecksumMismatchError, RankFileError, UnknownEncodingError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

ENDOFTEXT = "<|endoftext|>"
FIM_PREFIX = "<|fim_prefix|>"
FIM_MIDDLE = "<|fim_middle|>"
FIM_SUFFIX = "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"


class PatternFamily(str, enum.Enum):
    """Pre-tokenisation pattern families of the published encodings."""

    R50K = "r50k"  # gpt2, r50k_base, p50k_base, p50k_edit
    CL100K = "cl100k"  # cl100k_base
    O200K = "o200k"  # o200k_base, o200k_harmony

    @classmethod
    def parse(cls, value: str | PatternFamily) -> PatternFamily:
        """Accepts a family name, an encoding name of that family or its regex pattern string."""
        if isinstance(value, PatternFamily):
            return value
        key = value.strip()
        if key in _FAMILY_ALIASES:
            return _FAMILY_ALIASES[key]
        if key in KNOWN_PATTERNS:
            return KNOWN_PATTERNS[key]
        raise UnknownEncodingError(
            f"unknown pattern family {value[:80]!r}: use one of "
            f"{sorted(f.value for f in cls)}, an encoding name such as 'cl100k_base', or the "
            "exact pat_str of a published encoding"
        )


_FAMILY_ALIASES: dict[str, PatternFamily] = {
    **{f.value: f for f in PatternFamily},
    "gpt2": PatternFamily.R50K,
    "r50k_base": PatternFamily.R50K,
    "p50k_base": PatternFamily.R50K,
    "p50k_edit": PatternFamily.R50K,
    "cl100k_base": PatternFamily.CL100K,
    "o200k_base": PatternFamily.O200K,
    "o200k_harmony": PatternFamily.O200K,
}

_O200K_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)

#: Pattern strings (as published by tiktoken, current and earlier spellings) -> family.
KNOWN_PATTERNS: Mapping[str, PatternFamily] = MappingProxyType(
    {
        r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s""": (
            PatternFamily.R50K
        ),
        r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""": (
            PatternFamily.R50K
        ),
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""": (  # noqa: E501
            PatternFamily.CL100K
        ),
        r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""": (  # noqa: E501
            PatternFamily.CL100K
        ),
        _O200K_PATTERN: PatternFamily.O200K,
    }
)


@dataclass(frozen=True)
class EncodingSpec:
    """Everything needed to build one encoding."""

    name: str
    family: PatternFamily
    special_tokens: Mapping[str, int]
    rank_file: Path
    sha256: str | None = None
    #: True when ``rank_file`` is xz-compressed (the shipped files).
    compressed: bool = False
    extra: Mapping[str, object] = field(default_factory=dict)

    def read_ranks(self) -> bytes:
        """Reads (and decompresses) the rank file and checks its sha256 when one is expected."""
        try:
            raw = self.rank_file.read_bytes()
        except OSError as exc:
            raise RankFileError(f"cannot read rank file {self.rank_file}: {exc}") from exc
        if self.compressed:
            try:
                raw = lzma.decompress(raw)
            except lzma.LZMAError as exc:
                raise RankFileError(f"rank file {self.rank_file} is corrupt: {exc}") from exc
        if self.sha256 is not None:
            digest = hashlib.sha256(raw).hexdigest()
            if digest != self.sha256.lower():
                raise ChecksumMismatchError(
                    f"rank file {self.rank_file} has sha256 {digest}, expected {self.sha256}"
                )
        return raw


def _shipped(
    name: str, family: PatternFamily, sha256: str, special: dict[str, int]
) -> EncodingSpec:
    base = name.replace("_harmony", "_base")
    return EncodingSpec(
        name=name,
        family=family,
        special_tokens=MappingProxyType(special),
        rank_file=DATA_DIR / f"{base}.tiktoken.xz",
        sha256=sha256,
        compressed=True,
    )


_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
_O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"

_HARMONY_SPECIAL = {
    "<|startoftext|>": 199998,
    ENDOFTEXT: 199999,
    "<|reserved_200000|>": 200000,
    "<|reserved_200001|>": 200001,
    "<|return|>": 200002,
    "<|constrain|>": 200003,
    "<|reserved_200004|>": 200004,
    "<|channel|>": 200005,
    "<|start|>": 200006,
    "<|end|>": 200007,
    "<|message|>": 200008,
    "<|reserved_200009|>": 200009,
    "<|reserved_200010|>": 200010,
    "<|reserved_200011|>": 200011,
    "<|call|>": 200012,
    ENDOFPROMPT: 200018,
    **{f"<|reserved_{i}|>": i for i in range(200013, 201088) if i != 200018},
}

SHIPPED_ENCODINGS: Mapping[str, EncodingSpec] = MappingProxyType(
    {
        "cl100k_base": _shipped(
            "cl100k_base",
            PatternFamily.CL100K,
            _CL100K_SHA256,
            {
                ENDOFTEXT: 100257,
                FIM_PREFIX: 100258,
                FIM_MIDDLE: 100259,
                FIM_SUFFIX: 100260,
                ENDOFPROMPT: 100276,
            },
        ),
        "o200k_base": _shipped(
            "o200k_base",
            PatternFamily.O200K,
            _O200K_SHA256,
            {ENDOFTEXT: 199999, ENDOFPROMPT: 200018},
        ),
        "o200k_harmony": _shipped(
            "o200k_harmony", PatternFamily.O200K, _O200K_SHA256, _HARMONY_SPECIAL
        ),
    }
)

#: Published encodings that do not ship with Relay (load their rank file with from_file).
UNSHIPPED_ENCODINGS = frozenset({"gpt2", "r50k_base", "p50k_base", "p50k_edit"})


def shipped_encoding(name: str) -> EncodingSpec:
    """The spec of a shipped encoding, or a clear error naming what is available."""
    try:
        return SHIPPED_ENCODINGS[name]
    except KeyError:
        pass
    if name in UNSHIPPED_ENCODINGS:
        raise UnknownEncodingError(
            f"encoding {name!r} does not ship with Relay; load its .tiktoken rank file with "
            f"TokenCounter.from_file(path, pattern={name!r})"
        )
    raise UnknownEncodingError(
        f"unknown encoding {name!r}; shipped encodings: {sorted(SHIPPED_ENCODINGS)}"
    )


def file_encoding(
    path: str | os.PathLike[str],
    *,
    pattern: str | PatternFamily,
    special_tokens: Mapping[str, int] | None = None,
    sha256: str | None = None,
    name: str | None = None,
) -> EncodingSpec:
    """The spec of an encoding read from a ``.tiktoken`` file (plain or ``.xz``)."""
    p = Path(path)
    family = PatternFamily.parse(pattern)
    return EncodingSpec(
        name=name or p.name.split(".")[0],
        family=family,
        special_tokens=MappingProxyType(dict(special_tokens or {})),
        rank_file=p,
        sha256=sha256,
        compressed=p.suffix == ".xz",
    )
