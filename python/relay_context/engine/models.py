"""The context engine's data: sessions, the messages appended to them, and their validation.

Everything here is a frozen dataclass validated on construction; a bad value raises a subclass
of :class:`~relay_context.errors.InvalidArgumentError` (or
:class:`~relay_context.errors.InputTypeError` for a wrong type) whose message names the field and
the value. ``MessageRole`` is re-exported by
``relay_context.core.context_engine`` (the name the product docs use).
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from relay_context.checks import (
    NAME_MAX_LENGTH,
    check_int,
    check_json_text,
    check_text,
    preview,
    validate_name,
)
from relay_context.core.rows import MESSAGE_SLOTS
from relay_context.errors import (
    EmptyContentError,
    InputTypeError,
    InvalidArgumentError,
    InvalidSessionIdError,
    MessageTooLargeError,
    UnknownRoleError,
)

# Re-exported: the stored form of times (``*_at_us`` columns) is part of these models' contract.
from relay_context.persistence.clock import micros_from_utc, utc_from_micros

#: A session id: 1 to 128 characters of ``[A-Za-z0-9._:-]`` (safe in URLs, Redis keys, file names),
#: not only dots: "." and ".." are dot segments, which HTTP clients remove from a URL's path, so
#: such a session could never be addressed again.
SESSION_ID_MAX_LENGTH = 128
_SESSION_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
#: The same rule as one regular expression without look-arounds, for the OpenAPI document (JSON
#: Schema ``pattern``; its length bounds go in ``minLength``/``maxLength``).
SESSION_ID_PATTERN = r"^[A-Za-z0-9._:\-]*[A-Za-z0-9_:\-][A-Za-z0-9._:\-]*$"
#: Owners, tool names and tool-call ids are free text, but bounded.


class MessageRole(str, enum.Enum):
    """Who wrote a message, as in the OpenAI chat format."""

    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"

    @classmethod
    def parse(cls, value: object) -> MessageRole:
        """``value`` as a role; accepts a ``MessageRole`` or its lower-case name."""
        if isinstance(value, MessageRole):
            return value
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                pass
        allowed = ", ".join(r.value for r in cls)
        raise UnknownRoleError(f"unknown message role {value!r}; expected one of: {allowed}")


def validate_session_id(value: object) -> str:
    """``value`` if it is a well-formed session id, else :class:`InvalidSessionIdError`."""
    if not isinstance(value, str):
        raise InputTypeError(f"session id must be a str, got {type(value).__name__}")
    if _SESSION_ID.fullmatch(value) is None:
        if not value:
            raise InvalidSessionIdError("session id is empty; expected 1-128 of [A-Za-z0-9._:-]")
        if len(value) > SESSION_ID_MAX_LENGTH:
            raise InvalidSessionIdError(
                f"session id {preview(value)} has {len(value)} characters; at most "
                f"{SESSION_ID_MAX_LENGTH} are allowed"
            )
        bad = next(c for c in value if _SESSION_ID.fullmatch(c) is None)
        raise InvalidSessionIdError(
            f"session id {preview(value)} contains {bad!r}; only [A-Za-z0-9._:-] are allowed"
        )
    if not value.strip("."):
        raise InvalidSessionIdError(
            f"session id {preview(value)} is only dots; URLs cannot address it (dot segments)"
        )
    return value


def validate_ttl(value: object) -> int:
    """A session TTL: a whole number of seconds, at least 1."""
    return check_int(value, "ttl_seconds", minimum=1)


def validate_metadata(what: str, value: object) -> dict[str, Any]:
    """A JSON object (str keys, JSON values, no NaN/Infinity), returned as a private deep copy."""
    if not isinstance(value, Mapping):
        raise InputTypeError(f"{what} must be a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidArgumentError(f"{what} keys must be str, got {key!r}")
    check_json_text(what, value)
    try:
        text = json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(f"{what} is not JSON-serializable: {exc}") from None
    copy: dict[str, Any] = json.loads(text)
    return copy


def validate_token_counts(value: object) -> dict[str, int]:
    """Token counts per encoding name: ``{"o200k_base": 12, ...}``, each count >= 0."""
    if not isinstance(value, Mapping):
        raise InputTypeError(f"token_counts must be a mapping, got {type(value).__name__}")
    counts: dict[str, int] = {}
    for encoding, count in value.items():
        if not isinstance(encoding, str) or not encoding:
            raise InvalidArgumentError(
                f"token_counts key must be an encoding name, got {encoding!r}"
            )
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise InvalidArgumentError(
                f"token_counts[{encoding!r}] must be a non-negative int, got {count!r}"
            )
        counts[encoding] = count
    return counts


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A function call requested by the assistant (OpenAI ``tool_calls[i]``)."""

    id: str
    name: str
    #: The arguments exactly as the model produced them (JSON text, possibly malformed).
    arguments: str
    type: str = "function"

    def __post_init__(self) -> None:
        validate_name("tool call id", self.id)
        validate_name("tool call name", self.name)
        validate_name("tool call type", self.type)
        if not isinstance(self.arguments, str):
            raise InputTypeError(
                f"tool call arguments must be a str, got {type(self.arguments).__name__}"
            )
        check_text("tool call arguments", self.arguments)

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "function": {"name": self.name, "arguments": self.arguments},
        }

    @classmethod
    def from_openai(cls, value: Mapping[str, Any]) -> ToolCall:
        """From the OpenAI dict ``{"id", "type", "function": {"name", "arguments"}}``."""
        if not isinstance(value, Mapping):
            raise InputTypeError(f"a tool call must be a mapping, got {type(value).__name__}")
        function = value.get("function")
        if not isinstance(function, Mapping):
            raise InvalidArgumentError(f"tool call {value!r} has no 'function' object")
        return cls(
            # Types are checked in __post_init__, with a message naming the field.
            id=value.get("id"),  # type: ignore[arg-type]
            name=function.get("name"),  # type: ignore[arg-type]
            arguments=function.get("arguments", ""),
            type=value.get("type", "function"),
        )


