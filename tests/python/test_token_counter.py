"""TokenCounter / TokenManager behaviour beyond the oracle: errors, models, chat counting,
truncation, memo, batches, async, growth."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import lzma
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

import corpus
import relay_context
from relay_context import (
    ChecksumMismatchError,
    DisallowedSpecialTokenError,
    InputTypeError,
    InvalidArgumentError,
    RankFileError,
    RelayError,
    TokenCounter,
    TokenManager,
    UnknownEncodingError,
    UnknownModelError,
    UnknownTokenIdError,
)


@pytest.fixture(scope="module")
def o200k() -> TokenCounter:
    return TokenCounter("o200k_base")


@pytest.fixture(scope="module")
def cl100k() -> TokenCounter:
    return TokenCounter("cl100k_base")


# --- basics and models ----------------------------------------------------------


def test_known_values(cl100k: TokenCounter, o200k: TokenCounter) -> None:
    assert cl100k.encode("hello world") == [15339, 1917]
    assert o200k.count("hello world") == 2
    assert cl100k.n_vocab == 100277
    assert o200k.n_vocab == 200019
    assert cl100k.eot_token == 100257
    assert repr(o200k) == "TokenCounter('o200k_base')"


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-4-32k-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("openai/gpt-4o", "o200k_base"),
        ("ft:gpt-4o-mini:org::abc", "o200k_base"),
    ],
)
def test_model_map(model: str, encoding: str) -> None:
    assert TokenCounter.for_model(model).name == encoding
    assert relay_context.encoding_name_for_model(model) == encoding
    # Agrees with tiktoken's own table where tiktoken knows the model.
    with contextlib.suppress(KeyError):
        assert tiktoken.encoding_name_for_model(model) == encoding


def test_unknown_model_and_fallback() -> None:
    with pytest.raises(UnknownModelError, match="claude-3"):
        TokenCounter.for_model("claude-3-opus")
    tc = TokenCounter.for_model("claude-3-opus", fallback_encoding="cl100k_base")
    assert tc.name == "cl100k_base"
    assert tc.model == "claude-3-opus"


def test_unknown_encoding() -> None:
    with pytest.raises(UnknownEncodingError, match="shipped encodings"):
        TokenCounter("o300k_base")
    with pytest.raises(UnknownEncodingError, match="from_file"):
        TokenCounter("r50k_base")
    with pytest.raises(UnknownEncodingError):
        TokenCounter.for_model("claude", fallback_encoding="nope")


# --- errors ----------------------------------------------------------


@pytest.mark.parametrize("bad", [b"bytes", 12, None, ["a"], 3.5])
def test_non_str_is_a_type_error(o200k: TokenCounter, bad: object) -> None:
    for call in (o200k.count, o200k.encode, o200k.encode_ordinary):
        with pytest.raises(InputTypeError, match="must be a str"):
            call(bad)  # type: ignore[operator]
    with pytest.raises(TypeError):
        o200k.count_batch(["ok", bad])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        o200k.truncate_to_budget(bad, 3)  # type: ignore[arg-type]


def test_disallowed_special(o200k: TokenCounter) -> None:
    with pytest.raises(DisallowedSpecialTokenError, match="<\\|endoftext\\|>"):
        o200k.encode("hi <|endoftext|>")
    # Same class hierarchy as users expect from tiktoken (ValueError) and from Relay.
    with pytest.raises(ValueError, match="not allowed"):
        o200k.encode("x<|endofprompt|>", allowed_special={"<|endoftext|>"})
    assert o200k.encode("hi <|endoftext|>", allowed_special="all")[-1] == 199999
    assert 199999 not in o200k.encode("hi <|endoftext|>", disallowed_special=())
    with pytest.raises(InvalidArgumentError, match="not special tokens"):
        o200k.encode("x", allowed_special={"<|nope|>"})


def test_decode_errors(o200k: TokenCounter) -> None:
    with pytest.raises(UnknownTokenIdError, match="999999"):
        o200k.decode([1, 999999])
    with pytest.raises(UnknownTokenIdError):
        o200k.decode([-1])
    with pytest.raises(InputTypeError):
        o200k.decode("abc")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        o200k.decode([1.5])  # type: ignore[list-item]


def _copy_ranks(bpe_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "cl100k_base.tiktoken"
    shutil.copy(bpe_dir / "cl100k_base.tiktoken", dst)
    dst.chmod(0o644)
    return dst


def test_from_file_with_pattern_and_checksum(bpe_dir: Path, tmp_path: Path) -> None:
    path = _copy_ranks(bpe_dir, tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    oracle = tiktoken.get_encoding("cl100k_base")
    tc = TokenCounter.from_file(
        path, pattern=oracle._pat_str, special_tokens=oracle._special_tokens, sha256=sha
    )
    assert tc.encode("It's 2024 — ok?  x", allowed_special="all") == oracle.encode(
        "It's 2024 — ok?  x", allowed_special="all"
    )
    xz = tmp_path / "ranks.tiktoken.xz"
    xz.write_bytes(lzma.compress(path.read_bytes()))
    assert TokenCounter.from_file(xz, pattern="cl100k").encode("hello world") == [15339, 1917]


def test_wrong_checksum(bpe_dir: Path, tmp_path: Path) -> None:
    path = _copy_ranks(bpe_dir, tmp_path)
    with pytest.raises(ChecksumMismatchError, match="expected 00"):
        TokenCounter.from_file(path, pattern="cl100k", sha256="00" * 32)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"!!!notbase64 0\n", "line 1"),
        (b"YQ== 0\nYg==\n", "line 2"),
        (b"YQ== 0\nYg== x1\n", "line 2"),
        (b"YQ== 0\nYQ== 1\n", "line 2"),
    ],
)
def test_corrupt_rank_file(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(content)
    with pytest.raises(RankFileError, match=message):
        TokenCounter.from_file(path, pattern="cl100k")


def test_truncated_real_rank_file(bpe_dir: Path, tmp_path: Path) -> None:
    data = (bpe_dir / "cl100k_base.tiktoken").read_bytes()
    path = tmp_path / "cut.tiktoken"
    path.write_bytes(data[: len(data) // 2 - 3])  # ends mid-line
    with pytest.raises(RankFileError):
        TokenCounter.from_file(path, pattern="cl100k")
    corrupt = tmp_path / "corrupt.tiktoken.xz"
    corrupt.write_bytes(b"\xfd7zXZ\x00garbage")
    with pytest.raises(RankFileError, match="corrupt"):
        TokenCounter.from_file(corrupt, pattern="cl100k")
    with pytest.raises(RankFileError, match="cannot read"):
        TokenCounter.from_file(tmp_path / "missing.tiktoken", pattern="cl100k")


def test_unknown_pattern(bpe_dir: Path) -> None:
    with pytest.raises(UnknownEncodingError, match="pattern family"):
        TokenCounter.from_file(bpe_dir / "cl100k_base.tiktoken", pattern=r"\w+")


def test_all_errors_are_relay_errors() -> None:
    for name in relay_context.errors.__all__:
        assert issubclass(getattr(relay_context.errors, name), RelayError)


# --- chat counting ----------------------------------------------------------


def _cookbook_count(enc: tiktoken.Encoding, messages: list[dict[str, str]]) -> int:
    # OpenAI's published rule for gpt-3.5-turbo-0613 and later: 3 per message, 1 per name,
    # 3 to prime the reply.
    n = 3
    for m in messages:
        n += 3
        for k, v in m.items():
            n += len(enc.encode(v))
            if k == "name":
                n += 1
    return n


def test_count_messages_follows_openai_rule() -> None:
    messages = [
        {"role": "system", "content": "You are a helpful, pattern-following assistant."},
        {
            "role": "system",
            "name": "example_user",
            "content": "New synergies will help drive top-line growth.",
        },
        {
            "role": "system",
            "name": "example_assistant",
            "content": "Things working well together will increase revenue.",
        },
        {"role": "user", "content": "This late pivot means we don't have time to boil the ocean."},
    ]
    for model in ("gpt-4", "gpt-4o", "gpt-3.5-turbo"):
        tc = TokenCounter.for_model(model)
        assert tc.count_messages(messages) == _cookbook_count(
            tiktoken.encoding_for_model(model), messages
        )
    # Worked by hand for gpt-4: 4 messages x 3 + 2 names + 3 priming + the fields' tokens.
    enc = tiktoken.get_encoding("cl100k_base")
    fields = sum(len(enc.encode(v)) for m in messages for v in m.values())
    assert TokenCounter.for_model("gpt-4").count_messages(messages) == 12 + 2 + 3 + fields


def test_count_messages_parts_and_tool_calls(o200k: TokenCounter) -> None:
    text = {"role": "user", "content": "describe this"}
    parts = {
        "role": "user",
        "content": [
            {"type": "text", "text": "describe this"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ],
    }
    assert o200k.count_messages([parts]) == o200k.count_messages([text])
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
            }
        ],
    }
    expected = (
        3
        + 3
        + o200k.count("assistant")
        + o200k.count("get_weather")
        + o200k.count('{"city": "Paris"}')
    )
    assert o200k.count_messages([call]) == expected
    assert o200k.count_messages([]) == 3
    with pytest.raises(InputTypeError, match="role"):
        o200k.count_messages([{"content": "x"}])
    with pytest.raises(InputTypeError, match="sequence"):
        o200k.count_messages({"role": "user"})  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="unsupported type"):
        o200k.count_messages([{"role": "user", "content": 5}])


# --- truncation ----------------------------------------------------------


@settings(max_examples=300, deadline=None, derandomize=True)
@given(text=st.text(min_size=0, max_size=200), budget=st.integers(min_value=0, max_value=60))
def test_truncate_to_budget_properties(text: str, budget: int) -> None:
    tc = TokenCounter("o200k_base")
    out = tc.truncate_to_budget(text, budget)
    clean = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert clean.startswith(out)
    assert tc.count(out) <= budget
    if tc.count(clean) <= budget:
        assert out == clean
    else:
        # Cut on a token boundary: the kept prefix is a prefix of the full token stream's bytes.
        ids = tc.encode_ordinary(clean)
        boundaries = {0}
        acc = b""
        for i in ids:
            acc += tc.decode_bytes([i])
            boundaries.add(len(acc))
        assert len(out.encode()) in boundaries or tc.count(out) <= budget


def test_truncate_never_splits_a_character(o200k: TokenCounter) -> None:
    text = "😀" * 50 + "字" * 50
    for budget in range(0, 120):
        out = o200k.truncate_to_budget(text, budget)
        assert text.startswith(out)
        assert o200k.count(out) <= budget
    assert o200k.truncate_to_budget("hello world", 100) == "hello world"
    assert o200k.truncate_to_budget("hello world", 1) == "hello"
    with pytest.raises(InvalidArgumentError, match="max_tokens"):
        o200k.truncate_to_budget("x", -1)


# --- memo, batch, threads, async ----------------------------------------------------------


def test_memo_counts_repeated_texts_once() -> None:
    tc = TokenCounter("cl100k_base", memo_size=8)
    text = "a history that is counted again on every request " * 20
    before = tc.memo_stats()
    n = tc.count(text)
    assert tc.count(text) == n
    after = tc.memo_stats()
    assert after.hits >= before.hits + 1
    assert after.capacity == 8
    for i in range(50):
        tc.count(f"distinct text {i}")
    assert tc.memo_stats().size <= 8


def test_count_batch_equals_count(o200k: TokenCounter) -> None:
    texts = corpus.random_strings(3000, seed=3) + corpus.multilingual()
    assert o200k.count_batch(texts) == [o200k.count(t) for t in texts]
    assert o200k.count_batch(texts, num_threads=1) == o200k.count_batch(texts, num_threads=2)
    assert o200k.count_batch([]) == []
    with pytest.raises(InvalidArgumentError):
        o200k.count_batch(["x"], num_threads=0)


def test_surrogates_are_replaced_like_tiktoken(o200k: TokenCounter) -> None:
    text = "a\ud800b\udfffc"
    oracle = tiktoken.get_encoding("o200k_base")
    assert o200k.encode(text) == oracle.encode(text)
    assert o200k.count(text) == len(oracle.encode(text))
    assert o200k.count_batch([text]) == [len(oracle.encode(text))]


async def test_async_twins(o200k: TokenCounter) -> None:
    manager = TokenManager("gpt-4")
    assert await manager.count_tokens("Hello world") == 2
    long_text = "word " * 50_000
    assert await manager.count_tokens(long_text) == manager.count(long_text)
    out = await manager.truncate_to_budget(long_text, max_tokens=1000)
    assert manager.count(out) <= 1000
    assert long_text.startswith(out)
    assert manager.encoding_name == "cl100k_base"
    assert TokenManager("o200k_base").encoding_name == "o200k_base"
    results = await asyncio.gather(*(o200k.count_tokens(t) for t in ["a b", "c d e", long_text]))
    assert results == [2, 3, o200k.count(long_text)]
    assert await o200k.count_tokens_batch(["a", "b c"]) == [1, 2]


def test_brief_import_path() -> None:
    from relay_context.core.token_manager import TokenManager as FromBrief

    assert FromBrief is TokenManager


# --- complexity ----------------------------------------------------------


def _best_times(small: Callable[[], object], large: Callable[[], object]) -> tuple[float, float]:
    # Thread CPU time, best of 5, alternating: waiting for a core on a loaded machine is not
    # counted, so the growth ratio is stable.
    best_small = best_large = float("inf")
    for _ in range(5):
        t0 = time.thread_time()
        small()
        best_small = min(best_small, time.thread_time() - t0)
        t0 = time.thread_time()
        large()
        best_large = min(best_large, time.thread_time() - t0)
    return best_small, best_large


@pytest.mark.parametrize("unit", ["a", " ", "é", "\n", "ab "])
def test_long_runs_stay_linear(unit: str) -> None:
    tc = TokenCounter("o200k_base", memo_size=0)
    small, large = unit * 20_000, unit * 200_000
    tc.encode_ordinary(small)  # warm up
    t_small, t_large = _best_times(
        lambda: tc.encode_ordinary(small), lambda: tc.encode_ordinary(large)
    )
    assert t_large < 20 * max(t_small, 1e-4), (t_small, t_large)
