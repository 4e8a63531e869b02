#include "fuzzy/similarity.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <optional>
#include <string>
#include <utility>

#include "common/errors.hpp"
#include "common/parallel_for.hpp"

namespace relay::fuzzy {
namespace {

// Batch items per thread below which more threads cost more than they save.
constexpr std::size_t kMinChoicesPerThread = 64;

constexpr std::uint64_t kAllOnes = ~std::uint64_t{0};

// Multiplicative hash of a code point into `bits` bits (open-addressing slot).
constexpr std::size_t slot_hash(char32_t c, unsigned bits) noexcept {
    return static_cast<std::size_t>((static_cast<std::uint32_t>(c) * 0x9E3779B1U) >> (32U - bits));
}

// Positions of each code point in a pattern of at most 64 code points, one bit per position.
// Code points below 256 index an array; the others live in a 128-slot open-addressing table
// (at most 64 distinct keys, so it is never more than half full). Keys there are >= 256, so 0
// marks an empty slot. clear() empties the table touching only what assign() set, so one
// thread-local table serves every single-pair call without re-zeroing 3.5 KiB each time.
class WordPatternMatch {
  public:
    WordPatternMatch() = default;
    explicit WordPatternMatch(Text pattern) noexcept { assign(pattern); }

    // Sets the bits of `pattern` (at most 64 code points) in an empty table.
    void assign(Text pattern) noexcept {
        std::uint64_t bit = 1;
        for (const char32_t c : pattern) {
            if (c < 256) {
                latin1_[c] |= bit;
            } else {
                const std::size_t i = find_slot(c);
                if (keys_[i] == 0) {
                    keys_[i] = c;
                    used_slots_[used_count_++] = static_cast<std::uint8_t>(i);
                }
                masks_[i] |= bit;
            }
            bit <<= 1U;
        }
    }

    // Empties the table again; `pattern` must be what assign() was given.
    void clear(Text pattern) noexcept {
        for (const char32_t c : pattern) {
            if (c < 256) {
                latin1_[c] = 0;
            }
        }
        for (std::size_t k = 0; k < used_count_; ++k) {
            keys_[used_slots_[k]] = 0;
            masks_[used_slots_[k]] = 0;
        }
        used_count_ = 0;
    }

    [[nodiscard]] std::uint64_t get(char32_t c) const noexcept {
        if (c < 256) {
            return latin1_[c];
        }
        if (used_count_ == 0) {
            return 0;
        }
        const std::size_t i = find_slot(c);
        return keys_[i] == c ? masks_[i] : 0;
    }

  private:
    static constexpr unsigned kSlotBits = 7;
    static constexpr std::size_t kSlotMask = (std::size_t{1} << kSlotBits) - 1;

    [[nodiscard]] std::size_t find_slot(char32_t c) const noexcept {
        std::size_t i = slot_hash(c, kSlotBits);
        while (keys_[i] != 0 && keys_[i] != c) {
            i = (i + 1) & kSlotMask;
        }
        return i;
    }

    std::array<std::uint64_t, 256> latin1_{};
    std::array<char32_t, 128> keys_{};
    std::array<std::uint64_t, 128> masks_{};
    std::array<std::uint8_t, 64> used_slots_{};
    std::size_t used_count_ = 0;
};

// The thread's reusable single-word table, filled for one pattern for the scope's lifetime.
class ScratchWordPattern {
  public:
    explicit ScratchWordPattern(Text pattern) noexcept : table_(table()), pattern_(pattern) {
        table_.assign(pattern);
    }
    ~ScratchWordPattern() { table_.clear(pattern_); }
    ScratchWordPattern(const ScratchWordPattern&) = delete;
    ScratchWordPattern& operator=(const ScratchWordPattern&) = delete;

    [[nodiscard]] const WordPatternMatch& get() const noexcept { return table_; }

  private:
    // Not inlined: GCC would otherwise recompute the thread-local address (a __tls_get_addr
    // call in a shared library) inside every loop that uses the table.
    [[gnu::noinline]] static WordPatternMatch& table() noexcept {
        thread_local WordPatternMatch scratch;
        return scratch;
    }
    WordPatternMatch& table_;
    Text pattern_;
};

// The same table for patterns of any length: code points below 256 index a 256 x words matrix
// (one load per lookup); the others map through an open-addressing table, built only when the
// pattern has such code points, to rows of `rows_` (row 0 is all zero: absent code points).
// assign() re-zeroes only the matrix rows the previous pattern touched, so a reused table costs
// O(pattern) per call instead of 2 KiB per word.
class BlockPatternMatch {
  public:
    BlockPatternMatch() = default;
    explicit BlockPatternMatch(Text pattern) { assign(pattern); }

    // Replaces the pattern (reusing the buffers' capacity).
    void assign(Text pattern) {
        const std::size_t blocks = (pattern.size() + 63) / 64;
        if (blocks != blocks_) {
            blocks_ = blocks;
            latin1_.assign(256 * blocks_, 0);
        } else {
            for (std::size_t k = 0; k < touched_count_; ++k) {
                latin1_[touched_latin1_[k]] = 0;
            }
        }
        if (touched_latin1_.size() < pattern.size()) {
            touched_latin1_.resize(pattern.size());
        }
        keys_.clear();
        row_of_.clear();
        rows_.assign(blocks_, 0);
        // Local pointers and count: through the members, every store would make the compiler
        // reload them (the matrix and the list hold the same integer type).
        std::uint64_t* const matrix = latin1_.data();
        std::uint32_t* const touched = touched_latin1_.data();
        std::size_t count = 0;
        for (std::size_t pos = 0; pos < pattern.size(); ++pos) {
            const char32_t c = pattern[pos];
            const std::uint64_t bit = std::uint64_t{1} << (pos % 64);
            if (c < 256) {
                const std::size_t word = c * blocks_ + pos / 64;
                touched[count++] = static_cast<std::uint32_t>(word);
                matrix[word] |= bit;
                continue;
            }
            if (keys_.empty()) {
                unsigned bits = 4;
                while ((std::size_t{1} << bits) < 2 * pattern.size()) {
                    ++bits;
                }
                slot_bits_ = bits;
                keys_.assign(std::size_t{1} << bits, 0);
                row_of_.assign(keys_.size(), 0);
            }
            const std::size_t i = find_slot(c);
            if (keys_[i] == 0) {
                keys_[i] = c;
                row_of_[i] = static_cast<std::uint32_t>(rows_.size() / blocks_);
                rows_.resize(rows_.size() + blocks_, 0);
            }
            rows_[std::size_t{row_of_[i]} * blocks_ + pos / 64] |= bit;
        }
        touched_count_ = count;
    }

    [[nodiscard]] std::size_t blocks() const noexcept { return blocks_; }

    [[nodiscard]] const std::uint64_t* row(char32_t c) const noexcept {
        if (c < 256) {
            return &latin1_[c * blocks_];
        }
        if (keys_.empty()) {
            return rows_.data();
        }
        const std::size_t i = find_slot(c);
        return keys_[i] == c ? &rows_[std::size_t{row_of_[i]} * blocks_] : rows_.data();
    }

  private:
    [[nodiscard]] std::size_t find_slot(char32_t c) const noexcept {
        const std::size_t mask = keys_.size() - 1;
        std::size_t i = slot_hash(c, slot_bits_);
        while (keys_[i] != 0 && keys_[i] != c) {
            i = (i + 1) & mask;
        }
        return i;
    }

