"""Token ids identical to the real tiktoken, over a varied corpus. One mismatch fails."""

from __future__ import annotations

import random
import re
import threading

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

import corpus
from relay_context import TokenCounter

ENCODINGS = ["cl100k_base", "o200k_base"]


@pytest.fixture(scope="module", params=ENCODINGS)
def pair(request: pytest.FixtureRequest) -> tuple[TokenCounter, tiktoken.Encoding]:
    return TokenCounter(request.param), tiktoken.get_encoding(request.param)


def _first_mismatch(relay: TokenCounter, oracle: tiktoken.Encoding, texts: list[str]) -> str | None:
    for i, text in enumerate(texts):
        want = oracle.encode_ordinary(text)
        got = relay.encode_ordinary(text)
        if got != want:
            j = next(
                (k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
                min(len(got), len(want)),
            )
            ctx = oracle.decode(want[max(0, j - 3) : j + 3])
            return (
                f"{oracle.name} text #{i} ({len(text)} chars) differs at token {j}: "
                f"relay {got[max(0, j - 3) : j + 3]} vs tiktoken {want[max(0, j - 3) : j + 3]} "
                f"around {ctx!r}; text starts {text[:120]!r}"
            )
        assert relay.count(text) == len(want)
    return None


@pytest.mark.parametrize(
    "source",
    ["multilingual", "code_samples", "python_sources", "json_documents", "runs", "contractions"],
)
def test_corpus_matches_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding], source: str) -> None:
    relay, oracle = pair
    texts = getattr(corpus, source)()
    assert texts
    assert _first_mismatch(relay, oracle, texts) is None


def test_scripts_match_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    """Every script of the per-script corpus: whole sections, their lines, and long runs of
    each section without its spaces (one pre-tokenised piece of thousands of bytes)."""
    relay, oracle = pair
    sections = corpus.scripts()
    assert len(sections) >= 40
    for name, body in sections.items():
        texts = [body, *body.splitlines(keepends=True), body.replace(" ", "")[:3000]]
        assert _first_mismatch(relay, oracle, texts) is None, name


def test_natural_sample_matches_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    """The per-script natural corpus of the benchmark (translation catalogues of ~40 languages,
    C and Python source, docs): whole sections, their lines, and each section without spaces or
    newlines (long pieces, which take the backtracking encoder), on a new thread each (an empty
    piece cache, so every piece is merged rather than answered from the cache)."""
    relay, oracle = pair
    sections = corpus.natural_sample()
    assert len(sections) >= 40
    for name, body in sections.items():
        texts = [body, *body.splitlines(keepends=True), re.sub(r"\s", "", body)[:3000]]
        mismatch: list[str | None] = []
        worker = threading.Thread(
            target=lambda ts=texts, out=mismatch: out.append(_first_mismatch(relay, oracle, ts))
        )
        worker.start()
        worker.join()
        assert mismatch == [None], name


def test_random_strings_match_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    relay, oracle = pair
    assert _first_mismatch(relay, oracle, corpus.random_strings(20_000)) is None


def test_random_codepoints_match_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    relay, oracle = pair
    assert _first_mismatch(relay, oracle, corpus.random_codepoint_strings(10_000)) is None


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(text=st.text(max_size=60))
def test_hypothesis_text_matches_tiktoken(text: str) -> None:
    for name in ENCODINGS:
        assert TokenCounter(name).encode_ordinary(text) == tiktoken.get_encoding(
            name
        ).encode_ordinary(text)


def test_special_tokens_match_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    relay, oracle = pair
    texts = [
        "<|endoftext|>",
        "hello <|endoftext|> world",
        "a<|endoftext|><|endoftext|>b  ",
        "  <|endofprompt|>\n\n<|endoftext|>x",
        "<|endoftext",
        "<|endoftext|>   ",
    ]
    for text in texts:
        assert relay.encode(text, allowed_special="all") == oracle.encode(
            text, allowed_special="all"
        )
        assert relay.encode(text, disallowed_special=()) == oracle.encode(
            text, disallowed_special=()
        )
        assert relay.encode_ordinary(text) == oracle.encode_ordinary(text)


