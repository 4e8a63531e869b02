"""``HandoffRelay``: the handoff relay's one entry point (push, pull, peek, delete, publish,
subscribe, stats, sweep), on the shared :class:`~relay_context.persistence.Database`.

>>> async with HandoffRelay(settings.handoff, database=db, data_dir=settings.data_dir) as relay:
...     info, event = await relay.push(chunks(body), content_type="text/plain", channel="jobs")
...     info, stream = await relay.pull(info.id)

Payloads are zstd-compressed by the C++ kernel as they stream in (``core.compression``) and
content-addressed by SHA-256: the same bytes pushed twice are stored once, each push keeping its
own id, metadata and TTL. The database is the source of truth, so a pull right after a push is
answered on every replica. Expired payloads answer as missing ones and are purged by a sweeper.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import Any

from relay_context.config.handoff import HandoffSettings
from relay_context.core.compression import DEFAULT_MAX_DECOMPRESSED_SIZE, CompressionEngine
from relay_context.errors import (
    InputTypeError,
    InvalidArgumentError,
    PayloadIdTakenError,
    PayloadNotFoundError,
    PayloadTooLargeError,
)
from relay_context.handoff.blob_files import FileBlobStore
from relay_context.handoff.blob_rows import DatabaseBlobStore
from relay_context.handoff.blobs import BlobStore
from relay_context.handoff.channels import ChannelLog
from relay_context.handoff.envelope import EnvelopeParser
from relay_context.handoff.fanout import Fanout
from relay_context.handoff.ids import (
    is_payload_id,
    new_payload_id,
    validate_channel,
    validate_proposed_id,
    validate_ttl,
)
from relay_context.handoff.models import ChannelEvent, HandoffStats, PayloadInfo
from relay_context.handoff.quotas import Quotas, Usage
from relay_context.handoff.schema import HANDOFF_MIGRATIONS
from relay_context.handoff.spool import Spooled, spool
from relay_context.handoff.store import PayloadStore
from relay_context.handoff.subscription import Subscription
from relay_context.lifecycle import AsyncResource
from relay_context.persistence import Database
from relay_context.persistence.clock import Clock

log = logging.getLogger(__name__)

#: Compressed bytes fed to the decompressor per step when a payload streams out.
READ_BYTES = 64 * 1024
#: The smallest such step (a zstd block header and an RLE byte: at most a few 128 KiB blocks).
MIN_READ_STEP = 16
FIRST_READ_STEP = 64
#: The content type of text pushed in ContextRelay's JSON envelope.
TEXT_UTF8 = "text/plain; charset=utf-8"


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


class HandoffRelay(AsyncResource):
    """The relay on ``database`` (its tables register as component ``handoff``), with payload
    files under ``data_dir/handoff`` and, given ``redis``, channel fan-out across processes."""

    def __init__(
        self,
        settings: HandoffSettings,
        *,
        database: Database,
        data_dir: Path,
        redis: Any | None = None,
        redis_prefix: str = "relay:",
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.clock: Clock = clock or database.clock
        self.root = Path(data_dir) / "handoff"
        self.spool_dir = self.root / "spool"
        self.compression = CompressionEngine(
            "zstd",
            settings.compression_level,
            max_decompressed_size=max(DEFAULT_MAX_DECOMPRESSED_SIZE, settings.max_payload_bytes),
        )
        storage = settings.blob_storage
        if storage == "auto":
            storage = "database" if database.dialect == "postgresql" else "files"
        self.blobs: BlobStore
        if storage == "database":
            self.blobs = DatabaseBlobStore(database, chunk_bytes=settings.chunk_bytes)
        else:
            self.blobs = FileBlobStore(self.root / "blobs", read_bytes=READ_BYTES)
        self.blob_storage = storage
        self.store = PayloadStore(database, self.blobs)
        self.channels = ChannelLog(database, history_events=settings.channel_history_events)
        self.fanout = Fanout(
            queue_events=settings.subscriber_queue_events, redis=redis, prefix=redis_prefix
        )
        self.quotas = Quotas(database, settings)
        self._sweeper: asyncio.Task[None] | None = None
        self._meter: asyncio.Task[None] | None = None
        #: Pulls not yet written to the usage table, by owner (flushed every second: a pull
        #: must not wait for a write).
        self._pending_pulls: Counter[str] = Counter()
        database.register("handoff", HANDOFF_MIGRATIONS)

    # --- life cycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        await self.database.open()
        await self.fanout.open()
        if self._sweeper is None and self.settings.sweep_interval_seconds > 0:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="handoff-sweeper")
        if self._meter is None:
            self._meter = asyncio.create_task(self._meter_forever(), name="handoff-meter")

    async def close(self) -> None:
        for task in (self._sweeper, self._meter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._sweeper = self._meter = None
        with contextlib.suppress(Exception):
            await self.flush_usage()
        await self.fanout.close()

    # --- payloads ------------------------------------------------------------------------------
    def _metadata_json(self, metadata: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise InputTypeError(f"metadata must be an object, got {type(metadata).__name__}")
        text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
        limit = self.settings.max_metadata_bytes
        if len(text.encode()) > limit:
            raise PayloadTooLargeError(f"metadata larger than {limit} bytes of JSON", limit=limit)
        return metadata, text

    async def push(
        self,
        body: AsyncIterable[bytes] | bytes,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, Any] | None = None,
        channel: str | None = None,
        ttl_seconds: int | None = None,
        encrypted: bool = False,
        owner: str | None = None,
        plan: str | None = None,
        payload_id: str | None = None,
    ) -> tuple[PayloadInfo, ChannelEvent | None]:
        """Store ``body`` (bytes, or chunks as they arrive); its facts, and the channel event
        when ``channel`` is given (committed with the payload, then fanned out).

        With ``owner`` and ``plan`` (the plan of owners who have none of their own), the push is
        counted against the owner's quotas and refused past them (``QuotaExceededError``).

        ``payload_id`` is one the client proposes (an end-to-end encrypted payload is bound to
        its id, so the client draws it first); one already in use is refused
        (``PayloadIdTakenError``)."""
        if payload_id is not None:
            validate_proposed_id(payload_id)
        if channel is not None:
            validate_channel(channel)
        ttl = validate_ttl(
            ttl_seconds,
            default=self.settings.default_ttl_seconds,
            maximum=self.settings.max_ttl_seconds,
        )
        metadata, metadata_json = self._metadata_json(metadata)
        if not isinstance(content_type, str) or not content_type or len(content_type) > 255:
            raise InvalidArgumentError("content type must be 1-255 characters")
        if isinstance(body, bytes | bytearray | memoryview):
            body = _one(bytes(body))
        spooled = await self._spool(body, self.limit(encrypted))
        return await self._commit(
            spooled,
            content_type=content_type,
            metadata=metadata,
            metadata_json=metadata_json,
            channel=channel,
            ttl=ttl,
            encrypted=encrypted,
            owner=owner,
            plan=plan,
            payload_id=payload_id,
        )

    async def push_envelope(
        self,
        body: AsyncIterable[bytes],
        *,
        owner: str | None = None,
        plan: str | None = None,
    ) -> tuple[PayloadInfo, ChannelEvent | None]:
        """:meth:`push` of ContextRelay's JSON envelope ``{"data", "channel"?, "metadata"?,
        "ttl"?, "encrypted"?}``, parsed as it streams in: the data goes to the spool piece by
        piece (never whole in memory), the other members are checked once it has ended."""
        parser = EnvelopeParser(
            field_limit=self.settings.max_metadata_bytes, piece_bytes=self.settings.chunk_bytes
        )
        # The cap of an encrypted push is the larger; which applies is known at the end.
        spooled = await self._spool(parser.data(body), self.limit(True))
        try:
            fields = parser.fields
            encrypted = fields.get("encrypted") is True
            for name, kind in (("channel", str), ("metadata", dict), ("ttl", int)):
                value = fields.get(name)
                if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                    raise InvalidArgumentError(f'"{name}" must be a {kind.__name__}')
            limit = self.limit(encrypted)
            if spooled.size > limit:
                raise PayloadTooLargeError(
                    f"payload larger than the limit of {limit} bytes", limit=limit
                )
            channel = fields.get("channel")
            if channel is not None:
                validate_channel(channel)
            ttl = validate_ttl(
                fields.get("ttl"),
                default=self.settings.default_ttl_seconds,
                maximum=self.settings.max_ttl_seconds,
            )
            metadata, metadata_json = self._metadata_json(fields.get("metadata"))
        except BaseException:
            spooled.discard()
            raise
        return await self._commit(
            spooled,
            content_type=TEXT_UTF8,
            metadata=metadata,
            metadata_json=metadata_json,
            channel=channel,
            ttl=ttl,
            encrypted=encrypted,
            owner=owner,
            plan=plan,
            payload_id=None,
        )

    async def _spool(self, body: AsyncIterable[bytes], limit: int) -> Spooled:
        return await spool(
            body,
            directory=self.spool_dir,
            compression=self.compression,
            limit=limit,
            chunk_bytes=self.settings.chunk_bytes,
        )

    async def _commit(
        self,
        spooled: Spooled,
        *,
        content_type: str,
        metadata: dict[str, Any],
        metadata_json: str,
        channel: str | None,
        ttl: int,
        encrypted: bool,
        owner: str | None,
        plan: str | None,
        payload_id: str | None,
    ) -> tuple[PayloadInfo, ChannelEvent | None]:
        """Record a spooled payload (and its channel event) in one transaction, then fan out."""
        try:
            now = self.clock()
            async with self.database.write() as tx:
                if payload_id is not None and await self.store.exists(tx, payload_id):
                    raise PayloadIdTakenError(f"payload id {payload_id!r} is already in use")
                if owner is not None and plan is not None:
                    await self.quotas.charge_push(
                        tx, owner, size=spooled.size, now_us=now, default_plan=plan
                    )
                info = await self.store.add(
                    tx,
                    payload_id=payload_id or new_payload_id(),
                    spooled=spooled,
                    content_type=content_type,
                    encrypted=encrypted,
                    channel=channel,
                    metadata=metadata,
                    metadata_json=metadata_json,
                    owner=owner,
                    now_us=now,
                    expires_at_us=now + ttl * 1_000_000,
                )
                event = None
                if channel is not None:
                    event = await self.channels.append(tx, channel, now_us=now, payload_id=info.id)
        finally:
            spooled.discard()  # a no-op once stored (moved or copied into rows)
        if event is not None:
            await self.fanout.publish(event)
        return info, event

    def limit(self, encrypted: bool) -> int:
        """The cap of a push. An encrypted payload's ciphertext is a little larger than its
        plaintext (AES-GCM: a header and a 16-byte tag per 64 KiB chunk, 1/4096), so a payload
        at the cap still fits once encrypted."""
        cap = self.settings.max_payload_bytes
        return cap + cap // 4096 + 1024 if encrypted else cap

    async def info(self, payload_id: str) -> PayloadInfo:
        """A live payload's facts; :class:`PayloadNotFoundError` for a missing, expired or
        malformed id alike."""
        return (await self._find(payload_id))[0]

    async def _find(self, payload_id: str) -> tuple[PayloadInfo, str]:
        found = None
        if isinstance(payload_id, str) and is_payload_id(payload_id):
            found = await self.store.get(payload_id, self.clock())
        if found is None:
            raise PayloadNotFoundError(f"no live payload {payload_id!r}")
        return found

    async def pull(self, payload_id: str) -> tuple[PayloadInfo, AsyncIterator[bytes]]:
        """A live payload's facts and its bytes, decompressed as they are read."""
        info, location = await self._find(payload_id)
        return info, self._stream(info, location)

    async def _stream(self, info: PayloadInfo, location: str) -> AsyncIterator[bytes]:
        # The decompressor returns all that an input piece decodes to, and a few bytes of a
        # repetitive payload can decode to megabytes: the piece size adapts so that each output
        # stays near chunk_bytes, which bounds the memory a pull holds whatever the ratio.
        decompressor = self.compression.decompressor()
        target = self.settings.chunk_bytes
        step = FIRST_READ_STEP  # grows while outputs stay small (incompressible data: fast)
        async for compressed in self.blobs.read(info.sha256, location):
            view = memoryview(compressed)
            position = 0
            while position < len(view):
                piece = bytes(view[position : position + step])
                position += len(piece)
                out = decompressor.decompress(piece)
                if len(out) > target:
                    step = max(MIN_READ_STEP, step * target // len(out))
                elif len(out) < target // 4:
                    step = min(READ_BYTES, step * 2)
                if out:
                    yield out
        decompressor.finish()

    async def read_all(self, payload_id: str) -> tuple[PayloadInfo, bytes]:
        """The whole payload in memory (tests and small payloads)."""
        info, stream = await self.pull(payload_id)
        return info, b"".join([chunk async for chunk in stream])

    async def delete(self, payload_id: str, *, owner: str | None, any_owner: bool) -> None:
        """Remove a payload of ``owner`` (any owner's if ``any_owner``); a payload of another
        owner answers as a missing one."""
        if not (isinstance(payload_id, str) and is_payload_id(payload_id)):
            raise PayloadNotFoundError(f"no live payload {payload_id!r}")
        async with self.database.write() as tx:
            after_commit = await self.store.delete(tx, payload_id, owner=owner, any_owner=any_owner)
        if after_commit is None:
            raise PayloadNotFoundError(f"no live payload {payload_id!r}")
        for action in after_commit:
            await asyncio.to_thread(action)

    # --- channels ------------------------------------------------------------------------------
    async def publish(self, channel: str, message: object) -> ChannelEvent:
        """A signal on ``channel`` without a payload."""
        validate_channel(channel)
        text = json.dumps(message)
        limit = self.settings.max_metadata_bytes
        if len(text.encode()) > limit:
            raise PayloadTooLargeError(f"message larger than {limit} bytes of JSON", limit=limit)
        async with self.database.write() as tx:
            event = await self.channels.append(tx, channel, now_us=self.clock(), message=message)
        await self.fanout.publish(event)
        return event

    def subscribe(self, channel: str, *, after: int | None = None) -> Subscription:
        """``async with relay.subscribe(ch, after=n) as events: async for event in events``."""
        validate_channel(channel)
        if after is not None and (isinstance(after, bool) or not isinstance(after, int)):
            raise InvalidArgumentError(f"after must be an event id, got {after!r}")
        return Subscription(channel, after=after, fanout=self.fanout, log=self.channels)

    # --- quotas -------------------------------------------------------------------------------
    def count_pull(self, owner: str) -> None:
        """Count a pull for ``owner`` (written within a second; pulls are never refused)."""
        self._pending_pulls[owner] += 1

    async def flush_usage(self) -> None:
        pending, self._pending_pulls = self._pending_pulls, Counter()
        if pending:
            await self.quotas.count_pulls(dict(pending), self.clock())

    async def usage(self, owner: str, *, plan: str) -> Usage:
        await self.flush_usage()
        return await self.quotas.usage(owner, self.clock(), default_plan=plan)

    async def _meter_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.flush_usage()
            except Exception as exc:  # counts of this round are lost; pulls were served
                log.warning("handoff usage flush failed: %r", exc)

    # --- upkeep --------------------------------------------------------------------------------
    async def stats(self) -> HandoffStats:
        return await self.store.stats(self.clock(), subscribers=self.fanout.subscriber_count)

    async def sweep(self) -> int:
        """Purge expired payloads (and their blobs once unreferenced) and channel events past
        the retention window; how many payloads went."""
        total = 0
        now = self.clock()
        while True:
            async with self.database.write() as tx:
                removed, after_commit = await self.store.sweep(tx, now)
            for action in after_commit:
                await asyncio.to_thread(action)
            total += removed
            if removed == 0:
                break
        async with self.database.write() as tx:
            await self.channels.prune(tx, now - self.settings.channel_retention_seconds * 1_000_000)
        return total

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                removed = await self.sweep()
                if removed:
                    log.info("handoff sweep removed %d expired payloads", removed)
            except Exception as exc:  # the next round tries again
                log.warning("handoff sweep failed: %r", exc)


__all__ = ["HandoffRelay"]
