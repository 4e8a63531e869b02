"""tiktoken's public API on Relay's tokenizer: ``import relay_context.tiktoken as tiktoken``.

>>> import relay_context.tiktoken as tiktoken
>>> enc = tiktoken.get_encoding("o200k_base")
>>> enc.encode("hello world")
[24912, 2375]
>>> tiktoken.encoding_for_model("gpt-4").name
'cl100k_base'

The module mirrors ``tiktoken`` (0.9 - 0.14): ``get_encoding``, ``encoding_for_model``,
``encoding_name_for_model``, ``list_encoding_names`` and :class:`Encoding` with the same methods,
arguments, defaults and results, including the special-token rules (``allowed_special`` /
``disallowed_special``, ``"all"``, names the encoding lacks are ignored when allowed and searched
for when disallowed), pickling, and the exception types tiktoken raises. Each exception is also a
Relay error, so ``except KeyError`` and ``except relay_context.UnknownModelError`` both catch an
unknown model.

The encodings are Relay's: ``cl100k_base``, ``o200k_base`` and ``o200k_harmony`` ship with the
package; ``r50k_base``, ``p50k_base`` and ``p50k_edit`` load from tiktoken's own cache
(``TIKTOKEN_CACHE_DIR`` / ``DATA_GYM_CACHE_DIR``) when their rank file is there. Relay never
downloads anything; ``gpt2`` (a different file format) is not available.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Callable, Collection, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NoReturn

from relay_context import _core
from relay_context.core.encodings import (
    ENDOFTEXT,
    FIM_MIDDLE,
    FIM_PREFIX,
    FIM_SUFFIX,
    KNOWN_PATTERNS,
    SHIPPED_ENCODINGS,
    PatternFamily,
)
from relay_context.core.model_encodings import (
    encoding_name_for_model as _relay_encoding_name_for_model,
)
from relay_context.core.tokenizer import TokenCounter
from relay_context.errors import (
    DisallowedSpecialTokenError,
    InvalidArgumentError,
    NotATokenError,
    UnknownEncodingError,
    UnknownModelError,
    UnknownModelKeyError,
    UnknownTokenIdError,
    UnknownTokenKeyError,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "Encoding",
    "encoding_for_model",
    "encoding_name_for_model",
    "get_encoding",
    "list_encoding_names",
]

_PATTERN_OF: dict[PatternFamily, str] = {}
for _pattern, _family in KNOWN_PATTERNS.items():
    _PATTERN_OF.setdefault(_family, _pattern)  # the first spelling is tiktoken's current one

# Legacy encodings, read from tiktoken's cache when their rank file is there (never downloaded).
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
_R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
_P50K_SHA256 = "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069"
_LEGACY: dict[str, tuple[str, str, dict[str, int]]] = {
    "r50k_base": ("r50k_base.tiktoken", _R50K_SHA256, {ENDOFTEXT: 50256}),
    "p50k_base": ("p50k_base.tiktoken", _P50K_SHA256, {ENDOFTEXT: 50256}),
    "p50k_edit": (
        "p50k_base.tiktoken",
        _P50K_SHA256,
        {ENDOFTEXT: 50256, FIM_PREFIX: 50281, FIM_MIDDLE: 50282, FIM_SUFFIX: 50283},
    ),
}
#: tiktoken's explicit vocabulary sizes (p50k_base has 24 unused ids below its special token).
_LEGACY_N_VOCAB = {"p50k_base": 50281}

#: Models of the legacy encodings, which Relay's own model map leaves out (tiktoken maps them).
_LEGACY_MODELS: dict[str, str] = {
    **dict.fromkeys(["text-davinci-003", "text-davinci-002"], "p50k_base"),
    **dict.fromkeys(
        [
            "code-davinci-002",
            "code-davinci-001",
            "code-cushman-002",
            "code-cushman-001",
            "davinci-codex",
            "cushman-codex",
        ],
        "p50k_base",
    ),
    **dict.fromkeys(["text-davinci-edit-001", "code-davinci-edit-001"], "p50k_edit"),
    **dict.fromkeys(
        [
            "text-davinci-001",
            "text-curie-001",
            "text-babbage-001",
            "text-ada-001",
            "davinci",
            "curie",
            "babbage",
            "ada",
            "text-similarity-davinci-001",
            "text-similarity-curie-001",
            "text-similarity-babbage-001",
            "text-similarity-ada-001",
            "text-search-davinci-doc-001",
            "text-search-curie-doc-001",
            "text-search-babbage-doc-001",
            "text-search-ada-doc-001",
            "code-search-babbage-code-001",
            "code-search-ada-code-001",
        ],
        "r50k_base",
    ),
    "gpt2": "gpt2",
    "gpt-2": "gpt2",
}

#: Second names tiktoken gives a special token id (decoding gives the encoding's own name).
_ALIASES: dict[str, dict[str, int]] = {"o200k_harmony": {"<|reserved_200018|>": 200018}}

_lock = threading.RLock()
_ENCODINGS: dict[str, Encoding] = {}


def _tiktoken_cache_dir() -> Path | None:
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        value = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        value = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        value = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return Path(value) if value else None


def _legacy_rank_file(name: str) -> bytes | None:
    file, sha256, _ = _LEGACY[name]
    cache = _tiktoken_cache_dir()
    if cache is None:
        return None
    path = cache / hashlib.sha1((_BLOB + file).encode()).hexdigest()
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def _special_token_regex(tokens: frozenset[str]) -> re.Pattern[str]:
    return _special_token_regex_cached(tokens)


@functools.lru_cache(maxsize=128)
def _special_token_regex_cached(tokens: frozenset[str]) -> re.Pattern[str]:
    inner = "|".join(re.escape(token) for token in tokens)
    return re.compile(f"({inner})")


def raise_disallowed_special_token(token: str) -> NoReturn:
    """Raises tiktoken's error (a ``ValueError``) for a disallowed special token in the text."""
    raise DisallowedSpecialTokenError(
        f"Encountered text corresponding to disallowed special token {token!r}.\n"
        "If you want this text to be encoded as a special token, "
        f"pass it to `allowed_special`, e.g. `allowed_special={{{token!r}, ...}}`.\n"
        f"If you want this text to be encoded as normal text, disable the check for this token "
        f"by passing `disallowed_special=(enc.special_tokens_set - {{{token!r}}})`.\n"
        "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )


def _rank_file_bytes(mergeable_ranks: dict[bytes, int]) -> bytes:
    lines = [
        base64.b64encode(token) + b" " + str(rank).encode()
        for token, rank in sorted(mergeable_ranks.items(), key=lambda item: item[1])
    ]
    return b"\n".join(lines) + b"\n"


class Encoding:
    """tiktoken's ``Encoding`` (same methods and results) on Relay's C++ tokenizer."""

    def __init__(
        self,
        name: str,
        *,
        pat_str: str,
        mergeable_ranks: dict[bytes, int],
        special_tokens: dict[str, int],
        explicit_n_vocab: int | None = None,
    ) -> None:
        """As ``tiktoken.Encoding(...)``; ``pat_str`` must be the pattern of a published
        encoding family (r50k/p50k, cl100k or o200k), which Relay's pre-tokeniser implements."""
        family = PatternFamily.parse(pat_str)
        max_token_value = max(
            max(mergeable_ranks.values()), max(special_tokens.values(), default=0)
        )
        if explicit_n_vocab:
            assert len(mergeable_ranks) + len(special_tokens) == explicit_n_vocab
            assert max_token_value == explicit_n_vocab - 1
        counter = TokenCounter._from_rank_bytes(
            name, family, _rank_file_bytes(mergeable_ranks), special_tokens
        )
        self._setup(counter, pat_str, special_tokens, mergeable_ranks)

    @classmethod
    def _of(
        cls,
        counter: TokenCounter,
        special_tokens: dict[str, int],
        ranks: Callable[[], dict[bytes, int]],
    ) -> Encoding:
        self = cls.__new__(cls)
        self._setup(counter, _PATTERN_OF[counter.family], special_tokens, None)
        self._load_ranks = ranks
        return self

    def _setup(
        self,
        counter: TokenCounter,
        pat_str: str,
        special_tokens: dict[str, int],
        mergeable_ranks: dict[bytes, int] | None,
    ) -> None:
        self.name: str = counter.name
        self._counter = counter
        self._core = counter._core
        self._pat_str: str = pat_str
        self._special_tokens: dict[str, int] = dict(special_tokens)
        self._special_token_values = set(self._special_tokens.values())
        self._ranks: dict[bytes, int] | None = mergeable_ranks
        self._load_ranks: Callable[[], dict[bytes, int]] | None = None
        self._encoder_lock = threading.Lock()
        self._aliases: dict[str, int] = {}
        self.max_token_value: int = counter.n_vocab - 1

    def __repr__(self) -> str:
        return f"<Encoding {self.name!r}>"

    @property
    def _mergeable_ranks(self) -> dict[bytes, int]:
        """Token bytes -> rank (read from the rank file on first use)."""
        if self._ranks is None:
            with self._encoder_lock:
                if self._ranks is None:
                    assert self._load_ranks is not None
                    self._ranks = self._load_ranks()
        return self._ranks

    # --- encoding --------------------------------------------------------------------------------

    def encode_ordinary(self, text: str) -> list[int]:
        """Encodes a string into tokens, ignoring special tokens."""
        return self._counter.encode_ordinary(text)

    def _allowed(
        self,
        text: str,
        allowed_special: Literal["all"] | AbstractSet[str],
        disallowed_special: Literal["all"] | Collection[str],
    ) -> list[str]:
        if allowed_special == "all":
            allowed_special = self.special_tokens_set
        if disallowed_special == "all":
            disallowed_special = self.special_tokens_set - allowed_special
        if disallowed_special:
            if not isinstance(disallowed_special, frozenset):
                disallowed_special = frozenset(disallowed_special)
            if match := _special_token_regex(disallowed_special).search(text):
                raise_disallowed_special_token(match.group())
        # Names the encoding lacks are ignored, as tiktoken does.
        return sorted(t for t in allowed_special if t in self._special_tokens)

    def encode(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[int]:
        """Encodes a string into tokens, with tiktoken's special-token rules.

        Text matching a special token in ``disallowed_special`` (by default every special token
        not allowed) raises ``ValueError``; ``disallowed_special=()`` encodes it as plain text.
        """
        allowed = self._allowed(text, allowed_special, disallowed_special)
        if not allowed:
            return self._counter.encode_ordinary(text)
        aliases = [t for t in allowed if t in self._aliases]
        if aliases and any(alias in text for alias in aliases):
            # A second name of a special token id (the core knows each id by one name): the
            # text splits at it, as at any special token.
            allowed = [t for t in allowed if t not in self._aliases]
            pattern = _special_token_regex(frozenset(aliases))
            ids: list[int] = []
            for i, part in enumerate(pattern.split(text)):
                if i % 2:
                    ids.append(self._aliases[part])
                elif part:
                    ids.extend(self._encode_allowed(part, allowed))
            return ids
        return self._encode_allowed(text, allowed)

    def _encode_allowed(self, text: str, allowed: list[str]) -> list[int]:
        try:
            return self._core.encode(text, allowed, [])
        except TypeError:
            if not isinstance(text, str):
                raise
            scrubbed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
            return self._core.encode(scrubbed, allowed, [])

    def encode_to_numpy(
        self,
        text: str,
        *,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> npt.NDArray[np.uint32]:
        """:meth:`encode` as a numpy array of ``uint32``."""
        import numpy as np

        ids = self.encode(
            text, allowed_special=allowed_special, disallowed_special=disallowed_special
        )
        return np.asarray(ids, dtype=np.uint32)

    def encode_ordinary_batch(self, text: list[str], *, num_threads: int = 8) -> list[list[int]]:
        """:meth:`encode_ordinary` of each text, on ``num_threads`` threads (the C++ encoder runs
        without the GIL), as tiktoken does."""
        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(self.encode_ordinary, text))

    def encode_batch(
        self,
        text: list[str],
        *,
        num_threads: int = 8,
        allowed_special: Literal["all"] | AbstractSet[str] = frozenset(),
        disallowed_special: Literal["all"] | Collection[str] = "all",
    ) -> list[list[int]]:
        """:meth:`encode` of each text."""
        if allowed_special == "all":
            allowed_special = self.special_tokens_set
        if disallowed_special == "all":
            disallowed_special = self.special_tokens_set - allowed_special
        if not isinstance(disallowed_special, frozenset):
            disallowed_special = frozenset(disallowed_special)
        encoder = functools.partial(
            self.encode, allowed_special=allowed_special, disallowed_special=disallowed_special
        )
        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(encoder, text))

    def encode_single_token(self, text_or_bytes: str | bytes) -> int:
        """The id of the token whose text or bytes these are (special tokens included).

        Raises ``KeyError`` when they are not a single token of the vocabulary.
        """
        piece = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else text_or_bytes
        rank = self._mergeable_ranks.get(piece)
        if rank is not None:
            return rank
        try:
            special = piece.decode("utf-8")
        except UnicodeDecodeError:
            special = None
        if special is not None and special in self._special_tokens:
            return self._special_tokens[special]
        raise NotATokenError(piece)

    # --- decoding --------------------------------------------------------------------------------

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """Decodes a list of tokens into bytes."""
        try:
            return self._core.decode_bytes(list(tokens))
        except UnknownTokenIdError as exc:
            bad = next((t for t in tokens if not self._has_token(t)), None)
            raise UnknownTokenKeyError(f"Invalid token for decoding: {bad}") from exc

    def _has_token(self, token: int) -> bool:
        try:
            self._core.token_bytes(token)
        except (UnknownTokenIdError, TypeError):
            return False
        return True

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """Decodes a list of tokens into a string (lossy by default: see ``errors``)."""
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def decode_single_token_bytes(self, token: int) -> bytes:
        """The bytes of one token (special tokens included); ``KeyError`` for an unknown id."""
        try:
            return self._core.token_bytes(token)
        except UnknownTokenIdError as exc:
            raise UnknownTokenKeyError(token) from exc

    def decode_tokens_bytes(self, tokens: Sequence[int]) -> list[bytes]:
        """The bytes of each token."""
        return [self.decode_single_token_bytes(token) for token in tokens]

    def decode_with_offsets(self, tokens: Sequence[int]) -> tuple[str, list[int]]:
        """The text and, for each token, the index of the first character holding its bytes.

        Raises ``UnicodeDecodeError`` when the tokens do not decode to valid UTF-8.
        """
        token_bytes = self.decode_tokens_bytes(tokens)
        text_len = 0
        offsets = []
        for token in token_bytes:
            offsets.append(max(0, text_len - (0x80 <= token[0] < 0xC0)))
            text_len += sum(1 for c in token if not 0x80 <= c < 0xC0)
        text = b"".join(token_bytes).decode("utf-8", errors="strict")
        return text, offsets

    def decode_batch(
        self, batch: Sequence[Sequence[int]], *, errors: str = "replace", num_threads: int = 8
    ) -> list[str]:
        """:meth:`decode` of each list of tokens, on ``num_threads`` threads."""
        decoder = functools.partial(self.decode, errors=errors)
        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(decoder, batch))

    def decode_bytes_batch(
        self, batch: Sequence[Sequence[int]], *, num_threads: int = 8
    ) -> list[bytes]:
        """:meth:`decode_bytes` of each list of tokens, on ``num_threads`` threads."""
        with ThreadPoolExecutor(num_threads) as pool:
            return list(pool.map(self.decode_bytes, batch))

    # --- the rest --------------------------------------------------------------------------------

    def token_byte_values(self) -> list[bytes]:
        """The bytes of every mergeable token, sorted."""
        return sorted(self._mergeable_ranks)

    @property
    def eot_token(self) -> int:
        """The id of ``<|endoftext|>``."""
        return self._special_tokens[ENDOFTEXT]

    @functools.cached_property
    def special_tokens_set(self) -> set[str]:
        """The special tokens' texts."""
        return set(self._special_tokens)

    def is_special_token(self, token: int) -> bool:
        """Whether ``token`` is the id of a special token."""
        assert isinstance(token, int)
        return token in self._special_token_values

    @property
    def n_vocab(self) -> int:
        """``max_token_value + 1``."""
        return self.max_token_value + 1

    @property
    def counter(self) -> TokenCounter:
        """The Relay :class:`~relay_context.TokenCounter` behind this encoding."""
        return self._counter

    # --- pickling, as tiktoken: registered encodings by name -------------------------------------

    def __getstate__(self) -> object:
        if self is _ENCODINGS.get(self.name):
            return self.name
        return {
            "name": self.name,
            "pat_str": self._pat_str,
            "mergeable_ranks": self._mergeable_ranks,
            "special_tokens": self._special_tokens,
        }

    def __setstate__(self, value: object) -> None:
        if isinstance(value, str):
            self.__dict__ = get_encoding(value).__dict__
            return
        assert isinstance(value, dict)
        self.__init__(**value)  # type: ignore[misc]


