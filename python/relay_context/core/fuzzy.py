"""Fuzzy string matching with the same scores as ``rapidfuzz``, and a near-duplicate index.

>>> from relay_context import fuzzy
>>> fuzzy.ratio("this is a test", "this is a test!")
96.55172413793103
>>> fuzzy.token_set_ratio("fuzzy was a bear", "fuzzy fuzzy was a bear")
100.0
>>> fuzzy.extract("new york jets", ["new york giants", "new york jets", "dallas"], limit=2)
[('new york jets', 100.0, 1), ('new york giants', 78.57142857142857, 0)]

Scores are computed on Unicode code points by the C++ core (bit-parallel Levenshtein and LCS)
and equal rapidfuzz's bit for bit: :func:`ratio` is ``rapidfuzz.fuzz.ratio``,
:func:`token_set_ratio` is ``rapidfuzz.fuzz.token_set_ratio``, and the two normalised
similarities are ``rapidfuzz.distance.Levenshtein/Indel.normalized_similarity``. A score below
``score_cutoff`` is returned as 0, as in rapidfuzz.

:class:`NearDuplicateIndex` finds every stored text whose shingle Jaccard similarity to a query
reaches a threshold (MinHash-LSH candidates, each verified exactly). See docs/fuzzy.md.
"""

from __future__ import annotations

import math
import os
import sys
from array import array
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, TypeAlias, cast

from relay_context import _core
from relay_context.checks import check_int
from relay_context.core import fuzzy_utils as utils
from relay_context.core.fuzzy_utils import default_process
from relay_context.errors import InputTypeError, InvalidArgumentError, InvalidScoreCutoffError

__all__ = [
    "CollapsedTexts",
    "EarlierTexts",
    "NearDuplicate",
    "NearDuplicateIndex",
    "QRatio",
    "ScorerName",
    "TokenSetChoices",
    "WRatio",
    "default_process",
    "extract",
    "extractOne",
    "indel_normalized_similarity",
    "levenshtein_normalized_similarity",
    "partial_ratio",
    "ratio",
    "scores",
    "shingle_jaccard",
    "token_set_ratio",
    "token_sort_ratio",
    "utils",
]

_fz = _core.fuzzy

ScorerName = Literal[
    "ratio",
    "token_set_ratio",
    "partial_ratio",
    "token_sort_ratio",
    "WRatio",
    "QRatio",
    "levenshtein_normalized_similarity",
    "indel_normalized_similarity",
]

_SCORERS: dict[str, _core.fuzzy.Scorer] = {
    "ratio": _fz.Scorer.RATIO,
    "token_set_ratio": _fz.Scorer.TOKEN_SET_RATIO,
    "partial_ratio": _fz.Scorer.PARTIAL_RATIO,
    "token_sort_ratio": _fz.Scorer.TOKEN_SORT_RATIO,
    "WRatio": _fz.Scorer.WRATIO,
    "QRatio": _fz.Scorer.QRATIO,
    "levenshtein_normalized_similarity": _fz.Scorer.LEVENSHTEIN_NORMALIZED,
    "indel_normalized_similarity": _fz.Scorer.INDEL_NORMALIZED,
}
#: Scorers on a 0..1 scale (the others are 0..100).
_UNIT_SCALE = frozenset({"levenshtein_normalized_similarity", "indel_normalized_similarity"})

Processor: TypeAlias = Callable[[str], str]
#: A scorer: a name, one of this module's scorer functions (or rapidfuzz's of the same name, run
#: here in C++), or any callable ``scorer(query, choice, score_cutoff=...) -> float``.
Scorer: TypeAlias = "ScorerName | Callable[..., float]"


#: Defaults of :class:`NearDuplicateIndex` (see docs/fuzzy.md for the recall trade-off).
DEFAULT_SHINGLE_SIZE = 3
DEFAULT_NUM_PERM = 64
DEFAULT_BANDS = 16
DEFAULT_SEED = 0x5EED5EED
DEFAULT_THRESHOLD = 0.8


def _cutoff(value: object) -> float:
    # Fuzz scorers take any number (above 100 every score is 0, as in rapidfuzz); the ranges of
    # the normalised similarities and of extract are checked where they apply.
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"score_cutoff must be a number or None, not {type(value).__name__}")
    return float(value)


