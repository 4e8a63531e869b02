"""The fake upstream itself, driven by the official SDKs: it must look like the real APIs."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from fake_upstream import FakeUpstream, Scenario, serve_in_thread


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream(required_key="sk-upstream")
    with serve_in_thread(upstream) as url:
        yield upstream, url


def test_openai_chat_streamed_with_parallel_tools_and_usage(fake: tuple[FakeUpstream, str]) -> None:
    _, url = fake
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-upstream", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "fake:tools=2 fake:cached=5"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    ids = {
        tc.id for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or [] if tc.id
    }
    assert ids == {f"call_{chunks[0].id.removeprefix('chatcmpl-fake')}_{i}" for i in range(2)}
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 5
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_anthropic_stream_with_thinking_and_tools(fake: tuple[FakeUpstream, str]) -> None:
    _, url = fake
    client = anthropic.Anthropic(base_url=url, api_key="sk-upstream", max_retries=0)
    with client.messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=100,
        messages=[{"role": "user", "content": "fake:thinking fake:tools=2"}],
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.stop_reason == "tool_use"
    assert final.content[0].signature  # type: ignore[union-attr]


def test_errors_in_each_shape_and_script(fake: tuple[FakeUpstream, str]) -> None:
    upstream, url = fake
    upstream.push(Scenario(status=429, retry_after=2))
    client = anthropic.Anthropic(base_url=url, api_key="sk-upstream", max_retries=0)
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(
            model="claude-x", max_tokens=5, messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.response.headers["retry-after"] == "2"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0).models.list()


def test_cut_connection_mid_stream(fake: tuple[FakeUpstream, str]) -> None:
    _, url = fake
    client = httpx.Client(base_url=url)
    with (
        pytest.raises(httpx.RemoteProtocolError),
        client.stream(
            "POST",
            "/v1/chat/completions",
            headers={"authorization": "Bearer sk-upstream"},
            json={
                "model": "m",
                "stream": True,
                "messages": [{"role": "user", "content": "fake:cut_after=2"}],
            },
        ) as response,
    ):
        for _ in response.iter_bytes():
            pass


def test_embeddings_base64_as_the_sdk_asks(fake: tuple[FakeUpstream, str]) -> None:
    _, url = fake
    client = openai.OpenAI(base_url=url + "/v1", api_key="sk-upstream", max_retries=0)
    out = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(out.data) == 2
    assert len(out.data[0].embedding) == 8
