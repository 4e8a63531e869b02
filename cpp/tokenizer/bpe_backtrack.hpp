// Backtracking byte-pair encoder: the same ids as tiktoken's rank-ordered merge, in time close to
// linear in the piece length (the merge is O(n log n) at best and tiktoken's O(n^2)).
//
// The idea (from the `bpe` crate's backtracking encoder; this is an independent implementation):
// call a token sequence *valid* if it is the BPE encoding of its own bytes. The encoding of a
// piece is its only valid segmentation, every prefix of it is valid, and a sequence is valid iff
// each adjacent pair of tokens is. So the encoder walks the piece left to right, takes the longest
// vocabulary token at the current position (a trie walk), and accepts it if it forms a valid pair
// with the previous token; otherwise it tries the next shorter token that is a prefix of it, and
// when none is left it backtracks one token. A position from which no continuation exists is
// marked dead and never tried again (the valid prefix ending there is unique), which bounds the
// work.
//
// A pair (a, b) is valid iff no merge across their boundary happens while BPE builds a and b
// from their bytes. Each token is built by a fixed binary tree of merges (its "split", the last
// two parts BPE has before forming it), and with monotone ranks (both parts of every split rank
// below the token) each merge happens at "time" = its rank, so the check walks down a's right
// spine and b's left spine in time order and looks for a canonical pair that would merge first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::tokenizer {

class BacktrackEncoder {
  public:
    using Rank = std::uint32_t;
    static constexpr Rank kNone = 0xFFFFFFFFU;

    // `tokens` maps each id to its bytes (empty = no such id, or a special token); the bytes
    // must be distinct. Only the lengths are kept.
    explicit BacktrackEncoder(std::span<const std::string_view> tokens);

    // False if the vocabulary breaks an assumption the algorithm needs (a single byte that is not
    // a token, or a split whose part ranks above the token); callers then use the plain merge.
    [[nodiscard]] bool usable() const noexcept { return usable_; }

    // Appends the ids of `piece` (any non-empty byte string) to `out`. Requires usable().
    void encode(std::string_view piece, std::vector<Rank>& out) const;

    // Whether [a, b] is the BPE encoding of bytes(a) + bytes(b) (both must be reachable).
    [[nodiscard]] bool valid_pair(Rank a, Rank b) const;

    // The token that adjacent parts a and b of a BPE merge form (kNone if they never merge).
    // Exact for the parts of a merge in progress: two adjacent parts whose bytes make a token T
    // are always T's split (see merges_), so this replaces a lookup of their concatenated bytes
    // with an integer key, and the in-cache filter answers most non-merging pairs. Requires
    // usable().
    [[nodiscard]] Rank merged(Rank a, Rank b) const {
        if (!maybe_merges(a, b)) {
            return kNone;
        }
        return merges_.find(a, b);
    }

    // Whether BPE of the token's own bytes yields the token (single bytes always do). A token
    // that is not reachable appears in an encoding only as a whole piece.
    [[nodiscard]] bool reachable(Rank t) const { return t < split_.size() && split_[t].reachable; }

    // The two parts the token is merged from ({kNone, kNone} for single bytes and unreachable
    // tokens).
    [[nodiscard]] std::pair<Rank, Rank> split(Rank t) const {
        return {split_[t].left, split_[t].right};
    }

  private:
    struct Split {
        Rank left = kNone;
        Rank right = kNone;
        Rank next_prefix = kNone;  // longest reachable token that is a proper prefix of this one
        std::uint32_t len = 0;     // bytes
        bool reachable = false;
        bool leaf = false;  // a single byte: present from the start of the merge
    };

    // Longest reachable token that is a prefix of p[0, avail); avail >= 1.
    [[nodiscard]] Rank longest_prefix(const unsigned char* p, std::size_t avail) const;
    void build_trie(std::span<const std::string_view> tokens);

    // (left, right) -> token: open addressing with linear probing in one array of 8-byte slots,
    // each the three 21-bit ids packed into one word, at most half full. A lookup reads one
    // slot (rarely two cache lines), where a general hash map reads its control bytes and then
    // its slot. Eight bytes rather than twelve make o200k_base's table 4 MB instead of 6 MB. (At
    // up to 4/5 full, 2 MB, the probe runs of the filter's false positives grew: +55% of the
    // pair checks' instructions and +23% of their L2 misses on Chinese.)
    class PairMap {
      public:
        static constexpr unsigned kIdBits = 21;
        static constexpr Rank kMaxIds = (Rank{1} << kIdBits) - 1;  // ids are below this

        void reset(std::size_t max_entries) {
            std::size_t capacity = 16;
            unsigned bits = 4;
            while (capacity < 2 * max_entries) {
                capacity *= 2;
                ++bits;
            }
            slots_.assign(capacity, kEmpty);
            shift_ = 64U - bits;
        }

