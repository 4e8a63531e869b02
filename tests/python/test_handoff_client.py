"""``relay_context.handoff_client``: sync and async clients, end-to-end encryption, and the
``AgentBridge`` with correlation ids, against the service under uvicorn."""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import httpx
import pytest

from handoff_support import handoff_service, handoff_settings
from relay_context.errors import DecryptionError, PayloadNotFoundError
from relay_context.handoff_client import AgentBridge, AsyncHandoffClient, HandoffClient, crypto
from relay_context.handoff_client.pointers import Pointer


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with handoff_service(handoff_settings(tmp_path_factory.mktemp("client"))) as running:
        yield running


@pytest.fixture
def relay(service: Any) -> Any:
    with HandoffClient(service[0]) as client:
        yield client


def test_push_pull_peek_text_and_bytes(relay: HandoffClient) -> None:
    url = relay.push("hello agents", metadata={"step": "sql_extraction", "rows": 3})
    assert "/pull/" in url
    assert "#" not in url
    assert relay.pull(url) == "hello agents"
    assert relay.peek(url) == {"step": "sql_extraction", "rows": 3}
    blob = os.urandom(5000)
    assert relay.pull(relay.push(blob)) == blob
    info = relay.info(url)
    assert info["size"] == len("hello agents")
    assert info["encrypted"] is False
    relay.delete(url)
    with pytest.raises(PayloadNotFoundError):
        relay.pull(url)


def test_end_to_end_encryption(relay: HandoffClient, service: Any) -> None:
    secret = "the launch codes " * 10_000
    url = relay.push(secret, encrypted=True, metadata={"kind": "secret"})
    pointer = Pointer.parse(url)
    assert pointer.key is not None
    assert len(pointer.key) == 43
    assert relay.pull(url) == secret
    assert relay.peek(url) == {"kind": "secret"}  # metadata stays plaintext unless asked
    # The server holds only ciphertext, and says it is encrypted.
    raw = httpx.get(f"{service[0]}/api/v1/handoff/{pointer.id}")
    assert raw.headers["x-relay-encrypted"] == "true"
    assert b"launch codes" not in raw.content
    assert crypto.is_relay_ciphertext(raw.content)
    # A wrong key, a missing key: a clear error.
    wrong = pointer.with_key(crypto.key_to_text(crypto.generate_key()))
    with pytest.raises(DecryptionError):
        relay.pull(wrong)
    with pytest.raises(DecryptionError):
        relay.pull(pointer.url)
    with pytest.raises(DecryptionError):
        relay.pull(pointer.with_key("too-short"))


def test_encrypted_metadata_and_bytes(relay: HandoffClient) -> None:
    blob = os.urandom(200_000)
    url = relay.push(blob, encrypted=True, metadata={"owner": "alice"}, encrypt_metadata=True)
    assert relay.pull(url) == blob
    assert relay.peek(url) == {"owner": "alice"}
    assert set(relay.peek(Pointer.parse(url).url + "#key=" + Pointer.parse(url).key)) == {"owner"}
    with pytest.raises(DecryptionError):
        relay.peek(Pointer.parse(url).url)


def test_fernet_payloads_of_the_contextrelay_sdk(relay: HandoffClient) -> None:
    url = relay.push("fernet text", encrypted="fernet")
    key = Pointer.parse(url).key
    assert key is not None
    assert len(key) == 44
    assert relay.pull(url) == "fernet text"


def test_chunked_aes_gcm_detects_tampering() -> None:
    key = crypto.generate_key()
    data = os.urandom(3 * crypto.DEFAULT_CHUNK_BYTES)  # an exact multiple of the chunk size
    sealed = crypto.encrypt(key, data)
    assert crypto.decrypt(key, sealed) == data
    decryptor = crypto.Decryptor(key)
    pieces = [decryptor.feed(sealed[i : i + 1000]) for i in range(0, len(sealed), 1000)]
    assert b"".join(pieces) + decryptor.finish() == data
    with pytest.raises(DecryptionError):  # the last chunk dropped
        crypto.decrypt(key, sealed[: -(crypto.DEFAULT_CHUNK_BYTES + crypto.TAG_BYTES)])
    flipped = bytearray(sealed)
    flipped[100] ^= 1
    with pytest.raises(DecryptionError):
        crypto.decrypt(key, bytes(flipped))


async def test_async_client(service: Any) -> None:
    async with AsyncHandoffClient(service[0]) as relay:
        async with relay.subscription("async-ch") as events:
            urls = [await relay.push(f"part {i}", channel="async-ch") for i in range(3)]
            signal = await relay.publish("async-ch", {"done": True})
            got = []
            async for message in events:
                got.append(message)
                if len(got) == 4:
                    break
        assert [m.url for m in got[:3]] == urls
        assert got[3].message == {"done": True}
        assert got[3].seq == signal
        secret = await relay.push(b"\x00binary", encrypted=True)
        assert await relay.pull(secret) == b"\x00binary"
        assert await relay.peek(urls[0]) == {}


