"""Compression: Relay's CompressionEngine vs the ``zstandard`` and ``lz4`` packages, in one process.

    python benchmarks/bench_compress.py [--quick]

For chat-like messages (JSON, <= 1 KB each, compressed one by one as a gateway stores them) and
for a larger transcript (~4 MB, one call), prints for each library the compression ratio and the
compress / decompress throughput in MB/s of uncompressed data, at a few levels, and the speed ratio
Relay / peer. Then the dictionary case: zstd with a dictionary trained on other chat messages vs
plain zstd on the same short messages (target: >= 2x the ratio of plain zstd).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))

import lz4.frame  # noqa: E402
import zstandard  # noqa: E402

from chat_corpus import chat_messages, conversation_text  # noqa: E402
from relay_context import CompressionEngine, train_dictionary  # noqa: E402


def best_of(fn: Callable[[], object], reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]


def measure(codec: Codec, items: list[bytes], reps: int) -> tuple[float, float, float]:
    """(ratio, compress MB/s, decompress MB/s) over ``items``, each compressed on its own."""
    compress, decompress = codec
    frames = [compress(x) for x in items]
    assert [decompress(f) for f in frames] == items
    raw = sum(map(len, items))
    t_c = best_of(lambda: [compress(x) for x in items], reps)
    t_d = best_of(lambda: [decompress(f) for f in frames], reps)
    return raw / sum(map(len, frames)), raw / t_c / 1e6, raw / t_d / 1e6


def row(label: str, ours: tuple[float, float, float], peer: tuple[float, float, float]) -> None:
    print(
        f"{label:<26} {ours[0]:>6.2f} {peer[0]:>6.2f}  "
        f"{ours[1]:>8.1f} {peer[1]:>8.1f} {ours[1] / peer[1]:>5.2f}x  "
        f"{ours[2]:>8.1f} {peer[2]:>8.1f} {ours[2] / peer[2]:>5.2f}x"
    )


def zstd_codecs(level: int, dict_data: bytes | None = None) -> tuple[Codec, Codec]:
    ours = CompressionEngine("zstd", level, dictionary=dict_data)
    zd = zstandard.ZstdCompressionDict(dict_data) if dict_data is not None else None
    zc = zstandard.ZstdCompressor(level=level, dict_data=zd)
    zdec = zstandard.ZstdDecompressor(dict_data=zd)
    return (ours.compress, ours.decompress), (zc.compress, zdec.decompress)


def lz4_codecs(level: int) -> tuple[Codec, Codec]:
    ours = CompressionEngine("lz4", level)

    def peer_compress(data: bytes) -> bytes:
        return lz4.frame.compress(data, compression_level=level)

    return (ours.compress, ours.decompress), (peer_compress, lz4.frame.decompress)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repetitions, smaller inputs")
    args = ap.parse_args()
    reps = 2 if args.quick else 5
    messages = [m.encode() for m in chat_messages(1000 if args.quick else 3000, seed=42)]
    big = [conversation_text((1 if args.quick else 4) * 1_000_000, seed=3).encode()]
    assert max(map(len, messages)) <= 1024

    print(
        f"chat messages: {len(messages)}, {sum(map(len, messages)) / len(messages):.0f} B mean; "
        f"transcript: {len(big[0]) / 1e6:.1f} MB; best of {reps}"
    )
    print(
        f"{'case':<26} {'ratio':>6} {'peer':>6}  {'comp':>8} {'peer':>8} {'x':>6}  "
        f"{'decomp':>8} {'peer':>8} {'x':>6}"
    )
    print(f"{'':<26} {'relay':>6} {'':>6}  {'MB/s':>8} {'MB/s':>8} {'':>6}  {'MB/s':>8}")
    for name, items in (("messages", messages), ("transcript", big)):
        for level in (1, 3, 9, 19):
            ours, peer = zstd_codecs(level)
            big_reps = 1 if level == 19 and name == "transcript" else reps
            row(
                f"zstd-{level} {name}",
                measure(ours, items, big_reps),
                measure(peer, items, big_reps),
            )
        for level in (0, 9):
            ours, peer = lz4_codecs(level)
            row(f"lz4-{level} {name}", measure(ours, items, reps), measure(peer, items, reps))

    # Dictionary on short messages: trained on other messages than those measured.
    training = chat_messages(5000, seed=1)
    t0 = time.perf_counter()
    dictionary = train_dictionary(training, size=16 * 1024)
    t_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    peer_dict = zstandard.train_dictionary(16 * 1024, [m.encode() for m in training])
    t_peer_train = time.perf_counter() - t0
    print(
        f"\ndictionary: {len(dictionary)} B, id {dictionary.id}, trained on {len(training)} "
        f"messages in {t_train:.2f} s (zstandard.train_dictionary: {t_peer_train:.2f} s)"
    )
    for level in (1, 3, 9):
        plain_ours, _ = zstd_codecs(level)
        dict_ours, dict_peer = zstd_codecs(level, dictionary.data)
        plain = measure(plain_ours, messages, reps)
        with_dict = measure(dict_ours, messages, reps)
        row(f"zstd-{level}+dict messages", with_dict, measure(dict_peer, messages, reps))
        gain = with_dict[0] / plain[0]
        verdict = "met" if gain >= 2 else "NOT met"
        print(
            f"    ratio with dictionary {with_dict[0]:.2f} vs plain zstd {plain[0]:.2f}: "
            f"{gain:.2f}x (target >= 2x: {verdict})"
        )
    peer_engine = CompressionEngine("zstd", 3, dictionary=peer_dict.as_bytes())
    ratio_peer_dict = sum(map(len, messages)) / sum(len(peer_engine.compress(m)) for m in messages)
    print(f"    zstd-3 with zstandard's dictionary instead: ratio {ratio_peer_dict:.2f}")


if __name__ == "__main__":
    main()
