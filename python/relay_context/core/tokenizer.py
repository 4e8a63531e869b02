"""``TokenCounter``: exact token counts, identical to OpenAI's ``tiktoken``, from the C++ core."""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from relay_context import _core
from relay_context.core.encodings import (
    EncodingSpec,
    PatternFamily,
    file_encoding,
    shipped_encoding,
)
from relay_context.core.message_tokens import count_message_tokens
from relay_context.core.model_encodings import encoding_name_for_model
from relay_context.errors import InputTypeError, InvalidArgumentError, UnknownTokenIdError

_FAMILIES = {
    PatternFamily.R50K: _core.tokenizer.PatternFamily.R50K,
    PatternFamily.CL100K: _core.tokenizer.PatternFamily.CL100K,
    PatternFamily.O200K: _core.tokenizer.PatternFamily.O200K,
}

#: Texts at least this long are counted off the event loop by the async methods.
ASYNC_OFFLOAD_CHARS = 64 * 1024

DEFAULT_MEMO_SIZE = 4096


@dataclass(frozen=True)
class MemoStats:
    """Counters of the whole-text count memo."""

    hits: int
    misses: int
    size: int
    capacity: int


_core_lock = threading.Lock()
_core_cache: dict[tuple[str, str, int], _core.tokenizer.BpeTokenizer] = {}


def _build_core(spec: EncodingSpec, memo_size: int) -> _core.tokenizer.BpeTokenizer:
    # One core tokenizer per (encoding, file, memo size): loading o200k parses 200k ranks, and
    # sharing also shares the memo across every TokenCounter of the same encoding.
    key = (spec.name, str(spec.rank_file), memo_size)
    with _core_lock:
        core = _core_cache.get(key)
        if core is None:
            core = _core.tokenizer.BpeTokenizer(
                spec.read_ranks(),
                list(spec.special_tokens.items()),
                _FAMILIES[spec.family],
                memo_size,
            )
            _core_cache[key] = core
        return core


def _scrub_surrogates(text: str) -> str:
    # As tiktoken does: lone surrogates cannot be UTF-8 encoded, so they become U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _check_text(text: object, what: str = "text") -> str:
    if not isinstance(text, str):
        raise InputTypeError(f"{what} must be a str, not {type(text).__name__}")
    return text


