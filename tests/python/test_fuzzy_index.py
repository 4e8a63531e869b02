"""NearDuplicateIndex against brute force over a Python model of the shingle Jaccard similarity."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_context import NearDuplicate, NearDuplicateIndex
from relay_context.errors import InputTypeError, InvalidArgumentError
from relay_context.fuzzy import ratio, shingle_jaccard

VOCABULARY = [
    "context",
    "token",
    "budget",
    "model",
    "reply",
    "cache",
    "\u00e9t\u00e9",
    "\u4e2d\u6587",
    "gateway",
    "prompt",
    "\U0001f600",
    "window",
    "summary",
    "draft",
]


def shingles(text: str, k: int) -> set[str]:
    if len(text) < k:
        return {text} if text else set()
    return {text[i : i + k] for i in range(len(text) - k + 1)}


def reference_jaccard(a: str, b: str, k: int = 3) -> float:
    sa, sb = shingles(a, k), shingles(b, k)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def edit(rng: random.Random, text: str, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        chars[rng.randrange(len(chars))] = "#"
    return "".join(chars)


@given(st.text(max_size=40), st.text(max_size=40), st.integers(1, 6))
@settings(max_examples=300)
def test_shingle_jaccard_equals_python_sets(a: str, b: str, k: int) -> None:
    assert shingle_jaccard(a, b, k) == reference_jaccard(a, b, k)


def test_add_query_remove_contains_len() -> None:
    index = NearDuplicateIndex()
    index.add("a", "the quick brown fox")
    index.add("b", "the quick brown fox!")
    index.add("c", "an unrelated sentence")
    assert len(index) == 3
    assert "a" in index
    assert "zzz" not in index
    assert 3 not in index
    hits = index.query("the quick brown fox", threshold=0.8)
    assert hits == [
        NearDuplicate("a", 1.0),
        NearDuplicate("b", reference_jaccard("the quick brown fox", "the quick brown fox!")),
    ]
    index.add("b", "an unrelated sentence.")  # replace
    assert len(index) == 3
    assert [h.key for h in index.query("the quick brown fox")] == ["a"]
    assert index.remove("c") is True
    assert index.remove("c") is False
    assert "c" not in index
    assert [h.key for h in index.query("an unrelated sentence", 0.5)] == ["b"]
    index.clear()
    assert len(index) == 0
    assert index.query("the quick brown fox", 0.1) == []


def test_query_equals_brute_force_after_adds_and_removes() -> None:
    rng = random.Random(7)
    index = NearDuplicateIndex(num_perm=128, bands=32)
    bases = [sentence(rng, 8) for _ in range(200)]
    live: dict[str, str] = {}
    for i in range(2000):
        key = f"k{i}"
        text = edit(rng, bases[i % 200], i % 5)
        index.add(key, text)
        live[key] = text
        if i % 5 == 0:
            gone = f"k{rng.randrange(i + 1)}"
            assert index.remove(gone) == (live.pop(gone, None) is not None)
    assert len(index) == len(live)
    expected_total = found_total = 0
    for q in range(40):
        query = edit(rng, bases[q * 5], 1)
        hits = index.query(query, threshold=0.7)
        truth = {k: reference_jaccard(query, t) for k, t in live.items()}
        truth = {k: s for k, s in truth.items() if s >= 0.7}
        for hit in hits:
            assert truth[hit.key] == hit.score  # precise: only real matches, exact scores
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        expected_total += len(truth)
        found_total += len(hits)
    # 32 bands of 4 rows: a match of similarity >= 0.7 is found with probability >= 0.9998.
    assert expected_total > 100
    assert found_total >= 0.99 * expected_total


def test_recall_follows_the_s_curve() -> None:
    # shingle_size=1 over fresh code points gives pairs of exactly known Jaccard similarity.
    index = NearDuplicateIndex(shingle_size=1, num_perm=32, bands=4)
    next_cp = 0x4E00

    def fresh(n: int) -> str:
        nonlocal next_cp
        out = "".join(chr(next_cp + i) for i in range(n))
        next_cp += n
        return out

    pairs = 400
    hits_at = {0.5: 0, 0.9: 0}
    for p in range(pairs):
        shared = fresh(20)
        index.add(f"low{p}", shared + fresh(10))
        hits_at[0.5] += len(index.query(shared + fresh(10), threshold=0.5))
        shared = fresh(36)
        index.add(f"high{p}", shared + fresh(2))
        hits_at[0.9] += len(index.query(shared + fresh(2), threshold=0.9))
    for similarity, hits in hits_at.items():
        expected = index.candidate_probability(similarity)
        assert expected == 1 - (1 - similarity**8) ** 4
        assert hits / pairs == pytest.approx(expected, abs=0.07)


def test_default_parameters_recall_at_high_similarity() -> None:
    index = NearDuplicateIndex()
    assert (index.shingle_size, index.num_perm, index.bands, index.rows) == (3, 64, 16, 4)
    assert index.candidate_probability(0.8) > 0.999
    assert index.candidate_probability(0.2) < 0.03
    rng = random.Random(3)
    found = 0
    for i in range(300):
        text = sentence(rng, 10)
        index.add(str(i), text)
        near = edit(rng, text, 1)
        found += any(h.key == str(i) for h in index.query(near, threshold=0.75))
    assert found >= 295


def test_add_many_equals_add() -> None:
    rng = random.Random(5)
    items = [(f"k{i % 700}", sentence(rng, 6)) for i in range(1000)]
    one = NearDuplicateIndex()
    for key, text in items:
        one.add(key, text)
    many = NearDuplicateIndex()
    many.add_many(items, workers=2)
    mapping = NearDuplicateIndex()
    mapping.add_many(dict(items))
    assert len(one) == len(many) == len(mapping) == 700
    for _ in range(30):
        query = sentence(rng, 6)
        assert one.query(query, 0.3) == many.query(query, 0.3) == mapping.query(query, 0.3)


def test_threads_share_one_index() -> None:
    index = NearDuplicateIndex()
    anchor = "the anchor text that stays in the index the whole time"
    index.add("anchor", anchor)
    errors: list[str] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(1500):
            key = f"{seed}-{i % 200}"
            index.add(key, sentence(rng, 6))
            if i % 3 == 0:
                index.remove(key)

    def reader() -> None:
        for _ in range(1500):
            hits = index.query(anchor, 0.99)
            if hits != [NearDuplicate("anchor", 1.0)]:
                errors.append(repr(hits))

    threads = [threading.Thread(target=writer, args=(s,)) for s in (1, 2)]
    threads.append(threading.Thread(target=reader))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert "anchor" in index
    assert len(index) <= 401


def test_unicode_texts_and_keys() -> None:
    index = NearDuplicateIndex()
    index.add("\u4e2d\u6587-key", "\u4e2d\u6587\u6587\u672c \U0001f600 caf\u00e9 \ud800")
    hits = index.query("\u4e2d\u6587\u6587\u672c \U0001f600 caf\u00e9 \ud800", 1.0)
    assert hits == [NearDuplicate("\u4e2d\u6587-key", 1.0)]
    assert index.query("", 0.5) == []
    index.add("empty", "")
    assert index.query("", 1.0) == [NearDuplicate("empty", 1.0)]


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, float("nan")])
def test_bad_thresholds(bad: float) -> None:
    index = NearDuplicateIndex()
    with pytest.raises(InvalidArgumentError, match="threshold"):
        index.query("x", threshold=bad)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgumentError, match="bands must divide num_perm"):
        NearDuplicateIndex(num_perm=64, bands=10)
    with pytest.raises(InvalidArgumentError, match="shingle_size"):
        NearDuplicateIndex(shingle_size=0)
    with pytest.raises(InvalidArgumentError, match="num_perm"):
        NearDuplicateIndex(num_perm=4096, bands=16)
    with pytest.raises(InputTypeError, match="shingle_size"):
        NearDuplicateIndex(shingle_size=2.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="seed"):
        NearDuplicateIndex(seed=-1)
    index = NearDuplicateIndex()
    with pytest.raises(InputTypeError, match="key must be a str"):
        index.add(1, "x")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="text must be a str"):
        index.add("k", b"x")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="text must be a str"):
        index.query(None)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="threshold must be a number"):
        index.query("x", threshold="0.5")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="lone surrogate"):
        index.add("\ud800", "x")
    with pytest.raises(InputTypeError, match="every text must be a str"):
        index.add_many([("a", "x"), ("b", 3)])  # type: ignore[list-item]
    with pytest.raises(InputTypeError, match="pairs"):
        index.add_many(["ab"])  # type: ignore[list-item]
    assert len(index) == 0  # nothing half-added
    assert "\ud800" not in index


def test_similar_earlier_is_query_then_add_in_one_call() -> None:
    base = ["the knapsack solver picks messages", "weather in paris today", "an unrelated line"]
    texts = [*base, base[0] + "!", "weather in paris, today", base[2], "", base[1].upper()]
    index = NearDuplicateIndex()
    batched = index.similar_earlier(texts, 0.5)
    assert len(index) == 0
    expected = []
    for j, text in enumerate(texts):
        expected.append(sorted(int(hit.key) for hit in index.query(text, 0.5)))
        index.add(str(j), text)
    assert batched == expected
    assert batched[3] == [0]
    assert batched[5] == [2]


def test_add_earlier_stores_what_add_would_without_signing_again() -> None:
    base = ["the knapsack solver picks messages", "weather in paris today", "an unrelated line"]
    texts = [*base, base[0] + "!", "weather in paris, today", base[2], "", base[1].upper()]
    from_batch = NearDuplicateIndex()
    batch = from_batch.similar_earlier_kept(texts, 0.5)
    assert len(batch) == len(texts)
    assert batch.similar == from_batch.similar_earlier(texts, 0.5)
    assert len(from_batch) == 0  # signing a batch stores nothing
    chosen = [1, 3, 4, 6]
    from_batch.add_earlier(batch, [(i, f"k{i}") for i in chosen])
    one_by_one = NearDuplicateIndex()
    for i in chosen:
        one_by_one.add(f"k{i}", texts[i])
    assert len(from_batch) == len(one_by_one) == len(chosen)
    for query in [*texts, "paris weather", "knapsack solver"]:
        assert from_batch.query(query, 0.3) == one_by_one.query(query, 0.3)
    with pytest.raises(InvalidArgumentError, match="not in the batch"):
        from_batch.add_earlier(batch, [(len(texts), "x")])
    with pytest.raises(InvalidArgumentError, match="other options"):
        NearDuplicateIndex(num_perm=32, bands=8).add_earlier(batch, [(0, "x")])
    with pytest.raises(InputTypeError, match="pairs"):
        from_batch.add_earlier(batch, [0])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="lone surrogate"):
        from_batch.add_earlier(batch, [(0, "\ud800")])
    assert len(from_batch) == len(chosen)  # nothing half-added


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    texts=st.lists(st.text(alphabet="abcd ", min_size=0, max_size=120), min_size=2, max_size=25),
    threshold=st.sampled_from([0.2, 0.5, 0.7, 0.9, 1.0]),
)
def test_similar_earlier_equals_query_then_add_near_the_threshold(
    texts: list[str], threshold: float
) -> None:
    """Texts over four letters share most shingles, so many pairs sit near the threshold, where
    the early stop of the batch's verification must agree with query's exact score."""
    index = NearDuplicateIndex(num_perm=16, bands=16)  # one row per band: nearly all candidates
    batched = index.similar_earlier(texts, threshold)
    expected = []
    for j, text in enumerate(texts):
        expected.append(sorted(int(hit.key) for hit in index.query(text, threshold)))
        index.add(str(j), text)
    assert batched == expected


def collapse_one_by_one(
    texts: list[str], pinned: list[bool], threshold: float, cutoff: float
) -> list[int]:
    """The near-duplicate rule with an index of the survivors, one text at a time: each text
    collapses the held texts that query() returns and ratio() confirms, or that equal it."""
    index = NearDuplicateIndex(num_perm=16, bands=16)
    held: dict[int, str] = {}
    into = [-1] * len(texts)
    for j, text in enumerate(texts):
        older = {i for i, t in held.items() if t == text}
        for hit in index.query(text, threshold):
            i = int(hit.key)
            if ratio(text, held[i], score_cutoff=cutoff) >= cutoff:
                older.add(i)
        for i in older:
            index.remove(str(i))
            del held[i]
            into[i] = j
        if not pinned[j]:
            index.add(str(j), text)
            held[j] = text
    return into


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    data=st.lists(
        st.tuples(
            # Beyond ASCII too: pairs are first bounded by character histograms, counted apart
            # for ASCII and for other code points (astral ones included).
            st.one_of(
                st.text(alphabet="abc ", min_size=1, max_size=60),
                st.text(alphabet="aé€😀 b", min_size=1, max_size=40),
            ),
            st.booleans(),
        ),
        min_size=2,
        max_size=30,
    ),
    threshold=st.sampled_from([0.3, 0.5, 0.8]),
    cutoff=st.sampled_from([50.0, 80.0, 95.0, 100.0]),
)
def test_collapse_earlier_equals_one_by_one_adds(
    data: list[tuple[str, bool]], threshold: float, cutoff: float
) -> None:
    """Few letters: many equal texts, many pairs near both thresholds, pinned ones among them."""
    texts = [t for t, _ in data]
    pinned = [p for _, p in data]
    index = NearDuplicateIndex(num_perm=16, bands=16)
    batch = index.collapse_earlier(texts, ratio_cutoff=cutoff, pinned=pinned, threshold=threshold)
    assert batch.into == collapse_one_by_one(texts, pinned, threshold, cutoff)
    assert len(index) == 0  # the index is neither read nor changed
    # With the signatures given (as stored with the messages), the same outcome.
    known = [index.signature(t) if k % 2 else None for k, t in enumerate(texts)]
    again = index.collapse_earlier(
        texts, ratio_cutoff=cutoff, signatures=known, pinned=pinned, threshold=threshold
    )
    assert again.into == batch.into
    assert [again.signature(k) for k in range(len(texts))] == [index.signature(t) for t in texts]


@pytest.mark.parametrize(
    ("earlier", "later", "expected_ratio"),
    [
        # One substitution in ten characters: the histogram bound (L1 = 2 of 20) is exact.
        ("abcdefghij", "abcdefghik", 90.0),
        ("αβγδεζηθικ", "αβγδεζηθιλ", 90.0),
        ("ab😀defghij", "ab😀defghik", 90.0),
        # One insertion: the length bound (1 of 21) is exact.
        ("abcdefghij", "abcdefghijk", 100.0 * 20 / 21),
    ],
)
def test_collapse_earlier_keeps_pairs_exactly_at_the_ratio_bounds(
    earlier: str, later: str, expected_ratio: float
) -> None:
    """Pairs whose ratio equals the bound collapse_earlier checks first (length difference,
    then character histograms): a bound any tighter than the true one would keep both."""
    assert ratio(earlier, later) == pytest.approx(expected_ratio)
    cutoff = ratio(earlier, later)
    index = NearDuplicateIndex()
    batch = index.collapse_earlier([earlier, later], ratio_cutoff=cutoff, threshold=0.5)
    assert batch.into == collapse_one_by_one([earlier, later], [False, False], 0.5, cutoff)
    assert batch.into == [1, -1]
    above = index.collapse_earlier([earlier, later], ratio_cutoff=cutoff + 0.1, threshold=0.5)
    assert above.into == [-1, -1]


def test_collapse_earlier_leaves_the_survivors_to_add_earlier() -> None:
    base = ["the knapsack solver picks messages", "weather in paris today", "an unrelated line"]
    texts = [*base, base[0] + "!", base[2], "weather in paris today!"]
    index = NearDuplicateIndex()
    batch = index.collapse_earlier(texts, ratio_cutoff=90.0, threshold=0.5)
    assert batch.into == [3, 5, 4, -1, -1, -1]
    signature = index.signature(texts[3])
    assert len(signature) == 4 * index.bands
    assert batch.signature(3) == signature
    index.add_earlier(batch, [(i, f"k{i}") for i, to in enumerate(batch.into) if to < 0])
    one_by_one = NearDuplicateIndex()
    for i in (3, 4, 5):
        one_by_one.add(f"k{i}", texts[i])
    for query in [*texts, "paris weather"]:
        assert index.query(query, 0.3) == one_by_one.query(query, 0.3)


def test_collapse_earlier_refuses_bad_signatures_and_flags() -> None:
    index = NearDuplicateIndex()
    with pytest.raises(InvalidArgumentError, match="band keys"):
        index.collapse_earlier(["a", "b"], ratio_cutoff=90.0, signatures=[None, b"\0" * 8])
    with pytest.raises(InvalidArgumentError, match="4 bytes per band key"):
        index.collapse_earlier(["a", "b"], ratio_cutoff=90.0, signatures=[b"abc", None])
    with pytest.raises(InputTypeError, match="signature must be bytes"):
        index.collapse_earlier(["a"], ratio_cutoff=90.0, signatures=["x"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError, match="1 signatures for 2 texts"):
        index.collapse_earlier(["a", "b"], ratio_cutoff=90.0, signatures=[None])
    with pytest.raises(InvalidArgumentError, match="3 pinned flags for 2 texts"):
        index.collapse_earlier(["a", "b"], ratio_cutoff=90.0, pinned=[True, False, True])
    with pytest.raises(InvalidArgumentError, match="threshold"):
        index.collapse_earlier(["a", "b"], ratio_cutoff=90.0, threshold=0.0)
