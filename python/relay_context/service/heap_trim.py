"""Hands the C heap's free pages back to the operating system now and then (glibc's
``malloc_trim``), so that a long-running server's resident memory follows what it uses.

Why: the server frees request-sized blocks (bodies, SSE chunks, SQLite pages) between blocks
that live long (entries of caches held at their byte bounds). glibc's allocator keeps such a
heap's freed pages resident; in the soak (``benchmarks/soak.py``, docs/reliability.md) the bytes
in use stayed flat at ~72 MiB while the heap, and with it RSS, crept up by ~0.5 MiB a minute
without end. ``malloc_trim(0)`` releases every whole free page inside the heap (``madvise``),
not only the top; it takes well under a millisecond on this server's heap, so running it every
``heap_trim_interval_seconds`` costs nothing measurable. Where the C library has no
``malloc_trim`` (musl, macOS) the trimmer does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
from collections.abc import AsyncIterator, Callable

log = logging.getLogger(__name__)


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: the C library it runs on
    except OSError:  # pragma: no cover - no dynamic loader (never on the supported platforms)
        return None
    trim = getattr(libc, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_MALLOC_TRIM = _load_malloc_trim()


class HeapTrimmer:
    """Calls ``malloc_trim(0)`` every ``interval_seconds`` while :meth:`running`.

    ``on_trim`` is called after each trim with whether memory was given back (the service
    counts them in ``relay_process_heap_trims_total``)."""

    def __init__(
        self, interval_seconds: float, on_trim: Callable[[bool], None] | None = None
    ) -> None:
        if interval_seconds < 0:
            raise ValueError(f"interval_seconds must be >= 0, not {interval_seconds}")
        self.interval_seconds = interval_seconds
        self._on_trim = on_trim

    @property
    def available(self) -> bool:
        """Whether the C library has ``malloc_trim`` (glibc)."""
        return _MALLOC_TRIM is not None

    @property
    def enabled(self) -> bool:
        return self.available and self.interval_seconds > 0

    def trim(self) -> bool:
        """Release the heap's free pages now; True if the C library gave memory back."""
        if _MALLOC_TRIM is None:
            return False
        return bool(_MALLOC_TRIM(0))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Trim periodically in the background for the duration of the ``async with``."""
        if not self.enabled:
            yield
            return
        task = asyncio.create_task(self._trim_forever(), name="relay-heap-trim")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _trim_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval_seconds)
            try:
                # In a worker thread: ctypes releases the GIL for the call, so the event loop
                # goes on while the allocator walks its heaps.
                released = await asyncio.to_thread(self.trim)
            except RuntimeError:  # the default executor is gone: the process is stopping
                log.debug("heap trim skipped: no executor")
                return
            if self._on_trim is not None:
                self._on_trim(released)