    std::size_t blocks_ = 0;
    unsigned slot_bits_ = 4;
    std::vector<std::uint64_t> latin1_;
    std::vector<std::uint32_t> touched_latin1_;  // matrix words the pattern set (first count)
    std::size_t touched_count_ = 0;
    std::vector<char32_t> keys_;
    std::vector<std::uint32_t> row_of_;
    std::vector<std::uint64_t> rows_;
};

// The thread's reusable multi-word table (keeps its buffers between calls). Not inlined, for
// the reason given at ScratchWordPattern::table().
[[gnu::noinline]] BlockPatternMatch& scratch_block_table() noexcept {
    thread_local BlockPatternMatch scratch;
    return scratch;
}

BlockPatternMatch& scratch_block_pattern(Text pattern) {
    BlockPatternMatch& table = scratch_block_table();
    table.assign(pattern);
    return table;
}

// A column of `n` words: on the stack up to 16 words (1024 code points), else on the heap.
class ColumnWords {
  public:
    ColumnWords(std::size_t n, std::uint64_t value) : n_(n) {
        if (n > kInline) {
            heap_.assign(n, value);
        } else {
            std::fill_n(inline_.begin(), n, value);
        }
    }
    [[nodiscard]] std::uint64_t* data() noexcept {
        return n_ > kInline ? heap_.data() : inline_.data();
    }

