"""relay_context.tiktoken against the real tiktoken, function by function."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
import tiktoken
from hypothesis import given, settings
from hypothesis import strategies as st

import corpus
import relay_context.tiktoken as rtiktoken
from relay_context import TokenizerError, UnknownEncodingError, UnknownModelError
from relay_context.errors import RelayError, UnknownTokenIdError

ENCODINGS = ["cl100k_base", "o200k_base", "o200k_harmony"]


@pytest.fixture(scope="module", params=ENCODINGS)
def pair(request: pytest.FixtureRequest) -> tuple[Any, Any]:
    return rtiktoken.get_encoding(request.param), tiktoken.get_encoding(request.param)


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """The result, or the builtin exception type tiktoken would raise (ValueError, KeyError)."""
    try:
        return "ok", fn(*args, **kwargs)
    except (KeyError, ValueError, TypeError) as exc:
        for kind in (KeyError, UnicodeDecodeError, ValueError, TypeError):
            if isinstance(exc, kind):
                return "raise", kind.__name__
        raise  # pragma: no cover


TEXTS = [
    "",
    "hello world",
    "<|endoftext|>",
    "hello <|endoftext|> world",
    "a<|endoftext|><|endoftext|>b  ",
    "  <|endofprompt|>\n\n<|endoftext|>x",
    "<|endoftext",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<|start|>user<|message|>hi<|end|>",
    "x<|reserved_200018|>y<|endofprompt|>z<|reserved_200018|>",
    "plain text <|not_a_token|> here",
    "lone \ud800 surrogate <|endoftext|>",
    *corpus.multilingual()[:20],
]

SPECIAL_ARGS: list[dict[str, Any]] = [
    {},
    {"allowed_special": "all"},
    {"disallowed_special": ()},
    {"allowed_special": "all", "disallowed_special": ()},
    {"allowed_special": {"<|endoftext|>"}},
    {"allowed_special": {"<|endoftext|>"}, "disallowed_special": ()},
    {"allowed_special": {"<|endofprompt|>", "<|not_a_token|>"}},
    {"allowed_special": {"<|not_a_token|>"}, "disallowed_special": ()},
    {"disallowed_special": {"<|not_a_token|>"}},
    {"disallowed_special": ["<|endoftext|>"]},
    {"allowed_special": {"<|endoftext|>"}, "disallowed_special": {"<|endoftext|>"}},
    {"allowed_special": frozenset({"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"})},
    {"allowed_special": {"<|start|>", "<|message|>", "<|end|>"}},
    {"allowed_special": {"<|reserved_200018|>", "<|endofprompt|>"}},
]


# --- the registry ----------------------------------------------------------------------------


def test_get_encoding_matches(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    assert ours.name == theirs.name
    assert repr(ours) == repr(theirs)
    assert rtiktoken.get_encoding(ours.name) is ours
    assert ours._pat_str == theirs._pat_str
    assert ours._special_tokens == theirs._special_tokens


def test_get_encoding_unknown_raises_as_tiktoken() -> None:
    for bad in ["nope_base", "", "CL100K_BASE"]:
        with pytest.raises(ValueError, match="Unknown encoding"):
            tiktoken.get_encoding(bad)
        with pytest.raises(ValueError, match="Unknown encoding") as info:
            rtiktoken.get_encoding(bad)
        assert isinstance(info.value, UnknownEncodingError)
    with pytest.raises(ValueError, match="Expected a string"):
        tiktoken.get_encoding(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Expected a string") as err:
        rtiktoken.get_encoding(3)  # type: ignore[arg-type]
    assert isinstance(err.value, RelayError)


def test_list_encoding_names_is_what_tiktoken_lists() -> None:
    names = rtiktoken.list_encoding_names()
    assert set(ENCODINGS) <= set(names)
    assert set(names) <= set(tiktoken.list_encoding_names())
    for name in names:
        assert rtiktoken.get_encoding(name).name == name


def _models() -> list[str]:
    from tiktoken.model import MODEL_PREFIX_TO_ENCODING, MODEL_TO_ENCODING

    models = list(MODEL_TO_ENCODING)
    models += [p + "2025-01-01" for p in MODEL_PREFIX_TO_ENCODING]
    models += [p + suffix for p in MODEL_PREFIX_TO_ENCODING for suffix in ("", "x", "-mini")]
    return models


# Deliberate differences: Relay maps fine-tunes of gpt-4.1 to o200k_base (their encoding), where
# tiktoken's first-matching prefix "ft:gpt-4" says cl100k_base.
RELAY_KNOWS_BETTER = ("ft:gpt-4.1",)


def test_encoding_name_for_model_matches() -> None:
    from tiktoken.model import encoding_name_for_model

    available = set(rtiktoken.list_encoding_names()) | {"gpt2"}
    checked = 0
    for model in _models():
        if model.startswith(RELAY_KNOWS_BETTER):
            continue
        want = _outcome(encoding_name_for_model, model)
        got = _outcome(rtiktoken.encoding_name_for_model, model)
        if want[0] == "raise":
            # Relay knows a few more models (o4-*, gpt-4.5*); where tiktoken knows one, they agree.
            continue
        assert got == want, model
        if want[1] in available and want[1] != "gpt2":
            assert rtiktoken.encoding_for_model(model).name == want[1]
            checked += 1
    assert checked > 30


def test_unknown_model_raises_key_error_and_relay_error() -> None:
    for model in ["not-a-model", "llama-3", "", "gpt4"]:
        with pytest.raises(KeyError) as theirs:
            tiktoken.encoding_for_model(model)
        with pytest.raises(KeyError) as ours:
            rtiktoken.encoding_for_model(model)
        assert str(ours.value) == str(theirs.value)
        assert isinstance(ours.value, UnknownModelError)
        with pytest.raises(UnknownModelError):
            rtiktoken.encoding_name_for_model(model)


# --- encoding --------------------------------------------------------------------------------


def test_encode_ordinary_matches(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    for text in [*TEXTS, *corpus.random_strings(300, seed=11)]:
        assert ours.encode_ordinary(text) == theirs.encode_ordinary(text)


@pytest.mark.parametrize("kwargs", SPECIAL_ARGS, ids=range(len(SPECIAL_ARGS)))
def test_encode_special_rules_match(pair: tuple[Any, Any], kwargs: dict[str, Any]) -> None:
    ours, theirs = pair
    for text in TEXTS:
        want = _outcome(theirs.encode, text, **kwargs)
        got = _outcome(ours.encode, text, **kwargs)
        assert got == want, (text, kwargs)


def test_disallowed_special_error_is_value_error_and_relay_error(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    with pytest.raises(ValueError, match="disallowed special token") as want:
        theirs.encode("x <|endoftext|>")
    with pytest.raises(ValueError, match="disallowed special token") as got:
        ours.encode("x <|endoftext|>")
    assert str(got.value) == str(want.value)
    assert isinstance(got.value, TokenizerError)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    parts=st.lists(
        st.one_of(
            st.text(max_size=12),
            st.sampled_from(["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>", "<|x|>"]),
        ),
        max_size=6,
    ),
    kwargs=st.sampled_from(SPECIAL_ARGS),
)
def test_encode_hypothesis_matches(parts: list[str], kwargs: dict[str, Any]) -> None:
    text = "".join(parts)
    for name in ("cl100k_base", "o200k_base"):
        want = _outcome(tiktoken.get_encoding(name).encode, text, **kwargs)
        assert _outcome(rtiktoken.get_encoding(name).encode, text, **kwargs) == want


def test_encode_batch_matches(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    texts = [t for t in TEXTS if "<|" not in t]
    assert ours.encode_ordinary_batch(texts) == theirs.encode_ordinary_batch(texts)
    assert ours.encode_ordinary_batch(TEXTS, num_threads=2) == theirs.encode_ordinary_batch(
        TEXTS, num_threads=2
    )
    for kwargs in SPECIAL_ARGS:
        want = _outcome(theirs.encode_batch, TEXTS, **kwargs)
        assert _outcome(ours.encode_batch, TEXTS, **kwargs) == want, kwargs
        assert _outcome(ours.encode_batch, texts, **kwargs) == _outcome(
            theirs.encode_batch, texts, **kwargs
        )


def test_encode_to_numpy_matches(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    for text in TEXTS[:6]:
        want = theirs.encode_to_numpy(text, disallowed_special=())
        got = ours.encode_to_numpy(text, disallowed_special=())
        assert got.dtype == want.dtype
        assert got.tolist() == want.tolist()


def test_encode_single_token_matches(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    pieces: list[str | bytes] = [
        "hello",
        " world",
        "a",
        "<|endoftext|>",
        "<|endofprompt|>",
        "<|fim_prefix|>",
        "<|start|>",
        b"\xff",
        b"\x00",
        b" the",
        "hello world, this is not one token",
        "",
        b"\xe4\xb8",
        "<|not_a_token|>",
    ]
    pieces += [theirs.decode_single_token_bytes(i) for i in range(0, 100_000, 997)]
    for piece in pieces:
        want = _outcome(theirs.encode_single_token, piece)
        got = _outcome(ours.encode_single_token, piece)
        assert got == want, piece


# --- decoding --------------------------------------------------------------------------------


def _id_lists(theirs: Any) -> list[list[int]]:
    lists = [theirs.encode_ordinary(text) for text in TEXTS]
    lists += [[theirs.eot_token], [0, 1, 2, theirs.eot_token, 3]]
    lists += [ids[: len(ids) // 2] for ids in lists]  # partial UTF-8
    return lists


def test_decode_matches(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    for ids in _id_lists(theirs):
        assert ours.decode_bytes(ids) == theirs.decode_bytes(ids)
        assert ours.decode(ids) == theirs.decode(ids)
        for errors in ("strict", "ignore", "replace", "backslashreplace"):
            assert _outcome(ours.decode, ids, errors=errors) == _outcome(
                theirs.decode, ids, errors=errors
            )
    batch = _id_lists(theirs)
    assert ours.decode_batch(batch) == theirs.decode_batch(batch)
    assert ours.decode_bytes_batch(batch) == theirs.decode_bytes_batch(batch)


def test_decode_unknown_ids_raise_key_error(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    for bad in ([theirs.n_vocab], [1, theirs.n_vocab + 5, 2], [10**9]):
        assert _outcome(ours.decode_bytes, bad) == _outcome(theirs.decode_bytes, bad)
        assert _outcome(ours.decode, bad) == _outcome(theirs.decode, bad)
        with pytest.raises(UnknownTokenIdError):
            ours.decode(bad)
    for token in (theirs.n_vocab, theirs.n_vocab + 100):
        want = _outcome(theirs.decode_single_token_bytes, token)
        assert _outcome(ours.decode_single_token_bytes, token) == want
        with pytest.raises(UnknownTokenIdError):
            ours.decode_single_token_bytes(token)


def test_cl100k_gaps_are_unknown() -> None:
    ours, theirs = rtiktoken.get_encoding("cl100k_base"), tiktoken.get_encoding("cl100k_base")
    for token in (100256, 100261, 100275):
        want = _outcome(theirs.decode_single_token_bytes, token)
        assert _outcome(ours.decode_single_token_bytes, token) == want
        assert _outcome(ours.decode_bytes, [token]) == _outcome(theirs.decode_bytes, [token])


def test_decode_single_token_bytes_matches(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    for token in [*range(0, theirs.n_vocab, 131), *theirs._special_tokens.values()]:
        want = _outcome(theirs.decode_single_token_bytes, token)
        assert _outcome(ours.decode_single_token_bytes, token) == want, token


def test_decode_tokens_bytes_and_offsets_match(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    for ids in _id_lists(theirs):
        assert ours.decode_tokens_bytes(ids) == theirs.decode_tokens_bytes(ids)
        assert _outcome(ours.decode_with_offsets, ids) == _outcome(theirs.decode_with_offsets, ids)


# --- the rest --------------------------------------------------------------------------------


def test_properties_match(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    assert ours.special_tokens_set == theirs.special_tokens_set
    assert ours.max_token_value == theirs.max_token_value
    assert ours.n_vocab == theirs.n_vocab
    assert ours.eot_token == theirs.eot_token
    for token in [0, 5, theirs.eot_token, *list(theirs._special_tokens.values())[:5], 10**7]:
        assert ours.is_special_token(token) == theirs.is_special_token(token)


def test_token_byte_values_match(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    assert ours.token_byte_values() == theirs.token_byte_values()
    assert ours._mergeable_ranks == theirs._mergeable_ranks


def test_pickle_round_trips(pair: tuple[Any, Any]) -> None:
    ours, _ = pair
    data = pickle.dumps(ours)
    assert len(data) < 200  # registered encodings pickle by name, as tiktoken's do
    again = pickle.loads(data)
    assert again.name == ours.name
    assert again.encode("hello <|endoftext|>", allowed_special="all") == ours.encode(
        "hello <|endoftext|>", allowed_special="all"
    )


def test_custom_encoding_matches_and_pickles() -> None:
    base = tiktoken.get_encoding("cl100k_base")
    kwargs: dict[str, Any] = {
        "name": "cl100k_im",
        "pat_str": base._pat_str,
        "mergeable_ranks": base._mergeable_ranks,
        "special_tokens": {**base._special_tokens, "<|im_start|>": 100264, "<|im_end|>": 100265},
    }
    theirs = tiktoken.Encoding(**kwargs)
    ours = rtiktoken.Encoding(**kwargs)
    text = "<|im_start|>user\nhello<|im_end|> world"
    assert ours.encode(text, allowed_special="all") == theirs.encode(text, allowed_special="all")
    assert _outcome(ours.encode, text) == _outcome(theirs.encode, text)
    assert ours.n_vocab == theirs.n_vocab
    assert ours.decode(ours.encode(text, allowed_special="all")) == text
    again = pickle.loads(pickle.dumps(ours))
    assert again.encode(text, allowed_special="all") == theirs.encode(text, allowed_special="all")


def test_drop_in_surface() -> None:
    public = {name for name in dir(tiktoken) if not name.startswith("_")}
    missing = {"get_encoding", "encoding_for_model", "list_encoding_names", "Encoding"} - set(
        dir(rtiktoken)
    )
    assert not missing
    enc_methods = {n for n in dir(tiktoken.Encoding) if not n.startswith("_")}
    ours = {n for n in dir(rtiktoken.Encoding) if not n.startswith("_")}
    # encode_with_unstable is tiktoken's experimental API, not offered.
    assert enc_methods - ours <= {"encode_with_unstable"}
    assert "encoding_name_for_model" in dir(rtiktoken)
    assert public  # tiktoken itself imported
