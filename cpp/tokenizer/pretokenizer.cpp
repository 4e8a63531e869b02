// Hand-written pre-tokenisers reproducing tiktoken's split regexes (Rust fancy-regex semantics:
// leftmost-first alternation, greedy/possessive quantifiers with backtracking, `$` = end of the
// segment) in one left-to-right pass per piece.
//
// Notation: L = \p{L}, N = \p{N}, WS = \s (White_Space), O = [^\s\p{L}\p{N}] ("other"),
// P = [^\r\n\p{L}\p{N}] (the optional one-character prefix of cl100k/o200k words),
// U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], W = [\p{Ll}\p{Lm}\p{Lo}\p{M}] (o200k only).
//
// How the backtracking alternatives resolve, for a whitespace run [i, j) (j = first non-space or
// the end of the segment):
//   \s++$          matches [i, j) only if j is the end.
//   \s*[\r\n]      \s* takes the run and gives characters back until a [\r\n] follows, so it
//                  matches up to and including the last \r or \n of the run (fails without one).
//   \s*[\r\n]+     same end as above (the [\r\n]+ after the last newline stops at a non-newline).
//   \s+(?!\S)      matches [i, j) if j is the end; otherwise gives back the last character of the
//                  run (the one before the non-space) if the run has at least two characters.
//   \s / \s+       the remaining case, a single whitespace character.
#include "tokenizer/pretokenizer.hpp"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>

#include "tokenizer/unicode_tables.hpp"