def _ranged_cutoff(value: object, top: float) -> float:
    cutoff = _cutoff(value)
    if not 0.0 <= cutoff <= top:
        raise InvalidScoreCutoffError(
            f"score_cutoff must be a number in [0, {top:g}], got {cutoff!r}"
        )
    return cutoff


def _threads(workers: object) -> int:
    if workers == -1 and not isinstance(workers, bool):
        return os.cpu_count() or 1
    return check_int(workers, "workers (or -1 for every core)", minimum=1)


def _scorer(name: object) -> _core.fuzzy.Scorer:
    try:
        return _SCORERS[name]  # type: ignore[index]
    except (KeyError, TypeError):
        raise InvalidArgumentError(
            f"scorer must be one of {sorted(_SCORERS)}, got {name!r}"
        ) from None


def _processed(s1: str, s2: str, processor: Processor | None) -> tuple[str, str]:
    if processor is None:
        return s1, s2
    return processor(s1), processor(s2)


def ratio(
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.fuzz.ratio``: the Indel normalised similarity x 100, in [0, 100].

    ``score_cutoff``: a score below it is returned as 0 (above 100, every score is 0).
    ``processor`` (e.g. :func:`default_process`) is applied to both texts first.
    """
    if score_cutoff is None and processor is None:
        return _fz.ratio(s1, s2, 0.0)
    s1, s2 = _processed(s1, s2, processor)
    return _fz.ratio(s1, s2, _cutoff(score_cutoff))


def token_set_ratio(
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.fuzz.token_set_ratio``: compares the word sets (split as ``str.split()``).

    100 when one side's words include the other's; 0 when either side has no word.
    """
    s1, s2 = _processed(s1, s2, processor)
    return _fz.token_set_ratio(s1, s2, _cutoff(score_cutoff))


def partial_ratio(
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.fuzz.partial_ratio``: the best :func:`ratio` of the shorter text against the
    windows of the longer one (100 when one contains the other)."""
    s1, s2 = _processed(s1, s2, processor)
    return _fz.partial_ratio(s1, s2, _cutoff(score_cutoff))


def token_sort_ratio(
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.fuzz.token_sort_ratio``: :func:`ratio` of the words sorted and re-joined."""
    s1, s2 = _processed(s1, s2, processor)
    return _fz.token_sort_ratio(s1, s2, _cutoff(score_cutoff))


def WRatio(  # noqa: N802 - rapidfuzz's name
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.fuzz.WRatio``: ratio, token and partial scores weighted by the length ratio
    (the default scorer of :func:`extract`); 0 when either text is empty."""
    s1, s2 = _processed(s1, s2, processor)
    return _fz.WRatio(s1, s2, _cutoff(score_cutoff))


def QRatio(  # noqa: N802 - rapidfuzz's name
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.fuzz.QRatio``: :func:`ratio`, but 0 when either text is empty."""
    s1, s2 = _processed(s1, s2, processor)
    return _fz.QRatio(s1, s2, _cutoff(score_cutoff))


def levenshtein_normalized_similarity(
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.distance.Levenshtein.normalized_similarity``: 1 - distance / max length.

    ``score_cutoff`` (0..1): a similarity below it is returned as 0.
    """
    if score_cutoff is None and processor is None:
        return _fz.levenshtein_normalized_similarity(s1, s2, 0.0)
    s1, s2 = _processed(s1, s2, processor)
    return _fz.levenshtein_normalized_similarity(s1, s2, _ranged_cutoff(score_cutoff, 1.0))


def indel_normalized_similarity(
    s1: str, s2: str, score_cutoff: float | None = None, *, processor: Processor | None = None
) -> float:
    """``rapidfuzz.distance.Indel.normalized_similarity``: 1 - indel distance / total length.

    ``score_cutoff`` (0..1): a similarity below it is returned as 0.
    """
    if score_cutoff is None and processor is None:
        return _fz.indel_normalized_similarity(s1, s2, 0.0)
    s1, s2 = _processed(s1, s2, processor)
    return _fz.indel_normalized_similarity(s1, s2, _ranged_cutoff(score_cutoff, 1.0))


_BY_FUNCTION: dict[Callable[..., float], str] = {
    ratio: "ratio",
    token_set_ratio: "token_set_ratio",
    partial_ratio: "partial_ratio",
    token_sort_ratio: "token_sort_ratio",
    WRatio: "WRatio",
    QRatio: "QRatio",
    levenshtein_normalized_similarity: "levenshtein_normalized_similarity",
    indel_normalized_similarity: "indel_normalized_similarity",
}


def _rapidfuzz_name(scorer: object) -> str | None:
    # rapidfuzz's own scorers run in C++ here (same scores); it is never imported by Relay.
    fuzz = sys.modules.get("rapidfuzz.fuzz")
    if fuzz is not None:
        for name in ("ratio", "token_set_ratio", "partial_ratio", "token_sort_ratio"):
            if getattr(fuzz, name, None) is scorer:
                return name
        for name in ("WRatio", "QRatio"):
            if getattr(fuzz, name, None) is scorer:
                return name
    distance = sys.modules.get("rapidfuzz.distance")
    if distance is not None:
        for module, name in (
            ("Levenshtein", "levenshtein_normalized_similarity"),
            ("Indel", "indel_normalized_similarity"),
        ):
            sub = getattr(distance, module, None)
            if sub is not None and getattr(sub, "normalized_similarity", None) is scorer:
                return name
    return None


def _resolve(scorer: object) -> tuple[str | None, Callable[..., float] | None]:
    """(name of a C++ scorer, None) or (None, a Python callable)."""
    if isinstance(scorer, str):
        _scorer(scorer)
        return scorer, None
    if callable(scorer):
        try:
            name = _BY_FUNCTION.get(scorer)
        except TypeError:  # unhashable callable
            name = None
        if name is None:
            name = _rapidfuzz_name(scorer)
        if name is not None:
            return name, None
        return None, cast("Callable[..., float]", scorer)
    raise InvalidArgumentError(
        f"scorer must be one of {sorted(_SCORERS)} or a callable, got {scorer!r}"
    )


def scores(
    query: str,
    choices: Sequence[str],
    *,
    scorer: Scorer = "ratio",
    processor: Processor | None = None,
    score_cutoff: float | None = None,
    workers: int = 1,
) -> array[float]:
    """The score of ``query`` against every choice, in order (one row of rapidfuzz's ``cdist``).

    Returns an ``array('d')`` (indexable and iterable like a list; ``list(...)`` converts it),
    which avoids one float object per choice. The query is preprocessed once; the scoring runs
    without the GIL, on ``workers`` threads (-1: one per core).
    """
    name, function = _resolve(scorer)
    texts = _choice_list(choices)
    if processor is not None:
        query = processor(query)
        texts = [processor(text) for text in texts]
    out = array("d")
    if function is not None:
        kwargs = {} if score_cutoff is None else {"score_cutoff": score_cutoff}
        out.extend(float(function(query, text, **kwargs)) for text in texts)
        return out
    assert name is not None
    cutoff = _ranged_cutoff(score_cutoff, 1.0) if name in _UNIT_SCALE else _cutoff(score_cutoff)
    raw = _fz.score_many(_scorer(name), query, texts, cutoff, _threads(workers))
    out.frombytes(raw)
    return out


class TokenSetChoices:
    """A fixed list of texts scored with :func:`token_set_ratio` against many queries: each
    text's word set is made once, so a query costs only its own split and the comparisons.

    >>> TokenSetChoices(["new york jets", "dallas"]).scores("jets new york")[0]
    100.0
    """

    __slots__ = ("_core",)

    def __init__(self, choices: Sequence[str]) -> None:
        self._core = _fz.TokenSetChoices(_choice_list(choices))

    def scores(
        self, query: str, *, score_cutoff: float | None = None, workers: int = 1
    ) -> array[float]:
        """``token_set_ratio(query, choice)`` for every choice, in order (as :func:`scores`)."""
        out = array("d")
        out.frombytes(self._core.scores(query, _cutoff(score_cutoff), _threads(workers)))
        return out

    def __len__(self) -> int:
        return len(self._core)


def _is_none(value: object) -> bool:
    # rapidfuzz skips None and NaN choices (pandas' missing values).
    return value is None or (isinstance(value, float) and math.isnan(value))


def _keyed(choices: object) -> tuple[Sequence[Any], list[Hashable] | None]:
    """(values, keys): keys are None for a plain sequence (then keys are the positions)."""
    items = getattr(choices, "items", None)
    if callable(items) and not isinstance(choices, (str, bytes)):
        # A dict or anything dict-like with items(), such as a pandas Series (index labels).
        pairs = list(items())
        return [value for _, value in pairs], [key for key, _ in pairs]
    return _choice_list(choices), None


def _present(values: Sequence[Any]) -> tuple[list[int], list[Any]]:
    """The positions and values of the choices that are not None or NaN."""
    positions = [i for i, value in enumerate(values) if not _is_none(value)]
    return positions, [values[i] for i in positions]


def extract(
    query: str | None,
    choices: Sequence[str | None] | Mapping[Any, str | None],
    *,
    scorer: Scorer = "WRatio",
    processor: Processor | None = None,
    limit: int | None = 5,
    score_cutoff: float | None = None,
    workers: int = 1,
) -> list[tuple[str, float, Any]]:
    """The best ``limit`` choices as ``(choice, score, key)``, best first, ties in choice order:
    ``rapidfuzz.process.extract``.

    ``choices`` is a sequence (``key`` is the position), a dict (the choice is a value, ``key``
    its key), or anything with ``items()`` such as a pandas Series (``key`` is the index label).
    ``None`` and NaN choices are skipped; a ``None`` query gives ``[]``. ``scorer`` is a name, a
    scorer function of this module (or rapidfuzz's), or any callable; the default is
    :func:`WRatio`. ``processor`` is applied to the query and to every choice. ``limit=None``
    returns every choice with ``score >= score_cutoff``; ``limit=0`` returns ``[]``.
    """
    if query is None:
        return []
    top = None if limit is None else check_int(limit, "limit", minimum=0)
    if top == 0:
        return []
    name, function = _resolve(scorer)
    if function is None:
        assert name is not None
        cutoff = _ranged_cutoff(score_cutoff, 1.0 if name in _UNIT_SCALE else 100.0)
    else:
        cutoff = _cutoff(score_cutoff)
    values, keys = _keyed(choices)
    positions: list[int] | None = None
    texts: Sequence[Any] = values
    if keys is not None or processor is not None or None in values:
        positions, texts = _present(values)
    if processor is not None:
        query = processor(query)
        texts = [processor(text) for text in texts]

    def run(texts: Sequence[Any]) -> list[tuple[int, float]]:
        if function is not None:
            return _extract_python(function, query, texts, score_cutoff, top)
        assert name is not None
        hits = _fz.extract(
            _scorer(name), query, texts, cutoff, top if top else len(texts), _threads(workers)
        )
        return [(hit.index, hit.score) for hit in hits]

    try:
        found = run(texts)
    except InputTypeError:
        # NaN choices (pandas' missing values) are found only when a choice is not a str.
        if positions is not None or not any(map(_is_none, values)):
            raise
        positions, texts = _present(values)
        found = run(texts)
    out: list[tuple[str, float, Any]] = []
    for index, score in found:
        original = index if positions is None else positions[index]
        key: Any = original if keys is None else keys[original]
        out.append((values[original], score, key))
    return out


def _extract_python(
    function: Callable[..., float],
    query: str,
    texts: Sequence[str],
    score_cutoff: float | None,
    top: int | None,
) -> list[tuple[int, float]]:
    kwargs = {} if score_cutoff is None else {"score_cutoff": score_cutoff}
    cutoff = _cutoff(score_cutoff)
    scored = []
    for index, text in enumerate(texts):
        score = function(query, text, **kwargs)
        if score >= cutoff:
            scored.append((index, score))
    scored.sort(key=lambda hit: -hit[1])  # stable: ties keep choice order
    return scored if top is None else scored[:top]


def extractOne(  # noqa: N802 - rapidfuzz's name
    query: str | None,
    choices: Sequence[str | None] | Mapping[Any, str | None],
    *,
    scorer: Scorer = "WRatio",
    processor: Processor | None = None,
    score_cutoff: float | None = None,
    workers: int = 1,
) -> tuple[str, float, Any] | None:
    """The best choice as ``(choice, score, key)``, or None: ``rapidfuzz.process.extractOne``
    (same arguments and rules as :func:`extract`)."""
    best = extract(
        query,
        choices,
        scorer=scorer,
        processor=processor,
        limit=1,
        score_cutoff=score_cutoff,
        workers=workers,
    )
    return best[0] if best else None


def _choice_list(value: object) -> Sequence[Any]:
    # Lists and tuples go to the core as they are (it checks every item is a str).
    if isinstance(value, (list, tuple)):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InputTypeError(f"choices must be a sequence of str, not {type(value).__name__}")
    return list(value)


def shingle_jaccard(s1: str, s2: str, shingle_size: int = DEFAULT_SHINGLE_SIZE) -> float:
    """Exact Jaccard similarity of the two texts' sets of ``shingle_size``-code-point substrings.

    A text shorter than ``shingle_size`` is one shingle; two empty texts score 1.
    """
    return _fz.shingle_jaccard(s1, s2, check_int(shingle_size, "shingle_size", minimum=1))


class NearDuplicate(NamedTuple):
    """One match of :meth:`NearDuplicateIndex.query`."""

    key: str
    score: float  # exact shingle Jaccard similarity, in [threshold, 1]


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _check_key(key: object) -> str:
    # Keys are stored as UTF-8 in the core, so they must be encodable.
    if not isinstance(key, str):
        raise InputTypeError(f"key must be a str, not {type(key).__name__}")
    if not key.isascii() and _has_lone_surrogate(key):
        raise InvalidArgumentError(f"key {key!r} contains a lone surrogate")
    return key


def _threshold(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"threshold must be a number, not {type(value).__name__}")
    return float(value)  # the range (0, 1] is checked by the core


class EarlierTexts:
    """Texts signed by :meth:`NearDuplicateIndex.similar_earlier_kept`: ``similar[j]`` are the
    positions of the earlier texts similar to text ``j`` (as :meth:`~NearDuplicateIndex.
    similar_earlier` returns them); the signatures are kept for
    :meth:`~NearDuplicateIndex.add_earlier`."""

    __slots__ = ("_core", "options", "similar")

    def __init__(self, core: _fz.EarlierBatch, options: tuple[int, int, int, int]) -> None:
        self._core = core
        #: (shingle_size, num_perm, bands, seed) of the index that signed the texts.
        self.options = options
        self.similar: list[list[int]] = core.similar

    def __len__(self) -> int:
        return len(self._core)


class CollapsedTexts:
    """Texts run through :meth:`NearDuplicateIndex.collapse_earlier`: ``into[j]`` is the
    position of the later text that text ``j`` collapsed into, or -1 (it survived); the
    signatures of every text are kept for :meth:`~NearDuplicateIndex.add_earlier` and for
    storing (:meth:`signature`)."""

    __slots__ = ("_core", "into", "options")

    def __init__(self, core: _fz.EarlierBatch, options: tuple[int, int, int, int]) -> None:
        self._core = core
        #: (shingle_size, num_perm, bands, seed) of the index that signed the texts.
        self.options = options
        self.into: list[int] = core.into

    def signature(self, position: int) -> bytes:
        """The signature of the text at ``position`` (as :meth:`NearDuplicateIndex.signature`
        makes it, or as it was given)."""
        return self._core.signature(check_int(position, "position", minimum=0))

    def __len__(self) -> int:
        return len(self._core)


class NearDuplicateIndex:
    """Finds stored texts similar to a query: MinHash-LSH candidates, verified exactly.

    >>> index = NearDuplicateIndex()
    >>> index.add("greeting", "Hello, how can I help you today?")
    >>> index.query("Hello, how can I help you today??", threshold=0.8)
    [NearDuplicate(key='greeting', score=0.967741935483871)]

    Similarity is the Jaccard similarity of the texts' sets of ``shingle_size``-code-point
    substrings. Each text gets ``num_perm`` MinHash values cut into ``bands`` bands of
    ``rows = num_perm // bands``; texts sharing a band are candidates, and only candidates whose
    exact similarity reaches the threshold are returned (no false matches). A true match of
    similarity ``s`` is a candidate with probability ``1 - (1 - s**rows)**bands``
    (:meth:`candidate_probability`): with the defaults (64 permutations, 16 bands of 4 rows) 0.64 at
    s = 0.5, 0.988 at 0.7, 0.9998 at 0.8. More bands raise recall at low similarity and cost more
    candidates to verify per query.

    Thread-safe: queries run in parallel; adds and removes are exclusive. The C++ work runs
    without the GIL.
    """

    __slots__ = ("_core", "bands", "num_perm", "seed", "shingle_size")

    def __init__(
        self,
        *,
        shingle_size: int = DEFAULT_SHINGLE_SIZE,
        num_perm: int = DEFAULT_NUM_PERM,
        bands: int = DEFAULT_BANDS,
        seed: int = DEFAULT_SEED,
    ) -> None:
        """``bands`` must divide ``num_perm``; ``shingle_size`` in 1..64, ``num_perm`` 1..1024."""
        self.shingle_size = check_int(shingle_size, "shingle_size", minimum=1)
        self.num_perm = check_int(num_perm, "num_perm", minimum=1)
        self.bands = check_int(bands, "bands", minimum=1)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise InputTypeError(f"seed must be an int, not {type(seed).__name__}")
        if not 0 <= seed < 2**64:
            raise InvalidArgumentError(f"seed must be in [0, 2**64), got {seed}")
        self.seed = seed
        self._core = _fz.NearDuplicateIndex(shingle_size, num_perm, bands, seed)

    @property
    def rows(self) -> int:
        """MinHash values per band (``num_perm // bands``)."""
        return self._core.rows

    def candidate_probability(self, similarity: float) -> float:
        """Probability that a stored text of this Jaccard similarity to a query is found."""
        return _fz.candidate_probability(_threshold(similarity), self.bands, self.rows)

    def add(self, key: str, text: str) -> None:
        """Stores ``text`` under ``key`` (replacing what ``key`` held)."""
        self._core.add(_check_key(key), text)

    def add_many(
        self, items: Mapping[str, str] | Iterable[tuple[str, str]], *, workers: int = 1
    ) -> None:
        """Stores many ``(key, text)`` pairs; hashing runs on ``workers`` threads (-1: all)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        keys: list[str] = []
        texts: list[str] = []
        for pair in pairs:
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise InputTypeError(f"items must be (key, text) pairs, got {pair!r}")
            keys.append(_check_key(pair[0]))
            texts.append(pair[1])
        self._core.add_many(keys, texts, _threads(workers))

    def remove(self, key: str) -> bool:
        """Removes ``key``; False when it was not stored."""
        return self._core.remove(_check_key(key))

    def query(self, text: str, threshold: float = DEFAULT_THRESHOLD) -> list[NearDuplicate]:
        """Stored texts with similarity >= ``threshold`` (in (0, 1]), best first, ties by key."""
        hits = self._core.query(text, _threshold(threshold))
        return [NearDuplicate(hit.key, hit.score) for hit in hits]

    def similar_earlier(
        self, texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD
    ) -> list[list[int]]:
        """For each text, the positions of the earlier ``texts`` that :meth:`query` would return
        were they stored, ascending: "query, then add" over a sequence in one call, each text
        hashed once. The index's options are used; its entries are neither read nor changed."""
        return self._core.similar_earlier(list(texts), _threshold(threshold))

    def similar_earlier_kept(
        self, texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD
    ) -> EarlierTexts:
        """:meth:`similar_earlier`, keeping the texts and their MinHash signatures so that the
        ones chosen afterwards go in with :meth:`add_earlier` without being hashed again."""
        core = self._core.similar_earlier_kept(list(texts), _threshold(threshold))
        return EarlierTexts(core, (self.shingle_size, self.num_perm, self.bands, self.seed))

    def signature(self, text: str) -> bytes:
        """The MinHash-LSH signature of ``text`` under this index's options (its ``bands`` band
        keys, 4 bytes each, little-endian): what :meth:`collapse_earlier` takes instead of
        signing the text again, for a caller that stores it with the text."""
        return self._core.signature(text)

    def collapse_earlier(
        self,
        texts: Sequence[str],
        *,
        ratio_cutoff: float,
        signatures: Sequence[bytes | None] | None = None,
        pinned: Sequence[bool] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> CollapsedTexts:
        """Collapses near-duplicates along ``texts`` as adding them one at a time would, where
        each text first removes the earlier texts still held that :meth:`query` would return
        (shingle Jaccard >= ``threshold``) and that :func:`ratio` scores >= ``ratio_cutoff``
        against it, or that equal it; then it is held itself unless ``pinned``. One call, in
        C++: the result's ``into`` says where each text went. ``signatures[j]`` (bytes from
        :meth:`signature`, or ``None``) saves signing text ``j`` again. The index's options are
        used; its entries are neither read nor changed."""
        n = len(texts)
        known: list[bytes | None] = [None] * n if signatures is None else list(signatures)
        if len(known) != n:
            raise InvalidArgumentError(f"{len(known)} signatures for {n} texts")
        flags = bytes(n) if pinned is None else bytes(map(bool, pinned))
        if len(flags) != n:
            raise InvalidArgumentError(f"{len(flags)} pinned flags for {n} texts")
        for item in known:
            if item is not None and type(item) is not bytes:
                kind = type(item).__name__
                raise InputTypeError(f"a signature must be bytes or None, not {kind}")
        core = self._core.collapse_earlier(
            list(texts), known, flags, _threshold(threshold), float(_cutoff(ratio_cutoff))
        )
        return CollapsedTexts(core, (self.shingle_size, self.num_perm, self.bands, self.seed))

    def add_earlier(
        self, batch: EarlierTexts | CollapsedTexts, items: Iterable[tuple[int, str]]
    ) -> None:
        """Stores ``batch``'s text at each position under its key (``(position, key)`` pairs),
        as :meth:`add` would, from the signatures made by :meth:`similar_earlier_kept` (with the
        same options: an index of other options raises ``InvalidArgumentError``)."""
        if batch.options != (self.shingle_size, self.num_perm, self.bands, self.seed):
            raise InvalidArgumentError("the batch was made by an index with other options")
        pairs = list(items)
        for item in pairs:
            if type(item) is not tuple or len(item) != 2:
                raise InputTypeError(f"items must be (position, key) pairs, got {item!r}")
        self.add_earlier_keys(batch, [p for p, _ in pairs], [k for _, k in pairs])

    def add_earlier_keys(
        self, batch: EarlierTexts | CollapsedTexts, positions: Sequence[int], keys: Sequence[str]
    ) -> None:
        """:meth:`add_earlier` with the positions and keys as two lists (``keys[i]`` for the
        text at ``positions[i]``): what a caller holding both as columns passes."""
        if batch.options != (self.shingle_size, self.num_perm, self.bands, self.seed):
            raise InvalidArgumentError("the batch was made by an index with other options")
        positions = list(positions)
        keys = list(keys)
        if len(positions) != len(keys):
            raise InvalidArgumentError(f"{len(keys)} keys for {len(positions)} positions")
        # One pass of cheap checks (a first window adds hundreds): ints >= 0, encodable keys.
        if not all(type(p) is int for p in positions):
            bad = next(p for p in positions if type(p) is not int)
            raise InputTypeError(f"position must be an int, not {type(bad).__name__}")
        if positions and min(positions) < 0:
            raise InvalidArgumentError(f"position must be >= 0, got {min(positions)}")
        if positions and max(positions) >= len(batch):
            raise InvalidArgumentError(
                f"position {max(positions)} is not in the batch of {len(batch)} texts"
            )
        if not all(type(k) is str and k.isascii() for k in keys):
            keys = [_check_key(k) for k in keys]
        self._core.add_from(batch._core, positions, keys)

    def clear(self) -> None:
        """Removes every entry."""
        self._core.clear()

    def __len__(self) -> int:
        return len(self._core)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str) or (not key.isascii() and _has_lone_surrogate(key)):
            return False  # never stored: add() rejects such keys
        return self._core.contains(key)

    def __repr__(self) -> str:
        return (
            f"NearDuplicateIndex(len={len(self)}, shingle_size={self.shingle_size}, "
            f"num_perm={self.num_perm}, bands={self.bands})"
        )