  private:
    static constexpr std::size_t kInline = 16;
    std::size_t n_;
    std::array<std::uint64_t, kInline> inline_{};
    std::vector<std::uint64_t> heap_;
};

// a + b + carry on 64-bit words, carry in and out in {0, 1}. (__builtin_add_overflow keeps
// everything in registers; GCC spills _addcarry_u64's output through the stack.)
inline std::uint64_t add_with_carry(std::uint64_t a, std::uint64_t b, std::uint64_t& carry) {
    std::uint64_t partial = 0;
    std::uint64_t out = 0;
    const bool first = __builtin_add_overflow(a, b, &partial);
    const bool second = __builtin_add_overflow(partial, carry, &out);
    carry = static_cast<std::uint64_t>(first || second);
    return out;
}

constexpr std::uint64_t low_mask(std::size_t bits) noexcept {
    return bits >= 64 ? kAllOnes : (std::uint64_t{1} << bits) - 1;
}

// --- LCS (bit-vector): S holds a 0 at row i when the LCS grew there; S' = (S + u) | (S - u)
// with u = S & match. The column is one wide integer; words pass the addition's carry on.

template <class PatternMatch>
std::size_t lcs_word(const PatternMatch& pm, std::size_t m, Text text) noexcept {
    std::uint64_t s = kAllOnes;
    for (const char32_t c : text) {
        const std::uint64_t u = s & pm.get(c);
        s = (s + u) | (s - u);
    }
    return static_cast<std::size_t>(std::popcount(~s & low_mask(m)));
}

// kWords > 0: the word count is known at compile time (loops unrolled, column in registers).
template <std::size_t kWords>
std::size_t lcs_blocks_on(const BlockPatternMatch& pm, std::size_t m, Text text,
                          std::uint64_t* s) noexcept {
    const std::size_t words = kWords != 0 ? kWords : pm.blocks();
    for (const char32_t c : text) {
        const std::uint64_t* match = pm.row(c);
        std::uint64_t carry = 0;
        for (std::size_t w = 0; w < words; ++w) {
            const std::uint64_t u = s[w] & match[w];
            s[w] = add_with_carry(s[w], u, carry) | (s[w] - u);
        }
    }
    std::size_t lcs = 0;
    for (std::size_t w = 0; w + 1 < words; ++w) {
        lcs += static_cast<std::size_t>(std::popcount(~s[w]));
    }
    const std::size_t tail_bits = m - 64 * (words - 1);
    return lcs + static_cast<std::size_t>(std::popcount(~s[words - 1] & low_mask(tail_bits)));
}

// The column lives in a local array of compile-time size, so that the unrolled loop keeps it
// in registers (through a pointer it would round-trip through memory on every step).
template <std::size_t kWords>
std::size_t lcs_fixed(const BlockPatternMatch& pm, std::size_t m, Text text) noexcept {
    std::array<std::uint64_t, kWords> s;
    s.fill(kAllOnes);
    for (const char32_t c : text) {
        const std::uint64_t* match = pm.row(c);
        std::uint64_t carry = 0;
#pragma GCC unroll 8
        for (std::size_t w = 0; w < kWords; ++w) {
            const std::uint64_t u = s[w] & match[w];
            s[w] = add_with_carry(s[w], u, carry) | (s[w] - u);
        }
    }
    std::size_t lcs = 0;
    for (std::size_t w = 0; w + 1 < kWords; ++w) {
        lcs += static_cast<std::size_t>(std::popcount(~s[w]));
    }
    const std::size_t tail_bits = m - 64 * (kWords - 1);
    return lcs + static_cast<std::size_t>(std::popcount(~s[kWords - 1] & low_mask(tail_bits)));
}

std::size_t lcs_blocks(const BlockPatternMatch& pm, std::size_t m, Text text) {
    switch (pm.blocks()) {
        case 2:
            return lcs_fixed<2>(pm, m, text);
        case 3:
            return lcs_fixed<3>(pm, m, text);
        case 4:
            return lcs_fixed<4>(pm, m, text);
        case 5:
            return lcs_fixed<5>(pm, m, text);
        case 6:
            return lcs_fixed<6>(pm, m, text);
        case 7:
            return lcs_fixed<7>(pm, m, text);
        case 8:
            return lcs_fixed<8>(pm, m, text);
        default: {
            ColumnWords column(pm.blocks(), kAllOnes);
            return lcs_blocks_on<0>(pm, m, text, column.data());
        }
    }
}

// --- Levenshtein (Hyyrö's form of Myers' algorithm): VP/VN are the +1/-1 vertical deltas of
// the current DP column; `dist` follows the last row. The multi-word version is the same
// arithmetic on a wide integer: the addition's carry and the bits shifted out of HP/HN pass to
// the next word; the top row (D[0][j] = j) shifts a 1 into HP.

template <class PatternMatch>
std::size_t levenshtein_word(const PatternMatch& pm, std::size_t m, Text text,
                             std::size_t max_distance) noexcept {
    std::uint64_t vp = kAllOnes;
    std::uint64_t vn = 0;
    const std::uint64_t last = std::uint64_t{1} << (m - 1);
    std::size_t dist = m;
    std::size_t remaining = text.size();
    for (const char32_t c : text) {
        const std::uint64_t x = pm.get(c) | vn;
        const std::uint64_t d0 = (((x & vp) + vp) ^ vp) | x;
        std::uint64_t hp = vn | ~(d0 | vp);
        std::uint64_t hn = vp & d0;
        if ((hp & last) != 0) {
            ++dist;
        } else if ((hn & last) != 0) {
            --dist;
        }
        hp = (hp << 1U) | 1U;
        hn <<= 1U;
        vp = hn | ~(d0 | hp);
        vn = hp & d0;
        // The last row can fall by at most one per remaining column.
        --remaining;
        if (dist > remaining && dist - remaining > max_distance) {
            return max_distance + 1;
        }
    }
    return dist <= max_distance ? dist : max_distance + 1;
}

// Always inlined so that a fixed-size column (std::array) stays in registers.
template <std::size_t kWords, class Column>
[[gnu::always_inline]] inline std::size_t levenshtein_blocks_on(const BlockPatternMatch& pm,
                                                                std::size_t m, Text text,
                                                                std::size_t max_distance,
                                                                Column& vp, Column& vn) noexcept {
    const std::size_t words = kWords != 0 ? kWords : pm.blocks();
    const std::uint64_t last = std::uint64_t{1} << ((m - 1) % 64);
    std::size_t dist = m;
    std::size_t remaining = text.size();
    for (const char32_t c : text) {
        const std::uint64_t* match = pm.row(c);
        std::uint64_t add_carry = 0;
        std::uint64_t hp_carry = 1;
        std::uint64_t hn_carry = 0;
#pragma GCC unroll 8
        for (std::size_t w = 0; w < words; ++w) {
            const std::uint64_t vpw = vp[w];
            const std::uint64_t x = match[w] | vn[w];
            const std::uint64_t d0 = (add_with_carry(x & vpw, vpw, add_carry) ^ vpw) | x;
            std::uint64_t hp = vn[w] | ~(d0 | vpw);
            std::uint64_t hn = vpw & d0;
            if (w + 1 == words) {
                if ((hp & last) != 0) {
                    ++dist;
                } else if ((hn & last) != 0) {
                    --dist;
                }
            }
            const std::uint64_t hp_out = hp >> 63U;
            const std::uint64_t hn_out = hn >> 63U;
            hp = (hp << 1U) | hp_carry;
            hn = (hn << 1U) | hn_carry;
            hp_carry = hp_out;
            hn_carry = hn_out;
            vp[w] = hn | ~(d0 | hp);
            vn[w] = hp & d0;
        }
        --remaining;
        if (dist > remaining && dist - remaining > max_distance) {
            return max_distance + 1;
        }
    }
    return dist <= max_distance ? dist : max_distance + 1;
}

template <std::size_t kWords>
std::size_t levenshtein_fixed(const BlockPatternMatch& pm, std::size_t m, Text text,
                              std::size_t max_distance) noexcept {
    std::array<std::uint64_t, kWords> vp;
    std::array<std::uint64_t, kWords> vn;
    vp.fill(kAllOnes);
    vn.fill(0);
    return levenshtein_blocks_on<kWords>(pm, m, text, max_distance, vp, vn);
}

// One column step of a word, given the carries from the word above (Hyyrö's multi-word form).
struct LevenshteinCarries {
    std::uint64_t add = 0;
    std::uint64_t hp = 1;  // the top row (or the band's upper edge) rises by one per column
    std::uint64_t hn = 0;
};

[[gnu::always_inline]] inline void levenshtein_word_step(std::uint64_t match, std::uint64_t& vp,
                                                         std::uint64_t& vn, LevenshteinCarries& in,
                                                         std::uint64_t& hp_out,
                                                         std::uint64_t& hn_out) noexcept {
    const std::uint64_t vpw = vp;
    const std::uint64_t x = match | vn;
    const std::uint64_t d0 = (add_with_carry(x & vpw, vpw, in.add) ^ vpw) | x;
    hp_out = vn | ~(d0 | vpw);
    hn_out = vpw & d0;
    const std::uint64_t hp = (hp_out << 1U) | in.hp;
    const std::uint64_t hn = (hn_out << 1U) | in.hn;
    in.hp = hp_out >> 63U;
    in.hn = hn_out >> 63U;
    vp = hn | ~(d0 | hp);
    vn = hp & d0;
}

// Levenshtein distance on many words restricted to a diagonal band (Ukkonen's cut-off applied to
// Hyyrö's block algorithm). A cell (i, j) lies on a path of cost <= k from (0, 0) to (m, n) only
// if j - k + max(0, m - n) <= i <= j + k - max(0, n - m), so each column computes just the words
// holding those rows. A word entering the band at its bottom starts as "+1 per row" below the
// last computed row, and the words above the band are replaced by a boundary rising by one per
// column (as the top row does): both only overestimate cells whose true value exceeds k, so a
// result <= k is exact and anything else is reported as k + 1.
std::size_t levenshtein_banded(const BlockPatternMatch& pm, std::size_t m, Text text,
                               std::size_t max_distance, std::uint64_t* vp, std::uint64_t* vn) {
    const std::size_t n = text.size();
    const std::size_t gap = m > n ? m - n : n - m;
    if (gap > max_distance) {
        return max_distance + 1;
    }
    // No distance exceeds max(m, n); clamping keeps j + above from overflowing (kNoLimit).
    const std::size_t k = std::min(max_distance, std::max(m, n));
    if (n == 0) {
        return m;  // m == gap <= k
    }
    const std::size_t words = pm.blocks();
    const std::size_t below = k - (m > n ? m - n : 0);  // rows i >= j - below
    const std::size_t above = k - (n > m ? n - m : 0);  // rows i <= j + above
    const std::uint64_t last_bit = std::uint64_t{1} << ((m - 1) % 64);
    const auto rows_in = [&](std::size_t w) { return std::min<std::size_t>(64, m - 64 * w); };
    std::size_t first = 0;
    std::size_t last = (std::max<std::size_t>(1, std::min(m, above)) - 1) / 64;
    std::size_t bottom = 0;  // value of the bottom row of word `last` in the previous column
    for (std::size_t w = 0; w <= last; ++w) {
        vp[w] = kAllOnes;
        vn[w] = 0;
        bottom += rows_in(w);
    }
    for (std::size_t j = 1; j <= n; ++j) {
        const std::size_t top_row = j > below ? j - below : 1;
        first = std::max(first, (top_row - 1) / 64);
        const std::size_t new_last = (std::min(m, j + above) - 1) / 64;
        while (last < new_last) {
            ++last;
            vp[last] = kAllOnes;
            vn[last] = 0;
            bottom += rows_in(last);
        }
        const std::uint64_t* match = pm.row(text[j - 1]);
        LevenshteinCarries carries;
        std::uint64_t hp = 0;
        std::uint64_t hn = 0;
        for (std::size_t w = first; w < last; ++w) {
            levenshtein_word_step(match[w], vp[w], vn[w], carries, hp, hn);
        }
        levenshtein_word_step(match[last], vp[last], vn[last], carries, hp, hn);
        const std::uint64_t bit = last + 1 == words ? last_bit : std::uint64_t{1} << 63U;
        if ((hp & bit) != 0) {
            ++bottom;
        } else if ((hn & bit) != 0) {
            --bottom;
        }
        // The last row can fall by at most one per remaining column.
        if (last + 1 == words && bottom > n - j && bottom - (n - j) > k) {
            return max_distance + 1;
        }
    }
    return bottom <= k ? bottom : max_distance + 1;
}

// For a pair of long strings, a band of a few hundred rows settles near-duplicates (the common
// case of deduplication) at a fraction of the full matrix: try bands of 64, 128, ... rows while
// they stay under an eighth of the length, then the band of the caller's limit.
std::size_t levenshtein_many_words(const BlockPatternMatch& pm, std::size_t m, Text text,
                                   std::size_t max_distance) {
    ColumnWords vp_column(pm.blocks(), kAllOnes);
    ColumnWords vn_column(pm.blocks(), 0);
    const std::size_t longest = std::max(m, text.size());
    for (std::size_t hint = 64; hint < max_distance && hint * 8 <= longest; hint *= 2) {
        const std::size_t dist =
            levenshtein_banded(pm, m, text, hint, vp_column.data(), vn_column.data());
        if (dist <= hint) {
            return dist;
        }
    }
    return levenshtein_banded(pm, m, text, max_distance, vp_column.data(), vn_column.data());
}

std::size_t levenshtein_blocks(const BlockPatternMatch& pm, std::size_t m, Text text,
                               std::size_t max_distance) {
    switch (pm.blocks()) {
        case 2:
            return levenshtein_fixed<2>(pm, m, text, max_distance);
        case 3:
            return levenshtein_fixed<3>(pm, m, text, max_distance);
        case 4:
            return levenshtein_fixed<4>(pm, m, text, max_distance);
        case 5:
            return levenshtein_fixed<5>(pm, m, text, max_distance);
        case 6:
            return levenshtein_fixed<6>(pm, m, text, max_distance);
        case 7:
            return levenshtein_fixed<7>(pm, m, text, max_distance);
        case 8:
            return levenshtein_fixed<8>(pm, m, text, max_distance);
        default:
            return levenshtein_many_words(pm, m, text, max_distance);
    }
}

// Drops the common prefix and suffix (they never change either distance); returns how many
// code points were dropped from each string.
std::size_t strip_affixes(Text& a, Text& b) noexcept {
    std::size_t prefix = 0;
    const std::size_t shortest = std::min(a.size(), b.size());
    while (prefix < shortest && a[prefix] == b[prefix]) {
        ++prefix;
    }
    a.remove_prefix(prefix);
    b.remove_prefix(prefix);
    std::size_t suffix = 0;
    const std::size_t rest = std::min(a.size(), b.size());
    while (suffix < rest && a[a.size() - 1 - suffix] == b[b.size() - 1 - suffix]) {
        ++suffix;
    }
    a.remove_suffix(suffix);
    b.remove_suffix(suffix);
    return prefix + suffix;
}

// Pattern preprocessed once, used against many texts (the batch scorers).
class CachedPattern {
  public:
    explicit CachedPattern(Text pattern) : pattern_(pattern) {
        if (pattern.size() <= 64) {
            word_.emplace_back(pattern);
        } else {
            block_.emplace_back(pattern);
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return pattern_.size(); }

    [[nodiscard]] std::size_t lcs(Text text) const {
        if (pattern_.empty() || text.empty()) {
            return 0;
        }
        return word_.empty() ? lcs_blocks(block_.front(), pattern_.size(), text)
                             : lcs_word(word_.front(), pattern_.size(), text);
    }

    [[nodiscard]] std::size_t levenshtein(Text text, std::size_t max_distance) const {
        if (pattern_.empty()) {
            return text.size() <= max_distance ? text.size() : max_distance + 1;
        }
        return word_.empty()
                   ? levenshtein_blocks(block_.front(), pattern_.size(), text, max_distance)
                   : levenshtein_word(word_.front(), pattern_.size(), text, max_distance);
    }

  private:
    Text pattern_;
    // At most one of the two holds a table (vectors so that the 3.5 KiB word table is only
    // built when used).
    std::vector<WordPatternMatch> word_;
    std::vector<BlockPatternMatch> block_;
};

// rapidfuzz's normalisation: the similarity cutoff becomes a distance cutoff (with the same
// 1e-5 slack), the distance is computed up to it, and the similarity is 1 - dist / maximum.
struct NormalizedPlan {
    std::size_t maximum;
    double norm_dist_cutoff;
    std::size_t max_distance;
};

NormalizedPlan plan_normalized(std::size_t maximum, double score_cutoff) {
    const double norm_dist_cutoff = std::min(1.0, 1.0 - score_cutoff + 0.00001);
    const auto max_distance =
        static_cast<std::size_t>(std::ceil(static_cast<double>(maximum) * norm_dist_cutoff));
    return {maximum, norm_dist_cutoff, max_distance};
}

double finish_normalized(const NormalizedPlan& plan, std::size_t dist, double score_cutoff) {
    double norm_dist =
        plan.maximum != 0 ? static_cast<double>(dist) / static_cast<double>(plan.maximum) : 0.0;
    if (!(norm_dist <= plan.norm_dist_cutoff)) {
        norm_dist = 1.0;
    }
    const double norm_sim = 1.0 - norm_dist;
    return norm_sim >= score_cutoff ? norm_sim : 0.0;
}

// rapidfuzz's Python API hands the cutoff of the distance module's normalized_similarity to C++
// as a C float: a similarity equal to a cutoff of 0.8 (whose float is 0.800000012) scores 0.
// Rounding the same way keeps our scores identical at every cutoff.
double as_single_precision(double score_cutoff) noexcept {
    return static_cast<double>(static_cast<float>(score_cutoff));
}

void check_cutoff(double score_cutoff, double top, const char* scale) {
    if (!(score_cutoff >= 0.0 && score_cutoff <= top)) {
        throw InvalidArgument("score_cutoff must be a number in " + std::string(scale) + ", got " +
                              format_number(score_cutoff));
    }
}

std::size_t indel_distance_unchecked(Text a, Text b, std::size_t max_distance) {
    const std::size_t lensum = a.size() + b.size();
    const std::size_t length_gap = a.size() > b.size() ? a.size() - b.size() : b.size() - a.size();
    if (length_gap > max_distance) {
        return max_distance + 1;
    }
    const std::size_t dist = lensum - 2 * lcs_length(a, b);
    return dist <= max_distance ? dist : max_distance + 1;
}

double indel_normalized_unchecked(Text a, Text b, double score_cutoff) {
    const NormalizedPlan plan = plan_normalized(a.size() + b.size(), score_cutoff);
    return finish_normalized(plan, indel_distance_unchecked(a, b, plan.max_distance), score_cutoff);
}

double levenshtein_normalized_unchecked(Text a, Text b, double score_cutoff) {
    const NormalizedPlan plan = plan_normalized(std::max(a.size(), b.size()), score_cutoff);
    return finish_normalized(plan, levenshtein_distance(a, b, plan.max_distance), score_cutoff);
}

// --- token set ratio --------------------------------------------------------------------------

// Sorted words, repeats kept (views into `text`): rapidfuzz's sorted_split.
// rapidfuzz splits a str stored by CPython with one byte per code point (all code points
// <= U+00FF) on ASCII white space only, so U+0085 and U+00A0 separate words only in texts that
// also hold a code point above U+00FF. Reproduced for identical scores.
std::vector<Text> sorted_words(Text text) {
    const bool wide = std::any_of(text.begin(), text.end(), [](char32_t c) { return c > 0xFF; });
    const auto separates = [wide](char32_t c) {
        if (c > 0x20 && c < 0x85) {
            return false;  // the common case, decided without the full table
        }
        return is_unicode_space(c) && (wide || (c != 0x85 && c != 0xA0));
    };
    std::vector<Text> words;
    words.reserve(text.size() / 4 + 1);
    std::size_t start = 0;
    for (std::size_t i = 0; i <= text.size(); ++i) {
        if (i == text.size() || separates(text[i])) {
            if (i > start) {
                words.push_back(text.substr(start, i - start));
            }
            start = i + 1;
        }
    }
    std::sort(words.begin(), words.end());
    return words;
}

// Sorted words without repeats (rapidfuzz's set_decomposition dedupes the sorted split).
std::vector<Text> sorted_word_set(Text text) {
    std::vector<Text> words = sorted_words(text);
    words.erase(std::unique(words.begin(), words.end()), words.end());
    return words;
}

// rapidfuzz's score for a distance on a 0..100 scale (computed as 100 - 100 * d / n).
double norm_distance_100(std::size_t dist, std::size_t lensum, double score_cutoff) noexcept {
    const double score =
        lensum > 0 ? 100.0 - 100.0 * static_cast<double>(dist) / static_cast<double>(lensum)
                   : 100.0;
    return score >= score_cutoff ? score : 0.0;
}

// rapidfuzz's score_cutoff_to_distance: the largest distance that can still reach the cutoff
// (0..100) on strings of `lensum` code points. NaN and cutoffs below 0 limit nothing (no
// distance exceeds lensum); the cast is kept in range.
std::size_t distance_cutoff(std::size_t lensum, double score_cutoff) noexcept {
    const double limit = std::ceil(static_cast<double>(lensum) * (1.0 - score_cutoff / 100.0));
    if (!(limit < static_cast<double>(lensum))) {
        return lensum;
    }
    return limit > 0.0 ? static_cast<std::size_t>(limit) : 0;
}

// Whether two sorted word sets have a word in common.
bool shares_word(const std::vector<Text>& a, const std::vector<Text>& b) noexcept {
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i] < b[j]) {
            ++i;
        } else if (b[j] < a[i]) {
            ++j;
        } else {
            return true;
        }
    }
    return false;
}