namespace relay::tokenizer {
namespace {

using unicode::kL;
using unicode::kN;
using unicode::kU;
using unicode::kW;
using unicode::kWS;

constexpr std::size_t kNpos = std::numeric_limits<std::size_t>::max();
constexpr std::uint32_t kInvalidCp = 0xFFFFFFFFU;
constexpr std::uint8_t kLNWS = kL | kN | kWS;

constexpr std::array<std::uint8_t, 128> kAsciiFlags = [] {
    std::array<std::uint8_t, 128> t{};
    for (unsigned c = 'A'; c <= 'Z'; ++c) {
        t[c] = kL | kU;
    }
    for (unsigned c = 'a'; c <= 'z'; ++c) {
        t[c] = kL | kW;
    }
    for (unsigned c = '0'; c <= '9'; ++c) {
        t[c] = kN;
    }
    for (unsigned c = 0x09; c <= 0x0D; ++c) {
        t[c] = kWS;
    }
    t[' '] = kWS;
    return t;
}();

// One decoded character: code point, length in bytes, class flags.
struct Ch {
    std::uint32_t cp;
    std::uint32_t len;
    std::uint8_t flags;
};

inline bool is_cont(unsigned char b) { return (b & 0xC0U) == 0x80U; }

// Whether `b` is one of the 26 letters from `first` ('A' or 'a').
inline bool ascii_in(unsigned char b, unsigned char first) {
    return static_cast<unsigned>(b) - static_cast<unsigned>(first) < 26U;
}

// Flags of U+0000..U+07FF, the code points of one- and two-byte UTF-8, in one flat table: the
// letters of Latin, Greek, Cyrillic, Armenian, Hebrew and Arabic text then cost one load instead
// of the two dependent loads of the two-stage table. Built from that table at load time (its
// arrays are constant-initialised, so they are ready before this runs).
const std::array<std::uint8_t, 0x800> kFlags2 = [] {
    std::array<std::uint8_t, 0x800> t{};
    for (std::uint32_t cp = 0; cp < t.size(); ++cp) {
        t[cp] = unicode::flags_of(cp);
    }
    return t;
}();

// The same flags indexed by the two bytes of a character, lead byte first, with kTwoByte set
// for a valid two-byte sequence (lead C2..DF, one continuation byte) and 0 for any other pair:
// the letter loops test and classify a character with one load. Only the lines of the leads in
// use are touched (two for Cyrillic, four for Arabic).
constexpr std::uint8_t kTwoByte = 0x80;
static_assert((kTwoByte & (kL | kN | kWS | kU | kW | unicode::kM)) == 0);
// Indexed by pair_index(): the first byte in the low eight bits, so that on a little-endian
// machine the index is one unaligned 16-bit load (the two-byte letter loops of Cyrillic, Greek,
// Arabic and Hebrew text spent a third of their instructions assembling it from two bytes).
inline unsigned pair_index(const unsigned char* p) {
    if constexpr (std::endian::native == std::endian::little) {
        std::uint16_t v = 0;
        std::memcpy(&v, p, sizeof v);
        return v;
    } else {
        return unsigned{p[0]} | (unsigned{p[1]} << 8);
    }
}
const std::array<std::uint8_t, 0x10000> kPair2 = [] {
    std::array<std::uint8_t, 0x10000> t{};
    for (std::uint32_t b0 = 0xC2; b0 < 0xE0; ++b0) {
        for (std::uint32_t b1 = 0x80; b1 < 0xC0; ++b1) {
            t[(b1 << 8) | b0] = kTwoByte | kFlags2[((b0 & 0x1FU) << 6) | (b1 & 0x3FU)];
        }
    }
    return t;
}();

// The flags of U+0800..U+FFFF, the code points of three-byte UTF-8 (CJK, Kana, Hangul, the
// Brahmic scripts, Thai, Lao, Khmer, Burmese, Ethiopic, Georgian), indexed by code point with
// kValid (the same bit as kTwoByte) set, and 0 for the surrogates and the code points below
// U+0800, which have no valid three-byte form: one load instead of the two-stage lookup, and the
// overlong and surrogate checks in the same load. 64 KiB, of which a script touches a few lines.
constexpr std::uint8_t kValid = kTwoByte;
const std::array<std::uint8_t, 0x10000> kFlags3 = [] {
    std::array<std::uint8_t, 0x10000> t{};
    for (std::uint32_t cp = 0x800; cp < t.size(); ++cp) {
        if (cp < 0xD800U || cp > 0xDFFFU) {
            t[cp] = kValid | unicode::flags_of(cp);
        }
    }
    return t;
}();

// kFlags3's entry of the three bytes at `p` (`avail` >= 3 readable): 0 unless they are one
// valid three-byte character. With a fourth byte readable on a little-endian machine, the three
// bytes are one 32-bit load, tested and turned into the code point with masks on the word
// (about half the instructions of three byte loads: the letter loops of CJK, Kana, Hangul and
// the Brahmic scripts run this once per character).
inline unsigned three_byte_entry(const unsigned char* p, std::size_t avail) {
    if constexpr (std::endian::native == std::endian::little) {
        if (avail >= 4) {
            std::uint32_t w = 0;
            std::memcpy(&w, p, sizeof w);
            if ((w & 0xC0C0F0U) != 0x8080E0U) {
                return 0;
            }
            return kFlags3[((w & 0x0FU) << 12) | ((w >> 2) & 0x0FC0U) | ((w >> 16) & 0x3FU)];
        }
    }
    const unsigned b0 = p[0];
    const unsigned b1 = p[1];
    const unsigned b2 = p[2];
    if ((b0 & 0xF0U) != 0xE0U || ((b1 & 0xC0U) | ((b2 & 0xC0U) << 8)) != 0x8080U) {
        return 0;
    }
    return kFlags3[((b0 & 0x0FU) << 12) | ((b1 & 0x3FU) << 6) | (b2 & 0x3FU)];
}

// Decodes the UTF-8 character at `p` (`avail` >= 1 bytes readable). An invalid or truncated
// sequence yields one byte of class "other". Two-byte characters are tested first among the
// multi-byte ones: they are the letters of most alphabets.
inline Ch decode(const unsigned char* p, std::size_t avail) {
    const std::uint32_t b0 = p[0];
    if (b0 < 0x80U) {
        return {b0, 1, kAsciiFlags[b0]};
    }
    constexpr Ch kInvalid{kInvalidCp, 1, 0};
    if (b0 < 0xE0U) {
        if (b0 < 0xC2U || avail < 2 || !is_cont(p[1])) {
            return kInvalid;
        }
        const std::uint32_t cp = ((b0 & 0x1FU) << 6) | (p[1] & 0x3FU);
        return {cp, 2, kFlags2[cp]};
    }
    if (b0 < 0xF0U) {
        if (avail < 3 || !is_cont(p[1]) || !is_cont(p[2])) {
            return kInvalid;
        }
        const std::uint32_t cp =
            ((b0 & 0x0FU) << 12) | (static_cast<std::uint32_t>(p[1] & 0x3FU) << 6) | (p[2] & 0x3FU);
        if (cp < 0x800U || (cp >= 0xD800U && cp <= 0xDFFFU)) {
            return kInvalid;
        }
        return {cp, 3, static_cast<std::uint8_t>(kFlags3[cp] & ~unsigned{kValid})};
    }
    if (b0 < 0xF5U) {
        if (avail < 4 || !is_cont(p[1]) || !is_cont(p[2]) || !is_cont(p[3])) {
            return kInvalid;
        }
        const std::uint32_t cp = ((b0 & 0x07U) << 18) |
                                 (static_cast<std::uint32_t>(p[1] & 0x3FU) << 12) |
                                 (static_cast<std::uint32_t>(p[2] & 0x3FU) << 6) | (p[3] & 0x3FU);
        if (cp < 0x10000U || cp > 0x10FFFFU) {
            return kInvalid;
        }
        return {cp, 4, unicode::flags_of(cp)};
    }
    return kInvalid;
}

struct WsRun {
    std::size_t end;          // first position after the run
    std::size_t last_start;   // start of the run's last character
    std::size_t last_nl_end;  // position after the run's last \r or \n, or kNpos
};

class Scanner {
  public:
    explicit Scanner(std::string_view s)
        : p_(reinterpret_cast<const unsigned char*>(s.data())), n_(s.size()) {}

