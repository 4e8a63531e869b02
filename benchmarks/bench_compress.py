"""Compression: Relay's CompressionEngine vs the ``zstandard`` and ``lz4`` packages, in one process.

    python benchmarks/bench_compress.py [--quick]

For chat-like messages (JSON, <= 1 KB each, compressed one by one as a gateway stores them) and
for a larger transcript (~4 MB, one call), prints for each library the compression ratio and the
compress / decompress throughput in MB/s of uncompressed data (per CPU second of the calling
thread), at a few levels, and the speed ratio
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

Codec = tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]
Figures = tuple[float, float, float]


def compare(ours: Codec, peer: Codec, items: list[bytes], reps: int) -> tuple[Figures, Figures]:
    """(ratio, compress MB/s, decompress MB/s) of both codecs over ``items``, each item
    compressed on its own. Times are the thread's CPU time (both libraries work in the calling
    thread), so other processes on a shared machine add less noise; repetitions alternate between
    the two libraries and the best time of each is kept."""
    raw = sum(map(len, items))
    results = []
    timings: list[list[float]] = [[float("inf")] * 2 for _ in range(2)]
    frames_of = []
    for compress, decompress in (ours, peer):
        frames = [compress(x) for x in items]
        assert [decompress(f) for f in frames] == items
        frames_of.append(frames)
    for _ in range(reps):
        for i, (compress, decompress) in enumerate((ours, peer)):
            frames = frames_of[i]
            t0 = time.thread_time()
            for x in items:
                compress(x)
            t1 = time.thread_time()
            for f in frames:
                decompress(f)
            t2 = time.thread_time()
            timings[i][0] = min(timings[i][0], t1 - t0)
            timings[i][1] = min(timings[i][1], t2 - t1)
    for i in range(2):
        ratio = raw / sum(map(len, frames_of[i]))
        results.append((ratio, raw / timings[i][0] / 1e6, raw / timings[i][1] / 1e6))
    return results[0], results[1]


def row(label: str, figures: tuple[Figures, Figures]) -> None:
    ours, peer = figures
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
    for name, items, zstd_levels, n in (
        ("messages", messages, (1, 3, 9, 19), 3 * reps),
        ("transcript", big, (1, 3, 9), reps),
    ):
        for level in zstd_levels:
            row(f"zstd-{level} {name}", compare(*zstd_codecs(level), items, n))
        for level in (0, 9):
            row(f"lz4-{level} {name}", compare(*lz4_codecs(level), items, n))

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
    raw = sum(map(len, messages))
    for level in (1, 3, 9):
        plain_engine = CompressionEngine("zstd", level)
        plain_ratio = raw / sum(len(plain_engine.compress(m)) for m in messages)
        figures = compare(*zstd_codecs(level, dictionary.data), messages, 3 * reps)
        row(f"zstd-{level}+dict messages", figures)
        with_dict = figures[0]
        gain = with_dict[0] / plain_ratio
        verdict = "met" if gain >= 2 else "NOT met"
        print(
            f"    ratio with dictionary {with_dict[0]:.2f} vs plain zstd {plain_ratio:.2f}: "
            f"{gain:.2f}x (target >= 2x: {verdict})"
        )
    peer_engine = CompressionEngine("zstd", 3, dictionary=peer_dict.as_bytes())
    ratio_peer_dict = raw / sum(len(peer_engine.compress(m)) for m in messages)
    print(f"    zstd-3 with zstandard's dictionary instead: ratio {ratio_peer_dict:.2f}")


if __name__ == "__main__":
    main()