        [[nodiscard]] Rank find(Rank a, Rank b) const {
            const std::uint64_t key = pack_key(a, b);
            const std::size_t mask = slots_.size() - 1;
            for (std::size_t i = index(key);; i = (i + 1) & mask) {
                const std::uint64_t s = slots_[i];
                if ((s & kKeyMask) == key) {
                    return static_cast<Rank>(s >> (2U * kIdBits));
                }
                if (s == kEmpty) {
                    return kNone;
                }
            }
        }

        // Adds (a, b) -> token unless (a, b) is present; at most max_entries of reset(), all
        // three below kMaxIds.
        void insert(Rank a, Rank b, Rank token) {
            const std::uint64_t key = pack_key(a, b);
            const std::size_t mask = slots_.size() - 1;
            for (std::size_t i = index(key);; i = (i + 1) & mask) {
                std::uint64_t& s = slots_[i];
                if ((s & kKeyMask) == key) {
                    return;
                }
                if (s == kEmpty) {
                    s = key | (std::uint64_t{token} << (2U * kIdBits));
                    return;
                }
            }
        }

        template <class F>
        void for_each(F&& f) const {
            for (const std::uint64_t s : slots_) {
                if (s != kEmpty) {
                    f(static_cast<Rank>((s >> kIdBits) & kMaxIds), static_cast<Rank>(s & kMaxIds));
                }
            }
        }

      private:
        // All ones: its key part is (kMaxIds, kMaxIds), which no pair of real ids packs to.
        static constexpr std::uint64_t kEmpty = ~std::uint64_t{0};
        static constexpr std::uint64_t kKeyMask = (std::uint64_t{1} << (2U * kIdBits)) - 1;
        static std::uint64_t pack_key(Rank a, Rank b) {
            return (std::uint64_t{a} << kIdBits) | std::uint64_t{b};
        }
        [[nodiscard]] std::size_t index(std::uint64_t key) const {
            return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> shift_);
        }
        std::vector<std::uint64_t> slots_ = std::vector<std::uint64_t>(2, kEmpty);  // finds nothing
        unsigned shift_ = 63;
    };

    static std::uint64_t pair_key(Rank a, Rank b) {
        return (std::uint64_t{a} << 32U) | std::uint64_t{b};
    }

    // One bit per hash of a (left, right) key of merges_: a 256 KB filter that stays in cache and
    // rules out most pairs before the (much larger) map is probed.
    static constexpr unsigned kFilterBits = 21;
    static std::uint32_t filter_bit(Rank a, Rank b) {
        return (a * 0x9E3779B1U + b * 0x85EBCA77U) >> (32U - kFilterBits);
    }
    [[nodiscard]] bool maybe_merges(Rank a, Rank b) const {
        const std::uint32_t bit = filter_bit(a, b);
        return ((filter_[bit / 64] >> (bit % 64)) & 1U) != 0;
    }

    bool usable_ = false;
    std::uint64_t id_;  // identifies this encoder in the per-thread memo of pair answers
    std::vector<std::uint64_t> filter_ =
        std::vector<std::uint64_t>((std::size_t{1} << kFilterBits) / 64);
    std::vector<Split> split_;
    // (left, right) -> the token whose split it is. Only canonical splits can merge: two adjacent
    // parts whose bytes form a token T are always T's split (BPE inside T's span runs as on T).
    PairMap merges_;
    // Trie of the reachable tokens, one uint32 array. Node at offset o: [o] token or kNone,
    // [o + 1] edge count n, then n edge bytes packed four to a word and n child offsets, or, for
    // n > kSparseEdges (UTF-8 lead bytes, common prefixes), 256 child offsets indexed by byte
    // (0 = none). The root's children are also in root_ for a direct first step.
    static constexpr std::uint32_t kSparseEdges = 12;
    std::vector<std::uint32_t> trie_;
    std::vector<std::uint32_t> root_ = std::vector<std::uint32_t>(256, 0);

    // The first character of a walk in one step when it has three bytes: for each three-byte
    // UTF-8 form (indexed by its 16 payload bits, so also the overlong and surrogate forms,
    // which are just byte strings to the trie), the node after its bytes (0 if the trie has no
    // path through them) and the longest token among its byte prefixes. The walks of CJK,
    // Kana, Hangul, Thai and the Brahmic scripts start on such a character and took three trie
    // steps for it. 512 KB, of which a script touches the lines of its own characters. (The
    // same for two-byte characters saved one step of the walks of Cyrillic and Arabic text
    // and cost more in its tests: +0.6-1% instructions.)
    struct FirstChar {
        std::uint32_t node = 0;
        Rank best = kNone;
    };
    void build_first_chars();
    [[nodiscard]] std::uint32_t child(std::uint32_t node, unsigned char b) const;
    std::vector<FirstChar> first3_;  // 2^16: 1110xxxx 10xxxxxx 10xxxxxx
};

}  // namespace relay::tokenizer
