"""CompressionEngine: round-trips, interoperability with ``zstandard`` and ``lz4`` both ways,
dictionaries, streaming, the decompressed-size cap, typed errors, stats, and hypothesis
round-trips."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading

import lz4.frame
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from chat_corpus import chat_messages, conversation_text
from relay_context import (
    CompressionDictionary,
    CompressionEngine,
    CompressionStats,
    CorruptFrameError,
    InputTypeError,
    InvalidArgumentError,
    SizeLimitExceededError,
    train_dictionary,
)
from relay_context.config.settings import Settings
from relay_context.core.compression import DEFAULT_MAX_DECOMPRESSED_SIZE

ALGORITHMS = ("zstd", "lz4")
TEXT = conversation_text(200_000)


def lz4_decompress_all(data: bytes) -> bytes:
    """The lz4 package's reading of concatenated frames."""
    out = []
    while data:
        d = lz4.frame.LZ4FrameDecompressor()
        out.append(d.decompress(data))
        assert d.eof
        data = d.unused_data
    return b"".join(out)


def chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


@pytest.fixture(scope="module")
def trained() -> CompressionDictionary:
    return train_dictionary(chat_messages(4000, seed=1), size=16 * 1024)


# --- round-trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "level"),
    [("zstd", -5), ("zstd", 1), ("zstd", 3), ("zstd", 19), ("lz4", 0), ("lz4", 3), ("lz4", 12)],
)
def test_round_trip_bytes_and_text(algorithm: str, level: int) -> None:
    engine = CompressionEngine(algorithm, level)  # type: ignore[arg-type]
    for data in (b"", b"x", TEXT.encode(), bytes(range(256)) * 100):
        assert engine.decompress(engine.compress(data)) == data
    frame = engine.compress(TEXT)
    assert len(frame) < len(TEXT.encode()) / 2
    assert engine.decompress_to_text(frame) == TEXT
    assert engine.decompress(bytearray(frame)) == TEXT.encode()
    assert engine.decompress(memoryview(frame)) == TEXT.encode()
    assert engine.compress(bytearray(b"abc")) == engine.compress(b"abc")


async def test_async_text_methods_run_in_a_worker_thread() -> None:
    threads: list[int] = []

    class Recording(CompressionEngine):
        __slots__ = ()

        def compress(self, data: bytes | bytearray | memoryview | str) -> bytes:
            threads.append(threading.get_ident())
            return super().compress(data)

        def decompress(self, data: bytes | bytearray | memoryview) -> bytes:
            threads.append(threading.get_ident())
            return super().decompress(data)

    engine = Recording(algorithm="zstd", level=3)
    compressed = await engine.compress_text("long context... " * 100)
    assert await engine.decompress_text(compressed) == "long context... " * 100
    assert threads
    assert threading.get_ident() not in threads
    many = await asyncio.gather(*(engine.compress_text(f"message {i}") for i in range(20)))
    texts = await asyncio.gather(*(engine.decompress_text(c) for c in many))
    assert texts == [f"message {i}" for i in range(20)]
    assert await engine.decompress_async(await engine.compress_async(b"\x00\xff")) == b"\x00\xff"


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.text(max_size=300), max_size=12),
    algorithms=st.lists(st.sampled_from(ALGORITHMS), min_size=12, max_size=12),
    doubled=st.lists(st.booleans(), min_size=12, max_size=12),
)
def test_decompress_texts_equals_one_frame_at_a_time(
    texts: list[str], algorithms: list[str], doubled: list[bool]
) -> None:
    """One call for many frames: zstd and LZ4 frames of one engine mixed, a blob of two frames
    among them (the slow path), empty texts, sizes checked."""
    engines = {a: CompressionEngine(a) for a in ALGORITHMS}
    frames = []
    for text, algorithm, twice in zip(texts, algorithms, doubled, strict=False):
        frame = engines[algorithm].compress(text)
        frames.append(frame + engines["lz4"].compress(text) if twice else frame)
    expected = [engines["zstd"].decompress_to_text(f) for f in frames]
    sizes = [len(t.encode("utf-8", "surrogatepass")) for t in expected]
    assert engines["zstd"].decompress_texts(frames) == expected
    assert engines["lz4"].decompress_texts(tuple(frames), sizes) == expected


