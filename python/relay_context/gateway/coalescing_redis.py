"""In-flight coalescing across gateway processes, on Redis.

Within a process the :class:`~relay_context.gateway.coalescing.LocalCoalescer` still decides who
waits for what; Redis only elects one leader per key among the processes and carries its
answer to the others:

* ``<prefix>gw:co:lock:{<key>}`` holds the leader's token, with a lease (``SET NX PX``) that the
  leader renews while its call runs and deletes when it is done.
* ``<prefix>gw:co:log:{<key>}:<token>`` is the leader's answer as a Redis stream: the head (status,
  headers, deployment), then each body chunk, then ``end`` (or ``cut``, or ``err`` with the error
  answered before the body). It expires a while after the call ends.

A process whose request finds the lock held follows the holder's log into a local flight (one
reader per process and key, however many of its requests wait). If the lease runs out with no
answer begun (a dead leader), the follower takes the lock and makes the call itself; if the
answer had begun, its waiters' streams end with the protocol's error event. Every Redis call is
bounded by the client's timeouts; when Redis fails, coalescing falls back to the process alone.

Nobody left, the call ends: a following process says it waits in
``<prefix>gw:co:wait:{<key>}:<token>``,
a sorted set of follower ids scored by when their presence lapses (Redis's clock), refreshed
every third of the lease while it follows and removed when its last waiter leaves. When the
leader's own clients are all gone, it asks Redis (every third of the lease, until a client of
its own joins again or the call ends) to drop lapsed followers and, if none is left, to mark the
call ``<prefix>gw:co:gone:{<key>}:<token>`` and release the lock, in one script; then it cancels the
call. A follower registers only while that mark is absent (one script too), so it is either
counted before the leader looks or sees the mark before it reads anything and makes the call
itself: a call is never cancelled while someone waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import Callable, Coroutine
from typing import Any

from relay_context.gateway.coalescing import (
    Flight,
    Head,
    Joined,
    LocalCoalescer,
    Start,
    StreamCutError,
    lead,
)
from relay_context.gateway.errors import ErrorKind, GatewayError
from relay_context.persistence.redis import hash_tag

log = logging.getLogger(__name__)

#: How long a finished answer's log stays readable for followers still catching up.
LOG_TTL_SECONDS = 60
#: Longest single blocking read of a log (kept below any sane socket timeout).
MAX_BLOCK_SECONDS = 0.25

# Deletes / extends the lock only while it is still ours.
_RELEASE = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
)
_RENEW = (
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
)
# KEYS: waiters, gone. ARGV: follower id, presence ms, key ttl ms. 1 when counted, 0 when the
# leader already gave the call up.
_PRESENT = """
if redis.call('exists', KEYS[2]) == 1 then return 0 end
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zadd', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('pexpire', KEYS[1], ARGV[3])
return 1
"""
# KEYS: waiters, gone, lock. ARGV: token, gone ttl ms. 1 when nobody waits (the call is given
# up: marked gone, lock released), 0 when some follower's presence is still current.
_GIVE_UP = """
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('zremrangebyscore', KEYS[1], '-inf', now)
if redis.call('zcard', KEYS[1]) > 0 then return 0 end
redis.call('set', KEYS[2], '1', 'PX', ARGV[2])
if redis.call('get', KEYS[3]) == ARGV[1] then redis.call('del', KEYS[3]) end
return 1
"""


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, asyncio.TimeoutError)


class SharedError(GatewayError):
    """An error another process's call was answered with, as it reached that process."""

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__(
            str(fields.get("message") or "upstream error"),
            param=fields.get("param"),
            retry_after=fields.get("retry_after"),
            headers=fields.get("headers") or {},
        )
        self.status = int(fields.get("status") or 502)
        kind: ErrorKind = fields.get("kind") or "api_error"
        self.kind = kind
        self.code = fields.get("code")


