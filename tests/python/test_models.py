"""The engine's models: validation with typed errors, round trips, the OpenAI shape."""

from __future__ import annotations

import dataclasses
import string
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay_context.engine.models import (
    MessageRole,
    NewMessage,
    Session,
    StoredMessage,
    ToolCall,
    micros_from_utc,
    stored_message,
    utc_from_micros,
    validate_session_id,
)
from relay_context.errors import (
    EmptyContentError,
    InputTypeError,
    InvalidArgumentError,
    InvalidSessionIdError,
    MessageTooLargeError,
    UnknownRoleError,
)

ID_CHARS = string.ascii_letters + string.digits + "._:-"
NOW = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=timezone.utc)


# --- session ids ------------------------------------------------------------------------------
# Ids made only of dots are refused (a URL cannot address them: dot segments are removed).
@given(st.text(alphabet=ID_CHARS, min_size=1, max_size=128).filter(lambda s: s.strip(".")))
def test_well_formed_session_ids_are_accepted(session_id: str) -> None:
    assert validate_session_id(session_id) == session_id


@given(
    st.text(alphabet=ID_CHARS, max_size=60),
    st.characters().filter(lambda c: c not in ID_CHARS),
    st.text(alphabet=ID_CHARS, max_size=60),
)
def test_a_character_outside_the_alphabet_is_rejected_and_named(
    head: str, bad: str, tail: str
) -> None:
    with pytest.raises(InvalidSessionIdError, match="contains") as info:
        validate_session_id(head + bad + tail)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "empty"), ("a" * 129, "129 characters"), ("a b", "' '"), ("ü", "'ü'"), ("a/b", "'/'")],
)
def test_malformed_session_ids(value: str, message: str) -> None:
    with pytest.raises(InvalidSessionIdError, match=message):
        validate_session_id(value)
    # The typed error is also what a Python user expects to catch.
    assert issubclass(InvalidSessionIdError, InvalidArgumentError)
    assert issubclass(InvalidSessionIdError, ValueError)


def test_session_id_of_the_wrong_type() -> None:
    with pytest.raises(InputTypeError, match="bytes"):
        validate_session_id(b"abc")


def test_longest_session_id() -> None:
    assert validate_session_id("x" * 128) == "x" * 128


# --- roles ------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["system", "user", "assistant", "tool"])
def test_roles_parse_from_their_names(role: str) -> None:
    assert MessageRole.parse(role).value == role
    assert MessageRole.parse(MessageRole(role)) is MessageRole(role)


@pytest.mark.parametrize("role", ["bot", "User", "", "function", None, 3])
def test_unknown_roles(role: object) -> None:
    with pytest.raises(UnknownRoleError, match=r"expected one of: system, user, assistant, tool"):
        MessageRole.parse(role)


def test_new_message_with_an_unknown_role() -> None:
    with pytest.raises(UnknownRoleError, match="'robot'"):
        NewMessage("robot", "hi")  # type: ignore[arg-type]


def test_role_given_as_text_becomes_the_enum() -> None:
    assert NewMessage("user", "hi").role is MessageRole.USER  # type: ignore[arg-type]


# --- content ----------------------------------------------------------------------------------
def test_empty_content_is_rejected() -> None:
    with pytest.raises(EmptyContentError, match="user message content is empty"):
        NewMessage(MessageRole.USER, "")


def test_content_must_be_text() -> None:
    with pytest.raises(InputTypeError, match="bytes"):
        NewMessage(MessageRole.USER, b"hi")  # type: ignore[arg-type]


def test_an_assistant_turn_that_only_calls_tools_may_have_no_text() -> None:
    call = ToolCall(id="call_1", name="lookup", arguments='{"q": "x"}')
    message = NewMessage(MessageRole.ASSISTANT, "", tool_calls=(call,))
    assert message.tool_calls == (call,)


def test_size_limit_counts_utf8_bytes() -> None:
    message = NewMessage(MessageRole.USER, "é" * 10)  # 20 bytes, 10 characters
    assert message.content_bytes == 20
    message.check_size(20)
    with pytest.raises(MessageTooLargeError, match=r"20 bytes.*limit.*19"):
        message.check_size(19)
    assert issubclass(MessageTooLargeError, InvalidArgumentError)


# --- tool calls -------------------------------------------------------------------------------
def test_tool_calls_round_trip_through_the_openai_shape() -> None:
    raw = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    call = ToolCall.from_openai(raw)
    assert call == ToolCall(id="call_9", name="f", arguments="{}")
    assert call.to_openai() == raw
    message = NewMessage(MessageRole.ASSISTANT, "calling", tool_calls=[raw])  # type: ignore[arg-type]
    assert message.tool_calls == (call,)


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ({"id": "c", "type": "function"}, "no 'function'"),
        ({"id": "", "function": {"name": "f", "arguments": ""}}, "tool call id is empty"),
        ({"id": "c", "function": {"arguments": ""}}, "tool call name must be a str"),
        ({"id": "c", "function": {"name": "f", "arguments": {"a": 1}}}, "arguments must be a str"),
    ],
)
def test_malformed_tool_calls(raw: dict[str, object], error: str) -> None:
    with pytest.raises((InvalidArgumentError, InputTypeError), match=error):
        ToolCall.from_openai(raw)


