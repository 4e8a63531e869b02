"""Gemini ``generateContent`` requests <-> :class:`~relay_context.gateway.schema.ChatRequest`.

Gemini's REST API accepts camelCase and snake_case field names; both are read (camelCase is
written). Function calls may lack ids: each gets ``call_<name>_<n>`` and a function response
answers the oldest unanswered call of its name.
"""

from __future__ import annotations

import json
import re
from typing import Any

from relay_context.gateway import validation as v
from relay_context.gateway.errors import InvalidRequestError
from relay_context.gateway.schema import (
    ChatRequest,
    ImagePart,
    Message,
    Part,
    Role,
    TextPart,
    ThinkingPart,
    Tool,
    ToolCallPart,
    ToolChoice,
    ToolResultPart,
)

_SNAKE = re.compile(r"_([a-z])")


def camel(value: Any) -> Any:
    """``system_instruction`` -> ``systemInstruction``, recursively over keys (not inside
    function arguments and schemas, which are the client's own)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            name = _SNAKE.sub(lambda m: m.group(1).upper(), key) if isinstance(key, str) else key
            opaque = name in ("args", "response", "parameters", "parametersJsonSchema")
            out[name] = item if opaque else camel(item)
        return out
    if isinstance(value, list):
        return [camel(v) for v in value]
    return value


def _parts(
    raw: Any, where: str, role: str, pending: dict[str, list[str]], counter: list[int]
) -> list[Part]:
    if not isinstance(raw, list):
        raise InvalidRequestError(f"{where}.parts must be an array", param=where)
    parts: list[Part] = []
    for j, item in enumerate(raw):
        p = v.need_dict(item, f"{where}.parts[{j}]")
        if "text" in p:
            if p.get("thought"):
                parts.append(ThinkingPart(str(p["text"]), p.get("thoughtSignature")))
            else:
                parts.append(TextPart(str(p["text"])))
        elif "inlineData" in p:
            data = v.need_dict(p["inlineData"], f"{where}.parts[{j}].inlineData")
            parts.append(
                ImagePart(data=str(data.get("data")), media_type=str(data.get("mimeType")))
            )
        elif "fileData" in p:
            data = v.need_dict(p["fileData"], f"{where}.parts[{j}].fileData")
            parts.append(ImagePart(url=str(data.get("fileUri")), media_type=data.get("mimeType")))
        elif "functionCall" in p:
            call = v.need_dict(p["functionCall"], f"{where}.parts[{j}].functionCall")
            name = v.need_str(call, "name", f"{where}.parts[{j}].functionCall.")
            counter[0] += 1
            call_id = str(call.get("id") or f"call_{name}_{counter[0]}")
            pending.setdefault(name, []).append(call_id)
            parts.append(
                ToolCallPart(
                    call_id, name, json.dumps(call.get("args") or {}, separators=(",", ":"))
                )
            )
        elif "functionResponse" in p:
            response = v.need_dict(p["functionResponse"], f"{where}.parts[{j}].functionResponse")
            name = v.need_str(response, "name", f"{where}.parts[{j}].functionResponse.")
            waiting = pending.get(name) or []
            call_id = str(response.get("id") or (waiting.pop(0) if waiting else f"call_{name}"))
            if response.get("id") and call_id in waiting:
                waiting.remove(call_id)
            content = json.dumps(response.get("response") or {}, separators=(",", ":"))
            parts.append(ToolResultPart(call_id, [TextPart(content)]))
        else:
            raise InvalidRequestError(
                f"{where}.parts[{j}]: part {sorted(p)} cannot be translated", param=where
            )
    return parts


def parse_generate_request(raw_body: dict[str, Any], model: str) -> ChatRequest:
    body = camel(raw_body)
    contents = v.need_list(body, "contents")
    pending: dict[str, list[str]] = {}
    counter = [0]
    messages = []
    for i, raw in enumerate(contents):
        c = v.need_dict(raw, f"contents[{i}]")
        role = c.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise InvalidRequestError(f"contents[{i}].role must be user or model", param="contents")
        neutral_role: Role = "assistant" if role == "model" else "user"
        messages.append(
            Message(
                neutral_role, _parts(c.get("parts"), f"contents[{i}]", role, pending, counter), i
            )
        )
    system: list[TextPart] = []
    instruction = body.get("systemInstruction")
    if isinstance(instruction, dict):
        system = [
            TextPart(str(p.get("text", "")))
            for p in instruction.get("parts") or []
            if isinstance(p, dict)
        ]
    elif isinstance(instruction, str):
        system = [TextPart(instruction)]
    tools: list[Tool] = []
    for t in body.get("tools") or []:
        for fn in (t or {}).get("functionDeclarations") or []:
            params = (
                fn.get("parameters")
                or fn.get("parametersJsonSchema")
                or {"type": "object", "properties": {}}
            )
            tools.append(Tool(str(fn.get("name")), fn.get("description"), _schema(params)))
    choice = None
    calling = ((body.get("toolConfig") or {}).get("functionCallingConfig")) or {}
    mode = str(calling.get("mode", "")).upper()
    allowed = calling.get("allowedFunctionNames") or []
    if mode == "ANY":
        choice = ToolChoice("tool", allowed[0]) if len(allowed) == 1 else ToolChoice("required")
    elif mode == "NONE":
        choice = ToolChoice("none")
    elif mode == "AUTO":
        choice = ToolChoice("auto")
    config = body.get("generationConfig") or {}
    thinking = None
    budget = (config.get("thinkingConfig") or {}).get("thinkingBudget")
    if isinstance(budget, int) and budget > 0:
        thinking = {"type": "enabled", "budget_tokens": max(1024, budget)}
    return ChatRequest(
        model=model,
        messages=messages,
        system=system,
        max_tokens=v.opt_int(config, "maxOutputTokens", minimum=1),
        temperature=v.opt_float(config, "temperature"),
        top_p=v.opt_float(config, "topP"),
        stop=[str(s) for s in config.get("stopSequences") or []],
        tools=tools,
        tool_choice=choice,
        thinking=thinking,
    )


def _schema(value: Any) -> Any:
    """Gemini's OpenAPI-style schema types are upper case (``OBJECT``); JSON Schema's are not."""
    if isinstance(value, dict):
        return {
            k: (item.lower() if k == "type" and isinstance(item, str) else _schema(item))
            for k, item in value.items()
        }
    if isinstance(value, list):
        return [_schema(i) for i in value]
    return value


# --- neutral -> Gemini -----------------------------------------------------------------------


def _emit_part(p: Part, names: dict[str, str]) -> dict[str, Any] | None:
    if isinstance(p, TextPart):
        return {"text": p.text} if p.text else None
    if isinstance(p, ImagePart):
        if p.data is not None:
            return {"inlineData": {"mimeType": p.media_type or "image/png", "data": p.data}}
        return {"fileData": {"mimeType": p.media_type or "image/png", "fileUri": p.url}}
    if isinstance(p, ToolCallPart):
        try:
            args = json.loads(p.arguments) if p.arguments.strip() else {}
        except ValueError:
            args = {"arguments": p.arguments}
        return {"functionCall": {"name": p.name, "args": args, "id": p.id}}
    if isinstance(p, ToolResultPart):
        text = "".join(c.text for c in p.content if isinstance(c, TextPart))
        try:
            response = json.loads(text)
        except ValueError:
            response = None
        if not isinstance(response, dict):
            response = {"result": text}
        return {
            "functionResponse": {
                "name": names.get(p.tool_call_id, p.tool_call_id),
                "response": response,
                "id": p.tool_call_id,
            }
        }
    return None  # thinking stays with the provider that made it


def emit_generate_request(req: ChatRequest) -> dict[str, Any]:
    names = {p.id: p.name for m in req.messages for p in m.parts if isinstance(p, ToolCallPart)}
    contents = []
    for m in req.messages:
        parts = [b for b in (_emit_part(p, names) for p in m.parts) if b is not None]
        if parts:
            contents.append({"role": "model" if m.role == "assistant" else "user", "parts": parts})
    body: dict[str, Any] = {"contents": contents}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": p.text} for p in req.system]}
    if req.tools:
        body["tools"] = [
            {
                "functionDeclarations": [
                    {
                        "name": t.name,
                        **({"description": t.description} if t.description else {}),
                        "parameters": t.parameters,
                    }
                    for t in req.tools
                ]
            }
        ]
    if req.tool_choice is not None:
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY", "tool": "ANY"}[
            req.tool_choice.mode
        ]
        calling: dict[str, Any] = {"mode": mode}
        if req.tool_choice.mode == "tool" and req.tool_choice.name:
            calling["allowedFunctionNames"] = [req.tool_choice.name]
        body["toolConfig"] = {"functionCallingConfig": calling}
    config: dict[str, Any] = {}
    if req.max_tokens is not None:
        config["maxOutputTokens"] = req.max_tokens
    if req.temperature is not None:
        config["temperature"] = req.temperature
    if req.top_p is not None:
        config["topP"] = req.top_p
    if req.stop:
        config["stopSequences"] = req.stop
    if req.thinking is not None:
        config["thinkingConfig"] = {
            "thinkingBudget": int(req.thinking.get("budget_tokens") or 0),
            "includeThoughts": True,
        }
    if config:
        body["generationConfig"] = config
    return body


__all__ = ["camel", "emit_generate_request", "parse_generate_request"]