    [[nodiscard]] std::size_t size() const { return n_; }
    [[nodiscard]] unsigned char byte(std::size_t i) const { return p_[i]; }
    [[nodiscard]] Ch at(std::size_t i) const { return decode(p_ + i, n_ - i); }

    // Flags of the two-byte character at `i`, or kNotTwoByte if there is none (another length,
    // or invalid UTF-8): the letter runs of most alphabets take this path, which skips the
    // general decoder's code point, length and range checks.
    static constexpr unsigned kNotTwoByte = 0x100U;
    [[nodiscard]] unsigned two_byte_flags(std::size_t i) const {
        if (n_ - i >= 2) {
            const unsigned f = kPair2[pair_index(p_ + i)];
            if ((f & kTwoByte) != 0) {
                return f & ~unsigned{kTwoByte};
            }
        }
        return kNotTwoByte;
    }

    // End of the run of ASCII small letters from `i` (with `kFold`: of ASCII letters of either
    // case), eight bytes per step: the words of English, code and most Latin-script text are
    // these runs, and a byte-at-a-time loop was a fifth of the pre-tokeniser's instructions.
    // A byte is in range iff its low seven bits are 'a'..'z' (after folding) and its top bit is
    // clear; adding 0x80 - 'a' and 0x80 - '{' to the low seven bits sets each byte's top bit
    // iff it is at least 'a' / '{', without carries into the next byte (0x7F + 0x1F < 0x100).
    template <bool kFold>
    [[nodiscard]] std::size_t small_letters(std::size_t i) const {
        constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
        constexpr std::uint64_t kTops = kOnes * 0x80U;
        while (n_ - i >= 8) {
            std::uint64_t x = 0;
            std::memcpy(&x, p_ + i, sizeof x);
            const std::uint64_t low = (kFold ? x | (kOnes * 0x20U) : x) & ~kTops;
            const std::uint64_t in =
                (low + kOnes * (0x80U - 'a')) & ~(low + kOnes * (0x80U - '{')) & ~x & kTops;
            if (const std::uint64_t out = ~in & kTops; out != 0) {
                if constexpr (std::endian::native == std::endian::little) {
                    return i + static_cast<std::size_t>(std::countr_zero(out)) / 8;
                } else {
                    return i + static_cast<std::size_t>(std::countl_zero(out)) / 8;
                }
            }
            i += 8;
        }
        while (i < n_ && ascii_in(kFold ? p_[i] | 0x20U : p_[i], 'a')) {
            ++i;
        }
        return i;
    }

