"""Two ``relay serve`` processes on one PostgreSQL schema and one Redis: a payload pushed to
one is pulled from the other at once, and channel events fan out across them, resumably."""

from __future__ import annotations

import threading
from pathlib import Path

from relay_context.handoff_client import HandoffClient
from service_support import real_backends, run_server, service_env


def test_two_replicas_share_payloads_and_channels(
    tmp_path: Path, pg_dsn: str, redis_server: str
) -> None:
    with real_backends(pg_dsn, redis_server, "handoff_replicas") as backends:
        env = service_env(
            tmp_path / "data", HANDOFF_AUTH="open", RATE_LIMIT_REQUESTS="100000", **backends
        )
        with (
            run_server(env, tmp_path / "a") as a,
            run_server({**env, "DATA_DIR": str(tmp_path / "data-b")}, tmp_path / "b") as b,
        ):
            on_a, on_b = HandoffClient(a.url), HandoffClient(b.url)
            # Read-after-write across replicas, every time (no shared disk: blobs are rows).
            for i in range(30):
                url = on_a.push(f"payload {i} " * 1000, metadata={"i": i})
                pointer_on_b = url.replace(a.url, b.url)
                assert on_b.pull(pointer_on_b) == f"payload {i} " * 1000
                assert on_b.peek(pointer_on_b) == {"i": i}
            assert on_b.info(url.replace(a.url, b.url))["size"] == len(f"payload {29} " * 1000)
            stats = b.client.get("/api/v1/handoff/stats").json()
            assert stats["blob_storage"] == "database"

            # A subscriber on B gets what is pushed and published on A, in order.
            got: list[int] = []
            with on_b.subscription("cross") as events:
                iterator = iter(events)
                urls = [on_a.push(f"part {i}", channel="cross") for i in range(3)]
                on_a.publish("cross", "done")
                messages = [next(iterator) for _ in range(4)]
                got = [m.seq for m in messages]
                assert [m.id for m in messages[:3]] == [u.rsplit("/", 1)[1] for u in urls]
                assert messages[3].message == "done"
                # Killed connection: what A sends meanwhile arrives after B's reconnect.
                events.drop_connection()
                for i in range(3):
                    on_a.push(f"while away {i}", channel="cross")
                got += [next(iterator).seq for _ in range(3)]
            assert got == [1, 2, 3, 4, 5, 6, 7]

            # Concurrent pushes of the same bytes on both replicas: one blob, every pointer
            # works on either side.
            same = "identical content " * 5000
            pointers: list[str] = []
            lock = threading.Lock()

            def push(client: HandoffClient) -> None:
                for _ in range(5):
                    url = client.push(same)
                    with lock:
                        pointers.append(url.rsplit("/", 1)[1])

            threads = [threading.Thread(target=push, args=(c,)) for c in (on_a, on_b)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(set(pointers)) == 10
            for payload_id in pointers:
                assert on_b.pull(f"{a.url}/pull/{payload_id}") == same
            after = a.client.get("/api/v1/handoff/stats").json()
            assert after["blobs"] == stats["blobs"] + 3 + 3 + 1  # parts, while-away, same
            on_a.close()
            on_b.close()