def test_decode_matches_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    relay, oracle = pair
    for text in corpus.multilingual() + corpus.random_strings(500, seed=5):
        ids = oracle.encode_ordinary(text)
        assert relay.decode_bytes(ids) == oracle.decode_bytes(ids)
        assert relay.decode(ids) == oracle.decode(ids)
        # Partial UTF-8 (a prefix of the ids) decodes lossily, like tiktoken.
        assert relay.decode(ids[: len(ids) // 2]) == oracle.decode(ids[: len(ids) // 2])


def test_piece_cache_keeps_ids_exact_across_refills(
    pair: tuple[TokenCounter, tiktoken.Encoding],
) -> None:
    """Long pieces with many ids (unspaced Thai, Georgian in cl100k) go through the piece cache;
    over a megabyte of distinct pieces makes it start over several times mid-text, and the text
    encoded again (now mostly hits, also after the restarts) keeps tiktoken's ids."""
    relay, oracle = pair
    rng = random.Random(13)
    alphabets = [
        [chr(c) for c in range(0x0E01, 0x0E2F)],  # Thai consonants
        [chr(c) for c in range(0x10D0, 0x10F1)],  # Georgian
        [chr(c) for c in range(0x1200, 0x1248)],  # Ethiopic
    ]
    words = []
    for _ in range(12_000):
        alphabet = rng.choice(alphabets)
        words.append("".join(rng.choices(alphabet, k=rng.randint(6, 85))))
    text = " ".join(words)
    assert len(text.encode()) > 1_200_000  # more than the cache's 1 MiB of piece bytes
    want = oracle.encode_ordinary(text)
    assert relay.encode_ordinary(text) == want
    assert relay.encode_ordinary(text) == want
    assert relay.count(text) == len(want)
    repeated = " ".join(words[:300]) * 3
    assert relay.encode_ordinary(repeated) == oracle.encode_ordinary(repeated)


def test_interleaved_encoders_keep_ids_exact() -> None:
    """Two vocabularies (and two counters of one vocabulary) alternating line by line on one
    thread, on unspaced lines (long pieces: the backtracking encoder, whose per-thread memo of
    token-pair answers serves one encoder at a time; tests/cpp/test_tokenizer_backtrack.cpp
    builds a pair whose answer differs between two vocabularies)."""
    oracles = [tiktoken.get_encoding(name) for name in ("cl100k_base", "o200k_base", "o200k_base")]
    counters = [TokenCounter(oracle.name, memo_size=0) for oracle in oracles]
    lines = [
        re.sub(r"\s", "", line)
        for name in ("Chinese (simplified)", "Japanese", "Thai", "Russian", "Hindi")
        for line in corpus.natural_sample()[name].splitlines()
    ]
    assert len(lines) > 100
    for i, line in enumerate(lines):
        k = i % len(counters)
        assert counters[k].encode_ordinary(line) == oracles[k].encode_ordinary(line), (k, line)


# Every code point of two-byte UTF-8 (U+0080..U+07FF: Latin-1, Latin Extended, IPA, combining
# marks, Greek, Cyrillic, Armenian, Hebrew, Arabic, Syriac, Thaana, NKo, unassigned ones), which
# the pre-tokeniser classifies from a table of byte pairs, in the contexts its letter loops
# distinguish: alone, a run, after a space, a capital, a small letter, an apostrophe, a digit,
# punctuation, and before a contraction.
_TWO_BYTE = [chr(c) for c in range(0x80, 0x800) if not 0xD800 <= c < 0xE000]
_CONTEXTS = ["{c}", "{c}{c}{c}", " {c}x", "A{c}b", "a{c}B", "'{c}s", "1{c}2", ".{c}.", "{c}'re "]


@pytest.mark.parametrize("context", _CONTEXTS)
def test_two_byte_characters_match_tiktoken(
    pair: tuple[TokenCounter, tiktoken.Encoding], context: str
) -> None:
    relay, oracle = pair
    texts = [context.format(c=c) for c in _TWO_BYTE]
    assert _first_mismatch(relay, oracle, texts) is None
    # And all of them in one text on a fresh counter (each piece met once: the vocabulary
    # lookup of a piece the cache misses reuses the cache's hash).
    joined = "".join(texts)
    assert TokenCounter(oracle.name, memo_size=0).encode_ordinary(joined) == oracle.encode_ordinary(
        joined
    )


# Every code point of three-byte UTF-8 (U+0800..U+FFFF but the surrogates: CJK, Kana, Hangul,
# the Brahmic scripts, Thai, Lao, Khmer, Burmese, Ethiopic, Georgian, symbols, unassigned ones),
# which the letter loops classify from a table indexed by code point, in the same contexts, 256
# code points to a text.
_THREE_BYTE = [chr(c) for c in range(0x800, 0x10000) if not 0xD800 <= c < 0xE000]


@pytest.mark.parametrize("context", _CONTEXTS)
def test_three_byte_characters_match_tiktoken(
    pair: tuple[TokenCounter, tiktoken.Encoding], context: str
) -> None:
    relay, oracle = pair
    texts = [
        "".join(context.format(c=c) for c in _THREE_BYTE[k : k + 256])
        for k in range(0, len(_THREE_BYTE), 256)
    ]
    assert _first_mismatch(relay, oracle, texts) is None


def test_ascii_words_match_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    """The ASCII word fast paths: every ASCII character as the one-character prefix of words of
    capitals and small letters, with contraction suffixes and a non-ASCII letter or mark where
    the capitals or the small letters end (which hands over to the general path)."""
    relay, oracle = pair
    words = [
        "a",
        "Z",
        "abc",
        "ABC",
        "Abc",
        "aBC",
        "ABCdef",
        "ABC\u00e9",
        "abc\u00e9",
        "AB\u00c9",
        "ABC\u0301",
        "abc's",
        "ABC'S",
        "Abc'LL",
        "ab\u017f",
        "x'\u017f",
        "AB1",
        "ab_",
    ]
    followers = ["", " ", "\n", "\r\n", ".", "'", "'re", "1", "\u00e9", "\u4e2d", "\u00a0"]
    texts = [chr(c) + w + f for c in range(128) for w in words for f in followers]
    assert _first_mismatch(relay, oracle, texts) is None


_MIXED_ALPHABET = (
    [chr(c) for c in range(0x41, 0x5B)]  # A-Z
    + [chr(c) for c in range(0x61, 0x7B)]  # a-z
    + [chr(c) for c in range(0xC0, 0x250)]  # Latin-1 letters, Latin Extended-A/B
    + [chr(c) for c in range(0x370, 0x530)]  # Greek, Cyrillic
    + [chr(c) for c in range(0x590, 0x700)]  # Hebrew, Arabic
    + [chr(c) for c in range(0x300, 0x370)]  # combining marks (U and W in o200k)
    + [chr(c) for c in range(0x900, 0x980)]  # Devanagari (letters, marks, digits)
    + [chr(c) for c in range(0x3040, 0x3100)]  # Hiragana, Katakana
    + [chr(c) for c in range(0x4E00, 0x4E40)]  # CJK ideographs
    + ["\u3001", "\u3002", "\uff0c", "\u2014", "\u200b", "\u3000", "\ufeff"]  # 3-byte non-letters
    + [
        " ",
        "\t",
        "\n",
        "\r",
        "'",
        "\u2019",
        "1",
        ".",
        "/",
        "\u00a0",
        "\u4e2d",
        "\U0001f600",
        "\ud800",
    ]
)


@settings(max_examples=800, deadline=None, derandomize=True)
@given(text=st.text(alphabet=st.sampled_from(_MIXED_ALPHABET), max_size=80))
def test_hypothesis_mixed_scripts_match_tiktoken(text: str) -> None:
    """Mixed alphabets and cases of two-byte scripts next to ASCII, three-byte scripts and
    punctuation, an emoji (four bytes) and a lone surrogate (both sides replace it with
    U+FFFD)."""
    for name in ENCODINGS:
        want = tiktoken.get_encoding(name).encode_ordinary(text)
        assert TokenCounter(name).encode_ordinary(text) == want


def test_ascii_letter_runs_match_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    """The letter runs of the ASCII word paths, which the pre-tokeniser scans eight bytes at a
    time: runs of every length up to 40 (ending inside and on the edge of each eight-byte step,
    and within the last eight bytes of the text), of small letters, capitals and mixed case,
    followed by every ASCII character (among them the neighbours of the letter ranges, @ [ ` {),
    a non-ASCII letter, a mark, a CJK character or nothing."""
    relay, oracle = pair
    followers = [chr(c) for c in range(128)] + ["\u00e9", "\u00c9", "\u0301", "\u4e2d", ""]
    texts = []
    for n in range(1, 41):
        for word in (
            ("abcdefghijklmnopqrstuvwxyz" * 2)[:n],
            ("QRSTUVWXYZ" * 4)[:n],
            ("aBcDeFgHiJkLmNoPqRsTuVwXyZ" * 2)[:n],
            "T" + ("hequickbrownfox" * 3)[: n - 1],
        ):
            for f in followers:
                texts.append(f" {word}{f}")
                texts.append(f"{word}{f}x {word}")
    assert _first_mismatch(relay, oracle, texts) is None


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("aaabeinrstxyzAEQ'-=_.!? \n\u00e9\u00fc")),
        min_size=6,
        max_size=24,
    )
)
def test_hypothesis_short_pieces_match_tiktoken(text: str) -> None:
    """Pieces of 7 to 16 bytes that are not tokens take the array merge over part offsets (a
    bitmask of live parts and the minimum of 16 keys, lowest rank then leftmost): few letters
    repeated, so that equal pairs tie, punctuation runs, a few two-byte letters, each text on a
    new counter so that no piece comes from the cache."""
    for name in ENCODINGS:
        want = tiktoken.get_encoding(name).encode_ordinary(text)
        assert TokenCounter(name, memo_size=0).encode_ordinary(text) == want