    // End of the run of characters with any flag of `mask`, starting at `i`.
    [[nodiscard]] std::size_t run(std::size_t i, std::uint8_t mask) const {
        while (i < n_) {
            if (p_[i] < 0x80U) {
                if ((kAsciiFlags[p_[i]] & mask) == 0) {
                    break;
                }
                ++i;
                continue;
            }
            if (const unsigned f = two_byte_flags(i); f != kNotTwoByte) {
                if ((f & mask) == 0) {
                    break;
                }
                i = two_byte_run(i + 2, mask);
                continue;
            }
            return run_longer(i, mask);
        }
        return i;
    }

    // run() from a character of three or more bytes (or invalid UTF-8). Out of line, so that
    // run() stays small enough to inline in the letter rules; called once per such stretch.
    [[nodiscard]] [[gnu::noinline]] std::size_t run_longer(std::size_t i, std::uint8_t mask) const {
        while (i < n_) {
            if (n_ - i >= 3) {
                if (const unsigned f = three_byte_entry(p_ + i, n_ - i); f != 0) {
                    if ((f & mask) == 0) {
                        break;
                    }
                    i = three_byte_run(i + 3, mask);
                    continue;
                }
            }
            const Ch c = at(i);
            if ((c.flags & mask) == 0) {
                break;
            }
            i += c.len;
            if (i < n_ && p_[i] < 0xE0U) {
                return run(i, mask);  // back to ASCII or two-byte text
            }
        }
        return i;
    }

    // The kPair2 entry of the two bytes at `i` (`i + 2 <= size()`).
    [[nodiscard]] unsigned pair_flags(std::size_t i) const { return kPair2[pair_index(p_ + i)]; }

    // End of the run of two-byte characters with a flag of `mask` from `i`: one load and one
    // test per character (a pair entry with kTwoByte and a flag of `mask` is above kTwoByte).
    [[nodiscard]] std::size_t two_byte_run(std::size_t i, std::uint8_t mask) const {
        const unsigned want = kTwoByte | mask;
        while (n_ - i >= 2 && (pair_flags(i) & want) > kTwoByte) {
            i += 2;
        }
        return i;
    }

    // End of the run of three-byte characters with a flag of `mask` from `i`, as two_byte_run.
    [[nodiscard]] std::size_t three_byte_run(std::size_t i, std::uint8_t mask) const {
        const unsigned want = kValid | mask;
        while (n_ - i >= 3 && (three_byte_entry(p_ + i, n_ - i) & want) > kValid) {
            i += 3;
        }
        return i;
    }

    // The entry of three_byte_entry at `i`, 0 if fewer than three bytes are left.
    [[nodiscard]] unsigned triple_flags(std::size_t i) const {
        return n_ - i >= 3 ? three_byte_entry(p_ + i, n_ - i) : 0;
    }

    // End of the run of characters with none of the flags of `mask`, starting at `i`.
    [[nodiscard]] std::size_t run_not(std::size_t i, std::uint8_t mask) const {
        while (i < n_) {
            if (p_[i] < 0x80U) {
                if ((kAsciiFlags[p_[i]] & mask) != 0) {
                    break;
                }
                ++i;
                continue;
            }
            const Ch c = at(i);
            if ((c.flags & mask) != 0) {
                break;
            }
            i += c.len;
        }
        return i;
    }

