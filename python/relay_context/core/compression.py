"""``CompressionEngine``: zstd and LZ4 compression of context payloads, from the C++ core.

>>> engine = CompressionEngine(algorithm="zstd", level=3)
>>> compressed = await engine.compress_text("long context...")
>>> await engine.decompress_text(compressed)
'long context...'

Frames are standard zstd (RFC 8878) and LZ4 frames, readable by the ``zstandard`` and ``lz4``
packages and by the command-line tools, and ``decompress`` reads theirs. The format of each frame is
detected from its magic number, so an engine configured for zstd also reads LZ4 frames (and
concatenations of both). Decompression never produces more than ``max_decompressed_size`` bytes:
a frame declaring more is refused before anything is allocated, and frames that declare nothing
are stopped while decoding (:class:`~relay_context.errors.SizeLimitExceededError`).

Short messages compress far better with a dictionary trained on similar messages::

    dictionary = train_dictionary(sample_messages, size=16 * 1024)
    engine = CompressionEngine(dictionary=dictionary)

Every frame written with the dictionary names its id; decompressing it without that dictionary
raises :class:`~relay_context.errors.CorruptFrameError` saying which id is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal, cast

from relay_context import _core
from relay_context.checks import check_int
from relay_context.errors import CorruptFrameError, InputTypeError, InvalidArgumentError

if TYPE_CHECKING:
    from relay_context.config.settings import Settings

Algorithm = Literal["zstd", "lz4"]
FrameFormat = Literal["zstd", "lz4", "skippable"]

#: Default cap on what one ``decompress`` call (or one stream) may produce: 64 MiB.
DEFAULT_MAX_DECOMPRESSED_SIZE = 64 * 1024 * 1024
#: Default size of a trained dictionary (zstd's own default is 110 KiB; chat messages need less).
DEFAULT_DICTIONARY_SIZE = 16 * 1024

_ALGORITHMS: dict[str, _core.compress.Algorithm] = {
    "zstd": _core.compress.Algorithm.ZSTD,
    "lz4": _core.compress.Algorithm.LZ4,
}
_FORMATS: dict[_core.compress.FrameFormat, FrameFormat | None] = {
    _core.compress.FrameFormat.ZSTD: "zstd",
    _core.compress.FrameFormat.LZ4: "lz4",
    _core.compress.FrameFormat.SKIPPABLE: "skippable",
    _core.compress.FrameFormat.UNKNOWN: None,
}

BytesLike = bytes | bytearray | memoryview


def _to_bytes(data: object, what: str, *, allow_text: bool) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        if not allow_text:
            raise InputTypeError(f"{what} must be bytes, not str (compressed data is binary)")
        try:
            return data.encode("utf-8")
        except UnicodeEncodeError as e:
            raise InvalidArgumentError(
                f"{what} is not encodable as UTF-8: {e.reason} at index {e.start}"
            ) from None
    expected = "bytes or str" if allow_text else "bytes"
    raise InputTypeError(f"{what} must be {expected}, not {type(data).__name__}")


class CompressionDictionary:
    """A compression dictionary: trained by :func:`train_dictionary` or raw content bytes.

    ``id`` is the dictionary id that zstd-trained dictionaries carry (and that every frame written
    with them names); raw content has id 0. ``data`` is the dictionary itself, to store and load
    again with ``CompressionDictionary(data)``; ``zstandard.ZstdCompressionDict(data)`` reads
    it too.
    """

    __slots__ = ("_core",)

    def __init__(self, data: BytesLike) -> None:
        self._core = _core.compress.Dictionary(_to_bytes(data, "dictionary", allow_text=False))

    @classmethod
    def _wrap(cls, core: _core.compress.Dictionary) -> CompressionDictionary:
        self = cls.__new__(cls)
        self._core = core
        return self

    @property
    def id(self) -> int:
        """The dictionary id (0 for raw content)."""
        return self._core.id

    @property
    def data(self) -> bytes:
        """The dictionary's bytes."""
        return self._core.data

    @property
    def is_raw_content(self) -> bool:
        """True for raw content (no zstd dictionary header, id 0)."""
        return self._core.is_raw_content

    def __bytes__(self) -> bytes:
        return self._core.data

    def __len__(self) -> int:
        return len(self._core)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompressionDictionary):
            return NotImplemented
        return self.data == other.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        return f"CompressionDictionary(id={self.id}, size={len(self)})"


