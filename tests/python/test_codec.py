"""CodecSet: tags, the raw fallback, unknown tags, and codecs that name their own format."""

from __future__ import annotations

import zlib

import pytest

from engine_support import ZlibCodec
from relay_context.engine.codec import RAW, CodecSet
from relay_context.errors import CorruptFrameError, InputTypeError, InvalidArgumentError


class NamedCodec(ZlibCodec):
    """Like CompressionEngine: says which algorithm it is."""

    algorithm = "zlib"


def test_compressible_data_is_tagged_with_the_codec() -> None:
    codecs = CodecSet(ZlibCodec(), "zlib")
    data = b"abc" * 1000
    tag, blob = codecs.encode(data)
    assert tag == "zlib"
    assert zlib.decompress(blob) == data
    assert codecs.decode(tag, blob, len(data)) == data


def test_data_that_does_not_shrink_is_stored_raw() -> None:
    codecs = CodecSet(ZlibCodec(), "zlib")
    assert codecs.encode(b"hi") == (RAW, b"hi")
    assert CodecSet().encode(b"abc" * 1000) == (RAW, b"abc" * 1000)


def test_the_codec_may_name_its_own_tag() -> None:
    assert CodecSet(NamedCodec()).write_tag == "zlib"
    with pytest.raises(InvalidArgumentError, match="needs a tag"):
        CodecSet(ZlibCodec())


def test_bad_configurations() -> None:
    with pytest.raises(InvalidArgumentError, match="reserved"):
        CodecSet(ZlibCodec(), RAW)
    with pytest.raises(InvalidArgumentError, match="without a codec"):
        CodecSet(None, "zlib")
    with pytest.raises(InvalidArgumentError, match="codec tag"):
        CodecSet(ZlibCodec(), "Not A Tag")
    with pytest.raises(InputTypeError, match="compress"):
        CodecSet(object(), "x")  # type: ignore[arg-type]


def test_unknown_tags_and_wrong_sizes_are_corrupt_frames() -> None:
    codecs = CodecSet(ZlibCodec(), "zlib")
    with pytest.raises(CorruptFrameError, match="'zstd', which is not registered"):
        codecs.decode("zstd", b"...")
    tag, blob = codecs.encode(b"abc" * 1000)
    with pytest.raises(CorruptFrameError, match="restored 3000 bytes where 5 were stored"):
        codecs.decode(tag, blob, 5)