    // Up to three N characters from `i` (`\p{N}{1,3}`; the caller checked the first).
    [[nodiscard]] std::size_t digits3(std::size_t i) const {
        i += at(i).len;
        for (int k = 1; k < 3 && i < n_; ++k) {
            const Ch c = at(i);
            if ((c.flags & kN) == 0) {
                break;
            }
            i += c.len;
        }
        return i;
    }

    [[nodiscard]] WsRun ws_run(std::size_t i) const {
        WsRun w{i, i, kNpos};
        while (i < n_) {
            const Ch c = at(i);
            if ((c.flags & kWS) == 0) {
                break;
            }
            w.last_start = i;
            i += c.len;
            if (c.cp == '\r' || c.cp == '\n') {
                w.last_nl_end = i;
            }
        }
        w.end = i;
        return w;
    }

    // After an apostrophe, at `k`: end of `[sdmt]|ll|ve|re` (case-sensitive), or 0.
    [[nodiscard]] std::size_t contraction_cs(std::size_t k) const {
        if (k >= n_) {
            return 0;
        }
        const unsigned char a = p_[k];
        if (a == 's' || a == 'd' || a == 'm' || a == 't') {
            return k + 1;
        }
        if (k + 1 < n_) {
            const unsigned char b = p_[k + 1];
            if ((a == 'l' && b == 'l') || (a == 'v' && b == 'e') || (a == 'r' && b == 'e')) {
                return k + 2;
            }
        }
        return 0;
    }

    // After an apostrophe, at `k`: end of `(?i:[sdmt]|ll|ve|re)` under Unicode simple case
    // folding, or 0. (o200k's `(?i:'s|'t|'re|'ve|'m|'ll|'d)` is the same set.)
    [[nodiscard]] std::size_t contraction_ci(std::size_t k) const {
        if (k >= n_) {
            return 0;
        }
        const Ch c = at(k);
        const char a = unicode::ascii_fold(c.cp);
        if (a == 's' || a == 'd' || a == 'm' || a == 't') {
            return k + c.len;
        }
        if ((a == 'l' || a == 'v' || a == 'r') && k + c.len < n_) {
            const Ch d = at(k + c.len);
            const char b = unicode::ascii_fold(d.cp);
            if ((a == 'l' && b == 'l') || (a != 'l' && b == 'e')) {
                return k + c.len + d.len;
            }
        }
        return 0;
    }

