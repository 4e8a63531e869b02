"""How a list of chat messages is billed, in tokens.

The rule (OpenAI's published accounting for the chat models of the cl100k and o200k families):

* every message costs 3 tokens of framing (``<|start|>{role}<|message|>...<|end|>``) plus the
  tokens of each of its string fields (``role``, ``content``, ``name``, ...);
* a ``name`` field costs 1 token more;
* the reply is primed with 3 tokens (``<|start|>assistant<|message|>``), once per request.

Extensions for fields that are not plain strings, which the published rule does not cover:

* ``content`` given as a list of parts counts the text of its ``text`` parts (parts of other
  types, such as images, are billed by size and are not counted here);
* ``tool_calls`` count the function name and the JSON arguments of each call;
* ``None`` values count nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from relay_context.errors import InputTypeError

if TYPE_CHECKING:
    from relay_context.core.tokenizer import TokenCounter

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3


def _message_strings(index: int, message: Mapping[str, Any]) -> list[str]:
    if not isinstance(message, Mapping):
        raise InputTypeError(f"message {index} must be a mapping, not {type(message).__name__}")
    if "role" not in message:
        raise InputTypeError(f"message {index} has no 'role'")
    out: list[str] = []
    for key, value in message.items():
        if value is None:
            continue
        if isinstance(value, str):
            out.append(value)
        elif key == "content" and isinstance(value, Sequence):
            for part in value:
                if isinstance(part, Mapping) and part.get("type") == "text":
                    out.append(str(part.get("text", "")))
        elif key == "tool_calls" and isinstance(value, Sequence):
            for call in value:
                fn = call.get("function", {}) if isinstance(call, Mapping) else {}
                out.extend(str(fn.get(k, "")) for k in ("name", "arguments"))
        else:
            raise InputTypeError(
                f"message {index} field {key!r} has unsupported type {type(value).__name__}"
            )
    return out


def count_message_tokens(counter: TokenCounter, messages: Sequence[Mapping[str, Any]]) -> int:
    """Tokens billed for a chat request made of ``messages`` (rule in the module docstring)."""
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise InputTypeError(
            f"messages must be a sequence of mappings, not {type(messages).__name__}"
        )
    strings: list[str] = []
    names = 0
    for i, message in enumerate(messages):
        strings.extend(_message_strings(i, message))
        names += message.get("name") is not None
    counts = counter.count_batch(strings, num_threads=1) if strings else []
    return (
        sum(counts)
        + TOKENS_PER_MESSAGE * len(messages)
        + TOKENS_PER_NAME * names
        + REPLY_PRIMING_TOKENS
    )
