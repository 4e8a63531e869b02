"""The fake upstream as a raw ASGI app (no framework, so it is never the bottleneck).

Routes: ``POST /v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses`` (OpenAI shapes),
``POST /v1/messages``, ``/v1/messages/count_tokens`` (Anthropic shapes), ``GET /v1/models``.
Control: ``POST /_fake/script`` (a JSON list of scenarios for the next requests),
``GET /_fake/requests`` (what was received), ``GET /_fake/stats`` (calls answered and when each
stream's first event left, wall clock), ``POST /_fake/reset``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from . import anthropic_api, gemini_api, openai_api
from .prompt_cache import FakePromptCache
from .replies import Full, Stream
from .scenario import Scenario
from .words import estimate_tokens

Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class ConnectionCutError(Exception):
    """Raised mid-stream so that the server drops the connection (a cut upstream)."""


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


_OPENAI = {
    "/v1/chat/completions": openai_api.chat,
    "/v1/embeddings": openai_api.embeddings,
    "/v1/responses": openai_api.responses,
}
_ANTHROPIC = {
    "/v1/messages": anthropic_api.messages,
    "/v1/messages/count_tokens": anthropic_api.count_tokens,
}


@dataclass
class FakeUpstream:
    """One fake upstream; ``required_key``, when set, is the only credential it accepts."""

    required_key: str | None = None
    script: deque[Scenario] = field(default_factory=deque)
    requests: list[RecordedRequest] = field(default_factory=list)
    record: bool = True
    #: Reports cached prompt tokens when a prefix repeats (see :mod:`.prompt_cache`).
    prompt_cache: FakePromptCache | None = field(default_factory=FakePromptCache)
    #: ``time.time()`` just before each stream's first event was sent (kept with ``record``
    #: off too: benchmarks compare their clients' first bytes with it).
    first_event_at: list[float] = field(default_factory=list)
    #: How each stream ended, with its request's body: ``"complete"`` (every event sent),
    #: ``"disconnected"`` (the client closed the connection before the last event) or ``"cut"``
    #: (a scripted cut).
    stream_ends: list[tuple[bytes, str]] = field(default_factory=list)
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        self.script.clear()
        self.requests.clear()
        if self.prompt_cache is not None:
            self.prompt_cache.clear()
        self.first_event_at.clear()
        self.stream_ends.clear()

    def push(self, *scenarios: Scenario | dict[str, Any]) -> None:
        for s in scenarios:
            self.script.append(s if isinstance(s, Scenario) else Scenario.from_mapping(s))

    def _scenario(self, body: bytes) -> Scenario:
        try:
            return self.script.popleft()
        except IndexError:
            return Scenario.from_body(body)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        path: str = scope["path"]
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if path.startswith("/_fake/"):
            await self._control(path, body, send)
            return
        if self.record:
            self.requests.append(RecordedRequest(scope["method"], path, headers, body))
        with self._lock:
            self._seq += 1
            seq = self._seq
        anthropic = path in _ANTHROPIC
        gemini = path.startswith("/v1beta/models/")
        error_body = (
            gemini_api.error_body
            if gemini
            else anthropic_api.error_body
            if anthropic
            else openai_api.error_body
        )
        if gemini:
            await self._gemini(path, headers, body, receive, send, seq)
            return
        handler = _ANTHROPIC.get(path) or _OPENAI.get(path)
        if handler is None and path != "/v1/models":
            await _send_json(send, 404, error_body(404, f"no route {path}"))
            return
        if self.required_key is not None:
            given = headers.get("x-api-key") if anthropic else None
            if given is None:
                given = headers.get("authorization", "").removeprefix("Bearer ")
            if given != self.required_key:
                await _send_json(send, 401, error_body(401, "invalid x-api-key"))
                return
        if handler is None:
            await _send_json(send, 200, openai_api.models().body)
            return
        try:
            parsed = json.loads(body)
        except ValueError:
            await _send_json(send, 400, error_body(400, "body is not JSON"))
            return
        scenario = self._scenario(body)
        if scenario.hang:
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        if scenario.latency_ms:
            await asyncio.sleep(scenario.latency_ms / 1000)
        if scenario.status != 200:
            extra = {}
            if scenario.retry_after is not None:
                extra["retry-after"] = f"{scenario.retry_after:g}"
            await _send_json(
                send, scenario.status, error_body(scenario.status, scenario.error_message), extra
            )
            return
        if self.prompt_cache is not None and not scenario.cached and isinstance(parsed, dict):
            scenario = self._cached_tokens(path, parsed, body, scenario)
        reply = handler(parsed, body, scenario, seq)
        if isinstance(reply, Full):
            await _send_json(send, reply.status, reply.body, reply.headers)
            return
        await self._stream(reply, scenario, body, receive, send)

    def _cached_tokens(
        self, path: str, parsed: dict[str, Any], body: bytes, scenario: Scenario
    ) -> Scenario:
        assert self.prompt_cache is not None
        prompt = estimate_tokens(body)
        if path == "/v1/messages":
            read, write = self.prompt_cache.anthropic(parsed, prompt)
            return replace(scenario, cached=read, cache_write=write)
        if path == "/v1/chat/completions":
            return replace(scenario, cached=self.prompt_cache.openai(parsed, prompt))
        return scenario

    async def _gemini(
        self,
        path: str,
        headers: dict[str, str],
        body: bytes,
        receive: Receive,
        send: Send,
        seq: int,
    ) -> None:
        model, _, method = path.removeprefix("/v1beta/models/").partition(":")
        if self.required_key is not None and headers.get("x-goog-api-key") != self.required_key:
            await _send_json(send, 401, gemini_api.error_body(401, "API key not valid"))
            return
        if method not in ("generateContent", "streamGenerateContent"):
            await _send_json(send, 404, gemini_api.error_body(404, f"no method {method}"))
            return
        scenario = self._scenario(body)
        if scenario.hang:
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        if scenario.latency_ms:
            await asyncio.sleep(scenario.latency_ms / 1000)
        if scenario.status != 200:
            await _send_json(
                send,
                scenario.status,
                gemini_api.error_body(scenario.status, scenario.error_message),
            )
            return
        reply = gemini_api.generate(
            json.loads(body), body, scenario, seq, model, method == "streamGenerateContent"
        )
        if isinstance(reply, Full):
            await _send_json(send, 200, reply.body)
        else:
            await self._stream(reply, scenario, body, receive, send)

    async def _stream(
        self, reply: Stream, scenario: Scenario, body: bytes, receive: Receive, send: Send
    ) -> None:
        gone = asyncio.Event()

        async def watch() -> None:  # the request is read: the next message is the disconnect
            while (await receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.get_running_loop().create_task(watch())
        end = "cut"  # an exception: a scripted cut, or a send to a client that left
        try:
            await self._send_stream(reply, scenario, send, gone)
            end = "complete"
        finally:
            watcher.cancel()
            self.stream_ends.append((body, "disconnected" if gone.is_set() else end))

    async def _send_stream(
        self, reply: Stream, scenario: Scenario, send: Send, gone: asyncio.Event
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/event-stream; charset=utf-8"),
                    (b"cache-control", b"no-cache"),
                ],
            }
        )
        delay = scenario.chunk_delay_ms / 1000
        for n, event in enumerate(reply.events):
            if scenario.cut_after is not None and n >= scenario.cut_after:
                raise ConnectionCutError
            if delay:
                await asyncio.sleep(delay)
            if gone.is_set():
                return
            if n == 0:
                self.first_event_at.append(time.time())
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _control(self, path: str, body: bytes, send: Send) -> None:
        if path == "/_fake/script":
            items = json.loads(body or b"[]")
            self.push(*(items if isinstance(items, list) else [items]))
            await _send_json(send, 200, {"queued": len(self.script)})
        elif path == "/_fake/requests":
            out = [
                {"method": r.method, "path": r.path, "headers": r.headers, "body": r.body.decode()}
                for r in self.requests
            ]
            await _send_json(send, 200, {"requests": out})
        elif path == "/_fake/stats":
            await _send_json(
                send, 200, {"calls": self._seq, "first_event_at": list(self.first_event_at)}
            )
        elif path == "/_fake/reset":
            self.reset()
            await _send_json(send, 200, {"reset": True})
        else:
            await _send_json(send, 404, {"error": f"no control route {path}"})


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(body, separators=(",", ":")).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})
