"""Anthropic Messages requests <-> :class:`~relay_context.gateway.schema.ChatRequest`."""

from __future__ import annotations

import json
from typing import Any

from relay_context.gateway import validation as v
from relay_context.gateway.errors import InvalidRequestError
from relay_context.gateway.schema import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)

#: Anthropic's sampling temperature tops out at 1 (OpenAI's at 2).
MAX_TEMPERATURE = 1.0


def _image(block: dict[str, Any], where: str) -> ImagePart:
    source = v.need_dict(block.get("source"), f"{where}.source")
    if source.get("type") == "url":
        return ImagePart(url=str(source.get("url")))
    if source.get("type") == "base64":
        return ImagePart(data=str(source.get("data")), media_type=str(source.get("media_type")))
    raise InvalidRequestError(f"{where}.source.type must be base64 or url", param=where)


def _result_content(content: Any, where: str) -> list[TextPart | ImagePart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or an array", param=where)
    out: list[TextPart | ImagePart] = []
    for j, raw in enumerate(content):
        block = v.need_dict(raw, f"{where}.content[{j}]")
        if block.get("type") == "image":
            out.append(_image(block, f"{where}.content[{j}]"))
        else:
            out.append(TextPart(str(block.get("text", ""))))
    return out


def _blocks(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or an array", param=where)
    parts: list[Part] = []
    for j, raw in enumerate(content):
        w = f"{where}.content[{j}]"
        block = v.need_dict(raw, w)
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(str(block.get("text", ""))))
        elif kind == "image":
            parts.append(_image(block, w))
        elif kind == "tool_use":
            parts.append(
                ToolCallPart(
                    v.need_str(block, "id", w + "."),
                    v.need_str(block, "name", w + "."),
                    json.dumps(block.get("input") or {}, separators=(",", ":")),
                )
            )
        elif kind == "tool_result":
            parts.append(
                ToolResultPart(
                    v.need_str(block, "tool_use_id", w + "."),
                    _result_content(block.get("content"), w),
                    bool(block.get("is_error")),
                )
            )
        elif kind == "thinking":
            parts.append(ThinkingPart(str(block.get("thinking", "")), block.get("signature")))
        elif kind == "redacted_thinking":
            parts.append(ThinkingPart("", redacted_data=str(block.get("data", ""))))
        else:
            raise InvalidRequestError(
                f"{w}: content block type {kind!r} cannot be translated", param=f"{where}.content"
            )
    return parts


def parse_system(raw: Any) -> list[TextPart]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [TextPart(raw)] if raw else []
    if not isinstance(raw, list):
        raise InvalidRequestError("'system' must be a string or an array", param="system")
    return [TextPart(str(b.get("text", ""))) for b in raw if isinstance(b, dict)]


def parse_messages_request(body: dict[str, Any], *, require_max_tokens: bool = True) -> ChatRequest:
    model = v.need_str(body, "model")
    messages = []
    for i, raw in enumerate(v.need_list(body, "messages")):
        m = v.need_dict(raw, f"messages[{i}]")
        role = m.get("role")
        if role not in ("user", "assistant"):
            raise InvalidRequestError(
                f"messages[{i}].role must be 'user' or 'assistant' (got {role!r})",
                param=f"messages[{i}].role",
            )
        messages.append(Message(role, _blocks(m.get("content"), f"messages[{i}]"), i))
    max_tokens = v.opt_int(body, "max_tokens", minimum=1)
    if max_tokens is None and require_max_tokens:
        raise InvalidRequestError("max_tokens: Field required", param="max_tokens")
    tools = []
    for i, raw in enumerate(body.get("tools") or []):
        t = v.need_dict(raw, f"tools[{i}]")
        if "input_schema" not in t:
            raise InvalidRequestError(
                f"tools[{i}]: server tools ({t.get('type')!r}) cannot be translated",
                param="tools",
            )
        tools.append(
            Tool(v.need_str(t, "name", f"tools[{i}]."), t.get("description"), t["input_schema"])
        )
    choice = None
    tc = body.get("tool_choice")
    if isinstance(tc, dict):
        mode = {"auto": "auto", "any": "required", "tool": "tool", "none": "none"}.get(
            str(tc.get("type")), "auto"
        )
        parallel = False if tc.get("disable_parallel_tool_use") else None
        choice = ToolChoice(mode, tc.get("name"), parallel)  # type: ignore[arg-type]
    metadata = body.get("metadata")
    thinking = body.get("thinking")
    return ChatRequest(
        model=model,
        messages=messages,
        system=parse_system(body.get("system")),
        max_tokens=max_tokens,
        temperature=v.opt_float(body, "temperature"),
        top_p=v.opt_float(body, "top_p"),
        stop=[str(s) for s in body.get("stop_sequences") or []],
        stream=v.opt_bool(body, "stream"),
        stream_usage=True,
        tools=tools,
        tool_choice=choice,
        thinking=thinking
        if isinstance(thinking, dict) and thinking.get("type") == "enabled"
        else None,
        user=metadata.get("user_id") if isinstance(metadata, dict) else None,
    )


# --- neutral -> Anthropic --------------------------------------------------------------------


def _emit_image(p: ImagePart) -> dict[str, Any]:
    source: dict[str, Any]
    if p.data is not None:
        source = {"type": "base64", "media_type": p.media_type or "image/png", "data": p.data}
    else:
        source = {"type": "url", "url": p.url}
    return {"type": "image", "source": source}


def _emit_part(p: Part) -> dict[str, Any] | None:
    if isinstance(p, TextPart):
        return {"type": "text", "text": p.text} if p.text else None
    if isinstance(p, ImagePart):
        return _emit_image(p)
    if isinstance(p, ToolCallPart):
        try:
            arguments = json.loads(p.arguments) if p.arguments.strip() else {}
        except ValueError:
            arguments = {"arguments": p.arguments}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        return {"type": "tool_use", "id": p.id, "name": p.name, "input": arguments}
    if isinstance(p, ToolResultPart):
        content = [b for b in (_emit_part(c) for c in p.content) if b is not None]
        block: dict[str, Any] = {
            "type": "tool_result",
            "tool_use_id": p.tool_call_id,
            "content": content,
        }
        if p.is_error:
            block["is_error"] = True
        return block
    # Thinking goes back to Anthropic only with the signature it came with (it refuses others).
    if p.redacted_data is not None:
        return {"type": "redacted_thinking", "data": p.redacted_data}
    if p.signature:
        return {"type": "thinking", "thinking": p.text, "signature": p.signature}
    return None


def emit_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Anthropic messages; consecutive messages of one role are merged (all tool results of a
    turn must sit in the one user message after the calls), tool results first."""
    out: list[dict[str, Any]] = []
    for m in messages:
        blocks = [b for b in (_emit_part(p) for p in m.parts) if b is not None]
        if not blocks:
            continue
        if out and out[-1]["role"] == m.role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": m.role, "content": blocks})
    for merged in out:
        if merged["role"] == "user":
            merged["content"].sort(key=lambda b: b["type"] != "tool_result")
    return out


def emit_messages_request(
    req: ChatRequest, upstream_model: str, default_max_tokens: int
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": upstream_model,
        "max_tokens": req.max_tokens or default_max_tokens,
        "messages": emit_messages(req.messages),
    }
    if req.system:
        body["system"] = [{"type": "text", "text": p.text} for p in req.system if p.text]
    if req.temperature is not None:
        body["temperature"] = min(req.temperature, MAX_TEMPERATURE)
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.tools:
        body["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": t.parameters,
            }
            for t in req.tools
        ]
    if req.tool_choice is not None and req.tools:
        tc = req.tool_choice
        choices: dict[str, dict[str, Any]] = {
            "auto": {"type": "auto"},
            "none": {"type": "none"},
            "required": {"type": "any"},
            "tool": {"type": "tool", "name": tc.name},
        }
        choice = dict(choices[tc.mode])
        if tc.parallel is False and tc.mode != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if req.thinking is not None:
        body["thinking"] = req.thinking
        budget = int(req.thinking.get("budget_tokens") or 0)
        if body["max_tokens"] <= budget:
            body["max_tokens"] = budget + (req.max_tokens or default_max_tokens)
        body.pop("temperature", None)  # thinking needs the default temperature
    if req.user is not None:
        body["metadata"] = {"user_id": req.user}
    if req.stream:
        body["stream"] = True
    return body


__all__ = ["emit_messages", "emit_messages_request", "parse_messages_request", "parse_system"]