def _parse_ranks(read: Callable[[], bytes]) -> dict[bytes, int]:
    ranks: dict[bytes, int] = _core.tokenizer.parse_tiktoken_ranks(read())
    return ranks


def _build(name: str) -> Encoding | None:
    if name in SHIPPED_ENCODINGS:
        spec = SHIPPED_ENCODINGS[name]
        load = functools.partial(_parse_ranks, spec.read_ranks)
        aliases = _ALIASES.get(name)
        if aliases is None:
            return Encoding._of(TokenCounter(name), dict(spec.special_tokens), load)
        enc = Encoding._of(TokenCounter(name), {**spec.special_tokens, **aliases}, load)
        enc._aliases = dict(aliases)
        return enc
    if name in _LEGACY:
        ranks = _legacy_rank_file(name)
        if ranks is None:
            return None
        special = _LEGACY[name][2]
        counter = TokenCounter._from_rank_bytes(name, PatternFamily.R50K, ranks, special)
        enc = Encoding._of(counter, special, functools.partial(_parse_ranks, lambda: ranks))
        if name in _LEGACY_N_VOCAB:
            enc.max_token_value = _LEGACY_N_VOCAB[name] - 1
        return enc
    return None


def get_encoding(encoding_name: str) -> Encoding:
    """The encoding of this name (one shared instance per name), as ``tiktoken.get_encoding``.

    An unknown or unavailable name raises ``ValueError``
    (:class:`~relay_context.errors.UnknownEncodingError`).
    """
    if not isinstance(encoding_name, str):
        raise InvalidArgumentError(f"Expected a string in get_encoding, got {type(encoding_name)}")
    enc = _ENCODINGS.get(encoding_name)
    if enc is not None:
        return enc
    with _lock:
        enc = _ENCODINGS.get(encoding_name)
        if enc is None:
            enc = _build(encoding_name)
            if enc is None:
                hint = ""
                if encoding_name in _LEGACY:
                    hint = " (its rank file is not in tiktoken's cache; Relay does not download)"
                raise UnknownEncodingError(
                    f"Unknown encoding {encoding_name}{hint}.\n"
                    f"Available encodings: {list_encoding_names()}"
                )
            _ENCODINGS[encoding_name] = enc
        return enc


