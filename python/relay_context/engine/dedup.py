"""Collapsing near-duplicate messages before a policy chooses the window.

Two messages of the same role (user or assistant, outside tool exchanges) are near-duplicates
when ``fuzzy.ratio`` (rapidfuzz's normalised Indel similarity, in percent) of their contents is
at least ``threshold * 100``. Candidates come from a MinHash-LSH
:class:`~relay_context.fuzzy.NearDuplicateIndex` over 3-character shingles (Jaccard >= 0.5;
near-duplicates at ratio 0.95 have a shingle Jaccard of about 0.75 or more, found with
probability above 0.99) plus an exact-text table, and each candidate is verified with
``ratio``, so nothing is collapsed that is not that similar.

**The latest copy is kept**: a message collapses when a later message of the same role matches
it. The newest copy is where the conversation now is, and the rule depends only on what came
before, so the result for a session grows with it: :class:`NearDuplicateTracker` keeps the index
of a session between calls and only looks at the messages added since. Messages pinned through
``metadata["pinned"]`` never collapse (they may still be what an older copy collapses into);
the latest user turn cannot collapse (nothing later matches it); tool calls and results and
system messages are never touched.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from relay_context.core import fuzzy
from relay_context.engine.models import MessageRole
from relay_context.engine.policies.base import Candidate

CANDIDATE_JACCARD = 0.5
_ROLES = (MessageRole.USER, MessageRole.ASSISTANT)

#: Flags of a fingerprint: the message may collapse (a user or assistant message with text,
#: outside tool exchanges); it is pinned.
ELIGIBLE, PINNED = 1, 2
#: One candidate's fingerprint: (seq, hash of role and content, flags).
Fingerprint = tuple[int, int, int]


@dataclass
class Fingerprints:
    """What the tracker remembers of each candidate it has seen, as columns (a first window
    fingerprints a whole session: three columns of ints allocate no object per candidate for
    the cycle collector to count, where a tuple each did)."""

    seqs: list[int]
    hashes: list[int]
    flags: bytearray

    @classmethod
    def of(cls, cs: Sequence[Candidate]) -> Fingerprints:
        roles = _ROLES
        return cls(
            [c.seq for c in cs],
            [hash((c.message.role, c.message.content)) for c in cs],
            bytearray(
                (
                    ELIGIBLE
                    if c.group is None and c.message.role in roles and c.message.content
                    else 0
                )
                | (PINNED if c.pinned else 0)
                for c in cs
            ),
        )

    def __len__(self) -> int:
        return len(self.seqs)

    def at(self, i: int) -> Fingerprint:
        return (self.seqs[i], self.hashes[i], self.flags[i])

    def head(self, n: int) -> Fingerprints:
        return Fingerprints(self.seqs[:n], self.hashes[:n], self.flags[:n])

    def append(self, fingerprint: Fingerprint) -> None:
        self.seqs.append(fingerprint[0])
        self.hashes.append(fingerprint[1])
        self.flags.append(fingerprint[2])

    def extend(self, other: Fingerprints) -> None:
        self.seqs.extend(other.seqs)
        self.hashes.extend(other.hashes)
        self.flags.extend(other.flags)


#: Signs texts with the options every tracker's index has (signing reads only the options).
_SIGNER = fuzzy.NearDuplicateIndex()
#: Bytes of a signature under those options (4 per band key).
SIGNATURE_BYTES = 4 * _SIGNER.bands


def signature(role: MessageRole, content: str) -> bytes | None:
    """The near-duplicate signature of a message that collapsing may look at (a user or
    assistant message with text), to store with it; ``None`` for the others."""
    if role not in _ROLES or not content:
        return None
    return _SIGNER.signature(content)


class NearDuplicateTracker:
    """The near-duplicate state of one conversation, extended message by message."""

    def __init__(self, threshold: float) -> None:
        self.cutoff = threshold * 100.0
        self.enabled = threshold <= 1.0
        self._indexes = {role: fuzzy.NearDuplicateIndex() for role in _ROLES}
        self._exact: dict[MessageRole, dict[str, str]] = {role: {} for role in _ROLES}
        self._texts: dict[str, str] = {}
        self.seen = Fingerprints([], [], bytearray())
        #: seq of a collapsed message -> seq of the later message it collapsed into.
        self.collapsed: dict[int, int] = {}
        #: Seq of the last eligible message seen of each role.
        self._last: dict[MessageRole, int] = {}

    def resume(self, cs: Sequence[Candidate], fingerprints: Fingerprints) -> bool:
        """Whether the tracker can go on with ``cs`` (``fingerprints`` theirs), having seen the
        first ``len(seen)`` of them: the same messages, except that some may have lost their
        pin since. That is what a new user turn does to the one before it (the latest user turn
        is pinned): held pinned, it was left out of its role's index, and when no later message
        of its role has been seen, indexing it now leaves the tracker exactly as if it had been
        added unpinned. (Before this, every user turn made the session's whole pass again.)"""
        seen = self.seen
        n = len(seen)
        if n > len(fingerprints):
            return False
        head = fingerprints.head(n)
        if head.seqs != seen.seqs or head.hashes != seen.hashes:
            return False  # other messages
        if head.flags == seen.flags:
            return True
        changed = [i for i, (a, b) in enumerate(zip(seen.flags, head.flags, strict=True)) if a != b]
        for i in changed:
            was, now = seen.flags[i], head.flags[i]
            if was & ELIGIBLE != now & ELIGIBLE or not was & PINNED or now & PINNED:
                return False  # another message, or a pin gained
            if self.enabled and now & ELIGIBLE and self._last.get(cs[i].message.role) != cs[i].seq:
                return False  # later messages of its role saw an index without it
        for i in changed:
            seen.flags[i] = head.flags[i]
            if self.enabled and head.flags[i] & ELIGIBLE:
                self._hold(cs[i])
        return True

    def _hold(self, c: Candidate) -> None:
        """Puts ``c`` in its role's index (a later message may collapse it)."""
        key = str(c.seq)
        text = c.message.content
        self._indexes[c.message.role].add(key, text)
        self._texts[key] = text
        self._exact[c.message.role][text] = key

    def add(self, c: Candidate, fingerprint: Fingerprint) -> None:
        self.seen.append(fingerprint)
        if not (self.enabled and fingerprint[2] & ELIGIBLE):
            return
        role = c.message.role
        text = c.message.content
        index = self._indexes[role]
        exact = self._exact[role]
        older: set[str] = set()
        if text in exact:
            older.add(exact[text])
        for hit in index.query(text, CANDIDATE_JACCARD):
            if hit.key not in older and (
                fuzzy.ratio(text, self._texts[hit.key], score_cutoff=self.cutoff) >= self.cutoff
            ):
                older.add(hit.key)
        for old in older:
            index.remove(old)
            old_text = self._texts.pop(old)
            if exact.get(old_text) == old:
                del exact[old_text]
            self.collapsed[int(old)] = c.seq
        self._last[role] = c.seq
        if not c.pinned:  # pinned messages never collapse: keep them out of the index
            self._hold(c)

    def add_many(self, cs: Sequence[Candidate], fingerprints: Fingerprints) -> None:
        """``add`` of each candidate in turn, for a tracker that has seen nothing yet, with the
        same outcome: one C++ call per role replays the rule over the whole sequence
        (``NearDuplicateIndex.collapse_earlier``, with the signatures stored with the messages),
        and the survivors are indexed from the same signatures."""
        assert not self.seen, "add_many starts a tracker"
        self.seen.extend(fingerprints)
        if not self.enabled:
            return
        by_role: dict[MessageRole, list[Candidate]] = {role: [] for role in _ROLES}
        for c, flags in zip(cs, fingerprints.flags, strict=True):
            if flags & ELIGIBLE:  # a user or assistant message with text
                by_role[c.message.role].append(c)
        size = SIGNATURE_BYTES
        collapsed = self.collapsed
        for role, chosen in by_role.items():
            if not chosen:
                continue
            texts = [c.message.content for c in chosen]
            pinned = [c.pinned for c in chosen]
            stored = [c.message.dedup_signature for c in chosen]
            self._last[role] = chosen[-1].seq
            batch = self._indexes[role].collapse_earlier(
                texts,
                ratio_cutoff=self.cutoff,
                # A stored signature made under other options, or damaged, is made again.
                signatures=[s if s is not None and len(s) == size else None for s in stored],
                pinned=pinned,
                threshold=CANDIDATE_JACCARD,
            )
            into = batch.into
            seqs = [c.seq for c in chosen]
            collapsed.update((seqs[i], seqs[to]) for i, to in enumerate(into) if to >= 0)
            # What the index holds: the survivors that are not pinned.
            live = [
                i
                for i, (to, held) in enumerate(zip(into, pinned, strict=True))
                if to < 0 and not held
            ]
            keys = [str(seqs[i]) for i in live]
            self._indexes[role].add_earlier_keys(batch, live, keys)
            # Live texts are distinct (an equal later text collapses the earlier one).
            live_texts = [texts[i] for i in live]
            self._texts.update(zip(keys, live_texts, strict=True))
            self._exact[role].update(zip(live_texts, keys, strict=True))


#: New messages from which a fresh tracker takes them in one batch.
BATCH_MESSAGES = 16


class DedupCache:
    """Trackers of recently used conversations (LRU), so that a window after one more message
    only indexes that message."""

    def __init__(self, max_sessions: int = 256) -> None:
        self.max_sessions = max_sessions
        self._trackers: OrderedDict[tuple[str, float], NearDuplicateTracker] = OrderedDict()

    def collapse(
        self, session_id: str, candidates: Sequence[Candidate], threshold: float
    ) -> tuple[list[Candidate], list[Candidate]]:
        """``(kept, collapsed)``: both in conversation order."""
        if threshold > 1.0 or len(candidates) < 2:
            return list(candidates), []
        fingerprints = Fingerprints.of(candidates)
        key = (session_id, threshold)
        tracker = self._trackers.get(key)
        if tracker is None or not tracker.resume(candidates, fingerprints):
            tracker = NearDuplicateTracker(threshold)
        self._trackers[key] = tracker
        self._trackers.move_to_end(key)
        while len(self._trackers) > self.max_sessions:
            self._trackers.popitem(last=False)
        if not tracker.seen and len(candidates) >= BATCH_MESSAGES:
            tracker.add_many(candidates, fingerprints)
        for i in range(len(tracker.seen), len(candidates)):
            tracker.add(candidates[i], fingerprints.at(i))
        gone = tracker.collapsed
        if not gone:
            return list(candidates), []
        kept: list[Candidate] = []
        collapsed: list[Candidate] = []
        for c in candidates:  # one pass: most sessions collapse a few messages at most
            (collapsed if c.seq in gone else kept).append(c)
        return kept, collapsed

    def forget(self, session_id: str) -> None:
        for key in [k for k in self._trackers if k[0] == session_id]:
            del self._trackers[key]


def collapse_near_duplicates(
    candidates: Sequence[Candidate], threshold: float
) -> tuple[list[Candidate], list[Candidate]]:
    """``(kept, collapsed)`` for one list of candidates, without a cache."""
    return DedupCache(1).collapse("", candidates, threshold)


__all__ = [
    "CANDIDATE_JACCARD",
    "DedupCache",
    "Fingerprints",
    "NearDuplicateTracker",
    "collapse_near_duplicates",
]
