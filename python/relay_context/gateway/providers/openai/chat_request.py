"""OpenAI Chat Completions requests <-> :class:`~relay_context.gateway.schema.ChatRequest`."""

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

#: OpenAI ``reasoning_effort`` -> Anthropic thinking budget, when translated.
THINKING_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 24576}


def _content_parts(content: Any, where: str) -> list[TextPart | ImagePart]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)] if content else []
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or an array", param=where)
    parts: list[TextPart | ImagePart] = []
    for j, raw in enumerate(content):
        part = v.need_dict(raw, f"{where}.content[{j}]")
        kind = part.get("type")
        if kind == "text":
            parts.append(TextPart(str(part.get("text", ""))))
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequestError(f"{where}.content[{j}].image_url.url must be a string")
            parts.append(_image_from_url(url))
        elif kind == "refusal":
            parts.append(TextPart(str(part.get("refusal", ""))))
        else:
            raise InvalidRequestError(
                f"{where}.content[{j}]: content part type {kind!r} cannot be translated",
                param=f"{where}.content",
            )
    return parts


def _image_from_url(url: str) -> ImagePart:
    if url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(";base64,")
        return ImagePart(data=data, media_type=head.removeprefix("data:"))
    return ImagePart(url=url)


def parse_messages(raw_messages: list[Any]) -> tuple[list[TextPart], list[Message]]:
    system: list[TextPart] = []
    messages: list[Message] = []
    for i, raw in enumerate(raw_messages):
        where = f"messages[{i}]"
        m = v.need_dict(raw, where)
        role = m.get("role")
        if role in ("system", "developer"):
            system.extend(
                p for p in _content_parts(m.get("content"), where) if isinstance(p, TextPart)
            )
        elif role == "user":
            messages.append(Message("user", list(_content_parts(m.get("content"), where)), i))
        elif role == "assistant":
            parts: list[Part] = []
            reasoning = m.get("reasoning_content")
            if isinstance(reasoning, str) and reasoning:
                parts.append(ThinkingPart(reasoning, m.get("reasoning_signature")))
            parts.extend(_content_parts(m.get("content"), where))
            for k, call in enumerate(m.get("tool_calls") or []):
                c = v.need_dict(call, f"{where}.tool_calls[{k}]")
                fn = v.need_dict(c.get("function"), f"{where}.tool_calls[{k}].function")
                arguments = fn.get("arguments")
                parts.append(
                    ToolCallPart(
                        str(c.get("id") or f"call_{i}_{k}"),
                        v.need_str(fn, "name", f"{where}.tool_calls[{k}].function."),
                        arguments if isinstance(arguments, str) else json.dumps(arguments or {}),
                    )
                )
            messages.append(Message("assistant", parts, i))
        elif role in ("tool", "function"):
            call_id = m.get("tool_call_id") or m.get("name")
            if not isinstance(call_id, str):
                raise InvalidRequestError(f"{where}.tool_call_id is required", param=where)
            result = ToolResultPart(call_id, list(_content_parts(m.get("content"), where)))
            messages.append(Message("user", [result], i))
        else:
            raise InvalidRequestError(
                f"{where}.role must be one of system, developer, user, assistant, tool "
                f"(got {role!r})",
                param=f"{where}.role",
            )
    return system, messages


def _tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InvalidRequestError("'tools' must be an array", param="tools")
    tools = []
    for i, item in enumerate(raw):
        t = v.need_dict(item, f"tools[{i}]")
        fn = v.need_dict(t.get("function"), f"tools[{i}].function")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        tools.append(
            Tool(v.need_str(fn, "name", f"tools[{i}].function."), fn.get("description"), params)
        )
    return tools


def _tool_choice(raw: Any, parallel: Any) -> ToolChoice | None:
    par = parallel if isinstance(parallel, bool) else None
    if raw is None:
        return ToolChoice("auto", parallel=par) if par is not None else None
    if raw in ("auto", "none", "required"):
        return ToolChoice(raw, parallel=par)
    if isinstance(raw, dict) and isinstance(raw.get("function"), dict):
        return ToolChoice("tool", str(raw["function"].get("name")), parallel=par)
    raise InvalidRequestError("'tool_choice' is not valid", param="tool_choice")