def test_short_repeated_pieces_match_tiktoken(pair: tuple[TokenCounter, tiktoken.Encoding]) -> None:
    """Runs of one character and of two alternating ones, 2 to 17 bytes (all pairs of a round
    tie, so the leftmost must merge first), with and without a leading space, and every
    lowercase word of three to sixteen letters drawn from a short alphabet."""
    relay, oracle = pair
    texts = []
    for n in range(2, 18):
        for unit in ("a", "e", "z", "ab", "ba", "=", "-=", "!", "_"):
            body = (unit * n)[:n]
            texts += [body, " " + body, body + " " + body]
    rng = random.Random(4)
    texts += [" " + "".join(rng.choices("aeinrst", k=rng.randint(3, 16))) for _ in range(3000)]
    assert _first_mismatch(relay, oracle, texts) is None


def test_new_threads_keep_ids_exact() -> None:
    """Each new thread starts with an empty pair-check memo whose lines are cleared as they are
    first used; unspaced lines (long pieces: many pair checks) on a dozen new threads, two
    vocabularies taking turns on each, keep tiktoken's ids."""
    oracles = [tiktoken.get_encoding(name) for name in ENCODINGS]
    counters = [TokenCounter(oracle.name, memo_size=0) for oracle in oracles]
    lines = [
        re.sub(r"\s", "", line)
        for name in ("Thai", "Japanese", "Russian")
        for line in corpus.natural_sample()[name].splitlines()
    ]
    failures: list[str] = []

    def run(offset: int) -> None:
        for i, line in enumerate(lines[offset::4]):
            k = i % 2
            if counters[k].encode_ordinary(line) != oracles[k].encode_ordinary(line):
                failures.append(line)

    for t in range(12):
        worker = threading.Thread(target=run, args=(t % 4,))
        worker.start()
        worker.join()
    assert failures == []


