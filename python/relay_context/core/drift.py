"""Topic drift and relevance: TF-IDF cosine similarity over words, computed in C++.

The context engine uses :func:`topic_drift` to report how far a conversation's recent turns have
moved from its earlier topic, and :func:`relevance_scores` to value messages by how much they
share with the query (or the latest user turn) when it packs a context window.

Words are runs of ASCII letters and digits (lower-cased) or of non-ASCII characters, at least
two bytes long. IDF is smoothed: ``ln((1 + N) / (1 + df)) + 1`` over the N messages involved.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay_context._core import drift as _drift
from relay_context.errors import InputTypeError


def _texts(what: str, texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InputTypeError(f"{what} must be a sequence of str, not {type(texts).__name__}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise InputTypeError(f"{what}[{i}] must be a str, not {type(text).__name__}")
    return out


def topic_drift(earlier: Sequence[str], recent: Sequence[str]) -> float:
    """How far the topic of ``recent`` moved from that of ``earlier``, in ``[0, 1]``.

    ``1 - cosine`` of the two windows' TF-IDF vectors: 0 means the same words in the same
    proportions, 1 means no word in common. 0 when either window has no words.
    """
    return _drift.topic_drift(_texts("earlier", earlier), _texts("recent", recent))


def relevance_scores(query: str, texts: Sequence[str]) -> list[float]:
    """Cosine similarity in ``[0, 1]`` of ``query`` with each text (TF-IDF weighted)."""
    if not isinstance(query, str):
        raise InputTypeError(f"query must be a str, not {type(query).__name__}")
    return _drift.relevance(query, _texts("texts", texts))


class RelevanceIndex:
    """The words of a growing list of documents, indexed once, so that the relevance of every
    document to a query costs one pass over the query's words rather than a re-tokenisation of
    every document (the context engine keeps one per session and adds each new message)."""

    __slots__ = ("_index",)

    def __init__(self, documents: Sequence[str] = ()) -> None:
        self._index = _drift.RelevanceIndex()
        if documents:
            self.add(documents)

    def add(self, documents: Sequence[str]) -> None:
        """Append ``documents`` (they get the next positions)."""
        self._index.add(_texts("documents", documents))

    def __len__(self) -> int:
        return len(self._index)

    def relevance(self, query: str, included: bytes | None = None) -> list[float]:
        """Cosine similarity of ``query`` with each document, as :func:`relevance_scores`;
        ``included[i] == 0`` leaves document ``i`` out of the IDF statistics (its score is 0)."""
        if not isinstance(query, str):
            raise InputTypeError(f"query must be a str, not {type(query).__name__}")
        if included is None:
            included = b"\x01" * len(self._index)
        return self._index.relevance(query, included)


__all__ = ["RelevanceIndex", "relevance_scores", "topic_drift"]