def test_tool_calls_only_on_assistant_messages() -> None:
    call = ToolCall(id="c", name="f", arguments="{}")
    with pytest.raises(InvalidArgumentError, match="only assistant messages carry tool_calls"):
        NewMessage(MessageRole.USER, "x", tool_calls=(call,))


def test_tool_messages_need_the_call_they_answer() -> None:
    with pytest.raises(InvalidArgumentError, match="needs the tool_call_id"):
        NewMessage(MessageRole.TOOL, "42")
    with pytest.raises(InvalidArgumentError, match="only tool messages carry a tool_call_id"):
        NewMessage(MessageRole.USER, "42", tool_call_id="c")
    assert NewMessage(MessageRole.TOOL, "42", tool_call_id="c").tool_call_id == "c"


# --- metadata, token counts, times ------------------------------------------------------------
def test_metadata_must_be_json() -> None:
    with pytest.raises(InvalidArgumentError, match="not JSON-serializable"):
        NewMessage(MessageRole.USER, "x", metadata={"when": datetime.now()})
    with pytest.raises(InvalidArgumentError, match="not JSON-serializable"):
        NewMessage(MessageRole.USER, "x", metadata={"x": float("nan")})
    with pytest.raises(InvalidArgumentError, match="keys must be str"):
        NewMessage(MessageRole.USER, "x", metadata={1: "a"})  # type: ignore[dict-item]


def test_metadata_is_copied_not_shared() -> None:
    source = {"tags": ["a"]}
    message = NewMessage(MessageRole.USER, "x", metadata=source)
    source["tags"].append("b")
    assert message.metadata == {"tags": ["a"]}


@pytest.mark.parametrize("counts", [{"o200k_base": -1}, {"o200k_base": 1.5}, {"": 3}, {"x": True}])
def test_token_counts_are_non_negative_ints_per_encoding(counts: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError, match="token_counts"):
        NewMessage(MessageRole.USER, "x", token_counts=counts)  # type: ignore[arg-type]


def test_created_at_must_know_its_time_zone() -> None:
    with pytest.raises(InvalidArgumentError, match="aware datetime"):
        NewMessage(MessageRole.USER, "x", created_at=datetime(2026, 1, 1))


@given(st.integers(min_value=0, max_value=2**53))
def test_micros_round_trip(micros: int) -> None:
    assert micros_from_utc(utc_from_micros(micros)) == micros


def test_micros_of_other_time_zones() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    assert micros_from_utc(plus_two) == micros_from_utc(NOW)
    assert utc_from_micros(micros_from_utc(NOW)) == NOW


# --- stored messages and sessions -------------------------------------------------------------
def test_stored_message_in_the_openai_shape() -> None:
    call = ToolCall(id="c", name="f", arguments="{}")
    assistant = StoredMessage("s1", 2, MessageRole.ASSISTANT, "", NOW, tool_calls=(call,))
    assert assistant.to_openai() == {
        "role": "assistant",
        "content": "",
        "tool_calls": [call.to_openai()],
    }
    tool = StoredMessage("s1", 3, MessageRole.TOOL, "42", NOW, name="f", tool_call_id="c")
    assert tool.to_openai() == {"role": "tool", "content": "42", "name": "f", "tool_call_id": "c"}


def test_stored_message_seq_is_positive() -> None:
    with pytest.raises(InvalidArgumentError, match="seq must be a positive int"):
        StoredMessage("s1", 0, MessageRole.USER, "x", NOW)


def test_session_validation_and_cache_version() -> None:
    later = NOW + timedelta(hours=1)
    session = Session("s-1", "alice", NOW, NOW, 3600, later, revision=4, incarnation="ab")
    assert session.cache_version == "ab.4"
    assert not session.is_expired(NOW)
    assert session.is_expired(later)
    with pytest.raises(InvalidSessionIdError):
        Session("bad id", "alice", NOW, NOW, 3600, later)
    with pytest.raises(InvalidArgumentError, match="owner is empty"):
        Session("s-1", "", NOW, NOW, 3600, later)
    with pytest.raises(InvalidArgumentError, match="ttl_seconds must be >= 1"):
        Session("s-1", "alice", NOW, NOW, 0, later)


def test_stored_message_from_fields_equals_the_validated_constructor() -> None:
    """The positional row decoder sets every field (a field added to StoredMessage and not to
    it would fail here) and builds what the constructor builds."""
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)
    calls = (ToolCall(id="c1", name="lookup", arguments='{"q": 1}'),)
    values: dict[str, Any] = {
        "session_id": "s-1",
        "seq": 7,
        "role": MessageRole.ASSISTANT,
        "content": "hello",
        "created_at": at,
        "name": "bot",
        "tool_call_id": None,
        "tool_calls": calls,
        "metadata": {"pinned": True},
        "token_counts": {"o200k_base": 1},
        "dedup_signature": bytes(range(64)),
    }
    assert [f.name for f in dataclasses.fields(StoredMessage)] == list(values)
    built = stored_message(*values.values())
    assert built == StoredMessage(**values)
    assert dataclasses.asdict(built) == dataclasses.asdict(StoredMessage(**values))