double token_set_ratio_of_words(const std::vector<Text>& words_a, const std::vector<Text>& words_b,
                                double score_cutoff) {
    if (words_a.empty() || words_b.empty()) {
        return 0.0;
    }
    // One merge of the two sorted sets: the shared words' joined length, and each side's own
    // words joined by spaces.
    std::size_t shared_count = 0;
    std::size_t shared_len = 0;
    std::u32string joined_a;
    std::u32string joined_b;
    const auto append_word = [](std::u32string& joined, Text word) {
        if (!joined.empty()) {
            joined.push_back(U' ');
        }
        joined.append(word);
    };
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < words_a.size() || j < words_b.size()) {
        if (j == words_b.size() || (i < words_a.size() && words_a[i] < words_b[j])) {
            append_word(joined_a, words_a[i++]);
        } else if (i == words_a.size() || words_b[j] < words_a[i]) {
            append_word(joined_b, words_b[j++]);
        } else {
            shared_len += words_a[i].size() + (shared_count != 0 ? 1 : 0);
            ++shared_count;
            ++i;
            ++j;
        }
    }
    // One word set contains the other.
    if (shared_count != 0 && (joined_a.empty() || joined_b.empty())) {
        return 100.0;
    }
    const std::size_t separator = shared_len != 0 ? 1 : 0;
    // "shared + only_a" against "shared + only_b": only the differing words can differ.
    const std::size_t shared_a_len = shared_len + separator + joined_a.size();
    const std::size_t shared_b_len = shared_len + separator + joined_b.size();
    const std::size_t lensum = shared_a_len + shared_b_len;
    const std::size_t max_distance = distance_cutoff(lensum, score_cutoff);
    const std::size_t dist = indel_distance_unchecked(joined_a, joined_b, max_distance);
    double best = dist <= max_distance ? norm_distance_100(dist, lensum, score_cutoff) : 0.0;
    if (shared_len == 0) {
        return best;
    }
    // "shared" against "shared + only_x": the distance is the length of " only_x".
    best = std::max(best, norm_distance_100(separator + joined_a.size(), shared_len + shared_a_len,
                                            score_cutoff));
    best = std::max(best, norm_distance_100(separator + joined_b.size(), shared_len + shared_b_len,
                                            score_cutoff));
    return best;
}