def error_fields(error: GatewayError) -> dict[str, Any]:
    return {
        "message": error.message,
        "status": error.status,
        "kind": error.kind,
        "code": error.code,
        "param": error.param,
        "retry_after": error.retry_after,
        "headers": error.headers,
    }


class RedisCoalescer:
    """Coalescing across the processes that share ``redis`` (and within each)."""

    def __init__(
        self,
        redis: Any,
        key_prefix: str,
        *,
        max_bytes: Callable[[], int],
        lease_seconds: Callable[[], float],
    ) -> None:
        self.redis = redis
        self.prefix = key_prefix + "gw:co:"
        self.local = LocalCoalescer(max_bytes)
        self._lease = lease_seconds
        self._tasks: set[asyncio.Task[None]] = set()
        #: This process's name in the waiters' sets of the calls it follows (with a number per
        #: following flight).
        self.follower_id = secrets.token_hex(8)
        self._followings = itertools.count()
        #: The flights this process leads, with their log's token.
        self._leading: dict[Flight, str] = {}
        #: Leaders' flights whose clients are gone, being checked for remote followers.
        self._watched: set[Flight] = set()

    # Every key of one flight carries the flight key as its hash tag: the give-up script
    # touches the lock, the waiters and the mark at once, which on Redis Cluster must be
    # one slot.
    def _lock(self, key: str) -> str:
        return f"{self.prefix}lock:{hash_tag(key)}"

    def _log(self, key: str, token: str) -> str:
        return f"{self.prefix}log:{hash_tag(key)}:{token}"

    def _waiters(self, key: str, token: str) -> str:
        return f"{self.prefix}wait:{hash_tag(key)}:{token}"

    def _gone(self, key: str, token: str) -> str:
        return f"{self.prefix}gone:{hash_tag(key)}:{token}"

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _open(self, key: str, stream: bool) -> Flight:
        flight = self.local.open_flight(key, stream)
        flight.on_abandoned = self._abandoned
        return flight

    def _abandoned(self, flight: Flight) -> None:
        """No client of this process waits for ``flight`` any more. A call mirrored to other
        processes (it has a keeper) is given up only once none of them waits either; any other
        flight (following another's call, or not begun) is left at once."""
        token = self._leading.get(flight)
        if flight.keepers and token is not None:
            if flight not in self._watched:
                self._watched.add(flight)
                self._spawn(self._watch(flight, token))
            return
        self.local.abandon(flight)

    async def _watch(self, flight: Flight, token: str) -> None:
        """Gives the leader's call up when no process waits for it (see the module's notes)."""
        lock = self._lock(flight.key)
        try:
            while not flight.done and not flight.waiters:
                if not flight.keepers:
                    break  # the mirror stopped: nobody elsewhere can be reading
                try:
                    nobody = await self.redis.eval(
                        _GIVE_UP,
                        3,
                        self._waiters(flight.key, token),
                        self._gone(flight.key, token),
                        lock,
                        token,
                        LOG_TTL_SECONDS * 1000,
                    )
                except _redis_errors() as exc:  # unknown: keep the call, look again
                    log.warning("coalescing: waiters of %s unknown: %s", lock, exc)
                    nobody = False
                if nobody:
                    break
                await asyncio.sleep(self._lease() / 3)
            else:
                return
            log.info("coalescing: nobody waits for the shared call %s; cancelled", flight.key)
            self.local.abandon(flight)
        finally:
            self._watched.discard(flight)

    async def join(self, key: str, *, stream: bool, start: Start) -> Joined:
        flight = self.local.joinable(key)
        if flight is not None:
            reader = flight.join()
            response = await flight.response(reader)
            assert flight.head is not None
            return Joined(response, flight.head.deployment, False)
        flight = self._open(key, stream)
        self.local.run(flight, self._produce(flight, start))
        reader = flight.join()
        response = await flight.response(reader)
        assert flight.head is not None
        # Who called is known once Redis answered (this process, or another's leader).
        return Joined(response, flight.head.deployment, flight.called_here)

    async def _produce(self, flight: Flight, start: Start) -> None:
        """Leads the call (taking the lock) or follows the process that holds it."""
        lock = self._lock(flight.key)
        while True:
            token = secrets.token_hex(12)
            try:
                won = await self.redis.set(lock, token, nx=True, px=int(self._lease() * 1000))
                holder = None if won else await self.redis.get(lock)
            except _redis_errors() as exc:
                log.warning("coalescing without Redis (%s)", exc)
                await lead(flight, start)
                return
            if won:
                await self._lead(flight, start, lock, token)
                return
            if holder is None:
                continue  # the lease ran out in between: try again
            outcome = await self._follow(flight, lock, holder)
            if outcome == "done":
                return
            if outcome == "alone":
                await lead(flight, start)
                return
            # The leader died before answering: try to take over.
            log.warning("coalescing: the leader of a shared call is gone; taking the call over")

    async def _lead(self, flight: Flight, start: Start, lock: str, token: str) -> None:
        """Makes the call, mirroring the flight into the log and renewing the lease."""
        self._leading[flight] = token
        # The mirror joins now, before any chunk can be dropped.
        self._spawn(self._mirror(flight, flight.join(keeper=True), lock, token))
        self._spawn(self._renew(flight, lock, token))
        if not flight.waiters:  # this process's client left while the lock was taken
            self._abandoned(flight)
        try:
            await lead(flight, start)
        finally:
            self._leading.pop(flight, None)

    async def _renew(self, flight: Flight, lock: str, token: str) -> None:
        """Extends the lease (and the log's life) while the call runs."""
        while not flight.done:
            await asyncio.sleep(self._lease() / 3)
            if flight.done:
                return
            lease_ms = int(self._lease() * 1000)
            try:
                if not await self.redis.eval(_RENEW, 1, lock, token, lease_ms):
                    return  # released (the flight is full) or lost
                await self.redis.pexpire(
                    self._log(flight.key, token), lease_ms + LOG_TTL_SECONDS * 1000
                )
            except _redis_errors() as exc:
                log.warning("coalescing lease of %s not renewed: %s", lock, exc)

    async def _mirror(self, flight: Flight, reader: int, lock: str, token: str) -> None:
        """Writes the flight to the log as it fills (a waiter of its own, so that the call goes
        on for the other processes' waiters when this one's leave)."""
        log_key = self._log(flight.key, token)
        ttl_ms = int(self._lease() * 1000) + LOG_TTL_SECONDS * 1000
        errors = _redis_errors()
        try:
            try:
                head = await flight.wait_head()
            except GatewayError as err:
                await self.redis.xadd(log_key, {"k": "err", "e": json.dumps(error_fields(err))})
                return
            await self.redis.xadd(
                log_key,
                {
                    "k": "head",
                    "s": head.status,
                    "h": json.dumps(head.headers),
                    "d": head.deployment,
                },
            )
            await self.redis.pexpire(log_key, ttl_ms)
            released = False
            while True:
                try:
                    chunk = await flight.read(reader)
                except StreamCutError as exc:
                    await self.redis.xadd(log_key, {"k": "cut", "m": str(exc)})
                    break
                if chunk is None:
                    await self.redis.xadd(log_key, {"k": "end"})
                    break
                await self.redis.xadd(log_key, {"k": "c", "d": chunk})
                if not flight.joinable and not released:
                    # Full: no new joiners here, nor in other processes.
                    await self.redis.eval(_RELEASE, 1, lock, token)
                    released = True
        except errors as exc:
            log.warning("coalescing log %s stopped: %s", log_key, exc)
        finally:
            flight.leave(reader)
            try:
                await self.redis.pexpire(log_key, LOG_TTL_SECONDS * 1000)
                await self.redis.eval(_RELEASE, 1, lock, token)
            except errors:
                pass

    async def _follow(self, flight: Flight, lock: str, token: bytes) -> str:
        """Fills the flight from the holder's log: ``done``; ``take_over`` if the holder died
        before it answered; ``alone`` if Redis failed before it answered."""
        log_key = self._log(flight.key, token.decode())
        waiters = self._waiters(flight.key, token.decode())
        gone = self._gone(flight.key, token.decode())
        member = f"{self.follower_id}:{next(self._followings)}"
        errors = _redis_errors()
        try:
            counted = await self._present(waiters, gone, member)
        except errors as exc:
            log.warning("coalescing: cannot follow %s: %s", log_key, exc)
            return "alone"
        if not counted:
            return "take_over"  # its leader gave the call up: nobody was waiting for it
        presence = self._spawn(self._stay_present(waiters, gone, member))
        try:
            return await self._read_log(flight, lock, token, log_key)
        finally:
            presence.cancel()
            self._spawn(self._absent(waiters, member))

    async def _present(self, waiters: str, gone: str, member: str) -> bool:
        """Counts this process among the call's waiters for one lease; ``False`` when the
        leader has given the call up."""
        lease_ms = int(self._lease() * 1000)
        counted = await self.redis.eval(
            _PRESENT,
            2,
            waiters,
            gone,
            member,
            lease_ms,
            lease_ms + LOG_TTL_SECONDS * 1000,
        )
        return bool(counted)

    async def _stay_present(self, waiters: str, gone: str, member: str) -> None:
        while True:
            await asyncio.sleep(self._lease() / 3)
            try:
                if not await self._present(waiters, gone, member):
                    return  # given up (this process's presence lapsed): the log says how
            except _redis_errors() as exc:
                log.warning("coalescing: presence in %s not renewed: %s", waiters, exc)

    async def _absent(self, waiters: str, member: str) -> None:
        """No waiter of this process is left (or the answer is over): not counted any more."""
        try:
            await self.redis.zrem(waiters, member)
        except _redis_errors() as exc:  # its presence lapses with its lease anyway
            log.debug("coalescing: presence in %s not removed: %s", waiters, exc)

    async def _read_log(self, flight: Flight, lock: str, token: bytes, log_key: str) -> str:
        block_ms = int(min(MAX_BLOCK_SECONDS, self._lease() / 4) * 1000)
        last = b"0-0"
        errors = _redis_errors()
        while True:
            try:
                found = await self.redis.xread({log_key: last}, block=block_ms, count=512)
                holder = None if found else await self.redis.get(lock)
            except errors as exc:
                log.warning("coalescing log %s unreadable: %s", log_key, exc)
                if flight.head is None:
                    return "alone"
                flight.finish(cut="the coalescing log became unreadable")
                return "done"
            if not found:
                if holder == token:
                    continue
                # The lock is gone or someone else's: a last look before calling it dead.
                try:
                    found = await self.redis.xread({log_key: last}, count=512)
                except errors:
                    found = []
                if not found:
                    if flight.head is None:
                        return "take_over"
                    flight.finish(cut="the coalescing leader was lost mid-answer")
                    return "done"
            for _, entries in found:
                for entry_id, fields in entries:
                    last = entry_id
                    if await self._apply(flight, fields):
                        return "done"

    async def _apply(self, flight: Flight, fields: dict[bytes, bytes]) -> bool:
        """Applies one log entry; whether the answer is over."""
        kind = fields.get(b"k")
        if kind == b"c":
            await flight.append(fields[b"d"])
            return False
        if kind == b"head":
            headers = tuple((str(k), str(v)) for k, v in json.loads(fields[b"h"]))
            flight.answer_head(Head(int(fields[b"s"]), headers, fields[b"d"].decode()))
            return False
        if kind == b"end":
            flight.finish()
        elif kind == b"cut":
            flight.finish(cut=fields.get(b"m", b"upstream stream failed").decode())
        elif kind == b"err":
            flight.fail(SharedError(json.loads(fields[b"e"])))
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.local.close()


__all__ = ["RedisCoalescer", "SharedError", "error_fields"]
