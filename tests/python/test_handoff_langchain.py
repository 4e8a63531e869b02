"""LangChain tools, retriever and callback handler on the handoff client (``langchain-core``)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.language_models import FakeListLLM

from handoff_support import handoff_service, handoff_settings
from relay_context.handoff_client import HandoffClient
from relay_context.integrations.langchain import (
    HandoffCallbackHandler,
    HandoffRetriever,
    handoff_tools,
)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with (
        handoff_service(handoff_settings(tmp_path_factory.mktemp("lc"))) as (base, _),
        HandoffClient(base) as client,
    ):
        yield client


def test_tools(relay: HandoffClient) -> None:
    tools = {tool.name: tool for tool in handoff_tools(relay)}
    assert set(tools) == {"push_context", "pull_context", "peek_context"}
    url = tools["push_context"].invoke(
        {"data": "findings", "metadata_json": '{"section": "intro"}'}
    )
    assert tools["pull_context"].invoke({"url": url}) == "findings"
    assert json.loads(tools["peek_context"].invoke({"url": url})) == {"section": "intro"}


def test_retriever_returns_the_payload_as_a_document(relay: HandoffClient) -> None:
    url = relay.push("the architecture", metadata={"role": "architecture"})
    documents = HandoffRetriever(relay=relay).invoke(url)
    assert len(documents) == 1
    assert documents[0].page_content == "the architecture"
    assert documents[0].metadata == {"role": "architecture", "source": url}


def test_callback_handler_pushes_llm_outputs(relay: HandoffClient) -> None:
    handler = HandoffCallbackHandler(relay, channel="llm-out", metadata={"by": "fake"})
    llm = FakeListLLM(responses=["first answer", "second answer"])
    llm.invoke("q1", config={"callbacks": [handler]})
    llm.invoke("q2", config={"callbacks": [handler]})
    assert [relay.pull(u) for u in handler.urls] == ["first answer", "second answer"]
    assert relay.peek(handler.urls[0]) == {"by": "fake"}