// --- partial_ratio, token_sort_ratio, WRatio, QRatio (rapidfuzz 3's fuzz module) -----------
// Each follows rapidfuzz's algorithm step by step, cutoffs included: scores are the same floats.

// rapidfuzz's fuzz.ratio without the range check (cutoffs above 100 give 0, as there).
double ratio_unchecked(Text a, Text b, double score_cutoff) {
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    return indel_normalized_unchecked(a, b, score_cutoff / 100.0) * 100.0;
}

std::u32string join_words(const std::vector<Text>& words) {
    std::u32string joined;
    std::size_t length = words.empty() ? 0 : words.size() - 1;
    for (const Text word : words) {
        length += word.size();
    }
    joined.reserve(length);
    for (std::size_t k = 0; k < words.size(); ++k) {
        if (k != 0) {
            joined.push_back(U' ');
        }
        joined.append(words[k]);
    }
    return joined;
}

// The set decomposition of two sorted word lists (repeats dropped), each part in sorted order.
struct WordSets {
    std::vector<Text> shared;
    std::vector<Text> only_a;
    std::vector<Text> only_b;
};

WordSets decompose(std::vector<Text> a, std::vector<Text> b) {
    a.erase(std::unique(a.begin(), a.end()), a.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
    WordSets sets;
    std::size_t i = 0;
    std::size_t j = 0;
    while (i < a.size() || j < b.size()) {
        if (j == b.size() || (i < a.size() && a[i] < b[j])) {
            sets.only_a.push_back(a[i++]);
        } else if (i == a.size() || b[j] < a[i]) {
            sets.only_b.push_back(b[j++]);
        } else {
            sets.shared.push_back(a[i]);
            ++i;
            ++j;
        }
    }
    return sets;
}

std::size_t joined_length(const std::vector<Text>& words) noexcept {
    std::size_t length = words.empty() ? 0 : words.size() - 1;
    for (const Text word : words) {
        length += word.size();
    }
    return length;
}

// The code points of a needle: a bitmap below 256, a sorted list above.
class CharSet {
  public:
    explicit CharSet(Text text) {
        for (const char32_t c : text) {
            if (c < 256) {
                latin1_[c] = true;
            } else {
                other_.push_back(c);
            }
        }
        std::sort(other_.begin(), other_.end());
        other_.erase(std::unique(other_.begin(), other_.end()), other_.end());
    }
    [[nodiscard]] bool contains(char32_t c) const noexcept {
        return c < 256 ? latin1_[c] : std::binary_search(other_.begin(), other_.end(), c);
    }

  private:
    std::array<bool, 256> latin1_{};
    std::vector<char32_t> other_;
};

// ratio(pattern's text, part) with the pattern table of the first text built once
// (rapidfuzz's CachedRatio): the same plan and float operations as indel_normalized_unchecked.
double cached_ratio(const CachedPattern& pattern, Text part, double score_cutoff) {
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    const std::size_t len1 = pattern.size();
    const double fraction = score_cutoff / 100.0;
    const NormalizedPlan plan = plan_normalized(len1 + part.size(), fraction);
    const std::size_t gap = len1 > part.size() ? len1 - part.size() : part.size() - len1;
    std::size_t dist = plan.max_distance + 1;
    if (gap <= plan.max_distance) {
        dist = len1 + part.size() - 2 * pattern.lcs(part);
    }
    return finish_normalized(plan, dist, fraction) * 100.0;
}

// A partial_ratio needle, prepared once: its pattern table and its code points.
struct Needle {
    explicit Needle(Text source) : text(source), pattern(source), chars(source) {}
    Text text;
    CachedPattern pattern;
    CharSet chars;
};

// rapidfuzz's fuzz_detail::partial_ratio_impl: the needle (len1 <= len2) against every window of
// its length (a bisection over window starts, pruned by how much the Indel distance can change
// between two starts), then against the haystack's shorter prefixes and suffixes.
double partial_ratio_impl(const Needle& prepared, Text hay, double score_cutoff) {
    const Text needle = prepared.text;
    const std::size_t len1 = needle.size();
    const std::size_t len2 = hay.size();
    const CharSet& chars = prepared.chars;
    const CachedPattern& pattern = prepared.pattern;
    const auto ratio_of = [&](Text part, double cutoff) {
        return cached_ratio(pattern, part, cutoff);
    };
    double best = 0.0;
    if (len2 > len1) {
        const std::size_t maximum = len1 * 2;
        const double norm_cutoff_sim = std::min(1.0, 1.0 - score_cutoff / 100.0 + 0.00001);
        auto cutoff_dist =
            static_cast<std::size_t>(std::ceil(static_cast<double>(maximum) * norm_cutoff_sim));
        constexpr std::size_t kUnknown = std::numeric_limits<std::size_t>::max();
        std::size_t best_dist = kUnknown;
        std::vector<std::size_t> scores(len2 - len1, kUnknown);
        std::vector<std::pair<std::size_t, std::size_t>> windows = {{0, len2 - len1 - 1}};
        std::vector<std::pair<std::size_t, std::size_t>> next;
        const auto distance_at = [&](std::size_t start) {
            const Text window = hay.substr(start, len1);
            return len1 + len1 - 2 * pattern.lcs(window);
        };
        while (!windows.empty()) {
            for (const auto& [first, second] : windows) {
                for (const std::size_t at : {first, second}) {
                    if (scores[at] == kUnknown) {
                        scores[at] = distance_at(at);
                        if (scores[at] < cutoff_dist) {
                            cutoff_dist = best_dist = scores[at];
                            if (best_dist == 0) {
                                return 100.0;
                            }
                        }
                    }
                }
                const std::size_t cell_diff = second - first;
                if (cell_diff == 1) {
                    continue;
                }
                const std::size_t known_edits = scores[first] > scores[second]
                                                    ? scores[first] - scores[second]
                                                    : scores[second] - scores[first];
                const std::size_t max_score_improvement = (cell_diff - known_edits / 2) / 2 * 2;
                const auto min_score =
                    static_cast<std::ptrdiff_t>(std::min(scores[first], scores[second])) -
                    static_cast<std::ptrdiff_t>(max_score_improvement);
                if (min_score < static_cast<std::ptrdiff_t>(cutoff_dist)) {
                    const std::size_t center = cell_diff / 2;
                    next.emplace_back(first, first + center);
                    next.emplace_back(first + center, second);
                }
            }
            std::swap(windows, next);
            next.clear();
        }
        double score = 1.0 - (static_cast<double>(best_dist) / static_cast<double>(maximum));
        score *= 100;
        if (score >= score_cutoff) {
            score_cutoff = best = score;
        }
    }
    for (std::size_t i = 1; i < len1; ++i) {
        const Text prefix = hay.substr(0, i);
        if (!chars.contains(prefix.back())) {
            continue;
        }
        const double score = ratio_of(prefix, score_cutoff);
        if (score > best) {
            score_cutoff = best = score;
            if (best == 100.0) {
                return best;
            }
        }
    }
    for (std::size_t i = len2 - len1; i < len2; ++i) {
        const Text suffix = hay.substr(i);
        if (!chars.contains(suffix.front())) {
            continue;
        }
        const double score = ratio_of(suffix, score_cutoff);
        if (score > best) {
            score_cutoff = best = score;
            if (best == 100.0) {
                return best;
            }
        }
    }
    return best;
}

double partial_ratio_unchecked(Text a, Text b, double score_cutoff) {
    if (a.size() > b.size()) {
        std::swap(a, b);
    }
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    if (a.empty() || b.empty()) {
        return a.size() == b.size() ? 100.0 : 0.0;
    }
    const double score = partial_ratio_impl(Needle(a), b, score_cutoff);
    if (score != 100.0 && a.size() == b.size()) {
        const double swapped = partial_ratio_impl(Needle(b), a, std::max(score_cutoff, score));
        if (swapped > score) {
            return swapped;
        }
    }
    return score;
}

double token_sort_ratio_unchecked(Text a, Text b, double score_cutoff) {
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    return ratio_unchecked(join_words(sorted_words(a)), join_words(sorted_words(b)), score_cutoff);
}

// A text's sorted words, their join and its pattern table (rapidfuzz's cached s1_sorted).
// Holds views into `text` and into itself: neither copied nor moved.
// The pattern table only when it will serve many choices (`cached`); one pair is scored with
// the thread's scratch tables instead.
struct SortedText {
    SortedText(Text text, bool cached) : words(sorted_words(text)), joined(join_words(words)) {
        if (cached) {
            pattern.emplace(joined);
        }
    }
    SortedText(const SortedText&) = delete;
    SortedText& operator=(const SortedText&) = delete;
    [[nodiscard]] double ratio_to(Text other, double score_cutoff) const {
        return pattern ? cached_ratio(*pattern, other, score_cutoff)
                       : ratio_unchecked(joined, other, score_cutoff);
    }
    std::vector<Text> words;
    std::u32string joined;
    std::optional<CachedPattern> pattern;
};

// rapidfuzz's fuzz::token_ratio: the better of token_sort_ratio and token_set_ratio, sharing the
// split (and, unlike token_set_ratio, scoring texts without words).
double token_ratio_words(const SortedText& a, const std::vector<Text>& words_b,
                         double score_cutoff) {
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    const std::vector<Text>& words_a = a.words;
    const WordSets sets = decompose(words_a, words_b);
    if (!sets.shared.empty() && (sets.only_a.empty() || sets.only_b.empty())) {
        return 100.0;
    }
    const std::u32string joined_a = join_words(sets.only_a);
    const std::u32string joined_b = join_words(sets.only_b);
    const std::size_t ab_len = joined_a.size();
    const std::size_t ba_len = joined_b.size();
    const std::size_t sect_len = joined_length(sets.shared);
    double result = a.ratio_to(join_words(words_b), score_cutoff);
    const std::size_t separator = sect_len != 0 ? 1 : 0;
    const std::size_t sect_ab_len = sect_len + separator + ab_len;
    const std::size_t sect_ba_len = sect_len + separator + ba_len;
    const std::size_t cutoff_distance = distance_cutoff(sect_ab_len + sect_ba_len, score_cutoff);
    const std::size_t dist = indel_distance_unchecked(joined_a, joined_b, cutoff_distance);
    if (dist <= cutoff_distance) {
        result = std::max(result, norm_distance_100(dist, sect_ab_len + sect_ba_len, score_cutoff));
    }
    if (sect_len == 0) {
        return result;
    }
    const double sect_ab_ratio =
        norm_distance_100(separator + ab_len, sect_len + sect_ab_len, score_cutoff);
    const double sect_ba_ratio =
        norm_distance_100(separator + ba_len, sect_len + sect_ba_len, score_cutoff);
    return std::max({result, sect_ab_ratio, sect_ba_ratio});
}

// rapidfuzz's fuzz::partial_token_ratio.
double partial_token_ratio_words(const SortedText& a, const std::vector<Text>& words_b,
                                 double score_cutoff) {
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    const std::vector<Text>& words_a = a.words;
    const WordSets sets = decompose(words_a, words_b);
    if (!sets.shared.empty()) {
        return 100.0;
    }
    const double result = partial_ratio_unchecked(a.joined, join_words(words_b), score_cutoff);
    if (words_a.size() == sets.only_a.size() && words_b.size() == sets.only_b.size()) {
        return result;
    }
    return std::max(result,
                    partial_ratio_unchecked(join_words(sets.only_a), join_words(sets.only_b),
                                            std::max(score_cutoff, result)));
}

// partial_ratio with `needle` prepared; as rapidfuzz's CachedPartialRatio.
double partial_ratio_prepared(const Needle& needle, Text b, double score_cutoff) {
    const Text a = needle.text;
    if (a.size() > b.size()) {
        return partial_ratio_unchecked(a, b, score_cutoff);
    }
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    if (a.empty() || b.empty()) {
        return a.size() == b.size() ? 100.0 : 0.0;
    }
    const double score = partial_ratio_impl(needle, b, score_cutoff);
    if (score != 100.0 && a.size() == b.size()) {
        const double swapped = partial_ratio_impl(Needle(b), a, std::max(score_cutoff, score));
        if (swapped > score) {
            return swapped;
        }
    }
    return score;
}

// rapidfuzz's WRatio with the first text prepared once (its CachedWRatio): one query against
// many choices.
class WRatioQuery {
  public:
    // `cached`: prepare the query's tables for many choices (else score one pair cheaply).
    WRatioQuery(Text query, bool cached) : text_(query), sorted_(query, cached) {
        if (cached) {
            needle_.emplace(query);
        }
    }

    [[nodiscard]] double score(Text b, double score_cutoff) const {
        if (score_cutoff > 100.0) {
            return 0.0;
        }
        constexpr double kUnbaseScale = 0.95;
        const Text a = text_;
        if (a.empty() || b.empty()) {
            return 0.0;
        }
        const double len1 = static_cast<double>(a.size());
        const double len2 = static_cast<double>(b.size());
        const double len_ratio = len1 > len2 ? len1 / len2 : len2 / len1;
        double end_ratio = needle_ ? cached_ratio(needle_->pattern, b, score_cutoff)
                                   : ratio_unchecked(a, b, score_cutoff);
        if (len_ratio < 1.5) {
            score_cutoff = std::max(score_cutoff, end_ratio) / kUnbaseScale;
            return std::max(end_ratio, token_ratio_words(sorted_, sorted_words(b), score_cutoff) *
                                           kUnbaseScale);
        }
        const double partial_scale = len_ratio <= 8.0 ? 0.9 : 0.6;
        score_cutoff = std::max(score_cutoff, end_ratio) / partial_scale;
        const double partial = needle_ ? partial_ratio_prepared(*needle_, b, score_cutoff)
                                       : partial_ratio_unchecked(a, b, score_cutoff);
        end_ratio = std::max(end_ratio, partial * partial_scale);
        score_cutoff = std::max(score_cutoff, end_ratio) / kUnbaseScale;
        return std::max(end_ratio,
                        partial_token_ratio_words(sorted_, sorted_words(b), score_cutoff) *
                            kUnbaseScale * partial_scale);
    }

  private:
    Text text_;
    SortedText sorted_;
    std::optional<Needle> needle_;
};

double wratio_unchecked(Text a, Text b, double score_cutoff) {
    return WRatioQuery(a, false).score(b, score_cutoff);
}

double qratio_unchecked(Text a, Text b, double score_cutoff) {
    if (a.empty() || b.empty()) {
        return 0.0;
    }
    return ratio_unchecked(a, b, score_cutoff);
}

}  // namespace

