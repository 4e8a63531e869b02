"""Which encoding each OpenAI model family uses.

Exact names win over prefixes; among prefixes the longest match wins, so ``gpt-4o-mini`` is
``o200k_base`` (``gpt-4o``) and not ``cl100k_base`` (``gpt-4``).
"""

from __future__ import annotations

from collections.abc import Mapping
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