def test_decompress_texts_errors() -> None:
    engine = CompressionEngine()
    frames = [engine.compress("first"), engine.compress("second")]
    with pytest.raises(CorruptFrameError, match="frame 1 restored 6 bytes where 7 were stored"):
        engine.decompress_texts(frames, [5, 7])
    with pytest.raises(InvalidArgumentError, match="1 sizes for 2 frames"):
        engine.decompress_texts(frames, [5])
    with pytest.raises(InvalidArgumentError, match="size"):
        engine.decompress_texts(frames, [5, -1])
    with pytest.raises(InputTypeError, match="frames must be bytes, not str"):
        engine.decompress_texts([frames[0], "second"])  # type: ignore[list-item]
    with pytest.raises(UnicodeDecodeError):
        engine.decompress_texts([frames[0], engine.compress(b"\xff\xfe")])
    with pytest.raises(CorruptFrameError):
        engine.decompress_texts([frames[0], frames[1][:-3]])
    small = CompressionEngine(max_decompressed_size=100)
    with pytest.raises(SizeLimitExceededError):
        small.decompress_texts([small.compress("a" * 101)])
    assert engine.decompress_texts([]) == []


def test_product_docs_import_path() -> None:
    from relay_context.core.compression import CompressionEngine as Engine

    engine = Engine(algorithm="zstd", level=3)
    compressed = asyncio.run(engine.compress_text("long context..."))
    assert asyncio.run(engine.decompress_text(compressed)) == "long context..."


def test_format_is_detected_on_decompress() -> None:
    zstd_engine, lz4_engine = CompressionEngine("zstd"), CompressionEngine("lz4")
    z, lz = zstd_engine.compress(TEXT), lz4_engine.compress(TEXT)
    assert CompressionEngine.detect_format(z) == "zstd"
    assert CompressionEngine.detect_format(lz) == "lz4"
    assert CompressionEngine.detect_format(b"hello") is None
    assert zstd_engine.decompress(lz) == TEXT.encode()
    assert lz4_engine.decompress(z) == TEXT.encode()
    assert zstd_engine.decompress(z + lz + z) == TEXT.encode() * 3


def test_frame_info() -> None:
    info = CompressionEngine.frame_info(CompressionEngine("lz4").compress(b"hello"))
    assert (info.format, info.content_size, info.dict_id) == ("lz4", 5, 0)
    streamed = b"".join(CompressionEngine().compress_stream([b"a" * 1000]))
    assert CompressionEngine.frame_info(streamed).content_size is None
    with pytest.raises(CorruptFrameError, match="truncated frame header"):
        CompressionEngine.frame_info(b"\x28\xb5\x2f")


# --- interoperability ----------------------------------------------------------------------------


@pytest.mark.parametrize("level", [1, 3, 9, 19])
def test_zstd_ours_to_theirs_and_back(level: int) -> None:
    data = TEXT.encode()
    engine = CompressionEngine("zstd", level)
    assert zstandard.ZstdDecompressor().decompress(engine.compress(data)) == data
    theirs = zstandard.ZstdCompressor(level=level).compress(data)
    assert engine.decompress(theirs) == data
    with_checksum = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(data)
    assert engine.decompress(with_checksum) == data


@pytest.mark.parametrize("level", [0, 3, 9, 12])
def test_lz4_ours_to_theirs_and_back(level: int) -> None:
    data = TEXT.encode()
    engine = CompressionEngine("lz4", level)
    assert lz4.frame.decompress(engine.compress(data)) == data
    for kwargs in (
        {},
        {"content_checksum": True, "block_checksum": True},
        {"store_size": False, "block_size": lz4.frame.BLOCKSIZE_MAX4MB},
        {"block_linked": False},
    ):
        theirs = lz4.frame.compress(data, compression_level=level, **kwargs)
        assert engine.decompress(theirs) == data


