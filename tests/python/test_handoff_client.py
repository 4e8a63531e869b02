"""``relay_context.handoff_client``: sync and async clients, end-to-end encryption, and the
``AgentBridge`` with correlation ids, against the service under uvicorn."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from typing import Any

import httpx
import pytest

from handoff_support import handoff_service, handoff_settings
from relay_context.errors import DecryptionError, PayloadNotFoundError
from relay_context.handoff_client import (
    AgentBridge,
    AsyncAgentBridge,
    AsyncHandoffClient,
    HandoffClient,
    crypto,
)
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
    payload_id = crypto.new_payload_id()
    sealed = crypto.encrypt(key, data, payload_id=payload_id)
    assert crypto.decrypt(key, sealed, payload_id) == data
    decryptor = crypto.Decryptor(key, payload_id)
    pieces = [decryptor.feed(sealed[i : i + 1000]) for i in range(0, len(sealed), 1000)]
    assert b"".join(pieces) + decryptor.finish() == data
    with pytest.raises(DecryptionError):  # the last chunk dropped
        crypto.decrypt(key, sealed[: -(crypto.DEFAULT_CHUNK_BYTES + crypto.TAG_BYTES)], payload_id)
    flipped = bytearray(sealed)
    flipped[100] ^= 1
    with pytest.raises(DecryptionError):
        crypto.decrypt(key, bytes(flipped), payload_id)


def test_the_payload_id_is_bound_as_associated_data() -> None:
    key = crypto.generate_key()
    payload_id = crypto.new_payload_id()
    sealed = crypto.encrypt(key, b"for one payload only", payload_id=payload_id)
    assert sealed[:4] == b"RLY2"
    with pytest.raises(DecryptionError, match="wrong key, or the ciphertext was altered"):
        crypto.decrypt(key, sealed, crypto.new_payload_id())  # the same bytes under another id
    with pytest.raises(DecryptionError, match="needs the id"):
        crypto.decrypt(key, sealed)
    with pytest.raises(DecryptionError, match="not a payload id"):
        crypto.decrypt(key, sealed, "short")
    with pytest.raises(DecryptionError, match="wrong key"):
        crypto.decrypt(crypto.generate_key(), sealed, payload_id)


def _first_format(key: bytes, plaintext: bytes, chunk_bytes: int = 1024) -> bytes:
    """The chunked AES-GCM of the first clients (``RLY1``: the AAD is the header alone),
    written out here from its specification, as such payloads are stored today."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    prefix = os.urandom(7)
    header = b"RLY1" + chunk_bytes.to_bytes(4, "big") + prefix
    pieces = [plaintext[i : i + chunk_bytes] for i in range(0, len(plaintext), chunk_bytes)]
    pieces = pieces or [b""]
    out = [header]
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        nonce = prefix + index.to_bytes(4, "big") + (b"\x01" if last else b"\x00")
        out.append(AESGCM(key).encrypt(nonce, piece, header))
    return b"".join(out)


def test_payloads_of_the_first_format_still_open(relay: HandoffClient, service: Any) -> None:
    key = crypto.generate_key()
    text = "stored before the id was bound " * 200
    raw = httpx.post(
        f"{service[0]}/api/v1/handoff",
        params={"encrypted": "true"},
        content=_first_format(key, text.encode()),
        headers={"Content-Type": crypto.ENCRYPTED_TEXT},
    )
    assert raw.status_code == 201, raw.text
    url = Pointer.parse(raw.json()["url"]).with_key(crypto.key_to_text(key))
    assert relay.pull(url) == text
    target = io.BytesIO()
    assert relay.pull_to(url, target) == len(text.encode())
    assert target.getvalue() == text.encode()
    with pytest.raises(DecryptionError):
        relay.pull(Pointer.parse(url).with_key(crypto.key_to_text(crypto.generate_key())))


