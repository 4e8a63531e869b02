"""Content codecs: how message bodies and cached windows are compressed at rest.

A codec is any object with ``compress(bytes) -> bytes`` and ``decompress(bytes) -> bytes`` (the
zstd :class:`relay_context.core.compression.CompressionEngine` is one; its ``algorithm``
attribute serves as the tag when none is given). Every stored blob carries
the *tag* of the codec that wrote it, so the format is self-describing: a store can read rows
written with an older codec as long as that codec is still registered under its tag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from relay_context.errors import CorruptFrameError, InputTypeError, InvalidArgumentError

#: Tag of the identity codec: the bytes are stored as they are. Always registered.
RAW = "raw"
_TAG = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")


@runtime_checkable
class ContentCodec(Protocol):
    """Compresses and restores bytes; ``decompress(compress(b)) == b``."""

    def compress(self, data: bytes, /) -> bytes: ...

    def decompress(self, data: bytes, /) -> bytes: ...


class IdentityCodec:
    """Stores bytes unchanged (tag ``raw``); used when compressing does not make them smaller."""

    def compress(self, data: bytes, /) -> bytes:
        return bytes(data)

    def decompress(self, data: bytes, /) -> bytes:
        return bytes(data)


def validate_codec_tag(tag: object) -> str:
    if not isinstance(tag, str):
        raise InputTypeError(f"codec tag must be a str, got {type(tag).__name__}")
    if _TAG.fullmatch(tag) is None:
        raise InvalidArgumentError(
            f"codec tag {tag!r} must be 1-32 of [a-z0-9_.-], starting with a letter or digit"
        )
    return tag


class CodecSet:
    """The codec new data is written with, plus every codec old data may have been written with.

    ``encode`` keeps the raw bytes (tag ``raw``) when compression does not save anything, which
    is common for short chat messages; ``decode`` picks the codec by the stored tag.
    """

    def __init__(
        self,
        codec: ContentCodec | None = None,
        tag: str | None = None,
        *,
        readers: Mapping[str, ContentCodec] | None = None,
    ) -> None:
        if codec is None and tag is not None:
            raise InvalidArgumentError(f"codec tag {tag!r} given without a codec")
        if codec is not None:
            if not isinstance(codec, ContentCodec):
                raise InputTypeError(
                    f"codec must have compress() and decompress(), got {type(codec).__name__}"
                )
            if tag is None:
                # CompressionEngine names its format: ``algorithm`` is "zstd" or "lz4".
                algorithm = getattr(codec, "algorithm", None)
                if not isinstance(algorithm, str):
                    raise InvalidArgumentError(
                        "a codec needs a tag (e.g. 'zstd') naming its format: pass codec_tag, "
                        "or give the codec an 'algorithm' attribute"
                    )
                tag = algorithm
            validate_codec_tag(tag)
            if tag == RAW:
                raise InvalidArgumentError(f"codec tag {RAW!r} is reserved for uncompressed data")
        self._codecs: dict[str, ContentCodec] = {RAW: IdentityCodec()}
        for reader_tag, reader in (readers or {}).items():
            self._codecs[validate_codec_tag(reader_tag)] = reader
        self.write_tag: str = RAW
        if codec is not None and tag is not None:
            self._codecs[tag] = codec
            self.write_tag = tag

    @property
    def writer(self) -> ContentCodec:
        """The codec new data is written with (the identity codec for ``raw``)."""
        return self._codecs[self.write_tag]

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(self._codecs)

    def encode(self, data: bytes) -> tuple[str, bytes]:
        """``(tag, blob)``: ``data`` compressed by the write codec, or raw if that is smaller."""
        tag = self.write_tag
        if tag == RAW:
            return RAW, bytes(data)
        blob = self._codecs[tag].compress(data)
        if len(blob) >= len(data):
            return RAW, bytes(data)
        return tag, blob

    def _codec(self, tag: str) -> ContentCodec:
        codec = self._codecs.get(tag)
        if codec is None:
            known = ", ".join(sorted(self._codecs))
            raise CorruptFrameError(
                f"data written with codec {tag!r}, which is not registered ({known})"
            )
        return codec

    def decode(self, tag: str, blob: bytes, expected_size: int | None = None) -> bytes:
        """The bytes ``encode`` was given; :class:`CorruptFrameError` on an unknown tag or size."""
        codec = self._codec(tag)
        data = codec.decompress(blob)
        if expected_size is not None and len(data) != expected_size:
            raise CorruptFrameError(
                f"codec {tag!r} restored {len(data)} bytes where {expected_size} were stored"
            )
        return data


__all__ = ["RAW", "CodecSet", "ContentCodec", "IdentityCodec", "validate_codec_tag"]