def test_zstd_dictionary_interop_both_ways(trained: CompressionDictionary) -> None:
    their_dict = zstandard.ZstdCompressionDict(trained.data)
    assert their_dict.dict_id() == trained.id
    engine = CompressionEngine("zstd", 3, dictionary=trained)
    for message in chat_messages(50, seed=7):
        data = message.encode()
        ours = engine.compress(data)
        assert zstandard.get_frame_parameters(ours).dict_id == trained.id
        assert zstandard.ZstdDecompressor(dict_data=their_dict).decompress(ours) == data
        theirs = zstandard.ZstdCompressor(level=3, dict_data=their_dict).compress(data)
        assert engine.decompress(theirs) == data
    # A dictionary trained by zstandard works here too.
    samples = [m.encode() for m in chat_messages(3000, seed=3)]
    zd = zstandard.train_dictionary(8192, samples)
    ours_engine = CompressionEngine(dictionary=zd.as_bytes())
    assert ours_engine.dictionary is not None
    assert ours_engine.dictionary.id == zd.dict_id()
    frame = zstandard.ZstdCompressor(dict_data=zd).compress(samples[0])
    assert ours_engine.decompress(frame) == samples[0]


def test_streaming_and_multi_frame_interop() -> None:
    data = TEXT.encode()
    pieces = chunked(data, 7777)
    # Ours (streamed, several frames) -> theirs.
    for algorithm in ALGORITHMS:
        engine = CompressionEngine(algorithm)  # type: ignore[arg-type]
        stream = engine.compressor()
        frames = b"".join(stream.compress(p) for p in pieces[:10]) + stream.finish()
        frames += b"".join(stream.compress(p) for p in pieces[10:]) + stream.finish()
        if algorithm == "zstd":
            got = zstandard.ZstdDecompressor().decompressobj(read_across_frames=True)
            assert got.decompress(frames) == data
            reader = zstandard.ZstdDecompressor().stream_reader(frames, read_across_frames=True)
            assert reader.read() == data
        else:
            assert lz4_decompress_all(frames) == data
    # Theirs (streamed, several frames) -> ours, one-shot and in chunks.
    zc = zstandard.ZstdCompressor(level=3)
    zobj = zc.compressobj()
    their_zstd = b"".join(zobj.compress(p) for p in pieces) + zobj.flush()
    their_zstd += zstandard.ZstdCompressor(level=1).compress(b"tail")
    lc = lz4.frame.LZ4FrameCompressor()
    their_lz4 = lc.begin() + b"".join(lc.compress(p) for p in pieces) + lc.flush()
    their_lz4 += lz4.frame.compress(b"tail")
    engine = CompressionEngine()
    one = data + b"tail"
    for theirs, expected in (
        (their_zstd, one),
        (their_lz4, one),
        (their_zstd + their_lz4, one + one),
    ):
        assert engine.decompress(theirs) == expected
        for size in (1, 100, 65536):
            if size == 1 and len(theirs) > 200_000:
                continue
            assert b"".join(engine.decompress_stream(chunked(theirs, size))) == expected


# --- dictionaries --------------------------------------------------------------------------------


def test_dictionary_doubles_the_ratio_on_short_chat_messages(
    trained: CompressionDictionary,
) -> None:
    messages = [m.encode() for m in chat_messages(500, seed=42)]
    assert max(map(len, messages)) <= 1024
    plain = CompressionEngine("zstd", 3)
    with_dict = CompressionEngine("zstd", 3, dictionary=trained)
    raw = sum(map(len, messages))
    plain_size = sum(len(plain.compress(m)) for m in messages)
    dict_size = sum(len(with_dict.compress(m)) for m in messages)
    assert raw / dict_size >= 2 * (raw / plain_size)


def test_dictionary_id_is_carried_and_required(trained: CompressionDictionary) -> None:
    message = chat_messages(1, seed=5)[0]
    frame = CompressionEngine(dictionary=trained).compress(message)
    assert CompressionEngine.frame_info(frame).dict_id == trained.id
    with pytest.raises(CorruptFrameError, match=f"needs dictionary id {trained.id}.*no dictionary"):
        CompressionEngine().decompress(frame)
    other = train_dictionary(chat_messages(3000, seed=9), size=4096)
    assert other.id != trained.id
    with pytest.raises(CorruptFrameError, match=f"dictionary given has id {other.id}"):
        CompressionEngine(dictionary=other).decompress(frame)
    # Also in a stream.
    with pytest.raises(CorruptFrameError, match="needs dictionary id"):
        list(CompressionEngine().decompress_stream([frame[:5], frame[5:]]))
    # LZ4 frames name the dictionary too.
    lz = CompressionEngine("lz4", dictionary=trained).compress(message)
    assert CompressionEngine.frame_info(lz).dict_id == trained.id
    assert CompressionEngine(dictionary=trained).decompress_to_text(lz) == message
    with pytest.raises(CorruptFrameError, match="needs dictionary id"):
        CompressionEngine("lz4").decompress(lz)


