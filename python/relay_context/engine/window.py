"""``ContextWindow``: the messages chosen for one LLM request, with the accounting of the choice.

A window is what :meth:`ContextEngine.get_context` returns. Its messages are in conversation
order; ``tokens_used`` is exactly what :meth:`TokenCounter.count_messages` gives for
:meth:`ContextWindow.to_openai` (per-message framing and reply priming included), and never more
than ``budget``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from relay_context.core.message_tokens import REPLY_PRIMING_TOKENS
from relay_context.engine.models import MessageRole, ToolCall, openai_message, slot_setters

#: The text of the placeholder user turn that :meth:`ContextWindow.to_anthropic` puts first when
#: a window starts with an assistant turn (Anthropic's Messages API requires a user turn first).
ANTHROPIC_LEADING_USER_TEXT = "(earlier conversation omitted)"


@dataclass(frozen=True, slots=True)
class WindowMessage:
    """One message of a window: a stored message (``seq``) or one the policy made (``seq`` None:
    the summary of dropped turns)."""

    role: MessageRole
    content: str
    #: Billed tokens of this message in the window's encoding (framing included, priming not).
    tokens: int
    seq: int | None = None
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    #: The content was cut to the per-message cap (``max_message_tokens``).
    truncated: bool = False
    #: For a summary: the seqs of the messages it stands for.
    summarizes: tuple[int, ...] = ()

    def to_openai(self) -> dict[str, Any]:
        return openai_message(
            self.role, self.content, self.name, self.tool_call_id, self.tool_calls
        )

    def to_dict(self) -> dict[str, Any]:
        out = self.to_openai()
        out["tokens"] = self.tokens
        out["seq"] = self.seq
        out["truncated"] = self.truncated
        out["summarizes"] = list(self.summarizes)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WindowMessage:
        return cls(
            role=MessageRole(data["role"]),
            content=data["content"],
            tokens=data["tokens"],
            seq=data["seq"],
            name=data.get("name"),
            tool_call_id=data.get("tool_call_id"),
            tool_calls=tuple(ToolCall.from_openai(c) for c in data.get("tool_calls", ())),
            truncated=data["truncated"],
            summarizes=tuple(data["summarizes"]),
        )


_SET_WINDOW_MESSAGE = slot_setters(
    WindowMessage,
    "role",
    "content",
    "tokens",
    "seq",
    "name",
    "tool_call_id",
    "tool_calls",
    "truncated",
    "summarizes",
)


def make_window_message(
    role: MessageRole,
    content: str,
    tokens: int,
    seq: int | None,
    name: str | None,
    tool_call_id: str | None,
    tool_calls: tuple[ToolCall, ...],
) -> WindowMessage:
    """``WindowMessage(role, content, tokens, seq, name, tool_call_id, tool_calls)`` for the
    many messages of a window: no keyword handling and no frozen ``__setattr__`` per field."""
    m = object.__new__(WindowMessage)
    s_role, s_content, s_tokens, s_seq, s_name, s_call, s_calls, s_cut, s_sums = _SET_WINDOW_MESSAGE
    s_role(m, role)
    s_content(m, content)
    s_tokens(m, tokens)
    s_seq(m, seq)
    s_name(m, name)
    s_call(m, tool_call_id)
    s_calls(m, tool_calls)
    s_cut(m, False)
    s_sums(m, ())
    return m


def _tool_input(arguments: str) -> dict[str, Any]:
    """Anthropic wants the tool input as an object; arguments that are not a JSON object are
    passed through under ``"arguments"`` rather than lost."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": value}


