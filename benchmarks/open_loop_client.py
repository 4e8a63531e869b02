"""A precise open-loop HTTP/1.1 load generator for latency figures of a few milliseconds.

    from open_loop_client import open_loop
    result = open_loop("127.0.0.1", port, requests, rate=1000, seconds=5, connections=32)

Request ``i`` is due at ``start + i / rate`` and its latency counts from that moment to its
answer's last byte, so a server that falls behind is charged for the wait it causes (no
coordinated omission). The generator runs in a process of its own (``spawn``) and never
oversleeps: one loop over non-blocking sockets sends each request when it is due, on a
connection with nothing outstanding, and reads answers as they come. An asyncio client woken by
timers is late by up to a millisecond per request (``epoll_wait``'s timeout is in whole
milliseconds), which at these latencies is most of a p99. This one waits in ``select(2)``, whose
timeout is in microseconds, with the thread's timer slack set to 1 ns (``PR_SET_TIMERSLACK``; the
default lets the kernel wake it up to 50 us late): it wakes when an answer arrives or the next
request is due, and leaves the CPU to the server meanwhile. ``spin=True`` polls with a zero
timeout instead (a whole core while it runs, which a 2-core machine then takes from the server,
its Redis and the kernel's network work). How late each request was sent is reported
(``send_late_ms``); latencies count from the due time either way, so the client's own lateness is
charged to the server, never hidden.

``requests`` are complete request bytes (head and body), sent in turn; an answer counts as an
error unless its status is 200 and, given ``require_header``, that header has the wanted value.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class OpenLoopResult:
    #: Milliseconds from each answered request's due time to its answer's last byte.
    latencies_ms: list[float]
    #: The requests sent per second, over the run.
    rate: float
    errors: int
    error_kinds: dict[str, int] = field(default_factory=dict)
    #: Values of ``collect_header`` in the answers (as floats), e.g. the server's own timing.
    collected: list[float] = field(default_factory=list)
    #: Milliseconds from each request's due time to its sending (the client's own lateness).
    send_late_ms: list[float] = field(default_factory=list)


class _Connection:
    __slots__ = ("buffer", "due", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()
        self.due: float | None = None  # the due time of the request in flight, if any


def _answer_end(buffer: bytearray) -> tuple[int, bytes, dict[bytes, bytes]] | None:
    """(length, status, lower-cased headers) of the first complete answer in ``buffer``, or
    ``None`` while it is partial."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    headers = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(b":") for line in lines[1:])
    }
    total = end + 4 + int(headers.get(b"content-length", b"0"))
    if len(buffer) < total:
        return None
    return total, lines[0].split(b" ", 2)[1], headers


def _run(
    host: str,
    port: int,
    requests: list[bytes],
    rate: float,
    seconds: float,
    connections: int,
    require_header: tuple[str, str] | None,
    collect_header: str | None,
    spin: bool,
) -> OpenLoopResult:
    if not spin:
        _tight_timer_slack()
    # select(2): its timeout is in microseconds (epoll's, DefaultSelector's, in milliseconds).
    selector = selectors.SelectSelector()
    pool: list[_Connection] = []
    for _ in range(connections):
        sock = socket.create_connection((host, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = _Connection(sock)
        pool.append(conn)
        selector.register(sock, selectors.EVENT_READ, conn)
    idle = list(pool)
    wanted = (
        (require_header[0].lower().encode(), require_header[1].encode()) if require_header else None
    )
    collect = collect_header.lower().encode() if collect_header else None
    total = int(rate * seconds)
    latencies: list[float] = []
    send_late: list[float] = []
    collected: list[float] = []
    kinds: dict[str, int] = {}
    errors = 0
    sent = answered = 0
    clock = time.perf_counter
    start = clock() + 0.05
    deadline = start + seconds + 30  # answers still missing 30 s after the last is due: errors
    while answered < total and (now := clock()) < deadline:
        while sent < total and start + sent / rate <= now and idle:
            conn = idle.pop()
            conn.due = start + sent / rate
            conn.sock.sendall(requests[sent % len(requests)])
            send_late.append((clock() - conn.due) * 1000)
            sent += 1
        if spin:
            timeout = 0.0
        elif sent < total and idle:  # until the next request is due, or an answer comes
            timeout = max(0.0, start + sent / rate - clock())
        else:  # until an answer comes
            timeout = max(0.0, deadline - clock())
        for key, _ in selector.select(timeout):
            conn = key.data
            data = conn.sock.recv(262144)
            if not data:
                raise RuntimeError("the server closed a connection")
            conn.buffer += data
            while (found := _answer_end(conn.buffer)) is not None:
                length, status, headers = found
                del conn.buffer[:length]
                assert conn.due is not None
                latencies.append((clock() - conn.due) * 1000)
                answered += 1
                conn.due = None
                idle.append(conn)
                if status != b"200" or (wanted and headers.get(wanted[0]) != wanted[1]):
                    errors += 1
                    kind = f"{status.decode()}/{(headers.get(wanted[0], b'') if wanted else b'')!r}"
                    kinds[kind] = kinds.get(kind, 0) + 1
                elif collect is not None and collect in headers:
                    collected.append(float(headers[collect]))
    elapsed = clock() - start
    errors += total - answered
    if total > answered:
        kinds["no answer"] = total - answered
    for conn in pool:
        conn.sock.close()
    return OpenLoopResult(latencies, sent / elapsed, errors, kinds, collected, send_late)


def _tight_timer_slack() -> None:
    """Lets this thread's timed waits end on time (Linux; elsewhere a no-op)."""
    pr_set_timerslack = 29
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_timerslack, 1, 0, 0, 0)


def _child(queue: Any, args: tuple[Any, ...]) -> None:
    queue.put(_run(*args))


def open_loop(
    host: str,
    port: int,
    requests: list[bytes],
    *,
    rate: float,
    seconds: float,
    connections: int = 32,
    require_header: tuple[str, str] | None = None,
    collect_header: str | None = None,
    spin: bool = False,
) -> OpenLoopResult:
    """Sends ``rate * seconds`` requests open loop from a process of its own; see the module."""
    spawn = multiprocessing.get_context("spawn")
    queue = spawn.Queue()
    args = (host, port, requests, rate, seconds, connections, require_header, collect_header, spin)
    child = spawn.Process(target=_child, args=(queue, args))
    child.start()
    try:
        result: OpenLoopResult = queue.get(timeout=seconds + 120)
    finally:
        child.join(30)
    if child.exitcode not in (0, None):
        raise RuntimeError(f"the load process ended with {child.exitcode}")
    return result


__all__ = ["OpenLoopResult", "open_loop"]