bool is_unicode_space(char32_t c) noexcept {
    switch (c) {
        case 0x09:
        case 0x0A:
        case 0x0B:
        case 0x0C:
        case 0x0D:
        case 0x1C:
        case 0x1D:
        case 0x1E:
        case 0x1F:
        case 0x20:
        case 0x85:
        case 0xA0:
        case 0x1680:
        case 0x2028:
        case 0x2029:
        case 0x202F:
        case 0x205F:
        case 0x3000:
            return true;
        default:
            return c >= 0x2000 && c <= 0x200A;
    }
}

std::size_t levenshtein_distance(Text a, Text b, std::size_t max_distance) {
    if (a.size() > b.size()) {
        std::swap(a, b);  // the shorter string is the pattern
    }
    if (b.size() - a.size() > max_distance) {
        return max_distance + 1;
    }
    strip_affixes(a, b);
    if (a.empty()) {
        return b.size() <= max_distance ? b.size() : max_distance + 1;
    }
    if (max_distance == 0) {
        return 1;  // something differs after the common affixes were removed
    }
    if (a.size() <= 64) {
        const ScratchWordPattern pm(a);
        return levenshtein_word(pm.get(), a.size(), b, max_distance);
    }
    return levenshtein_blocks(scratch_block_pattern(a), a.size(), b, max_distance);
}

