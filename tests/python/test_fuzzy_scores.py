"""relay_context.fuzzy scores against the real rapidfuzz: equal on every input, bit for bit."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Indel, Levenshtein

from relay_context import fuzzy
from relay_context.errors import InputTypeError, InvalidArgumentError, InvalidScoreCutoffError

# (ours, rapidfuzz's, cutoff scale)
PAIRWISE = [
    (fuzzy.ratio, fuzz.ratio, 100.0),
    (fuzzy.token_set_ratio, fuzz.token_set_ratio, 100.0),
    (fuzzy.levenshtein_normalized_similarity, Levenshtein.normalized_similarity, 1.0),
    (fuzzy.indel_normalized_similarity, Indel.normalized_similarity, 1.0),
    (fuzzy.partial_ratio, fuzz.partial_ratio, 100.0),
    (fuzzy.token_sort_ratio, fuzz.token_sort_ratio, 100.0),
    (fuzzy.WRatio, fuzz.WRatio, 100.0),
    (fuzzy.QRatio, fuzz.QRatio, 100.0),
]
IDS = [
    "ratio",
    "token_set_ratio",
    "levenshtein",
    "indel",
    "partial_ratio",
    "token_sort_ratio",
    "WRatio",
    "QRatio",
]
PERCENT = [p for p in PAIRWISE if p[2] == 100.0]
UNIT = [p for p in PAIRWISE if p[2] == 1.0]

# Small alphabets make matches frequent (random full-Unicode pairs share almost nothing).
SMALL_ALPHABET = "ab c\u00e9\u00ff\u4e2d\U0001f600\t"
small_text = st.text(alphabet=SMALL_ALPHABET, max_size=90)
any_text = st.text(max_size=80)
long_text = st.text(alphabet=SMALL_ALPHABET, min_size=65, max_size=400)
WORDS = ["new", "york", "mets", "jets", "giants", "caf\u00e9", "\u4e2d\u6587", "a", "b"]
SPACES = [" ", "  ", "\t", "\n", "\u3000", "\u00a0", "\u2009"]
sentence = st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(SPACES)), max_size=10).map(
    lambda parts: "".join(word + space for word, space in parts)
)


def mutate(rng: random.Random, text: str, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        pos = rng.randrange(len(chars) + 1)
        op = rng.randrange(3)
        if op == 0 or not chars:
            chars.insert(pos, rng.choice(SMALL_ALPHABET))
        elif pos < len(chars):
            if op == 1:
                del chars[pos]
            else:
                chars[pos] = rng.choice(SMALL_ALPHABET)
    return "".join(chars)


def check_equal(a: str, b: str, cutoff_fraction: float | None = None) -> None:
    for ours, theirs, scale in PAIRWISE:
        cutoff = None if cutoff_fraction is None else cutoff_fraction * scale
        expected = theirs(a, b, score_cutoff=cutoff)
        got = ours(a, b, score_cutoff=cutoff)
        assert got == expected, (ours.__name__, a, b, cutoff)
        assert type(got) is float


@given(small_text, small_text)
@settings(max_examples=400)
def test_small_alphabet_pairs(a: str, b: str) -> None:
    check_equal(a, b)
    check_equal(b, a)


@given(any_text, any_text)
@settings(max_examples=300)
def test_random_unicode_pairs(a: str, b: str) -> None:
    check_equal(a, b)


@given(any_text, any_text, st.floats(min_value=0.0, max_value=1.0))
@settings(max_examples=300)
def test_cutoffs(a: str, b: str, cutoff: float) -> None:
    check_equal(a, b, cutoff)


@given(small_text, st.integers(min_value=0, max_value=20), st.floats(0.0, 1.0))
@settings(max_examples=300)
def test_cutoffs_near_the_score(a: str, edits: int, cutoff: float) -> None:
    b = mutate(random.Random(edits), a, edits)
    check_equal(a, b, cutoff)
    # Cutoffs at, just below and just above each score (where rounding decides).
    for ours, theirs, scale in PAIRWISE:
        score = ours(a, b)
        for near in (score, score - 1e-9, score - 1e-7, score * 1.000001 + 1e-9):
            near = min(max(near, 0.0), scale)
            assert ours(a, b, score_cutoff=near) == theirs(a, b, score_cutoff=near)


@given(long_text, long_text)
@settings(max_examples=150)
def test_long_pairs_over_64_code_points(a: str, b: str) -> None:
    check_equal(a, b)


@given(sentence, sentence, st.one_of(st.none(), st.floats(0.0, 1.0)))
@settings(max_examples=400)
def test_token_set_ratio_on_sentences(a: str, b: str, cutoff: float | None) -> None:
    check_equal(a, b, cutoff)


@pytest.mark.parametrize("length", [65, 128, 129, 1000, 1500, 4000])
def test_long_similar_pairs(length: int) -> None:
    rng = random.Random(length)
    for edits in (0, 1, 5, length // 20, length // 3):
        a = "".join(rng.choice(SMALL_ALPHABET) for _ in range(length))
        b = mutate(rng, a, edits)
        check_equal(a, b)
        check_equal(a, b, 0.8)
        check_equal(b, a, 0.95)
        # Words made of long runs: token_set_ratio goes through long joined strings.
        check_equal(a.replace("c", " "), b.replace("c", " "), 0.5)


def test_surrogates_and_astral_code_points() -> None:
    pairs = [("\ud800abc", "abc\udfff"), ("\U0001f600" * 70, "\U0001f600" * 69 + "x"), ("", "")]
    for a, b in pairs:
        check_equal(a, b)


def test_known_values() -> None:
    assert fuzzy.ratio("this is a test", "this is a test!") == pytest.approx(96.5517241)
    assert fuzzy.ratio("", "") == 100.0
    assert fuzzy.token_set_ratio("", "") == 0.0
    assert fuzzy.token_set_ratio("fuzzy was a bear", "fuzzy fuzzy was a bear") == 100.0
    assert fuzzy.levenshtein_normalized_similarity("kitten", "sitting") == 1 - 3 / 7
    assert fuzzy.ratio("abc", "abd", score_cutoff=70) == 0.0
    assert fuzzy.ratio("abc", "abd", score_cutoff=66) == pytest.approx(66.6666666)


@pytest.mark.parametrize("bad", [b"bytes", None, 3, ["a"]])
@pytest.mark.parametrize("scorer", [p[0] for p in PAIRWISE], ids=IDS)
def test_non_str_raises_input_type_error(scorer, bad) -> None:
    with pytest.raises(InputTypeError, match="must be a str"):
        scorer(bad, "x")
    with pytest.raises(InputTypeError, match="must be a str"):
        scorer("x", bad)


@pytest.mark.parametrize("scorer", [p[0] for p in UNIT], ids=["levenshtein", "indel"])
def test_bad_cutoffs_raise_invalid_argument(scorer) -> None:
    # rapidfuzz raises TypeError there; the error is both.
    for bad in (-0.1, 1.5, float("inf")):
        with pytest.raises(InvalidArgumentError, match="score_cutoff"):
            scorer("a", "b", score_cutoff=bad)
        with pytest.raises(TypeError, match="score_cutoff"):
            scorer("a", "b", score_cutoff=bad)
    with pytest.raises(InputTypeError, match="score_cutoff"):
        scorer("a", "b", score_cutoff="50")


@pytest.mark.parametrize(("ours", "theirs"), [(p[0], p[1]) for p in PERCENT])
def test_fuzz_scorers_take_any_cutoff_as_rapidfuzz(ours, theirs) -> None:
    for a, b in [("abc", "abc"), ("abc", "abd"), ("new york", "york new"), ("", "x"), ("a b", "")]:
        for cutoff in (-50.0, -0.1, 100.0, 100.000001, 150.0, float("nan"), float("inf")):
            assert ours(a, b, score_cutoff=cutoff) == theirs(a, b, score_cutoff=cutoff)
    with pytest.raises(InputTypeError, match="score_cutoff"):
        ours("a", "b", score_cutoff="50")


# --- batch helpers -------------------------------------------------------------------------------

SCORER_PAIRS = [
    ("ratio", fuzz.ratio, 100.0),
    ("token_set_ratio", fuzz.token_set_ratio, 100.0),
    ("levenshtein_normalized_similarity", Levenshtein.normalized_similarity, 1.0),
    ("indel_normalized_similarity", Indel.normalized_similarity, 1.0),
    ("partial_ratio", fuzz.partial_ratio, 100.0),
    ("token_sort_ratio", fuzz.token_sort_ratio, 100.0),
    ("WRatio", fuzz.WRatio, 100.0),
    ("QRatio", fuzz.QRatio, 100.0),
]


@given(
    st.one_of(small_text, sentence, long_text),
    st.lists(st.one_of(small_text, sentence, long_text), max_size=40),
    st.one_of(st.none(), st.floats(0.0, 1.0)),
)
@settings(max_examples=150)
def test_scores_equal_rapidfuzz_cdist(query: str, choices: list[str], cutoff: float | None) -> None:
    for name, theirs, scale in SCORER_PAIRS:
        c = None if cutoff is None else cutoff * scale
        expected = [theirs(query, choice, score_cutoff=c) for choice in choices]
        assert list(fuzzy.scores(query, choices, scorer=name, score_cutoff=c)) == expected
        assert (
            list(fuzzy.scores(query, tuple(choices), scorer=name, score_cutoff=c, workers=2))
            == expected
        )


def test_scores_on_many_choices_with_threads() -> None:
    rng = random.Random(11)
    query = "".join(rng.choice(SMALL_ALPHABET) for _ in range(150))
    choices = [mutate(rng, query, rng.randrange(60)) for _ in range(3000)]
    expected = [fuzz.ratio(query, c) for c in choices]
    assert list(fuzzy.scores(query, choices, workers=2)) == expected
    assert list(fuzzy.scores(query, iter(choices), workers=-1)) == expected


@given(
    small_text,
    st.lists(small_text, max_size=60),
    st.one_of(st.none(), st.integers(1, 10)),
    st.one_of(st.none(), st.floats(0.0, 100.0)),
)
@settings(max_examples=200)
def test_extract_equals_rapidfuzz(
    query: str, choices: list[str], limit: int | None, cutoff: float | None
) -> None:
    for name, theirs, _ in SCORER_PAIRS:
        if name.endswith("similarity"):
            continue
        expected = process.extract(query, choices, scorer=theirs, limit=limit, score_cutoff=cutoff)
        got = fuzzy.extract(query, choices, scorer=name, limit=limit, score_cutoff=cutoff)
        assert got == expected
    # The default scorer is WRatio, as rapidfuzz's.
    expected = process.extract(query, choices, limit=limit, score_cutoff=cutoff)
    assert fuzzy.extract(query, choices, limit=limit, score_cutoff=cutoff) == expected


def test_batch_argument_errors() -> None:
    with pytest.raises(InputTypeError, match="every choice must be a str"):
        fuzzy.scores("a", ["b", b"c"])
    with pytest.raises(InputTypeError, match="choices must be a sequence of str"):
        fuzzy.scores("a", 3)
    with pytest.raises(InputTypeError, match="choices must be a sequence of str"):
        fuzzy.extract("a", "abc")
    with pytest.raises(InputTypeError, match="query must be a str"):
        fuzzy.scores(None, ["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="scorer must be one of"):
        fuzzy.scores("a", ["b"], scorer="partial_ratio_nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="workers"):
        fuzzy.scores("a", ["b"], workers=0)
    with pytest.raises(InvalidArgumentError, match="limit"):
        fuzzy.extract("a", ["b"], limit=-1)
    with pytest.raises(InvalidScoreCutoffError, match="score_cutoff"):
        fuzzy.scores("a", ["b"], scorer="indel_normalized_similarity", score_cutoff=2)
    assert list(fuzzy.scores("a", [])) == []
    assert fuzzy.scores("a", ["a", "b"]).typecode == "d"
    assert fuzzy.extract("a", []) == []


@given(
    st.one_of(small_text, sentence),
    st.lists(st.one_of(small_text, sentence), max_size=40),
    st.one_of(st.none(), st.floats(0.0, 100.0)),
)
@settings(max_examples=200)
def test_token_set_choices_equal_rapidfuzz(
    query: str, choices: list[str], cutoff: float | None
) -> None:
    prepared = fuzzy.TokenSetChoices(choices)
    assert len(prepared) == len(choices)
    expected = [fuzz.token_set_ratio(query, c, score_cutoff=cutoff) for c in choices]
    assert list(prepared.scores(query, score_cutoff=cutoff)) == expected
    assert list(prepared.scores(query, score_cutoff=cutoff, workers=2)) == expected
