"""A per-script benchmark corpus of natural text found on this machine, none of it in the tests.

Translations come from the installed gettext catalogues (/usr/share/locale/<lang>/LC_MESSAGES/
*.mo: every distinct translated string of every catalogue of that language), code from
/usr/include (C headers) and the running Python's standard library, English prose from
/usr/share/doc (README, NEWS and changelog files, gzipped or not). Each script's text is
distinct strings concatenated once, never repeated, up to ``max_chars``; so pieces recur only as
often as they do in real text.

A Debian/Ubuntu base image ships catalogues of ~100 languages with GLib, GTK, PAM and iso-codes;
Lao has only country names there. More translations: ``apt-get install iso-codes gnome-desktop3-data
libgtk-3-common`` (any package with many catalogues adds to every language).

    python benchmarks/natural_corpus.py            # the per-script sizes
    python benchmarks/natural_corpus.py --sample tests/python/data/natural_sample.txt
"""

from __future__ import annotations

import argparse
import gzip
import struct
import sysconfig
from pathlib import Path

LOCALE = Path("/usr/share/locale")
DOC = Path("/usr/share/doc")
INCLUDE = Path("/usr/include")

# Locale directory -> row label. Scripts without spaces (Thai, Lao, Khmer, Burmese, CJK), the
# Brahmic scripts of India and Sri Lanka, right-to-left scripts, and alphabets of Europe.
LANGUAGES: dict[str, str] = {
    "th": "Thai",
    "lo": "Lao",
    "km": "Khmer",
    "my": "Burmese",
    "ja": "Japanese",
    "zh_CN": "Chinese (simplified)",
    "zh_TW": "Chinese (traditional)",
    "ko": "Korean",
    "hi": "Hindi",
    "mr": "Marathi",
    "ne": "Nepali",
    "bn": "Bengali",
    "pa": "Punjabi",
    "gu": "Gujarati",
    "or": "Odia",
    "ta": "Tamil",
    "te": "Telugu",
    "kn": "Kannada",
    "ml": "Malayalam",
    "si": "Sinhala",
    "ar": "Arabic",
    "fa": "Persian",
    "ur": "Urdu",
    "he": "Hebrew",
    "am": "Amharic",
    "ka": "Georgian",
    "hy": "Armenian",
    "el": "Greek",
    "ru": "Russian",
    "uk": "Ukrainian",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "pt_BR": "Portuguese",
    "pl": "Polish",
    "cs": "Czech",
    "tr": "Turkish",
    "vi": "Vietnamese",
    "id": "Indonesian",
}


def mo_strings(path: Path) -> list[str]:
    """The translated strings of a GNU .mo catalogue (plural forms split), in file order; the
    header entry (empty msgid) is skipped. Unreadable or malformed files give []."""
    try:
        data = path.read_bytes()
        magic = struct.unpack("<I", data[:4])[0]
        order = "<" if magic == 0x950412DE else ">"
        _, count, orig_at, trans_at = struct.unpack(order + "4I", data[4:20])
        out: list[str] = []
        for i in range(count):
            olen, _ = struct.unpack(order + "2I", data[orig_at + 8 * i : orig_at + 8 * i + 8])
            tlen, toff = struct.unpack(order + "2I", data[trans_at + 8 * i : trans_at + 8 * i + 8])
            if olen == 0:
                continue
            text = data[toff : toff + tlen].decode("utf-8")
            out.extend(s for s in text.split("\0") if s)
        return out
    except (OSError, struct.error, UnicodeDecodeError):
        return []


def _distinct(chunks: list[str], max_chars: int) -> str:
    """Distinct chunks, in order, joined by newlines until ``max_chars``."""
    seen: set[str] = set()
    parts: list[str] = []
    total = 0
    for chunk in chunks:
        if chunk in seen or not chunk.strip():
            continue
        seen.add(chunk)
        parts.append(chunk)
        total += len(chunk) + 1
        if total >= max_chars:
            break
    return "\n".join(parts)[:max_chars]


def translations(lang: str, max_chars: int) -> str:
    files = sorted((LOCALE / lang / "LC_MESSAGES").glob("*.mo"))
    return _distinct([s for f in files for s in mo_strings(f)], max_chars)


def _read_text(path: Path) -> str:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        return raw.decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile):
        return ""


def c_source(max_chars: int) -> str:
    files = sorted(p for p in INCLUDE.rglob("*.h") if p.is_file())
    step = max(1, len(files) // 200)  # headers from all over the tree, not one library
    return _distinct([_read_text(p) for p in files[::step]], max_chars)


def python_source(max_chars: int) -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    # Subpackages only (tests/python/corpus.py's python_sources reads the top-level modules).
    files = sorted(p for p in stdlib.glob("*/*.py") if "test" not in p.parts and p.is_file())
    step = max(1, len(files) // 100)
    return _distinct([_read_text(p) for p in files[::step]], max_chars)


def english_docs(max_chars: int) -> str:
    names = ("README", "NEWS", "changelog", "FAQ", "TODO")
    files = sorted(p for p in DOC.glob("*/*") if p.is_file() and p.name.split(".")[0] in names)
    step = max(1, len(files) // 150)
    return _distinct([_read_text(p)[:4000] for p in files[::step]], max_chars)


def natural_scripts(max_chars: int = 100_000, min_chars: int = 1_000) -> dict[str, str]:
    """Row label -> text, for every language with at least ``min_chars`` of translations here."""
    out: dict[str, str] = {}
    for lang, label in LANGUAGES.items():
        text = translations(lang, max_chars)
        if len(text) >= min_chars:
            out[label] = text
    out["C source (/usr/include)"] = c_source(max_chars)
    out["Python source (stdlib)"] = python_source(max_chars)
    out["English docs (/usr/share/doc)"] = english_docs(max_chars)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-chars", type=int, default=100_000)
    ap.add_argument("--sample", type=Path, help="write a small sample (tests' oracle data)")
    args = ap.parse_args()
    scripts = natural_scripts(args.max_chars)
    if args.sample is None:
        for label, text in scripts.items():
            print(f"{label:<32} {len(text):>8} chars")
        return
    # The oracle sample: per script, a slice from the middle of the text (not the head, which
    # the benchmark's first pieces come from too), cut on a line boundary.
    blocks: list[str] = []
    for label, text in scripts.items():
        mid = len(text) // 2
        start = text.find("\n", mid) + 1
        end = text.rfind("\n", start, start + 1500)
        blocks.append(f"# script: {label}\n{text[start : end if end > start else start + 1500]}\n")
    args.sample.write_text("".join(blocks), encoding="utf-8")


if __name__ == "__main__":
    main()