@dataclass(frozen=True)
class ContextWindow:
    """The context chosen for one request (see the module docstring)."""

    session_id: str
    messages: tuple[WindowMessage, ...]
    #: Billed tokens of :meth:`to_openai` (``count_messages``), at most ``budget``.
    tokens_used: int
    budget: int
    model: str
    encoding: str
    policy: str
    #: Billed tokens of the whole session as if sent unchanged.
    total_tokens: int
    #: Stored messages left out (by the policy or as near-duplicates), ascending.
    dropped_seqs: tuple[int, ...] = ()
    #: The part of ``dropped_seqs`` that collapsed into a later near-identical message.
    deduplicated_seqs: tuple[int, ...] = ()
    dedup_tokens_saved: int = 0
    #: Tokens saved by truncating long messages and by folding turns into a summary.
    compression_tokens_saved: int = 0
    #: Topic drift of the session's recent turns from its earlier ones, in ``[0, 1]``.
    drift_score: float = 0.0
    #: Seqs of the stored messages in the window (in order).
    kept_seqs: tuple[int, ...] = field(default=())
    #: Whether this window was read from the cache rather than built for this call (not part
    #: of the window's value: not serialised, not compared).
    from_cache: bool = field(default=False, compare=False)

    @property
    def tokens_saved(self) -> int:
        """Tokens the window is smaller than the whole session."""
        return max(0, self.total_tokens - self.tokens_used)

    @property
    def utilization(self) -> float:
        return self.tokens_used / self.budget if self.budget else 0.0

    def __len__(self) -> int:
        return len(self.messages)

    # --- provider formats -------------------------------------------------------------------
    def to_openai(self) -> list[dict[str, Any]]:
        """The messages in the OpenAI chat format (what ``tokens_used`` is counted on)."""
        return [m.to_openai() for m in self.messages]

    def to_anthropic(self) -> dict[str, Any]:
        """``{"system": str, "messages": [...]}`` for the Anthropic Messages API.

        System messages (the prompt and a summary) are joined into ``system``; assistant tool
        calls become ``tool_use`` blocks and tool messages ``tool_result`` blocks in a user turn;
        consecutive turns of the same role are merged into one (Anthropic requires alternation).

        Anthropic also requires the first message to be a user turn. When the window starts
        with an assistant turn (the user turn before it was dropped by the budget, or the
        session began with one), a minimal user turn whose one text block is
        :data:`ANTHROPIC_LEADING_USER_TEXT` is put first. It is not part of the window:
        ``tokens_used`` does not count its few tokens.
        """
        system_parts: list[str] = []
        turns: list[dict[str, Any]] = []
        for m in self.messages:
            if m.role is MessageRole.SYSTEM:
                system_parts.append(m.content)
                continue
            blocks: list[dict[str, Any]] = []
            if m.role is MessageRole.TOOL:
                role = "user"
                blocks.append(
                    {"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content}
                )
            else:
                role = m.role.value
                if m.content:
                    blocks.append({"type": "text", "text": m.content})
                for call in m.tool_calls:
                    blocks.append(
                        {
                            "type": "tool_use",
                            "id": call.id,
                            "name": call.name,
                            "input": _tool_input(call.arguments),
                        }
                    )
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"].extend(blocks)
            else:
                turns.append({"role": role, "content": blocks})
        if turns and turns[0]["role"] == "assistant":
            placeholder = {"type": "text", "text": ANTHROPIC_LEADING_USER_TEXT}
            turns.insert(0, {"role": "user", "content": [placeholder]})
        return {"system": "\n\n".join(system_parts), "messages": turns}

    # --- serialisation (the cache) --------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "messages": [m.to_dict() for m in self.messages],
            "tokens_used": self.tokens_used,
            "budget": self.budget,
            "model": self.model,
            "encoding": self.encoding,
            "policy": self.policy,
            "total_tokens": self.total_tokens,
            "dropped_seqs": list(self.dropped_seqs),
            "deduplicated_seqs": list(self.deduplicated_seqs),
            "dedup_tokens_saved": self.dedup_tokens_saved,
            "compression_tokens_saved": self.compression_tokens_saved,
            "drift_score": self.drift_score,
            "kept_seqs": list(self.kept_seqs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, from_cache: bool = False) -> ContextWindow:
        return cls(
            session_id=data["session_id"],
            messages=tuple(WindowMessage.from_dict(m) for m in data["messages"]),
            tokens_used=data["tokens_used"],
            budget=data["budget"],
            model=data["model"],
            encoding=data["encoding"],
            policy=data["policy"],
            total_tokens=data["total_tokens"],
            dropped_seqs=tuple(data["dropped_seqs"]),
            deduplicated_seqs=tuple(data["deduplicated_seqs"]),
            dedup_tokens_saved=data["dedup_tokens_saved"],
            compression_tokens_saved=data["compression_tokens_saved"],
            drift_score=data["drift_score"],
            kept_seqs=tuple(data["kept_seqs"]),
            from_cache=from_cache,
        )

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, *, from_cache: bool = False) -> ContextWindow:
        return cls.from_dict(json.loads(data), from_cache=from_cache)

    # --- display ----------------------------------------------------------------------------------
    def __repr__(self) -> str:
        return (
            f"ContextWindow(session_id={self.session_id!r}, messages={len(self.messages)}, "
            f"tokens={self.tokens_used}/{self.budget}, policy={self.policy!r}, "
            f"dropped={len(self.dropped_seqs)}, drift={self.drift_score:.2f})"
        )

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = []
        for m in self.messages:
            text = m.content if len(m.content) <= 300 else m.content[:300] + "…"
            notes = []
            if m.truncated:
                notes.append("truncated")
            if m.summarizes:
                notes.append(f"summary of {len(m.summarizes)}")
            if m.tool_calls:
                notes.append("calls " + ", ".join(c.name for c in m.tool_calls))
            rows.append(
                "<tr>"
                f"<td>{'' if m.seq is None else m.seq}</td><td>{esc(m.role.value)}</td>"
                f"<td style='text-align:right'>{m.tokens}</td>"
                f"<td style='white-space:pre-wrap'>{esc(text)}</td><td>{esc('; '.join(notes))}</td>"
                "</tr>"
            )
        header = (
            f"<b>ContextWindow</b> {esc(self.session_id)} &mdash; policy <code>{esc(self.policy)}"
            f"</code>, {esc(self.model)} ({esc(self.encoding)}): <b>{self.tokens_used}</b> / "
            f"{self.budget} tokens ({self.utilization:.0%}), {len(self.messages)} messages, "
            f"{len(self.dropped_seqs)} dropped ({len(self.deduplicated_seqs)} near-duplicates, "
            f"{self.dedup_tokens_saved} tokens), compression saved "
            f"{self.compression_tokens_saved} tokens, drift {self.drift_score:.2f}"
        )
        return (
            f"<div>{header}<table><thead><tr><th>seq</th><th>role</th><th>tokens</th>"
            f"<th>content</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )


def window_tokens(messages: Sequence[WindowMessage]) -> int:
    """Billed tokens of a request made of ``messages`` (the reply priming included)."""
    return REPLY_PRIMING_TOKENS + sum(m.tokens for m in messages)


__all__ = [
    "ANTHROPIC_LEADING_USER_TEXT",
    "ContextWindow",
    "WindowMessage",
    "make_window_message",
    "window_tokens",
]
