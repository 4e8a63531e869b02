"""LangChain integration of the handoff relay (``relay-context[langchain]``, ``langchain-core``):

* :func:`handoff_tools` — ``push_context``, ``pull_context``, ``peek_context`` as LangChain
  tools for an agent;
* :class:`HandoffRetriever` — a retriever whose query is a pointer URL: it returns the pulled
  payload as a ``Document`` (the pointer's metadata as the document's);
* :class:`HandoffCallbackHandler` — pushes each LLM output (``generations[0][0]``) and keeps
  the pointers, optionally announcing them on a channel.
"""

from __future__ import annotations

import json
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.outputs import LLMResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool, StructuredTool
from pydantic import ConfigDict

from relay_context.handoff_client.client import HandoffClient


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def handoff_tools(relay: HandoffClient) -> list[BaseTool]:
    def push_context(data: str, channel: str | None = None, metadata_json: str = "") -> str:
        """Store a large text and return its short pointer URL (pass the URL, not the text)."""
        metadata = json.loads(metadata_json) if metadata_json else None
        return relay.push(data, channel=channel, metadata=metadata)

    def pull_context(url: str) -> str:
        """Fetch the text a pointer URL names."""
        return _text(relay.pull(url))

    def peek_context(url: str) -> str:
        """The metadata (JSON) of a pointer URL, without fetching the payload."""
        return json.dumps(relay.peek(url))

    return [
        StructuredTool.from_function(push_context),
        StructuredTool.from_function(pull_context),
        StructuredTool.from_function(peek_context),
    ]


class HandoffRetriever(BaseRetriever):
    """``retriever.invoke(pointer_url)`` -> ``[Document(payload, metadata=peek)]``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    relay: HandoffClient

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        url = query.strip()
        metadata = {**self.relay.peek(url), "source": url.split("#", 1)[0]}
        return [Document(page_content=_text(self.relay.pull(url)), metadata=metadata)]


class HandoffCallbackHandler(BaseCallbackHandler):
    """Pushes every LLM output; ``urls`` holds their pointers, in order."""

    def __init__(
        self,
        relay: HandoffClient,
        *,
        channel: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.relay = relay
        self.channel = channel
        self.metadata = metadata
        self.urls: list[str] = []

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        if not response.generations or not response.generations[0]:
            return
        text = response.generations[0][0].text
        self.urls.append(self.relay.push(text, channel=self.channel, metadata=self.metadata))


__all__ = ["HandoffCallbackHandler", "HandoffRetriever", "handoff_tools"]