  private:
    const unsigned char* p_;
    std::size_t n_;
};

// ---- r50k: '(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s ----
std::size_t next_r50k(const Scanner& sc, std::size_t i) {
    const std::size_t n = sc.size();
    const Ch c = sc.at(i);
    if (c.cp == '\'') {
        if (const std::size_t e = sc.contraction_cs(i + 1); e != 0) {
            return e;
        }
    }
    std::size_t j = i;
    Ch d = c;
    if (c.cp == ' ' && i + 1 < n) {
        const Ch nx = sc.at(i + 1);
        if ((nx.flags & kWS) == 0) {
            j = i + 1;
            d = nx;
        }
    }
    if ((d.flags & kL) != 0) {
        return sc.run(j, kL);
    }
    if ((d.flags & kN) != 0) {
        return sc.run(j, kN);
    }
    if ((d.flags & kWS) == 0) {
        return sc.run_not(j, kLNWS);
    }
    const WsRun w = sc.ws_run(i);
    if (w.end == n) {
        return n;
    }
    if (w.last_start > i) {
        return w.last_start;
    }
    return i + c.len;
}

// ---- cl100k: '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|
//              ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s ----
// Whether the ASCII byte `b` may be the one-character prefix [^\r\n\p{L}\p{N}] of a word in
// the fast paths below (an apostrophe is left to the general rules: it may start a contraction).
inline bool ascii_prefix(unsigned char b) {
    return (kAsciiFlags[b] & (kL | kN)) == 0 && b != '\r' && b != '\n' && b != '\'';
}

[[gnu::always_inline]] inline std::size_t next_cl100k(const Scanner& sc, std::size_t i) {
    const std::size_t n = sc.size();
    // ASCII fast path: a word of ASCII letters (with its prefix), continued by run() if a
    // non-ASCII letter follows; everything else takes the general path below.
    // A prefix before a non-ASCII letter (" слово") goes straight to the letter run.
    if (const unsigned char b = sc.byte(i); b < 0x80U) {
        std::size_t s = kNpos;
        if ((kAsciiFlags[b] & kL) != 0) {
            s = i;
        } else if (ascii_prefix(b) && i + 1 < n) {
            if (const unsigned char b1 = sc.byte(i + 1); b1 < 0x80U) {
                s = (kAsciiFlags[b1] & kL) != 0 ? i + 1 : kNpos;
            } else if ((sc.at(i + 1).flags & kL) != 0) {
                return sc.run(i + 1, kL);
            }
        }
        if (s != kNpos) {
            const std::size_t e = sc.small_letters<true>(s + 1);
            return e < n && sc.byte(e) >= 0x80U ? sc.run(e, kL) : e;
        }
    }
    const Ch c = sc.at(i);
    if (c.cp == '\'') {
        if (const std::size_t e = sc.contraction_ci(i + 1); e != 0) {
            return e;
        }
    }
    if ((c.flags & kL) != 0) {
        return sc.run(i, kL);
    }
    const std::size_t nx = i + c.len;
    if ((c.flags & kN) == 0 && c.cp != '\r' && c.cp != '\n' && nx < n) {
        if ((sc.at(nx).flags & kL) != 0) {
            return sc.run(nx, kL);
        }
    }
    if ((c.flags & kN) != 0) {
        return sc.digits3(i);
    }
    std::size_t j = kNpos;
    if ((c.flags & kWS) == 0) {
        j = i;
    } else if (c.cp == ' ' && nx < n && (sc.at(nx).flags & kLNWS) == 0) {
        j = nx;
    }
    if (j != kNpos) {
        std::size_t e = sc.run_not(j, kLNWS);
        while (e < n && (sc.byte(e) == '\r' || sc.byte(e) == '\n')) {
            ++e;
        }
        return e;
    }
    const WsRun w = sc.ws_run(i);
    if (w.end == n) {
        return n;
    }
    if (w.last_nl_end != kNpos) {
        return w.last_nl_end;
    }
    if (w.last_start > i) {
        return w.last_start;
    }
    return nx;
}

// ---- o200k ----
// A: [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|...)?
// B: [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|...)?
// C: \p{N}{1,3}   D:  ?[^\s\p{L}\p{N}]+[\r\n/]*   E: \s*[\r\n]+   F: \s+(?!\S)   G: \s+

std::size_t o200k_suffix(const Scanner& sc, std::size_t end) {
    if (end < sc.size() && sc.byte(end) == '\'') {
        if (const std::size_t e = sc.contraction_ci(end + 1); e != 0) {
            return e;
        }
    }
    return end;
}

// U*W+ suffix? from `s`: U* takes the longest run, then gives characters back until W+ can
// match; W+ then takes its longest run. Returns the end or kNpos.
[[gnu::always_inline]] inline std::size_t o200k_match_a(const Scanner& sc, std::size_t s) {
    const std::size_t n = sc.size();
    // ASCII fast path: among ASCII only A-Z are U and only a-z are W (and none both), so U* is
    // the run of capitals and W+ the run of small letters after it. A non-ASCII character where
    // the capitals end leaves the general path below to decide.
    std::size_t caps = s;
    while (caps < n && ascii_in(sc.byte(caps), 'A')) {
        ++caps;
    }
    if (caps == n || sc.byte(caps) < 0x80U) {
        // Byte by byte here (small_letters() is for the fast path of next_o200k): with it, GCC
        // laid out the inlined general path worse, +5% of the pre-tokeniser's instructions on
        // Chinese and nothing saved on German, whose words mostly take that fast path.
        std::size_t small = caps;
        while (small < n && ascii_in(sc.byte(small), 'a')) {
            ++small;
        }
        if (small == caps) {
            return kNpos;  // no W after the capitals, and none among them
        }
        return o200k_suffix(sc, small < n && sc.byte(small) >= 0x80U ? sc.run(small, kW) : small);
    }
    std::size_t p = s;
    std::size_t last_w_end = kNpos;
    unsigned flags = 0;
    std::size_t len = 0;
    while (p < n) {
        // Two-byte U characters, one load each (all the letters of Arabic and Hebrew words); f
        // ends as the entry of the two bytes at p, or 0 if fewer than two are left.
        unsigned f = 0;
        while (n - p >= 2) {
            f = sc.pair_flags(p);
            if ((f & (kTwoByte | kU)) <= kTwoByte) {
                break;
            }
            p += 2;
            if ((f & kW) != 0) {
                last_w_end = p;
            }
            f = 0;
        }
        // Three-byte U characters likewise (CJK and Kana are Lo: U and W; Brahmic marks are M).
        if ((f & kTwoByte) == 0 && p < n && sc.byte(p) >= 0xE0U) {
            unsigned g = 0;
            while (((g = sc.triple_flags(p)) & (kValid | kU)) > kValid) {
                p += 3;
                if ((g & kW) != 0) {
                    last_w_end = p;
                }
            }
            if (p >= n) {
                break;
            }
            if ((g & kValid) != 0) {
                flags = g & ~unsigned{kValid};  // a three-byte character that is not U
                len = 3;
                break;
            }
            f = n - p >= 2 ? sc.pair_flags(p) : 0;  // p moved: the two bytes there again
        }
        if (p >= n) {
            break;
        }
        if ((f & kTwoByte) != 0) {
            flags = f & ~unsigned{kTwoByte};  // a two-byte character, seen by the loops above
            len = 2;
        } else {
            const Ch d = sc.at(p);
            flags = d.flags;
            len = d.len;
        }
        if ((flags & kU) == 0) {
            break;
        }
        p += len;
        if ((flags & kW) != 0) {
            last_w_end = p;
        }
    }
    std::size_t end = kNpos;
    if (p < n && (flags & kW) != 0) {
        end = sc.run(p + len, kW);  // the character at p is decoded once
    } else if (last_w_end != kNpos) {
        // The U run ends in U\W characters; W+ matches the last W inside the run.
        end = last_w_end;
    } else {
        return kNpos;
    }
    return o200k_suffix(sc, end);
}

// U+W* suffix? from `s`.
std::size_t o200k_match_b(const Scanner& sc, std::size_t s) {
    if (s >= sc.size() || (sc.at(s).flags & kU) == 0) {
        return kNpos;
    }
    return o200k_suffix(sc, sc.run(sc.run(s, kU), kW));
}

// Inlined into split(): one call per piece is a measurable part of a short piece's cost.
[[gnu::always_inline]] inline std::size_t next_o200k(const Scanner& sc, std::size_t i) {
    const std::size_t n = sc.size();
    // ASCII fast path (English, code, most Latin-script words): among ASCII only A-Z are U and
    // only a-z are W, so the word is its capitals then its small letters (rule A if there are
    // small letters, else B); a non-ASCII character after the capitals leaves it to the
    // general path, one after the small letters continues W+ (as in o200k_match_a).
    // A prefix before a non-ASCII character tries rule A there first, as the general path does.
    if (const unsigned char b = sc.byte(i); b < 0x80U) {
        std::size_t s = kNpos;
        if ((kAsciiFlags[b] & kL) != 0) {
            s = i;
        } else if (ascii_prefix(b) && i + 1 < n) {
            if (const unsigned char b1 = sc.byte(i + 1); b1 < 0x80U) {
                s = (kAsciiFlags[b1] & kL) != 0 ? i + 1 : kNpos;
            } else if (const std::size_t e = o200k_match_a(sc, i + 1); e != kNpos) {
                return e;
            }
        }
        if (s != kNpos) {
            std::size_t caps = s;
            while (caps < n && ascii_in(sc.byte(caps), 'A')) {
                ++caps;
            }
            const std::size_t small = sc.small_letters<false>(caps);
            if (small > caps) {
                return o200k_suffix(
                    sc, small < n && sc.byte(small) >= 0x80U ? sc.run(small, kW) : small);
            }
            if (caps == n || sc.byte(caps) < 0x80U) {
                return o200k_suffix(sc, caps);  // B: U+ with an empty W*
            }
        }
    }
    const Ch c = sc.at(i);
    const std::size_t nx = i + c.len;
    const bool prefix = (c.flags & (kL | kN)) == 0 && c.cp != '\r' && c.cp != '\n' && nx < n;
    const bool letterish = (c.flags & (kU | kW)) != 0;
    if (prefix || letterish) {
        std::size_t e = kNpos;
        if (prefix) {
            e = o200k_match_a(sc, nx);
        }
        if (e == kNpos && letterish) {
            e = o200k_match_a(sc, i);
        }
        if (e == kNpos && prefix) {
            e = o200k_match_b(sc, nx);
        }
        if (e == kNpos && (c.flags & kU) != 0) {
            e = o200k_match_b(sc, i);
        }
        if (e != kNpos) {
            return e;
        }
    }
    if ((c.flags & kN) != 0) {
        return sc.digits3(i);
    }
    std::size_t j = kNpos;
    if ((c.flags & kWS) == 0) {
        j = i;
    } else if (c.cp == ' ' && nx < n && (sc.at(nx).flags & kLNWS) == 0) {
        j = nx;
    }
    if (j != kNpos) {
        std::size_t e = sc.run_not(j, kLNWS);
        while (e < n && (sc.byte(e) == '\r' || sc.byte(e) == '\n' || sc.byte(e) == '/')) {
            ++e;
        }
        return e;
    }
    const WsRun w = sc.ws_run(i);
    if (w.last_nl_end != kNpos) {
        return w.last_nl_end;
    }
    if (w.end == n) {
        return n;
    }
    if (w.last_start > i) {
        return w.last_start;
    }
    return nx;
}

template <std::size_t (*Next)(const Scanner&, std::size_t)>
std::size_t split(std::string_view segment, std::size_t from, std::size_t max_pieces,
                  std::vector<Piece>& out) {
    const Scanner sc(segment);
    std::size_t i = from;
    for (std::size_t k = 0; k < max_pieces && i < segment.size(); ++k) {
        const std::size_t e = Next(sc, i);
        out.push_back(Piece{i, e});
        i = e;
    }
    return i;
}

}  // namespace

std::size_t pretokenize_from(PatternFamily family, std::string_view segment, std::size_t from,
                             std::size_t max_pieces, std::vector<Piece>& out) {
    switch (family) {
        case PatternFamily::kR50k:
            return split<next_r50k>(segment, from, max_pieces, out);
        case PatternFamily::kCl100k:
            return split<next_cl100k>(segment, from, max_pieces, out);
        case PatternFamily::kO200k:
            return split<next_o200k>(segment, from, max_pieces, out);
    }
    return segment.size();
}

void pretokenize(PatternFamily family, std::string_view segment, std::vector<Piece>& out) {
    pretokenize_from(family, segment, 0, std::numeric_limits<std::size_t>::max(), out);
}

}  // namespace relay::tokenizer