def train_dictionary(
    samples: Iterable[BytesLike | str], size: int = DEFAULT_DICTIONARY_SIZE
) -> CompressionDictionary:
    """Trains a zstd dictionary of at most ``size`` bytes on sample messages.

    Give it many samples that look like what will be compressed (a few thousand chat messages):
    zstd wants roughly 100 times the dictionary size in total. Raises
    :class:`~relay_context.errors.InvalidArgumentError` when zstd cannot train one.
    """
    size = check_int(size, "size")
    if size < 256:
        raise InvalidArgumentError(f"dictionary size must be at least 256 bytes, got {size}")
    if isinstance(samples, str | bytes | bytearray | memoryview):
        raise InputTypeError("samples must be an iterable of messages, not a single message")
    try:
        blobs = [_to_bytes(s, "each sample", allow_text=True) for s in samples]
    except TypeError as e:
        if isinstance(e, InputTypeError):
            raise
        raise InputTypeError(f"samples must be an iterable, not {type(samples).__name__}") from None
    return CompressionDictionary._wrap(_core.compress.train_dictionary(blobs, size))


@dataclass(frozen=True)
class CompressionStats:
    """A snapshot of an engine's counters (streams included)."""

    compress_calls: int = 0
    decompress_calls: int = 0
    #: Uncompressed bytes given to compress.
    bytes_in: int = 0
    #: Compressed bytes compress produced.
    bytes_out: int = 0
    #: Compressed bytes given to decompress.
    decompressed_bytes_in: int = 0
    #: Bytes decompress produced.
    decompressed_bytes_out: int = 0

    @property
    def ratio(self) -> float:
        """Uncompressed / compressed size over every compress call (1.0 before any)."""
        return self.bytes_in / self.bytes_out if self.bytes_out else 1.0

    @property
    def bytes_saved(self) -> int:
        """Bytes compression saved (negative when incompressible data grew by the framing)."""
        return self.bytes_in - self.bytes_out

    def as_dict(self) -> dict[str, int | float]:
        return {
            "compress_calls": self.compress_calls,
            "decompress_calls": self.decompress_calls,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "decompressed_bytes_in": self.decompressed_bytes_in,
            "decompressed_bytes_out": self.decompressed_bytes_out,
            "ratio": self.ratio,
            "bytes_saved": self.bytes_saved,
        }


@dataclass(frozen=True)
class FrameInfo:
    """What a frame header declares (see :meth:`CompressionEngine.frame_info`)."""

    format: FrameFormat
    header_size: int
    #: Decompressed size, when the frame declares it.
    content_size: int | None
    #: Dictionary the frame needs (0: none named).
    dict_id: int
    #: zstd: history the decoder keeps; LZ4: largest block.
    window_size: int


class StreamCompressor:
    """Incremental compression (from :meth:`CompressionEngine.compressor`).

    ``compress(chunk)`` returns what is ready (often nothing for small chunks), ``flush()`` makes
    everything fed so far decodable without ending the frame, and ``finish()`` ends the frame;
    feeding more afterwards starts a new frame.
    """

    __slots__ = ("_core",)

    def __init__(self, core: _core.compress.StreamCompressor) -> None:
        self._core = core

    def compress(self, chunk: BytesLike | str) -> bytes:
        """Feeds ``chunk``; returns the compressed bytes that are ready."""
        return self._core.compress(_to_bytes(chunk, "chunk", allow_text=True))

    def flush(self) -> bytes:
        """Everything fed so far, decodable; the frame stays open."""
        return self._core.flush()

    def finish(self) -> bytes:
        """Ends the frame (an empty frame if nothing was fed since the last one)."""
        return self._core.finish()

    @property
    def bytes_in(self) -> int:
        return self._core.bytes_in

    @property
    def bytes_out(self) -> int:
        return self._core.bytes_out