def list_encoding_names() -> list[str]:
    """The names :func:`get_encoding` accepts here (shipped ones, and legacy ones in the cache)."""
    legacy = [name for name in _LEGACY if _legacy_rank_file(name) is not None]
    return [*legacy, *SHIPPED_ENCODINGS]


def encoding_name_for_model(model_name: str) -> str:
    """The encoding name of a model, as ``tiktoken.model.encoding_name_for_model``.

    Relay's model map (``relay_context.core.model_encodings``: exact names, then the longest
    prefix) knows every model tiktoken knows, with the same encoding, and a few more (``o4-*``,
    ``gpt-4.5*``, ``openai/gpt-4o``); fine-tunes of ``gpt-4.1`` are ``o200k_base`` here where
    tiktoken's first-prefix rule says ``cl100k_base``.

    Raises ``KeyError`` (:class:`~relay_context.errors.UnknownModelKeyError`, also an
    :class:`~relay_context.errors.UnknownModelError`) for a model it does not know.
    """
    if isinstance(model_name, str) and model_name in _LEGACY_MODELS:
        return _LEGACY_MODELS[model_name]
    try:
        return _relay_encoding_name_for_model(model_name)
    except UnknownModelError:
        raise UnknownModelKeyError(
            f"Could not automatically map {model_name} to a tokeniser. "
            "Please use `tiktoken.get_encoding` to explicitly get the tokeniser you expect."
        ) from None


def encoding_for_model(model_name: str) -> Encoding:
    """The encoding of a model, as ``tiktoken.encoding_for_model`` (``KeyError`` if unknown)."""
    return get_encoding(encoding_name_for_model(model_name))