std::size_t lcs_length(Text a, Text b) {
    if (a.size() > b.size()) {
        std::swap(a, b);
    }
    const std::size_t common = strip_affixes(a, b);
    if (a.empty()) {
        return common;
    }
    if (a.size() <= 64) {
        const ScratchWordPattern pm(a);
        return common + lcs_word(pm.get(), a.size(), b);
    }
    return common + lcs_blocks(scratch_block_pattern(a), a.size(), b);
}

std::size_t indel_distance(Text a, Text b, std::size_t max_distance) {
    return indel_distance_unchecked(a, b, max_distance);
}

double levenshtein_normalized_similarity(Text a, Text b, double score_cutoff) {
    check_cutoff(score_cutoff, 1.0, "[0, 1]");
    return levenshtein_normalized_unchecked(a, b, as_single_precision(score_cutoff));
}

double indel_normalized_similarity(Text a, Text b, double score_cutoff) {
    check_cutoff(score_cutoff, 1.0, "[0, 1]");
    return indel_normalized_unchecked(a, b, as_single_precision(score_cutoff));
}

double ratio(Text a, Text b, double score_cutoff) { return ratio_unchecked(a, b, score_cutoff); }

double token_set_ratio(Text a, Text b, double score_cutoff) {
    if (score_cutoff > 100.0) {
        return 0.0;
    }
    return token_set_ratio_of_words(sorted_word_set(a), sorted_word_set(b), score_cutoff);
}

double partial_ratio(Text a, Text b, double score_cutoff) {
    return partial_ratio_unchecked(a, b, score_cutoff);
}

double token_sort_ratio(Text a, Text b, double score_cutoff) {
    return token_sort_ratio_unchecked(a, b, score_cutoff);
}

double wratio(Text a, Text b, double score_cutoff) { return wratio_unchecked(a, b, score_cutoff); }

double qratio(Text a, Text b, double score_cutoff) { return qratio_unchecked(a, b, score_cutoff); }

void TextBatch::reserve(std::size_t texts, std::size_t code_points) {
    offsets_.reserve(texts + 1);
    data_.reserve(code_points);
}