def parse_chat_request(body: dict[str, Any]) -> ChatRequest:
    """The neutral request of an OpenAI Chat Completions body (400 naming the bad field)."""
    model = v.need_str(body, "model")
    system, messages = parse_messages(v.need_list(body, "messages"))
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [str(s) for s in stop or []]
    max_tokens = v.opt_int(body, "max_completion_tokens", minimum=1) or v.opt_int(
        body, "max_tokens", minimum=1
    )
    effort = body.get("reasoning_effort")
    thinking = (
        {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
        if isinstance(effort, str) and effort in THINKING_BUDGETS
        else None
    )
    options = body.get("stream_options")
    return ChatRequest(
        model=model,
        messages=messages,
        system=system,
        max_tokens=max_tokens,
        temperature=v.opt_float(body, "temperature"),
        top_p=v.opt_float(body, "top_p"),
        stop=stops,
        stream=v.opt_bool(body, "stream"),
        stream_usage=isinstance(options, dict) and options.get("include_usage") is True,
        tools=_tools(body.get("tools")),
        tool_choice=_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls")),
        thinking=thinking,
        user=v.opt_str(body, "user"),
        response_format=body.get("response_format")
        if isinstance(body.get("response_format"), dict)
        else None,
    )


# --- neutral -> OpenAI -----------------------------------------------------------------------


def _emit_content(parts: list[TextPart | ImagePart]) -> str | list[dict[str, Any]]:
    if all(isinstance(p, TextPart) for p in parts):
        return "".join(p.text for p in parts if isinstance(p, TextPart))
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        else:
            url = p.url or f"data:{p.media_type};base64,{p.data}"
            out.append({"type": "image_url", "image_url": {"url": url}})
    return out


def emit_messages(system: list[TextPart], messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if system:
        out.append({"role": "system", "content": "\n\n".join(p.text for p in system)})
    for m in messages:
        if m.role == "assistant":
            text = "".join(p.text for p in m.parts if isinstance(p, TextPart))
            calls = [
                {
                    "id": p.id,
                    "type": "function",
                    "function": {"name": p.name, "arguments": p.arguments},
                }
                for p in m.parts
                if isinstance(p, ToolCallPart)
            ]
            msg: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
            continue
        # A user message: its tool results become ``tool`` messages (first, as OpenAI wants
        # them right after the assistant's calls), the rest one user message.
        rest: list[TextPart | ImagePart] = []
        for p in m.parts:
            if isinstance(p, ToolResultPart):
                content = _emit_content(p.content)
                out.append({"role": "tool", "tool_call_id": p.tool_call_id, "content": content})
            elif isinstance(p, TextPart | ImagePart):
                rest.append(p)
        if rest:
            out.append({"role": "user", "content": _emit_content(rest)})
    return out


def emit_chat_request(req: ChatRequest, upstream_model: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": upstream_model,
        "messages": emit_messages(req.system, req.messages),
    }
    if req.max_tokens is not None:
        body["max_tokens"] = req.max_tokens
    if req.temperature is not None:
        body["temperature"] = req.temperature
    if req.top_p is not None:
        body["top_p"] = req.top_p
    if req.stop:
        body["stop"] = req.stop
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": t.parameters,
                },
            }
            for t in req.tools
        ]
    if req.tool_choice is not None:
        tc = req.tool_choice
        if tc.mode == "tool":
            body["tool_choice"] = {"type": "function", "function": {"name": tc.name}}
        else:
            body["tool_choice"] = tc.mode
        if tc.parallel is not None and req.tools:
            body["parallel_tool_calls"] = tc.parallel
    if req.response_format is not None:
        body["response_format"] = req.response_format
    if req.user is not None:
        body["user"] = req.user
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


__all__ = ["emit_chat_request", "emit_messages", "parse_chat_request", "parse_messages"]