def test_a_ciphertext_moved_to_another_id_does_not_open(relay: HandoffClient, service: Any) -> None:
    url = relay.push("bound to its id", encrypted=True)
    pointer = Pointer.parse(url)
    stored = httpx.get(f"{service[0]}/api/v1/handoff/{pointer.id}")
    assert stored.content[:4] == b"RLY2"
    # The same bytes pushed again (by the server, or anyone who holds them) under a new id.
    copy = httpx.post(
        f"{service[0]}/api/v1/handoff",
        params={"encrypted": "true"},
        content=stored.content,
        headers={"Content-Type": stored.headers["content-type"]},
    ).json()
    assert copy["id"] != pointer.id
    moved = Pointer.parse(copy["url"]).with_key(pointer.key or "")
    with pytest.raises(DecryptionError):
        relay.pull(moved)
    with pytest.raises(DecryptionError):
        relay.pull_to(moved, io.BytesIO())
    assert relay.pull(url) == "bound to its id"


def test_a_proposed_id_is_checked(service: Any) -> None:
    proposed = crypto.new_payload_id()
    first = httpx.post(
        f"{service[0]}/api/v1/handoff", content=b"x", headers={"X-Relay-Payload-Id": proposed}
    )
    assert first.status_code == 201
    assert first.json()["id"] == proposed
    again = httpx.post(
        f"{service[0]}/api/v1/handoff", content=b"y", headers={"X-Relay-Payload-Id": proposed}
    )
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "payload_id_taken"
    assert httpx.get(f"{service[0]}/api/v1/handoff/{proposed}").content == b"x"
    bad = httpx.post(
        f"{service[0]}/api/v1/handoff", content=b"z", headers={"X-Relay-Payload-Id": "short"}
    )
    assert bad.status_code == 422


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


async def test_async_agent_bridge_concurrent_callers_get_their_own_answers(service: Any) -> None:
    base = service[0]

    async def slow_answer(task: str | bytes) -> str:
        # Every caller is subscribed to the done channel before the first answer goes out, so
        # each sees the others' answers first: only the correlation id tells them apart.
        await asyncio.sleep(0.3)
        return f"answer to {task!r}"

    async with AsyncHandoffClient(base) as worker_relay:
        ready = asyncio.Event()
        worker = asyncio.create_task(
            AsyncAgentBridge(worker_relay, "abridge-tasks", "abridge-done").serve(
                slow_answer, max_tasks=3, ready=ready
            )
        )
        await asyncio.wait_for(ready.wait(), 10)

        async def call(i: int) -> str | bytes:
            async with AsyncHandoffClient(base) as mine:
                bridge = AsyncAgentBridge(mine, "abridge-tasks", "abridge-done")
                return await bridge.push_and_wait(f"task {i}", timeout=30)

        results = await asyncio.gather(*(call(i) for i in range(3)))
        assert results == [f"answer to 'task {i}'" for i in range(3)]
        assert await asyncio.wait_for(worker, 10) == 3
        # Nobody answers: a clear TimeoutError, not a hang.
        with pytest.raises(TimeoutError, match=r"within 0\.3 s"):
            await AsyncAgentBridge(worker_relay, "abridge-none", "abridge-void").push_and_wait(
                "anyone?", timeout=0.3
            )


def test_the_documented_names_import_from_the_handoff_package() -> None:
    import subprocess
    import sys

    # The import line loads the client only: no server module, driver or web stack.
    code = (
        "import sys\n"
        "from relay_context.handoff import ContextRelay, AsyncContextRelay, AgentBridge, "
        "AsyncAgentBridge\n"
        "import relay_context.handoff_client as c\n"
        "assert ContextRelay is c.ContextRelay and AsyncContextRelay is c.AsyncContextRelay\n"
        "assert AgentBridge is c.AgentBridge and AsyncAgentBridge is c.AsyncAgentBridge\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', "
        "'uvicorn', 'asyncpg', 'aiosqlite', 'redis') or m.startswith(('relay_context.service', "
        "'relay_context.handoff.', 'relay_context.persistence', 'relay_context.engine', "
        "'relay_context.security'))]\n"
        "print(bad); assert not bad\n"
        "from relay_context.handoff import HandoffRelay\n"
        "assert HandoffRelay.__module__ == 'relay_context.handoff.relay'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    import relay_context.handoff as handoff

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        handoff.nope  # noqa: B018
    assert {"ContextRelay", "HandoffRelay"} <= set(dir(handoff))


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