def test_dictionary_object(trained: CompressionDictionary) -> None:
    assert len(trained) == len(trained.data) <= 16 * 1024
    assert bytes(trained) == trained.data
    assert CompressionDictionary(trained.data) == trained
    assert not trained.is_raw_content
    raw = CompressionDictionary(b'{"role": "assistant", "content": "Sure, here is')
    assert raw.id == 0
    assert raw.is_raw_content
    engine = CompressionEngine(dictionary=raw)
    assert engine.decompress(engine.compress(b'{"role": "assistant"}')) == b'{"role": "assistant"}'
    assert CompressionEngine.train_dictionary is train_dictionary
    assert "id=" in repr(trained)


def test_training_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="at least 256"):
        train_dictionary(chat_messages(100), size=100)
    with pytest.raises(InvalidArgumentError, match="could not train"):
        train_dictionary(["a", "b"], size=4096)
    with pytest.raises(InvalidArgumentError, match="no samples"):
        train_dictionary([], size=4096)
    with pytest.raises(InputTypeError):
        train_dictionary("one message", size=4096)
    with pytest.raises(InputTypeError):
        train_dictionary([b"ok", 5], size=4096)  # type: ignore[list-item]
    with pytest.raises(InputTypeError):
        train_dictionary(5, size=4096)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        train_dictionary(["x"], size="big")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="empty"):
        CompressionDictionary(b"")


# --- streaming -----------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_streaming_round_trip_with_flush(algorithm: str) -> None:
    engine = CompressionEngine(algorithm, checksum=True)  # type: ignore[arg-type]
    data = TEXT.encode()
    compressor = engine.compressor()
    head = compressor.compress(data[:50_000]) + compressor.flush()
    with engine.decompressor() as decompressor:
        assert decompressor.decompress(head) == data[:50_000]
        assert not decompressor.at_frame_boundary
        tail = compressor.compress(data[50_000:]) + compressor.finish()
        assert decompressor.decompress(tail) == data[50_000:]
        assert decompressor.at_frame_boundary
        assert decompressor.frames == 1
    assert compressor.bytes_in == len(data)
    assert compressor.bytes_out == len(head) + len(tail)
    assert b"".join(engine.decompress_stream([head + tail])) == data
    assert b"".join(engine.compress_stream(["abc", b"def"])) != b""
    assert engine.decompress(b"".join(engine.compress_stream(["abc", b"def"]))) == b"abcdef"


def test_truncated_stream_is_reported() -> None:
    engine = CompressionEngine()
    frame = engine.compress(TEXT)
    with pytest.raises(CorruptFrameError, match="truncated stream"):
        list(engine.decompress_stream(chunked(frame[:-3], 1000)))
    with pytest.raises(CorruptFrameError, match="truncated"), engine.decompressor() as d:
        d.decompress(frame[:10])


# --- the size cap --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_bomb_with_declared_size_is_refused(algorithm: str) -> None:
    bomb = CompressionEngine(algorithm).compress(bytes(32 << 20))  # type: ignore[arg-type]
    assert len(bomb) < 200_000
    small = CompressionEngine(max_decompressed_size=1 << 20)
    with pytest.raises(SizeLimitExceededError, match="declares 33554432"):
        small.decompress(bomb)
    with pytest.raises(SizeLimitExceededError):
        list(small.decompress_stream(chunked(bomb, 4096)))


def test_bomb_without_declared_size_is_stopped_while_decoding() -> None:
    zeros = bytes(32 << 20)
    zobj = zstandard.ZstdCompressor(level=19).compressobj()
    zstd_bomb = zobj.compress(zeros) + zobj.flush()
    assert zstandard.get_frame_parameters(zstd_bomb).content_size == zstandard.CONTENTSIZE_UNKNOWN
    lz4_bomb = lz4.frame.compress(zeros, store_size=False)
    small = CompressionEngine(max_decompressed_size=1 << 20)
    for bomb in (zstd_bomb, lz4_bomb):
        with pytest.raises(SizeLimitExceededError, match="exceeds the limit of 1048576"):
            small.decompress(bomb)
        with pytest.raises(SizeLimitExceededError):
            list(small.decompress_stream(chunked(bomb, 1000)))
        # At exactly the size it decodes; one byte under it does not.
        assert len(CompressionEngine(max_decompressed_size=len(zeros)).decompress(bomb)) == len(
            zeros
        )
        with pytest.raises(SizeLimitExceededError):
            CompressionEngine(max_decompressed_size=len(zeros) - 1).decompress(bomb)


