"""Which encoding each OpenAI model family uses.

Exact names win over prefixes; among prefixes the longest match wins, so ``gpt-4o-mini`` is
``o200k_base`` (``gpt-4o``) and not ``cl100k_base`` (``gpt-4``).
"""

from __future__ import annotations

import functools
import re
import sys
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from relay_context.errors import InputTypeError, UnknownModelError

O200K = "o200k_base"
CL100K = "cl100k_base"

#: Exact model names.
MODEL_TO_ENCODING: Mapping[str, str] = MappingProxyType(
    {
        "o1": O200K,
        "o3": O200K,
        "o4-mini": O200K,
        "gpt-5": O200K,
        "gpt-4.1": O200K,
        "gpt-4.5": O200K,
        "gpt-4o": O200K,
        "chatgpt-4o-latest": O200K,
        "gpt-4": CL100K,
        "gpt-3.5-turbo": CL100K,
        "gpt-3.5": CL100K,
        "gpt-35-turbo": CL100K,
        "text-embedding-3-small": CL100K,
        "text-embedding-3-large": CL100K,
        "text-embedding-ada-002": CL100K,
        "davinci-002": CL100K,
        "babbage-002": CL100K,
        "gpt-oss-20b": "o200k_harmony",
        "gpt-oss-120b": "o200k_harmony",
    }
)

#: Model-name prefixes (dated snapshots, sizes, fine-tunes, Azure deployment names).
MODEL_PREFIX_TO_ENCODING: Mapping[str, str] = MappingProxyType(
    {
        "o1-": O200K,
        "o3-": O200K,
        "o4-": O200K,
        "gpt-5": O200K,  # gpt-5, gpt-5-mini, gpt-5.1, ...
        "gpt-4.1-": O200K,
        "gpt-4.5-": O200K,
        "gpt-4o-": O200K,
        "chatgpt-4o-": O200K,
        "gpt-4-": CL100K,
        "gpt-3.5-turbo-": CL100K,
        "gpt-35-turbo-": CL100K,
        "text-embedding-3-": CL100K,
        "gpt-oss-": "o200k_harmony",
        "ft:gpt-4o": O200K,
        "ft:gpt-4.1": O200K,
        "ft:gpt-4": CL100K,
        "ft:gpt-3.5-turbo": CL100K,
        "ft:davinci-002": CL100K,
        "ft:babbage-002": CL100K,
    }
)

_PREFIXES_LONGEST_FIRST = sorted(MODEL_PREFIX_TO_ENCODING, key=len, reverse=True)


def encoding_name_for_model(model: str, *, fallback: str | None = None) -> str:
    """The encoding name of ``model``.

    Raises :class:`~relay_context.errors.UnknownModelError` for an unknown model unless
    ``fallback`` (an encoding name) is given.
    """
    if not isinstance(model, str):
        raise InputTypeError(f"model must be a str, not {type(model).__name__}")
    name = model.strip()
    # Provider-qualified names ("openai/gpt-4o") count as the bare model.
    if "/" in name and not name.startswith("ft:"):
        name = name.rsplit("/", 1)[1]
    if name in MODEL_TO_ENCODING:
        return MODEL_TO_ENCODING[name]
    for prefix in _PREFIXES_LONGEST_FIRST:
        if name.startswith(prefix):
            return MODEL_PREFIX_TO_ENCODING[prefix]
    if fallback is not None:
        return fallback
    raise UnknownModelError(
        f"no known encoding for model {model!r}; pass an encoding name instead, or set a "
        "fallback encoding (e.g. TokenCounter.for_model(model, fallback_encoding='o200k_base'))"
    )


def _regex_literal(text: str) -> str:
    # Only the characters special in both Python's and ECMA-262's syntax are escaped (ECMA-262
    # in Unicode mode refuses escapes such as "\-", which re.escape writes).
    return re.sub(r"([.^$*+?()\[\]{}|\\/])", r"\\\1", text)


def _alternatives(texts: Iterable[str]) -> str:
    return "|".join(_regex_literal(t) for t in sorted(texts, key=lambda t: (-len(t), t)))


@functools.lru_cache(maxsize=1)
def _whitespace_class() -> str:
    """What ``str.strip()`` removes, as a character class of ``\\uXXXX`` escapes."""
    spaces = [c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace()]
    return "[" + "".join(f"\\u{ord(c):04x}" for c in spaces) + "]"


def model_name_pattern(encodings: Iterable[str] = ()) -> str:
    """A regular expression matching exactly the names :func:`encoding_name_for_model` accepts
    (without a fallback), plus the exact ``encodings`` names: for an OpenAPI ``pattern``, so it
    is valid both in Python and in ECMA-262 (JSON Schema), and ends in ``(?![\\s\\S])``
    rather than ``$`` (which in Python also matches before a final newline)."""
    ws = _whitespace_class()
    end = "(?![\\s\\S])"
    exact = _alternatives(MODEL_TO_ENCODING)
    plain = _alternatives(p for p in MODEL_PREFIX_TO_ENCODING if not p.startswith("ft:"))
    fine_tuned = _alternatives(p for p in MODEL_PREFIX_TO_ENCODING if p.startswith("ft:"))
    every = _alternatives(MODEL_PREFIX_TO_ENCODING)
    branches = [
        # a bare name: exact, or a prefix and no "/" after it
        f"^{ws}*(?:{exact}|(?:{plain})[^/]*){ws}*{end}",
        # a fine-tune: never split at "/"
        f"^{ws}*(?:{fine_tuned})[\\s\\S]*{end}",
        # provider-qualified ("openai/gpt-4o"): the last segment counts
        f"^{ws}*(?!{ws}*ft:)[\\s\\S]*/(?:{exact}|(?:{every})[^/]*){ws}*{end}",
    ]
    names = list(encodings)
    if names:
        branches.append(f"^(?:{_alternatives(names)}){end}")
    return "|".join(branches)
