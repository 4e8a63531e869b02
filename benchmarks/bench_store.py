"""Session store throughput: Relay's ordered, compressed, TTL-aware append vs a bare INSERT.

    python benchmarks/bench_store.py [--quick]

For SQLite (WAL, synchronous=FULL, a temporary file) and PostgreSQL (127.0.0.1:5432, database
`test`, a temporary schema), in one process, one message at a time on one session:

* append: ``SessionStore.append`` (lock the session row, next seq, compress, insert, commit)
  against the peer a user would write by hand with the same driver: one autocommit
  ``INSERT`` into an ``id``-ordered table of uncompressed text;
* tail read: the last 50 messages of the session, decompressed and validated, against a bare
  ``SELECT ... ORDER BY id DESC LIMIT 50``;
* stored size of the content with the codec (zlib here; the zstd kernel plugs in the same way).

Also the context-window cache: a 50-message window from the in-process LRU and from Redis
(compressed) against rebuilding it from the store. Ratios > 1 mean Relay is faster.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))

import aiosqlite  # noqa: E402
import asyncpg  # noqa: E402

from engine_support import ZlibCodec, drop_pg_schema, find_pg_dsn  # noqa: E402
from relay_context.engine import (  # noqa: E402
    InProcessContextCache,
    MessageRole,
    NewMessage,
    PostgresSessionStore,
    RedisContextCache,
    SqliteSessionStore,
)
from relay_context.engine.store.sql import SqlSessionStore  # noqa: E402

TAIL = 50


def texts(count: int) -> list[str]:
    """Chat-sized messages (about 1 KiB) cut from the multilingual and code test corpora."""
    data = REPO / "tests" / "python" / "data"
    lines = [
        line
        for name in ("multilingual.txt", "code_samples.txt")
        for line in (data / name).read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    out = []
    for i in range(count):
        picked = [lines[(i * 7 + k) % len(lines)] for k in range(16)]
        out.append(f"[{i}] " + "\n".join(picked))
    return out


async def timed(fn: Callable[[], Awaitable[object]], calls: int) -> float:
    """Calls per second of ``fn`` run ``calls`` times in a row."""
    t0 = time.perf_counter()
    for _ in range(calls):
        await fn()
    return calls / (time.perf_counter() - t0)


def row(label: str, relay: float, peer: float, unit: str) -> None:
    print(f"{label:<44} {relay:>10.0f} {peer:>10.0f} {unit:<8} {relay / peer:>6.2f}x")


async def bench_backend(
    label: str, store: SqlSessionStore, peer: Any, contents: list[str], reads: int
) -> None:
    await store.create_session("bench", "bench")
    pending = iter(contents)

    async def relay_append() -> None:
        await store.append("bench", NewMessage(MessageRole.USER, next(pending)))

    peer_pending = iter(contents)

    async def peer_append() -> None:
        await peer.insert(next(peer_pending))

    row(
        f"{label}: append 1 message",
        await timed(relay_append, len(contents)),
        await timed(peer_append, len(contents)),
        "msg/s",
    )

    async def relay_tail() -> None:
        await store.list_messages("bench", limit=TAIL, newest=True)

    row(
        f"{label}: read last {TAIL}",
        await timed(relay_tail, reads),
        await timed(peer.tail, reads),
        "reads/s",
    )
    async with store._read() as tx:
        ((stored, raw),) = await tx.fetch(
            "SELECT SUM(LENGTH(content)), SUM(content_size) FROM relay_messages"
        )
    print(
        f"{label}: content stored {int(stored)} of {int(raw)} bytes "
        f"({int(raw) / int(stored):.2f}x smaller)"
    )


class SqlitePeer:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def insert(self, text: str) -> None:
        await self.db.execute(
            "INSERT INTO plain (session_id, role, content) VALUES (?, ?, ?)",
            ("bench", "user", text),
        )

    async def tail(self) -> None:
        async with self.db.execute(
            "SELECT role, content FROM plain WHERE session_id = ? ORDER BY id DESC LIMIT ?",
            ("bench", TAIL),
        ) as cursor:
            await cursor.fetchall()


class PostgresPeer:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection

    async def insert(self, text: str) -> None:
        await self.connection.execute(
            "INSERT INTO plain (session_id, role, content) VALUES ($1, $2, $3)",
            "bench",
            "user",
            text,
        )

    async def tail(self) -> None:
        await self.connection.fetch(
            "SELECT role, content FROM plain WHERE session_id = $1 ORDER BY id DESC LIMIT $2",
            "bench",
            TAIL,
        )


async def bench_cache(store: SqlSessionStore, reads: int) -> None:
    session = await store.get_session("bench")
    assert session is not None
    window = json.dumps(
        [m.to_openai() for m in await store.list_messages("bench", limit=TAIL, newest=True)]
    ).encode()

    async def rebuild() -> None:
        messages = await store.list_messages("bench", limit=TAIL, newest=True)
        json.dumps([m.to_openai() for m in messages]).encode()

    rebuild_rate = await timed(rebuild, reads)
    lru = InProcessContextCache(16)
    await lru.set("bench", session.cache_version, window)

    async def lru_get() -> None:
        await lru.get("bench", session.cache_version)

    row(
        f"window of {TAIL} from in-process LRU vs store",
        await timed(lru_get, reads * 10),
        rebuild_rate,
        "gets/s",
    )
    prefix = f"relay-bench:{os.getpid()}:{secrets.token_hex(4)}:"
    redis = RedisContextCache.from_url(
        "redis://127.0.0.1:6379/0", key_prefix=prefix, codec=ZlibCodec(), codec_tag="zlib"
    )
    try:
        await redis.set("bench", session.cache_version, window)

        async def redis_get() -> None:
            await redis.get("bench", session.cache_version)

        row(
            f"window of {TAIL} from Redis vs store",
            await timed(redis_get, reads),
            rebuild_rate,
            "gets/s",
        )
        stored = await redis.client.hget(redis.key("bench"), "")
        print(f"window in Redis: {len(stored)} of {len(window)} bytes")
        await redis.invalidate("bench")
    finally:
        await redis.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer messages")
    args = ap.parse_args()
    count, reads = (300, 100) if args.quick else (2000, 500)
    contents = texts(count)
    print(f"{count} messages of ~{sum(map(len, contents)) // count} characters, one per call")
    print(f"{'':<44} {'Relay':>10} {'peer':>10} {'unit':<8} {'ratio':>7}")

    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteSessionStore(Path(tmp) / "relay.db", codec=ZlibCodec(), codec_tag="zlib")
        async with store:
            async with aiosqlite.connect(Path(tmp) / "plain.db", isolation_level=None) as db:
                await db.execute("PRAGMA journal_mode = WAL")
                await db.execute("PRAGMA synchronous = FULL")
                await db.execute(
                    "CREATE TABLE plain (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " session_id TEXT NOT NULL, role TEXT NOT NULL, content TEXT NOT NULL)"
                )
                await db.execute("CREATE INDEX plain_session ON plain (session_id, id)")
                await bench_backend("SQLite", store, SqlitePeer(db), contents, reads)
            await bench_cache(store, reads)

    dsn, problem = await asyncio.to_thread(
        find_pg_dsn, "127.0.0.1:5432", "test", ("postgres", "root")
    )
    if dsn is None:
        print(f"PostgreSQL not reachable, skipped: {problem}")
        return
    schema = f"relay_bench_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        async with PostgresSessionStore(
            dsn, schema=schema, codec=ZlibCodec(), codec_tag="zlib"
        ) as store:
            connection = await asyncpg.connect(dsn, server_settings={"search_path": schema})
            try:
                await connection.execute(
                    "CREATE TABLE plain (id BIGSERIAL PRIMARY KEY, session_id TEXT NOT NULL,"
                    " role TEXT NOT NULL, content TEXT NOT NULL)"
                )
                await connection.execute("CREATE INDEX plain_session ON plain (session_id, id)")
                await bench_backend("PostgreSQL", store, PostgresPeer(connection), contents, reads)
            finally:
                await connection.close()
    finally:
        await asyncio.to_thread(drop_pg_schema, dsn, schema)


if __name__ == "__main__":
    asyncio.run(main())