def test_cap_covers_many_frames() -> None:
    frame = CompressionEngine().compress(b"q" * 3000)
    assert len(CompressionEngine(max_decompressed_size=9000).decompress(frame * 3)) == 9000
    with pytest.raises(SizeLimitExceededError):
        CompressionEngine(max_decompressed_size=8999).decompress(frame * 3)
    assert CompressionEngine().max_decompressed_size == DEFAULT_MAX_DECOMPRESSED_SIZE


# --- errors --------------------------------------------------------------------------------------


def test_corrupt_truncated_and_unknown_frames() -> None:
    for algorithm in ALGORITHMS:
        engine = CompressionEngine(algorithm, checksum=True)  # type: ignore[arg-type]
        frame = engine.compress(TEXT[:20_000])
        for n in (1, 4, 6, 12, len(frame) // 2, len(frame) - 1):
            with pytest.raises(CorruptFrameError, match="truncated"):
                engine.decompress(frame[:n])
        bad = bytearray(frame)
        bad[len(bad) // 2] ^= 0x55
        with pytest.raises(CorruptFrameError, match="corrupt"):
            engine.decompress(bytes(bad))
    with pytest.raises(CorruptFrameError, match=r"unknown frame format.*68 65 6c 6c"):
        CompressionEngine().decompress(b"hello world")
    with pytest.raises(CorruptFrameError, match="empty"):
        CompressionEngine().decompress(b"")
    assert issubclass(CorruptFrameError, ValueError)


def test_argument_errors() -> None:
    with pytest.raises(InvalidArgumentError, match="unknown compression algorithm 'gzip'"):
        CompressionEngine("gzip")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match=r"zstd level 23 is out of range \[-\d+, 22\]"):
        CompressionEngine("zstd", 23)
    with pytest.raises(InvalidArgumentError, match=r"lz4 level 13 is out of range \[0, 12\]"):
        CompressionEngine("lz4", 13)
    with pytest.raises(InvalidArgumentError, match="max_decompressed_size"):
        CompressionEngine(max_decompressed_size=-1)
    for bad_kwargs in (
        {"algorithm": 3},
        {"level": "3"},
        {"level": 3.0},
        {"level": True},
        {"dictionary": 5},
        {"max_decompressed_size": 1.5},
        {"checksum": "yes"},
    ):
        with pytest.raises(InputTypeError):
            CompressionEngine(**bad_kwargs)  # type: ignore[arg-type]
    engine = CompressionEngine()
    with pytest.raises(InputTypeError, match="data must be bytes or str, not int"):
        engine.compress(123)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="must be bytes, not str"):
        engine.decompress("not bytes")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        asyncio.run(engine.compress_text(b"bytes"))  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        asyncio.run(engine.decompress_text("text"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="not UTF-8"):
        engine.decompress_to_text(engine.compress(b"\xff\xfe"))
    with pytest.raises(InvalidArgumentError, match="UTF-8"):
        engine.compress("lone \ud800 surrogate")
    with pytest.raises(InputTypeError):
        engine.decompressor().decompress("text")  # type: ignore[arg-type]


# --- stats and settings --------------------------------------------------------------------------


def test_stats_snapshot() -> None:
    engine = CompressionEngine()
    assert engine.stats == CompressionStats()
    assert engine.stats.ratio == 1.0
    data = TEXT.encode()
    frame = engine.compress(data)
    engine.decompress(frame)
    stream = engine.compressor()
    streamed = stream.compress(b"x" * 1000) + stream.finish()
    s = engine.stats
    assert s.compress_calls == 2
    assert s.decompress_calls == 1
    assert s.bytes_in == len(data) + 1000
    assert s.bytes_out == len(frame) + len(streamed)
    assert s.decompressed_bytes_in == len(frame)
    assert s.decompressed_bytes_out == len(data)
    assert s.ratio == pytest.approx(s.bytes_in / s.bytes_out)
    assert s.bytes_saved == s.bytes_in - s.bytes_out > 0
    assert json.loads(json.dumps(s.as_dict()))["bytes_saved"] == s.bytes_saved
    engine.reset_stats()
    assert engine.stats.compress_calls == 0


def test_stats_are_thread_safe() -> None:
    engine = CompressionEngine()
    messages = [m.encode() for m in chat_messages(200, seed=4)]

    def work() -> None:
        for m in messages:
            engine.decompress(engine.compress(m))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = engine.stats
    assert s.compress_calls == s.decompress_calls == 800
    assert s.bytes_in == s.decompressed_bytes_out == 4 * sum(map(len, messages))


def test_from_settings() -> None:
    engine = CompressionEngine.from_settings(
        Settings(compression_algorithm="lz4", compression_level=9)
    )
    assert (engine.algorithm, engine.level) == ("lz4", 9)
    assert "lz4" in repr(engine)


# --- hypothesis ----------------------------------------------------------------------------------

ENGINES = {a: CompressionEngine(a) for a in ALGORITHMS}  # type: ignore[arg-type]


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=5000), algorithm=st.sampled_from(ALGORITHMS))
def test_hypothesis_round_trip_and_peer_decodes(data: bytes, algorithm: str) -> None:
    engine = ENGINES[algorithm]
    frame = engine.compress(data)
    assert engine.decompress(frame) == data
    if algorithm == "zstd":
        assert zstandard.ZstdDecompressor().decompress(frame) == data
    else:
        assert lz4.frame.decompress(frame) == data


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=2000), algorithm=st.sampled_from(ALGORITHMS))
def test_hypothesis_text_round_trip(text: str, algorithm: str) -> None:
    text = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    engine = ENGINES[algorithm]
    assert asyncio.run(engine.decompress_text(asyncio.run(engine.compress_text(text)))) == text