class StreamDecompressor:
    """Incremental decompression of frames split at any points (from
    :meth:`CompressionEngine.decompressor`).

    The engine's ``max_decompressed_size`` applies to the whole stream. ``finish()`` raises
    :class:`~relay_context.errors.CorruptFrameError` when the input stopped inside a frame; as a
    context manager it is called on a normal exit.
    """

    __slots__ = ("_core",)

    def __init__(self, core: _core.compress.StreamDecompressor) -> None:
        self._core = core

    def decompress(self, chunk: BytesLike) -> bytes:
        """Feeds ``chunk``; returns the decompressed bytes it completes."""
        return self._core.decompress(_to_bytes(chunk, "chunk", allow_text=False))

    def finish(self) -> None:
        """Checks that the stream ended on a frame boundary."""
        self._core.finish()

    @property
    def at_frame_boundary(self) -> bool:
        """True when every frame fed so far is complete."""
        return self._core.at_frame_boundary

    @property
    def frames(self) -> int:
        """Frames completed so far (skippable frames included)."""
        return self._core.frames

    @property
    def bytes_in(self) -> int:
        return self._core.bytes_in

    @property
    def bytes_out(self) -> int:
        return self._core.bytes_out

    def __enter__(self) -> StreamDecompressor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.finish()


class CompressionEngine:
    """Compresses and decompresses bytes and text with zstd or LZ4.

    ``level``: zstd -131072..22 (negative levels are its fast modes; 3 is zstd's default), LZ4
    0..12 (0-2 fast, 3-12 LZ4HC). ``dictionary``: a :class:`CompressionDictionary` or its bytes.
    ``max_decompressed_size``: the most bytes one ``decompress`` call or one stream may produce.
    ``checksum``: add a content checksum to each frame (off by default, as in both libraries).

    Thread-safe; the C++ work runs without the GIL, and the awaitable methods run it in a worker
    thread so the event loop is never blocked.
    """

    __slots__ = (
        "_algorithm",
        "_checksum",
        "_compressor",
        "_counters",
        "_decompressor",
        "_dictionary",
        "_level",
        "_max_decompressed_size",
    )

    def __init__(
        self,
        algorithm: Algorithm = "zstd",
        level: int = 3,
        dictionary: CompressionDictionary | BytesLike | None = None,
        max_decompressed_size: int = DEFAULT_MAX_DECOMPRESSED_SIZE,
        *,
        checksum: bool = False,
    ) -> None:
        if not isinstance(algorithm, str):
            raise InputTypeError(f"algorithm must be a str, not {type(algorithm).__name__}")
        if algorithm not in _ALGORITHMS:
            raise InvalidArgumentError(
                f"unknown compression algorithm {algorithm!r}; expected 'zstd' or 'lz4'"
            )
        core_algorithm = _ALGORITHMS[algorithm]
        level = check_int(level, "level")
        low = _core.compress.min_level(core_algorithm)
        high = _core.compress.max_level(core_algorithm)
        if not low <= level <= high:
            raise InvalidArgumentError(f"{algorithm} level {level} is out of range [{low}, {high}]")
        max_decompressed_size = check_int(max_decompressed_size, "max_decompressed_size")
        if max_decompressed_size < 0:
            raise InvalidArgumentError(
                f"max_decompressed_size must be >= 0, got {max_decompressed_size}"
            )
        if not isinstance(checksum, bool):
            raise InputTypeError(f"checksum must be a bool, not {type(checksum).__name__}")
        if dictionary is None or isinstance(dictionary, CompressionDictionary):
            self._dictionary = dictionary
        elif isinstance(dictionary, bytes | bytearray | memoryview):
            self._dictionary = CompressionDictionary(dictionary)
        else:
            raise InputTypeError(
                "dictionary must be a CompressionDictionary, bytes or None, not "
                f"{type(dictionary).__name__}"
            )
        self._algorithm: Algorithm = algorithm
        self._level = level
        self._checksum = checksum
        self._max_decompressed_size = max_decompressed_size
        self._counters = _core.compress.Counters()
        core_dict = self._dictionary._core if self._dictionary is not None else None
        self._compressor = _core.compress.Compressor(
            core_algorithm, level, checksum, core_dict, self._counters
        )
        self._decompressor = _core.compress.Decompressor(
            core_dict, max_decompressed_size, self._counters
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, dictionary: CompressionDictionary | BytesLike | None = None
    ) -> CompressionEngine:
        """The engine of ``settings.compression_algorithm`` and ``settings.compression_level``."""
        return cls(
            settings.compression_algorithm, settings.compression_level, dictionary=dictionary
        )

    # --- configuration -------------------------------------------------------------------------

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def level(self) -> int:
        return self._level

    @property
    def dictionary(self) -> CompressionDictionary | None:
        return self._dictionary

    @property
    def max_decompressed_size(self) -> int:
        return self._max_decompressed_size

    @property
    def checksum(self) -> bool:
        return self._checksum

    # --- one-shot ------------------------------------------------------------------------------

    def compress(self, data: BytesLike | str) -> bytes:
        """One frame holding ``data`` (``str`` is encoded as UTF-8)."""
        if type(data) is not bytes:
            data = _to_bytes(data, "data", allow_text=True)
        return self._compressor.compress(data)

    def decompress(self, data: BytesLike) -> bytes:
        """The content of every frame in ``data`` (zstd, LZ4 or both, detected per frame)."""
        if type(data) is not bytes:
            data = _to_bytes(data, "data", allow_text=False)
        return self._decompressor.decompress(data)

    def decompress_to_text(self, data: BytesLike) -> str:
        """``decompress`` decoded as UTF-8."""
        out = self.decompress(data)
        try:
            return out.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidArgumentError(
                f"the decompressed data is not UTF-8 text ({e.reason} at byte {e.start}); "
                "use decompress() for binary data"
            ) from None

    @property
    def native_decompressor(self) -> _core.compress.Decompressor:
        """The C++ decompressor, for kernels that restore this engine's frames themselves
        (:class:`relay_context.core.rows.MessageRowDecoder`)."""
        return self._decompressor

    def decompress_texts(
        self, frames: Sequence[bytes], sizes: Sequence[int] | None = None
    ) -> list[str]:
        """``decompress_to_text`` of each of ``frames``, in one call: for many small frames (a
        session's stored messages) this saves a Python call per frame. ``sizes``: the byte
        size each frame must restore (:class:`CorruptFrameError` naming the frame otherwise).
        Text that is not UTF-8 raises ``UnicodeDecodeError``."""
        blobs = frames if type(frames) is list else list(frames)
        if not all(type(blob) is bytes for blob in blobs):  # one cheap pass, then C++
            bad = next(blob for blob in blobs if type(blob) is not bytes)
            raise InputTypeError(f"frames must be bytes, not {type(bad).__name__}")
        expected = None
        if sizes is not None:
            expected = sizes if type(sizes) is list else list(sizes)
            if not all(type(n) is int for n in expected) or (expected and min(expected) < 0):
                expected = [check_int(n, "size", minimum=0) for n in expected]  # raises
            if len(expected) != len(blobs):
                raise InvalidArgumentError(f"{len(expected)} sizes for {len(blobs)} frames")
        return self._decompressor.decompress_texts(blobs, expected)

    # --- awaitable -----------------------------------------------------------------------------

    async def compress_text(self, text: str) -> bytes:
        """Compresses ``text`` (UTF-8) in a worker thread."""
        if not isinstance(text, str):
            raise InputTypeError(
                f"text must be a str, not {type(text).__name__} (use compress_async for bytes)"
            )
        return await asyncio.to_thread(self.compress, text)

    async def decompress_text(self, data: BytesLike) -> str:
        """Decompresses ``data`` and decodes it as UTF-8, in a worker thread."""
        _to_bytes(data, "data", allow_text=False)  # type errors before the thread hop
        return await asyncio.to_thread(self.decompress_to_text, data)

    async def compress_async(self, data: BytesLike | str) -> bytes:
        """``compress`` in a worker thread."""
        return await asyncio.to_thread(self.compress, data)

    async def decompress_async(self, data: BytesLike) -> bytes:
        """``decompress`` in a worker thread."""
        return await asyncio.to_thread(self.decompress, data)

    # --- streaming -----------------------------------------------------------------------------

    def compressor(self) -> StreamCompressor:
        """A new incremental compressor with this engine's settings."""
        core_dict = self._dictionary._core if self._dictionary is not None else None
        core = _core.compress.StreamCompressor(
            _ALGORITHMS[self._algorithm], self._level, self._checksum, core_dict, self._counters
        )
        return StreamCompressor(core)

    def decompressor(self) -> StreamDecompressor:
        """A new incremental decompressor; ``max_decompressed_size`` caps the whole stream."""
        core_dict = self._dictionary._core if self._dictionary is not None else None
        core = _core.compress.StreamDecompressor(
            core_dict, self._max_decompressed_size, self._counters
        )
        return StreamDecompressor(core)

    def compress_stream(self, chunks: Iterable[BytesLike | str]) -> Iterator[bytes]:
        """Compresses an iterable of chunks into one frame, yielding output as it is ready."""
        stream = self.compressor()
        for chunk in chunks:
            out = stream.compress(chunk)
            if out:
                yield out
        yield stream.finish()

    def decompress_stream(self, chunks: Iterable[BytesLike]) -> Iterator[bytes]:
        """Decompresses an iterable of compressed chunks (any split), yielding output as it is
        decoded. Raises :class:`~relay_context.errors.CorruptFrameError` at the end if the input
        stopped inside a frame."""
        stream = self.decompressor()
        for chunk in chunks:
            out = stream.decompress(chunk)
            if out:
                yield out
        stream.finish()

    # --- inspection and statistics -------------------------------------------------------------

    @staticmethod
    def detect_format(data: BytesLike) -> FrameFormat | None:
        """``"zstd"``, ``"lz4"`` or ``"skippable"`` from the magic number, or None."""
        return _FORMATS[_core.compress.detect_format(_to_bytes(data, "data", allow_text=False))]

    @staticmethod
    def frame_info(data: BytesLike) -> FrameInfo:
        """What the header of the first frame in ``data`` declares (content size, dictionary id).

        Raises :class:`~relay_context.errors.CorruptFrameError` when ``data`` does not start with
        a complete frame header.
        """
        raw = _to_bytes(data, "data", allow_text=False)
        header = _core.compress.parse_frame_header(raw)
        if header is None:
            raise CorruptFrameError(
                f"truncated frame header: {len(raw)} bytes are too few to hold it"
            )
        fmt = _FORMATS[cast(_core.compress.FrameFormat, header["format"])]
        assert fmt is not None
        content_size = header["content_size"]
        return FrameInfo(
            format=fmt,
            header_size=cast(int, header["header_size"]),
            content_size=cast("int | None", content_size),
            dict_id=cast(int, header["dict_id"]),
            window_size=cast(int, header["window_size"]),
        )

    train_dictionary = staticmethod(train_dictionary)

    @property
    def stats(self) -> CompressionStats:
        """A snapshot of the counters (calls, bytes in and out, ratio, bytes saved)."""
        return CompressionStats(*self._counters.snapshot())

    def reset_stats(self) -> None:
        self._counters.reset()

    def __repr__(self) -> str:
        extra = f", dictionary={self._dictionary!r}" if self._dictionary is not None else ""
        return f"CompressionEngine(algorithm={self._algorithm!r}, level={self._level}{extra})"