void TextBatch::append(Text text) {
    data_.append(text);
    offsets_.push_back(data_.size());
}

char32_t* TextBatch::append_uninitialized(std::size_t length) {
    const std::size_t start = data_.size();
    data_.resize(start + length);
    offsets_.push_back(data_.size());
    return data_.data() + start;
}

std::vector<double> score_many(Scorer scorer, Text query, const TextBatch& choices,
                               double score_cutoff, unsigned threads) {
    const bool percent =
        scorer != Scorer::kLevenshteinNormalized && scorer != Scorer::kIndelNormalized;
    std::vector<double> scores(choices.size(), 0.0);
    const auto each = [&](auto score) {
        relay::parallel_for(choices.size(), threads, kMinChoicesPerThread, [&](std::size_t i) {
            scores[i] = score(query, choices[i], score_cutoff);
        });
    };
    switch (scorer) {
        // The query is prepared once, as rapidfuzz's cached scorers do.
        case Scorer::kPartialRatio: {
            const Needle needle(query);
            each([&](Text, Text choice, double cutoff) {
                return partial_ratio_prepared(needle, choice, cutoff);
            });
            return scores;
        }
        case Scorer::kTokenSortRatio: {
            const SortedText sorted(query, true);
            each([&](Text, Text choice, double cutoff) {
                return sorted.ratio_to(join_words(sorted_words(choice)), cutoff);
            });
            return scores;
        }
        case Scorer::kWRatio: {
            const WRatioQuery prepared(query, true);
            each([&](Text, Text choice, double cutoff) { return prepared.score(choice, cutoff); });
            return scores;
        }
        case Scorer::kQRatio: {
            const CachedPattern pattern(query);
            each([&](Text, Text choice, double cutoff) {
                return query.empty() || choice.empty() ? 0.0
                                                       : cached_ratio(pattern, choice, cutoff);
            });
            return scores;
        }
        default:
            break;
    }
    if (percent) {
        // As the pairwise fuzz scorers: a cutoff above 100 zeroes every score, one below 0
        // cuts nothing.
        if (score_cutoff > 100.0) {
            return scores;
        }
    } else {
        check_cutoff(score_cutoff, 1.0, "[0, 1]");
    }
    switch (scorer) {
        case Scorer::kRatio:
        case Scorer::kIndelNormalized: {
            const CachedPattern pattern(query);
            const double cutoff =
                percent ? score_cutoff / 100.0 : as_single_precision(score_cutoff);
            const double scale = percent ? 100.0 : 1.0;
            relay::parallel_for(choices.size(), threads, kMinChoicesPerThread, [&](std::size_t i) {
                const Text choice = choices[i];
                const NormalizedPlan plan = plan_normalized(query.size() + choice.size(), cutoff);
                const std::size_t gap = query.size() > choice.size() ? query.size() - choice.size()
                                                                     : choice.size() - query.size();
                std::size_t dist = plan.max_distance + 1;
                if (gap <= plan.max_distance) {
                    dist = query.size() + choice.size() - 2 * pattern.lcs(choice);
                }
                scores[i] = finish_normalized(plan, dist, cutoff) * scale;
            });
            break;
        }
        case Scorer::kLevenshteinNormalized: {
            const CachedPattern pattern(query);
            const double cutoff = as_single_precision(score_cutoff);
            relay::parallel_for(choices.size(), threads, kMinChoicesPerThread, [&](std::size_t i) {
                const Text choice = choices[i];
                const NormalizedPlan plan =
                    plan_normalized(std::max(query.size(), choice.size()), cutoff);
                const std::size_t gap = query.size() > choice.size() ? query.size() - choice.size()
                                                                     : choice.size() - query.size();
                std::size_t dist = plan.max_distance + 1;
                if (gap <= plan.max_distance) {
                    dist = pattern.levenshtein(choice, plan.max_distance);
                }
                scores[i] = finish_normalized(plan, dist, cutoff);
            });
            break;
        }
        case Scorer::kTokenSetRatio: {
            const std::vector<Text> query_words = sorted_word_set(query);
            relay::parallel_for(choices.size(), threads, kMinChoicesPerThread, [&](std::size_t i) {
                scores[i] = token_set_ratio_of_words(query_words, sorted_word_set(choices[i]),
                                                     score_cutoff);
            });
            break;
        }
        default:
            break;
    }
    return scores;
}

TokenSetChoices::TokenSetChoices(TextBatch choices) : texts_(std::move(choices)) {
    words_.reserve(texts_.size());
    joined_.reserve(texts_.size());
    for (std::size_t i = 0; i < texts_.size(); ++i) {
        words_.push_back(sorted_word_set(texts_[i]));
        joined_.push_back(join_words(words_.back()));
    }
}

std::vector<double> TokenSetChoices::scores(Text query, double score_cutoff,
                                            unsigned threads) const {
    std::vector<double> out(words_.size(), 0.0);
    if (score_cutoff > 100.0) {
        return out;
    }
    const std::vector<Text> query_words = sorted_word_set(query);
    if (query_words.empty()) {
        return out;  // token_set_ratio is 0 when a side has no word
    }
    // Most choices share no word with the query; their score is then the Indel ratio of the
    // two joined word sets (what token_set_ratio_of_words computes), with the query's pattern
    // table made once and the choice's join made at construction.
    const std::u32string query_joined = join_words(query_words);
    const CachedPattern pattern(query_joined);
    relay::parallel_for(words_.size(), threads, kMinChoicesPerThread, [&](std::size_t i) {
        const std::vector<Text>& words = words_[i];
        if (words.empty()) {
            return;
        }
        if (shares_word(query_words, words)) {
            out[i] = token_set_ratio_of_words(query_words, words, score_cutoff);
            return;
        }
        const Text choice = joined_[i];
        const std::size_t lensum = query_joined.size() + choice.size();
        const std::size_t max_distance = distance_cutoff(lensum, score_cutoff);
        const std::size_t gap = query_joined.size() > choice.size()
                                    ? query_joined.size() - choice.size()
                                    : choice.size() - query_joined.size();
        if (gap > max_distance) {
            return;
        }
        const std::size_t dist = lensum - 2 * pattern.lcs(choice);
        if (dist <= max_distance) {
            out[i] = norm_distance_100(dist, lensum, score_cutoff);
        }
    });
    return out;
}

std::vector<ScoredIndex> extract(Scorer scorer, Text query, const TextBatch& choices,
                                 double score_cutoff, std::size_t limit, unsigned threads) {
    // rapidfuzz.process.extract takes its cutoff as a C float, for scoring and for filtering.
    const double cutoff = as_single_precision(score_cutoff);
    const std::vector<double> scores = score_many(scorer, query, choices, cutoff, threads);
    std::vector<ScoredIndex> kept;
    for (std::size_t i = 0; i < scores.size(); ++i) {
        if (scores[i] >= cutoff) {
            kept.push_back({i, scores[i]});
        }
    }
    const auto better = [](const ScoredIndex& x, const ScoredIndex& y) {
        return x.score != y.score ? x.score > y.score : x.index < y.index;
    };
    if (limit < kept.size()) {
        std::partial_sort(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(limit),
                          kept.end(), better);
        kept.resize(limit);
    } else {
        std::sort(kept.begin(), kept.end(), better);
    }
    return kept;
}

}  // namespace relay::fuzzy