def test_piece_cache_grows_from_a_short_first_text(
    pair: tuple[TokenCounter, tiktoken.Encoding],
) -> None:
    """A thread's piece cache is sized by the first text it encodes and grows (entries moved to
    a table four times larger) as later texts bring more distinct pieces: on a new thread, a
    short text (the smallest table, 1,024 slots), then up to 40,000 distinct words (it grows
    to 4,096 and 16,384 slots), each text encoded twice (the second time mostly from the cache)
    keeps tiktoken's ids."""
    relay, oracle = pair
    counter = TokenCounter(oracle.name, memo_size=0)
    rng = random.Random(21)
    letters = "abcdefghijklmnopqrstuvwxyz\u00e9\u00fc\u0431\u0434\u05d0\u05d1"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 14))) for _ in range(40_000)]
    texts = ["hi there", " ".join(words[:500]), " ".join(words[:8000]), " ".join(words)]
    texts.append(" ".join(words[::-1] * 2))
    failures: list[int] = []

    def run() -> None:
        for i, text in enumerate(texts):
            want = oracle.encode_ordinary(text)
            for _ in range(2):
                if counter.encode_ordinary(text) != want or counter.count(text) != len(want):
                    failures.append(i)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    assert failures == []
    assert relay.encode_ordinary(texts[1]) == oracle.encode_ordinary(texts[1])