def test_agent_bridge_concurrent_callers_get_their_own_answers(service: Any) -> None:
    base = service[0]
    stop = threading.Event()
    worker_relay = HandoffClient(base)
    worker = AgentBridge(worker_relay, "bridge-tasks", "bridge-done")
    serving = threading.Thread(
        target=worker.serve, args=(lambda task: f"answer to {task}",), kwargs={"stop": stop}
    )
    serving.start()
    try:
        # The worker must be subscribed before the first task (push_and_wait only guarantees
        # its own side).
        import time

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = httpx.get(f"{base}/api/v1/handoff/stats").json()
            if stats["subscribers"] >= 1:
                break
            time.sleep(0.05)
        results: dict[int, Any] = {}

        def call(i: int) -> None:
            with HandoffClient(base) as mine:
                results[i] = AgentBridge(mine, "bridge-tasks", "bridge-done").push_and_wait(
                    f"task {i}", timeout=30
                )

        callers = [threading.Thread(target=call, args=(i,)) for i in range(6)]
        for t in callers:
            t.start()
        for t in callers:
            t.join(timeout=60)
        assert results == {i: f"answer to task {i}" for i in range(6)}
    finally:
        stop.set()
        serving.join(timeout=10)
        worker_relay.close()


def test_the_client_imports_no_server_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import relay_context.handoff_client as c; c.HandoffClient; c.AgentBridge; "
        "c.AsyncHandoffClient; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', "
        "'uvicorn', 'asyncpg', 'aiosqlite') or m.startswith(('relay_context.service', "
        "'relay_context.handoff.', 'relay_context.persistence', 'relay_context.engine'))]; "
        "print(bad); assert not bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    asyncio.run(asyncio.sleep(0))


def test_relay_bridge_run_feeds_a_command(service: Any) -> None:
    import subprocess
    import sys
    import time

    from service_support import RELAY

    base = service[0]
    worker = subprocess.Popen(
        [
            str(RELAY),
            "bridge",
            "run",
            "--url",
            base,
            "--task-channel",
            "cli-tasks",
            "--done-channel",
            "cli-done",
            "--max-tasks",
            "2",
            "--",
            sys.executable,
            "-c",
            "import sys; print(sys.stdin.read().upper(), end='')",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while httpx.get(f"{base}/api/v1/handoff/stats").json()["subscribers"] < 1:
            assert time.monotonic() < deadline, "relay bridge run did not subscribe"
            time.sleep(0.05)
        with HandoffClient(base) as relay:
            bridge = AgentBridge(relay, "cli-tasks", "cli-done")
            assert bridge.push_and_wait("refactor the auth module", timeout=30) == (
                "REFACTOR THE AUTH MODULE"
            )
            assert bridge.push_and_wait("second", timeout=30) == "SECOND"
        assert worker.wait(timeout=30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()


def test_files_stream_in_and_out_encrypted_in_bounded_memory(service: Any, tmp_path: Any) -> None:
    import hashlib
    import tracemalloc

    size = 25 * 1024 * 1024
    source = tmp_path / "big.bin"
    with source.open("wb") as out:
        for _ in range(25):
            out.write(os.urandom(1024 * 1024))
    target = tmp_path / "back.bin"
    with HandoffClient(service[0]) as relay:
        tracemalloc.start()
        url = relay.push_file(source, encrypted=True, metadata={"name": "big.bin"})
        assert relay.pull_to(url, target) == size
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        info = relay.info(url)
        assert info["encrypted"] is True
        assert info["size"] > size  # the ciphertext: a tag per chunk and a header
        with pytest.raises(DecryptionError):
            relay.pull_to(Pointer.parse(url).url, tmp_path / "no-key.bin")
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (source, target)]
    assert digest[0] == digest[1]
    assert peak < 8 * 1024 * 1024, peak  # not the 25 MB payload, nor its ciphertext


async def test_async_files_round_trip(service: Any, tmp_path: Any) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "in.bin").write_bytes(data)
    async with AsyncHandoffClient(service[0]) as relay:
        url = await relay.push_file(tmp_path / "in.bin", encrypted=True)
        assert await relay.pull_to(url, tmp_path / "out.bin") == len(data)
        plain = await relay.push_file(tmp_path / "in.bin")
        assert await relay.pull_to(plain, tmp_path / "plain.bin") == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert (tmp_path / "plain.bin").read_bytes() == data