@settings(max_examples=60, deadline=None)
@given(
    parts=st.lists(st.binary(max_size=3000), max_size=6),
    split=st.integers(min_value=1, max_value=700),
    algorithm=st.sampled_from(ALGORITHMS),
)
def test_hypothesis_streaming_any_split(parts: list[bytes], split: int, algorithm: str) -> None:
    engine = ENGINES[algorithm]
    stream = engine.compressor()
    frames = b"".join(stream.compress(p) + stream.flush() for p in parts) + stream.finish()
    assert b"".join(engine.decompress_stream(chunked(frames, split))) == b"".join(parts)


@settings(max_examples=150, deadline=None)
@given(noise=st.binary(max_size=300))
def test_hypothesis_garbage_never_crashes(noise: bytes) -> None:
    for prefix in (b"", b"\x28\xb5\x2f\xfd", b"\x04\x22\x4d\x18"):
        with contextlib.suppress(CorruptFrameError, SizeLimitExceededError):
            CompressionEngine(max_decompressed_size=1 << 16).decompress(prefix + noise)


def rle_bomb(blocks: int) -> bytes:
    """A zstd frame with no declared size, a 1 GiB window and ``blocks`` RLE blocks of 128 KiB."""
    frame = bytearray(b"\x28\xb5\x2f\xfd\x00" + bytes([20 << 3]))
    for i in range(blocks):
        header = (1 << 20) | (1 << 1) | (1 if i == blocks - 1 else 0)
        frame += header.to_bytes(3, "little") + b"z"
    return bytes(frame)


def test_bomb_memory_stays_near_the_cap() -> None:
    # In a fresh process, so that its peak memory shows what decoding the bombs cost: a 1 GiB
    # window and 1 GiB of output, from 32 KiB of input, against a 1 MiB cap.
    script = """
import resource, sys
from relay_context import CompressionEngine, SizeLimitExceededError
sys.path.insert(0, sys.argv[1])
from test_compress import chunked, rle_bomb
bomb = rle_bomb(8192)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
engine = CompressionEngine(max_decompressed_size=1 << 20)
for attempt in (lambda: engine.decompress(bomb),
                lambda: list(engine.decompress_stream(chunked(bomb, 999)))):
    try:
        attempt()
    except SizeLimitExceededError:
        pass
    else:
        raise SystemExit("no SizeLimitExceededError")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
"""
    import subprocess
    import sys
    from pathlib import Path

    here = str(Path(__file__).resolve().parent)
    result = subprocess.run(
        [sys.executable, "-c", script, here], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    grown_kib = int(result.stdout.strip())
    assert grown_kib < 32 * 1024, f"peak memory grew by {grown_kib} KiB decoding the bombs"