class TokenCounter:
    """Counts, encodes and decodes tokens exactly as OpenAI's ``tiktoken`` does.

    >>> tc = TokenCounter("o200k_base")            # or TokenCounter.for_model("gpt-4o")
    >>> tc.count("hello world")
    2

    Instances are cheap after the first one of an encoding: the C++ tokenizer (and its memo of
    recent counts) is shared. All methods are thread-safe, and the C++ work runs without the GIL.
    """

    __slots__ = ("_core", "_spec", "model")

    def __init__(self, encoding: str = "o200k_base", *, memo_size: int = DEFAULT_MEMO_SIZE) -> None:
        """Loads a shipped encoding by name (``cl100k_base``, ``o200k_base``, ``o200k_harmony``).

        ``memo_size`` bounds the memo of whole-text counts (0 disables it).
        """
        _check_text(encoding, "encoding")
        self._init(shipped_encoding(encoding), memo_size, model=None)

    def _init(self, spec: EncodingSpec, memo_size: int, model: str | None) -> None:
        if not isinstance(memo_size, int) or memo_size < 0:
            raise InvalidArgumentError(f"memo_size must be an int >= 0, got {memo_size!r}")
        self._spec = spec
        self._core = _build_core(spec, memo_size)
        self.model: str | None = model

    @classmethod
    def for_model(
        cls,
        model: str,
        *,
        fallback_encoding: str | None = None,
        memo_size: int = DEFAULT_MEMO_SIZE,
    ) -> TokenCounter:
        """The counter of ``model``'s encoding (``gpt-4o`` -> ``o200k_base``, ...).

        An unknown model raises :class:`~relay_context.errors.UnknownModelError` unless
        ``fallback_encoding`` is given.
        """
        name = encoding_name_for_model(model, fallback=fallback_encoding)
        self = cls.__new__(cls)
        self._init(shipped_encoding(name), memo_size, model=model)
        return self

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        *,
        pattern: str | PatternFamily,
        special_tokens: Mapping[str, int] | None = None,
        sha256: str | None = None,
        name: str | None = None,
        memo_size: int = DEFAULT_MEMO_SIZE,
    ) -> TokenCounter:
        """Loads any ``.tiktoken`` rank file (plain or ``.xz``).

        ``pattern`` names the pre-tokenisation family: ``"r50k"``, ``"cl100k"`` or ``"o200k"``, an
        encoding name of that family, or the encoding's exact ``pat_str``. When ``sha256`` is
        given the file must match it.
        """
        spec = file_encoding(
            path, pattern=pattern, special_tokens=special_tokens, sha256=sha256, name=name
        )
        self = cls.__new__(cls)
        self._init(spec, memo_size, model=None)
        return self

    @classmethod
    def _from_rank_bytes(
        cls,
        name: str,
        family: PatternFamily,
        ranks: bytes,
        special_tokens: Mapping[str, int],
        *,
        memo_size: int = DEFAULT_MEMO_SIZE,
    ) -> TokenCounter:
        """A counter of ranks held in memory (``.tiktoken`` format), not shared or cached."""
        self = cls.__new__(cls)
        self._spec = EncodingSpec(
            name=name,
            family=family,
            special_tokens=MappingProxyType(dict(special_tokens)),
            rank_file=Path(f"<memory:{name}>"),
        )
        self._core = _core.tokenizer.BpeTokenizer(
            ranks, list(special_tokens.items()), _FAMILIES[family], memo_size
        )
        self.model = None
        return self

    # --- properties ------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The encoding's name."""
        return self._spec.name

    @property
    def family(self) -> PatternFamily:
        """The encoding's pre-tokenisation pattern family."""
        return self._spec.family

    @property
    def n_vocab(self) -> int:
        """Number of token ids (largest id + 1)."""
        return int(self._core.n_vocab)

    @property
    def special_tokens(self) -> Mapping[str, int]:
        """Special token text -> id."""
        return self._spec.special_tokens

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>``."""
        return self._spec.special_tokens["<|endoftext|>"]

    def __repr__(self) -> str:
        model = f", model={self.model!r}" if self.model else ""
        return f"TokenCounter({self.name!r}{model})"

    # --- encoding --------------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``; special tokens are encoded as plain text."""
        _check_text(text)
        try:
            return self._core.encode_ordinary(text)
        except TypeError:
            return self._core.encode_ordinary(_scrub_surrogates(text))

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | Collection[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Token ids of ``text``, with ``tiktoken``'s special-token rules.

        Special tokens in ``allowed_special`` become their ids. Text containing a special token
        from ``disallowed_special`` (by default every special token not allowed) raises
        :class:`~relay_context.errors.DisallowedSpecialTokenError`; pass
        ``disallowed_special=()`` to encode such text as plain text.
        """
        _check_text(text)
        specials = self._spec.special_tokens
        allowed = set(specials) if allowed_special == "all" else set(allowed_special)
        if disallowed_special == "all":
            disallowed = set(specials) - allowed
        else:
            disallowed = set(disallowed_special)
        unknown = (allowed | disallowed) - set(specials)
        if unknown:
            raise InvalidArgumentError(f"not special tokens of {self.name}: {sorted(unknown)[:5]}")
        args = (sorted(allowed), sorted(disallowed))
        try:
            return self._core.encode(text, *args)
        except TypeError:
            return self._core.encode(_scrub_surrogates(text), *args)

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        """The bytes the ids stand for."""
        return self._core.decode_bytes(self._check_ids(ids))

    def decode(self, ids: Sequence[int], errors: str = "replace") -> str:
        """The text the ids stand for; partial UTF-8 becomes U+FFFD unless ``errors`` says else."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def _check_ids(self, ids: Sequence[int]) -> list[int]:
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise InputTypeError(f"ids must be a sequence of int, not {type(ids).__name__}")
        out = list(ids)
        for i in out:
            if not isinstance(i, int) or isinstance(i, bool):
                raise InputTypeError(f"token ids must be int, got {type(i).__name__}")
            if i < 0 or i >= 2**32:
                raise UnknownTokenIdError(f"token id {i} is not in the vocabulary of {self.name}")
        return out

    # --- counting --------------------------------------------------------------------------------

    def count(self, text: str) -> int:
        """Number of tokens of ``text`` (special tokens count as plain text, as the APIs bill
        user content). Repeated texts are answered from a memo."""
        _check_text(text)
        try:
            return int(self._core.count(text))
        except TypeError:
            return int(self._core.count(_scrub_surrogates(text)))

    def count_batch(self, texts: Sequence[str], *, num_threads: int | None = None) -> list[int]:
        """``count`` of each text, computed on all cores (``num_threads`` to cap them)."""
        if isinstance(texts, str) or not isinstance(texts, Iterable):
            raise InputTypeError(f"texts must be a sequence of str, not {type(texts).__name__}")
        items = list(texts)
        for t in items:
            _check_text(t, "each text")
        if num_threads is not None and (not isinstance(num_threads, int) or num_threads < 1):
            raise InvalidArgumentError(f"num_threads must be an int >= 1, got {num_threads!r}")
        threads = num_threads or 0
        try:
            return self._core.count_batch(items, threads)
        except TypeError:
            return self._core.count_batch([_scrub_surrogates(t) for t in items], threads)

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Tokens a chat request with these messages is billed for (see ``message_tokens``)."""
        return count_message_tokens(self, messages)

    def truncate_to_budget(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` that fits in ``max_tokens`` tokens.

        The cut falls on a token boundary and never inside a character; the result, counted on
        its own, is at most ``max_tokens``.
        """
        _check_text(text)
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 0:
            raise InvalidArgumentError(f"max_tokens must be an int >= 0, got {max_tokens!r}")
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            text = _scrub_surrogates(text)
            data = text.encode("utf-8")
        cut = self._core.truncate_point(text, max_tokens)
        if cut >= len(data):
            return text
        return data[:cut].decode("utf-8")

    def memo_stats(self) -> MemoStats:
        """Hits, misses, size and capacity of the count memo (shared per encoding)."""
        return MemoStats(**self._core.memo_stats())

    # --- async twins -----------------------------------------------------------------------------

    async def count_tokens(self, text: str) -> int:
        """Awaitable ``count``: long texts are counted in a worker thread (the C++ work runs
        without the GIL), short ones inline."""
        if isinstance(text, str) and len(text) >= ASYNC_OFFLOAD_CHARS:
            return await asyncio.to_thread(self.count, text)
        return self.count(text)

    async def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        """Awaitable ``count_batch``, off the event loop."""
        return await asyncio.to_thread(self.count_batch, texts)

    async def truncate_to_budget_async(self, text: str, max_tokens: int) -> str:
        """Awaitable ``truncate_to_budget``."""
        if isinstance(text, str) and len(text) >= ASYNC_OFFLOAD_CHARS:
            return await asyncio.to_thread(self.truncate_to_budget, text, max_tokens)
        return self.truncate_to_budget(text, max_tokens)


@functools.lru_cache(maxsize=64)
def counter_for_model(model: str, fallback_encoding: str | None = None) -> TokenCounter:
    """A shared ``TokenCounter`` per model name (cheap lookups for hot paths)."""
    return TokenCounter.for_model(model, fallback_encoding=fallback_encoding)
