"""Collapsing near-duplicate messages before a policy chooses the window.

Two messages of the same role (user or assistant, outside tool exchanges) are near-duplicates
when ``fuzzy.ratio`` (rapidfuzz's normalised Indel similarity, in percent) of their contents is
at least ``threshold * 100``. Candidates come from a MinHash-LSH
:class:`~relay_context.fuzzy.NearDuplicateIndex` over 3-character shingles (candidate Jaccard
>= 0.5, 32 bands of 2 rows: a pair at Jaccard 0.5 is a candidate with probability 0.9999) plus
an exact-text table, and each candidate is verified with ``ratio``, so nothing is collapsed
that is not that similar.

**The latest copy is kept**: the scan goes from the newest message back and an older message
collapses into a newer one it matches. The newest copy sits where the conversation now is (and
the latest user turn is pinned anyway). Pinned messages are never removed (they may still be
what an older copy collapses into); tool calls and results are never touched.
"""

from __future__ import annotations

from collections.abc import Sequence

from relay_context import fuzzy
from relay_context.engine.models import MessageRole
from relay_context.engine.policies.base import Candidate

CANDIDATE_JACCARD = 0.5
_ROLES = (MessageRole.USER, MessageRole.ASSISTANT)


def collapse_near_duplicates(
    candidates: Sequence[Candidate], threshold: float
) -> tuple[list[Candidate], list[Candidate]]:
    """``(kept, collapsed)``: ``kept`` in order, ``collapsed`` the older copies removed."""
    if threshold > 1.0 or len(candidates) < 2:
        return list(candidates), []
    cutoff = threshold * 100.0
    indexes = {role: fuzzy.NearDuplicateIndex(num_perm=64, bands=32) for role in _ROLES}
    exact: dict[MessageRole, set[str]] = {role: set() for role in _ROLES}
    texts: dict[str, str] = {}
    kept_newest_first: list[Candidate] = []
    collapsed: list[Candidate] = []
    for c in reversed(candidates):
        role = c.message.role
        text = c.message.content
        if role not in _ROLES or c.group is not None or not text:
            kept_newest_first.append(c)
            continue
        duplicate = False
        if not c.pinned:
            if text in exact[role]:
                duplicate = True
            else:
                for hit in indexes[role].query(text, CANDIDATE_JACCARD):
                    if fuzzy.ratio(text, texts[hit.key], score_cutoff=cutoff) >= cutoff:
                        duplicate = True
                        break
        if duplicate:
            collapsed.append(c)
            continue
        kept_newest_first.append(c)
        key = str(c.seq)
        texts[key] = text
        exact[role].add(text)
        indexes[role].add(key, text)
    kept_newest_first.reverse()
    collapsed.reverse()
    return kept_newest_first, collapsed


__all__ = ["CANDIDATE_JACCARD", "collapse_near_duplicates"]
