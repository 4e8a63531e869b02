"""CrewAI integration of the handoff relay (``relay-context[crewai]``): ``BaseTool`` subclasses
a crew's agents use to hand large context to each other by pointer URL.

>>> from relay_context.handoff import ContextRelay
>>> relay = ContextRelay("http://127.0.0.1:8080", api_key="relay_...")
>>> tools = [RelayPushTool(relay=relay), RelayPullTool(relay=relay), RelayPeekTool(relay=relay)]
>>> Agent(role="researcher", goal="...", backstory="...", tools=tools)

CrewAI pins ``mcp<2`` (Relay's MCP server needs 2.x) and pulls in ~140 packages, so it lives
in an environment of its own; these tools stand on the client SDK only.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from crewai.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field

from relay_context.errors import RelayError
from relay_context.handoff_client.client import HandoffClient


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


class PushArguments(BaseModel):
    data: str = Field(description="The text to hand over (any size)")
    channel: str | None = Field(default=None, description="A channel to announce it on")
    metadata: dict[str, Any] | None = Field(default=None, description="Facts about the text")
    encrypted: bool = Field(default=False, description="Encrypt end to end (key in the URL)")


class PointerArguments(BaseModel):
    url: str = Field(description="The pointer URL another agent handed over")


class _RelayTool(BaseTool):  # type: ignore[misc]
    model_config = ConfigDict(arbitrary_types_allowed=True)
    relay: HandoffClient

    def _answer(self, call: Any) -> str:
        # Relay's errors (a missing pointer, a wrong key) are told to the agent, not raised
        # through the crew: the agent can act on the message.
        try:
            return str(call())
        except RelayError as exc:
            return f"error: {exc}"
        except httpx.HTTPError as exc:
            return f"error: the relay is unreachable: {exc}"


class RelayPushTool(_RelayTool):
    name: str = "push_context"
    description: str = (
        "Store a large text in the relay and get back a short pointer URL. Hand other agents "
        "the URL, not the text."
    )
    args_schema: type[BaseModel] = PushArguments

    def _run(
        self,
        data: str,
        channel: str | None = None,
        metadata: dict[str, Any] | None = None,
        encrypted: bool = False,
    ) -> str:
        return self._answer(
            lambda: self.relay.push(data, channel=channel, metadata=metadata, encrypted=encrypted)
        )


class RelayPullTool(_RelayTool):
    name: str = "pull_context"
    description: str = "Fetch the text a pointer URL names."
    args_schema: type[BaseModel] = PointerArguments

    def _run(self, url: str) -> str:
        return self._answer(lambda: _text(self.relay.pull(url)))


class RelayPeekTool(_RelayTool):
    name: str = "peek_context"
    description: str = "Read only the metadata of a pointer URL (JSON), not its text."
    args_schema: type[BaseModel] = PointerArguments

    def _run(self, url: str) -> str:
        return self._answer(lambda: json.dumps(self.relay.peek(url)))


def crewai_tools(relay: HandoffClient) -> list[BaseTool]:
    """The push, pull and peek tools on ``relay``."""
    return [RelayPushTool(relay=relay), RelayPullTool(relay=relay), RelayPeekTool(relay=relay)]


__all__ = ["RelayPeekTool", "RelayPullTool", "RelayPushTool", "crewai_tools"]