def slot_setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The setters of ``cls``'s slots ``names``, in order. They write a frozen dataclass's
    fields past its ``__setattr__``: the positional makers of a session's many objects
    (``stored_message``, ``make_candidate``, ``make_window_message``) use them."""
    return tuple(cls.__dict__[name].__set__ for name in names)


_SET_CALL = slot_setters(ToolCall, "id", "name", "arguments", "type")


def stored_tool_call(value: Mapping[str, Any]) -> ToolCall:
    """``ToolCall.from_openai`` of a call read back from a store, which validated it when it
    was written: not validated again (a long session's first window reads every call)."""
    try:
        function = value["function"]
        fields = (value["id"], function["name"], function.get("arguments", ""))
        kind = value.get("type", "function")
    except (KeyError, TypeError, AttributeError):
        return ToolCall.from_openai(value)  # not the stored shape: the checks say what is wrong
    call = object.__new__(ToolCall)
    s_id, s_name, s_arguments, s_type = _SET_CALL
    s_id(call, fields[0])
    s_name(call, fields[1])
    s_arguments(call, fields[2])
    s_type(call, kind)
    return call


def _tool_calls(value: object) -> tuple[ToolCall, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise InputTypeError(f"tool_calls must be a sequence, got {type(value).__name__}")
    return tuple(c if isinstance(c, ToolCall) else ToolCall.from_openai(c) for c in value)


def _check_message_fields(message: NewMessage | StoredMessage) -> None:
    """Shared validation of the fields a new and a stored message have in common."""
    set_ = object.__setattr__  # the dataclasses are frozen; normalise once, here
    role = MessageRole.parse(message.role)
    set_(message, "role", role)
    if not isinstance(message.content, str):
        raise InputTypeError(f"message content must be a str, got {type(message.content).__name__}")
    check_text("message content", message.content)
    tool_calls = _tool_calls(message.tool_calls)
    set_(message, "tool_calls", tool_calls)
    if tool_calls and role is not MessageRole.ASSISTANT:
        raise InvalidArgumentError(f"only assistant messages carry tool_calls, not {role.value}")
    # An assistant turn that only calls tools has no text (OpenAI sends content null/empty).
    if not message.content and not tool_calls:
        raise EmptyContentError(f"{role.value} message content is empty")
    if message.name is not None:
        validate_name("message name", message.name)
    if message.tool_call_id is not None:
        validate_name("tool_call_id", message.tool_call_id)
    if role is MessageRole.TOOL and message.tool_call_id is None:
        raise InvalidArgumentError("a tool message needs the tool_call_id it answers")
    if role is not MessageRole.TOOL and message.tool_call_id is not None:
        raise InvalidArgumentError(f"only tool messages carry a tool_call_id, not {role.value}")
    set_(message, "metadata", validate_metadata("message metadata", message.metadata))
    set_(message, "token_counts", validate_token_counts(message.token_counts))
    if message.dedup_signature is not None and type(message.dedup_signature) is not bytes:
        raise InputTypeError(
            f"dedup_signature must be bytes or None, got {type(message.dedup_signature).__name__}"
        )
    if message.created_at is not None and (
        not isinstance(message.created_at, datetime) or message.created_at.tzinfo is None
    ):
        raise InvalidArgumentError(
            f"created_at must be an aware datetime, got {message.created_at!r}"
        )


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _fill(instance: object, values: dict[str, Any]) -> None:
    """Set every field of a frozen dataclass ``instance`` from ``values`` (all must be there)."""
    kind = type(instance)
    names = _FIELD_NAMES.get(kind)
    if names is None:
        names = _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind))  # type: ignore[arg-type]
    for name in names:
        object.__setattr__(instance, name, values[name])


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append to a session; the store gives it a sequence number and a time.

    ``token_counts`` maps an encoding name to the content's token count in it; the engine counts
    once (with :class:`relay_context.TokenCounter`) and the store keeps the counts with the row.
    """

    role: MessageRole
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    token_counts: Mapping[str, int] = field(default_factory=dict)
    #: When the message was written; ``None`` means "now" by the store's clock.
    created_at: datetime | None = None
    #: The content's near-duplicate signature (``engine.dedup.signature``), made once by the
    #: engine and stored with the row so that a session's first window need not sign every
    #: text again; ``None``: not made (the window makes it). Derived from the content, so not
    #: part of equality.
    dedup_signature: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check_message_fields(self)

    @property
    def content_bytes(self) -> int:
        """Size of the content in UTF-8 bytes (what ``max_message_bytes`` limits)."""
        return len(self.content.encode("utf-8"))

    def fingerprint(self) -> str:
        """SHA-256 of what the message says (not its token counts or time): two appends with
        one idempotency key must carry the same message."""
        said = {
            **openai_message(
                self.role, self.content, self.name, self.tool_call_id, self.tool_calls
            ),
            "metadata": dict(self.metadata),
        }
        text = json.dumps(said, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def with_token_counts(
        self, token_counts: Mapping[str, int], dedup_signature: bytes | None = None
    ) -> NewMessage:
        """This message with its content's token counts (validated once, when it was made) and
        its near-duplicate signature."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["token_counts"] = validate_token_counts(token_counts)
        values["dedup_signature"] = dedup_signature
        counted = object.__new__(NewMessage)
        _fill(counted, values)
        return counted

    def check_size(self, max_bytes: int) -> None:
        """Raise :class:`MessageTooLargeError` if the content is over ``max_bytes`` (UTF-8)."""
        size = self.content_bytes
        if size > max_bytes:
            raise MessageTooLargeError(
                f"message content is {size} bytes of UTF-8; the limit (max_message_bytes) is "
                f"{max_bytes}"
            )


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as stored: its session, its position ``seq`` (1, 2, 3, ... without gaps)."""

    session_id: str
    seq: int
    role: MessageRole
    content: str
    created_at: datetime
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    token_counts: Mapping[str, int] = field(default_factory=dict)
    #: As :attr:`NewMessage.dedup_signature` (``None`` for rows stored before it was kept).
    dedup_signature: bytes | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        validate_session_id(self.session_id)
        if not isinstance(self.seq, int) or isinstance(self.seq, bool) or self.seq < 1:
            raise InvalidArgumentError(f"seq must be a positive int, got {self.seq!r}")
        _check_message_fields(self)

    @classmethod
    def _from_storage(cls, **values: Any) -> StoredMessage:
        """Build from a stored row without re-validating (it was validated when written)."""
        message = object.__new__(cls)
        values.setdefault("dedup_signature", None)
        _fill(message, values)
        return message

    def to_openai(self) -> dict[str, Any]:
        """The message in the OpenAI chat format (``role``, ``content``, ``name``, ...)."""
        return openai_message(
            self.role, self.content, self.name, self.tool_call_id, self.tool_calls
        )


#: In the order of ``stored_message``'s arguments (the row decoder writes the same slots).
_SET_STORED = slot_setters(StoredMessage, *MESSAGE_SLOTS)


def stored_message(
    session_id: str,
    seq: int,
    role: MessageRole,
    content: str,
    created_at: datetime,
    name: str | None,
    tool_call_id: str | None,
    tool_calls: tuple[ToolCall, ...],
    metadata: Mapping[str, Any],
    token_counts: Mapping[str, int],
    dedup_signature: bytes | None = None,
) -> StoredMessage:
    """``StoredMessage._from_storage`` with positional fields, for decoding many rows: no
    keyword dict and no per-field lookups (the values were validated when written)."""
    message = object.__new__(StoredMessage)
    (s_sid, s_seq, s_role, s_content, s_at, s_name, s_call, s_calls, s_meta, s_counts, s_sig) = (
        _SET_STORED
    )
    s_sid(message, session_id)
    s_seq(message, seq)
    s_role(message, role)
    s_content(message, content)
    s_at(message, created_at)
    s_name(message, name)
    s_call(message, tool_call_id)
    s_calls(message, tool_calls)
    s_meta(message, metadata)
    s_counts(message, token_counts)
    s_sig(message, dedup_signature)
    return message


def openai_message(
    role: MessageRole,
    content: str,
    name: str | None = None,
    tool_call_id: str | None = None,
    tool_calls: Sequence[ToolCall] = (),
) -> dict[str, Any]:
    """One message in the OpenAI chat format: the optional fields only when set."""
    out: dict[str, Any] = {"role": role.value, "content": content}
    if name is not None:
        out["name"] = name
    if tool_call_id is not None:
        out["tool_call_id"] = tool_call_id
    if tool_calls:
        out["tool_calls"] = [c.to_openai() for c in tool_calls]
    return out


@dataclass(frozen=True, slots=True)
class SessionAccess:
    """Who is asking for a session: ``principal`` sees the sessions it owns, and every session
    when ``sees_all`` (an administrator). Another principal's session is reported exactly as a
    missing one (:class:`~relay_context.errors.SessionNotFoundError`), so ids do not leak."""

    principal: str
    sees_all: bool = False

    def can_see(self, session: Session) -> bool:
        # Constant time: the comparison does not tell how much of an owner's name matched.
        return self.sees_all or hmac.compare_digest(
            self.principal.encode("utf-8", "surrogatepass"),
            session.owner.encode("utf-8", "surrogatepass"),
        )


@dataclass(frozen=True, slots=True)
class Session:
    """A conversation. It expires ``ttl_seconds`` after its last write or touch."""

    id: str
    owner: str
    created_at: datetime
    updated_at: datetime
    ttl_seconds: int
    expires_at: datetime
    #: ``seq`` of the newest message (0 when there is none).
    last_seq: int = 0
    #: Bumped by every change to the messages; with ``incarnation`` it versions cached windows.
    revision: int = 0
    #: Random per creation, so a deleted and re-created session never matches an old cache entry.
    incarnation: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_session_id(self.id)
        validate_name("owner", self.owner)
        validate_ttl(self.ttl_seconds)
        object.__setattr__(self, "metadata", validate_metadata("session metadata", self.metadata))

    @classmethod
    def _from_storage(cls, **values: Any) -> Session:
        """Build from a stored row without re-validating (it was validated when written)."""
        session = object.__new__(cls)
        _fill(session, values)
        return session

    @property
    def cache_version(self) -> str:
        """Changes whenever the session's messages do; the key under which windows are cached."""
        return f"{self.incarnation}.{self.revision}"

    def is_expired(self, now: datetime) -> bool:
        return now >= self.expires_at


__all__ = [
    "NAME_MAX_LENGTH",
    "SESSION_ID_MAX_LENGTH",
    "SESSION_ID_PATTERN",
    "MessageRole",
    "NewMessage",
    "Session",
    "SessionAccess",
    "StoredMessage",
    "ToolCall",
    "micros_from_utc",
    "openai_message",
    "slot_setters",
    "stored_message",
    "stored_tool_call",
    "utc_from_micros",
    "validate_name",
    "validate_session_id",
]
