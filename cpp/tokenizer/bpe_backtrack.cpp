// BacktrackEncoder (see bpe_backtrack.hpp).
#include "tokenizer/bpe_backtrack.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

namespace relay::tokenizer {
namespace {

using Rank = BacktrackEncoder::Rank;
constexpr Rank kNone = BacktrackEncoder::kNone;

std::atomic<std::uint64_t> g_next_encoder_id{1};

// Per-thread memo of valid_pair answers for one encoder (see encode()). Direct-mapped; an entry
// is the pair key (both ranks are below 2^21, see BacktrackEncoder's constructor) with bit 63
// set for "occupied" and bit 62 for the answer, so 0 is an empty slot.
//
// On the heap, made (zeroed) on a thread's first pair check: as a zero-initialised
// thread_local it made every new thread that calls into the module clear its 64 KB of TLS, and
// then clear it again here when the owner was set. (Leaving it unzeroed and clearing one cache
// line of slots when a lookup first reached it saved the one memset but cost more than it on
// long texts: a test per lookup, +0.3-0.6% of the instructions of Chinese and Thai.)
struct PairMemo {
    static constexpr std::size_t kSlots = 8192;  // 64 KB
    static constexpr std::uint64_t kOccupied = std::uint64_t{1} << 63U;
    static constexpr std::uint64_t kValid = std::uint64_t{1} << 62U;
    std::uint64_t owner = 0;
    std::array<std::uint64_t, kSlots> slots{};

    static std::size_t slot_of(std::uint64_t key) {
        return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> 51U);  // 13 bits
    }
};
static_assert(PairMemo::kSlots == std::size_t{1} << 13U);

}  // namespace

BacktrackEncoder::BacktrackEncoder(std::span<const std::string_view> tokens)
    : id_(g_next_encoder_id.fetch_add(1)), split_(tokens.size()) {
    if (tokens.size() > PairMap::kMaxIds) {
        // Ids must pack three to a word in merges_ (and leave the memo's two flag bits free);
        // real vocabularies are far below 2^21 (o200k_base: 200k).
        return;
    }
    std::vector<Rank> by_length;  // ids, shortest first
    std::array<Rank, 256> byte_id{};
    byte_id.fill(kNone);
    for (Rank t = 0; t < tokens.size(); ++t) {
        const std::string_view bytes = tokens[t];
        if (bytes.empty()) {
            continue;
        }
        split_[t].len = static_cast<std::uint32_t>(bytes.size());
        by_length.push_back(t);
        if (bytes.size() == 1) {
            byte_id[static_cast<unsigned char>(bytes[0])] = t;
            split_[t].leaf = true;
            split_[t].reachable = true;
        }
    }
    if (std::find(byte_id.begin(), byte_id.end(), kNone) != byte_id.end()) {
        return;  // tiktoken itself cannot encode such a byte; keep the plain merge
    }
    merges_.reset(by_length.size());
    // Token of each two-byte string (the first round of every merge below).
    std::vector<Rank> two_bytes(std::size_t{1} << 16U, kNone);
    for (const Rank t : by_length) {
        if (tokens[t].size() == 2) {
            two_bytes[(std::size_t{static_cast<unsigned char>(tokens[t][0])} << 8U) |
                      static_cast<unsigned char>(tokens[t][1])] = t;
        }
    }
    std::stable_sort(by_length.begin(), by_length.end(),
                     [&](Rank a, Rank b) { return tokens[a].size() < tokens[b].size(); });
    // Each token's split is the pair of parts that tiktoken's merge of its bytes ends with when
    // the whole is not allowed to merge (more than two parts: BPE never forms the token). Two
    // adjacent parts merge iff they are the split of some token (see merges_), and every such
    // token is shorter than the one being merged here, so shortest first the table is complete
    // for each merge it is used in.
    std::vector<Rank> part;
    std::vector<Rank> pair;
    auto merged = [&](Rank a, Rank b) { return merges_.find(a, b); };
    for (const Rank t : by_length) {
        const std::string_view bytes = tokens[t];
        const std::size_t n = bytes.size();
        if (n < 2) {
            continue;
        }
        part.resize(n);
        pair.assign(n, kNone);
        for (std::size_t k = 0; k < n; ++k) {
            part[k] = byte_id[static_cast<unsigned char>(bytes[k])];
        }
        std::size_t m = n;
        for (std::size_t k = 0; n > 2 && k + 1 < n; ++k) {
            pair[k] = two_bytes[(std::size_t{static_cast<unsigned char>(bytes[k])} << 8U) |
                                static_cast<unsigned char>(bytes[k + 1])];
        }
        while (m > 2) {
            std::size_t best_k = 0;
            for (std::size_t k = 1; k + 1 < m; ++k) {
                if (pair[k] < pair[best_k]) {
                    best_k = k;
                }
            }
            const Rank best = pair[best_k];
            if (best == kNone) {
                break;
            }
            part[best_k] = best;
            for (std::size_t q = best_k + 1; q + 1 < m; ++q) {
                part[q] = part[q + 1];
                pair[q] = pair[q + 1];
            }
            --m;
            // The whole never merges here; m == 2 ends the loop before that could be asked.
            if (best_k > 0) {
                pair[best_k - 1] = m > 2 ? merged(part[best_k - 1], best) : kNone;
            }
            pair[best_k] = best_k + 1 < m && m > 2 ? merged(best, part[best_k + 1]) : kNone;
        }
        if (m != 2) {
            continue;
        }
        if (part[0] >= t || part[1] >= t) {
            // Merges would not happen in rank order, so "time = rank" in valid_pair is wrong.
            merges_.reset(0);
            return;
        }
        Split& s = split_[t];
        s.left = part[0];
        s.right = part[1];
        s.reachable = true;
        merges_.insert(part[0], part[1], t);
    }
    merges_.for_each([&](Rank a, Rank b) {
        const std::uint32_t bit = filter_bit(a, b);
        filter_[bit / 64] |= std::uint64_t{1} << (bit % 64);
    });
    build_trie(tokens);
    usable_ = true;
}

void BacktrackEncoder::build_trie(std::span<const std::string_view> tokens) {
    std::vector<Rank> ids;
    for (Rank t = 0; t < tokens.size(); ++t) {
        if (split_[t].reachable) {
            ids.push_back(t);
        }
    }
    // Sorted by bytes; most comparisons are settled by the first eight bytes as one big-endian
    // integer, which spares a memcmp through a pointer per comparison.
    std::vector<std::pair<std::uint64_t, Rank>> keyed;
    keyed.reserve(ids.size());
    for (const Rank t : ids) {
        std::uint64_t key = 0;
        const std::string_view b = tokens[t];
        for (std::size_t i = 0; i < 8; ++i) {
            key = (key << 8U) | (i < b.size() ? static_cast<unsigned char>(b[i]) : 0U);
        }
        keyed.emplace_back(key, t);
    }
    std::sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
        if (a.first != b.first) {
            return a.first < b.first;
        }
        return tokens[a.second] < tokens[b.second];
    });
    for (std::size_t i = 0; i < keyed.size(); ++i) {
        ids[i] = keyed[i].second;
    }
    auto byte_at = [&](std::size_t i, std::size_t depth) {
        return static_cast<unsigned char>(tokens[ids[i]][depth]);
    };
    // Depth-first layout from the sorted keys (children sit near their parent, which keeps a
    // walk down the trie within few cache lines). Iterative, to bound the stack on any input.
    struct Frame {
        std::size_t lo, hi, depth;
        std::uint32_t slot;  // where the parent keeps this node's offset (0: the root)
        Rank above;          // the nearest token on the path above this node
    };
    std::vector<Frame> stack{{0, ids.size(), 0, 0, kNone}};
    std::vector<Frame> children;
    while (!stack.empty()) {
        Frame f = stack.back();
        stack.pop_back();
        const auto offset = static_cast<std::uint32_t>(trie_.size());
        if (f.slot != 0) {
            trie_[f.slot] = offset;
        }
        Rank token = kNone;
        if (f.lo < f.hi && tokens[ids[f.lo]].size() == f.depth) {
            token = ids[f.lo];
            split_[token].next_prefix = f.above;
            ++f.lo;
        }
        const Rank above = token != kNone ? token : f.above;
        // Children: runs of equal byte at `depth` (the keys are sorted).
        children.clear();
        for (std::size_t i = f.lo; i < f.hi;) {
            std::size_t j = i + 1;
            while (j < f.hi && byte_at(j, f.depth) == byte_at(i, f.depth)) {
                ++j;
            }
            children.push_back(Frame{i, j, f.depth + 1, 0, above});
            i = j;
        }
        const std::size_t n = children.size();
        trie_.push_back(token);
        trie_.push_back(static_cast<std::uint32_t>(n));
        const bool dense = n > kSparseEdges;
        const std::size_t byte_words = dense ? 0 : (n + 3) / 4;
        const std::size_t bytes_at = trie_.size();
        trie_.resize(trie_.size() + (dense ? 256 : byte_words + n), 0);
        const std::size_t children_at = bytes_at + byte_words;
        for (std::size_t k = 0; k < n; ++k) {
            const unsigned char b = byte_at(children[k].lo, f.depth);
            if (dense) {
                children[k].slot = static_cast<std::uint32_t>(children_at + b);
            } else {
                trie_[bytes_at + k / 4] |= std::uint32_t{b} << (8U * (k % 4));
                children[k].slot = static_cast<std::uint32_t>(children_at + k);
            }
            if (f.depth == 0) {
                root_[b] = children[k].slot;  // the child's offset once it is laid out
            }
        }
        // Reversed, so that the first child is laid out first.
        stack.insert(stack.end(), children.rbegin(), children.rend());
    }
    for (std::uint32_t& r : root_) {
        if (r != 0) {
            r = trie_[r];
        }
    }
    build_first_chars();
}

// Inlined into the walk: as a call, +20% of its instructions.
[[gnu::always_inline]] inline std::uint32_t BacktrackEncoder::child(std::uint32_t node,
                                                                    unsigned char b) const {
    const std::uint32_t n = trie_[node + 1];
    if (n > kSparseEdges) {
        return trie_[node + 2 + b];  // 0: no such edge (offset 0 is the root)
    }
    const auto* edge = reinterpret_cast<const unsigned char*>(&trie_[node + 2]);
    for (std::uint32_t k = 0; k < n; ++k) {
        if (edge[k] == b) {
            return trie_[node + 2 + (n + 3) / 4 + k];
        }
    }
    return 0;
}

void BacktrackEncoder::build_first_chars() {
    auto walk = [&](const std::array<unsigned char, 3>& bytes) {
        FirstChar e;
        std::uint32_t node = root_[bytes[0]];
        e.best = trie_[node];  // every single byte is a token
        for (std::size_t i = 1; i < bytes.size(); ++i) {
            node = child(node, bytes[i]);
            if (node == 0) {
                return e;
            }
            if (trie_[node] != kNone) {
                e.best = trie_[node];
            }
        }
        e.node = node;
        return e;
    };
    first3_.resize(std::size_t{1} << 16U);
    for (std::uint32_t x = 0; x < first3_.size(); ++x) {
        first3_[x] = walk({static_cast<unsigned char>(0xE0U | (x >> 12U)),
                           static_cast<unsigned char>(0x80U | ((x >> 6U) & 0x3FU)),
                           static_cast<unsigned char>(0x80U | (x & 0x3FU))});
    }
}

Rank BacktrackEncoder::longest_prefix(const unsigned char* p, std::size_t avail) const {
    const unsigned b0 = p[0];
    std::uint32_t node = 0;
    Rank best = kNone;
    std::size_t i = 0;
    if (b0 >= 0xE0U && b0 < 0xF0U && avail >= 3 && (p[1] & 0xC0U) == 0x80U &&
        (p[2] & 0xC0U) == 0x80U) {
        const FirstChar& e =
            first3_[((b0 & 0x0FU) << 12U) | ((p[1] & 0x3FU) << 6U) | (p[2] & 0x3FU)];
        if (e.node == 0) {
            return e.best;  // the walk ends inside the character
        }
        node = e.node;
        best = e.best;
        i = 3;
    } else {
        node = root_[b0];
        best = trie_[node];  // every single byte is a token
        i = 1;
    }
    for (; i < avail; ++i) {
        const std::uint32_t next = child(node, p[i]);
        if (next == 0) {
            break;
        }
        node = next;
        if (trie_[node] != kNone) {
            best = trie_[node];
        }
    }
    return best;
}

bool BacktrackEncoder::valid_pair(Rank a, Rank b) const {
    // Part x of a's right spine exists until end_a (its parent forms; a merge at that same
    // rank to its left comes first), part y of b's left spine until end_b inclusive (its parent
    // merge lies to the right of the boundary, so a crossing merge of equal rank wins the tie).
    Rank end_a = kNone;
    Rank end_b = kNone;
    while (true) {
        if (!maybe_merges(a, b)) {
            // Most pairs merge into nothing; the filter answers those without the hash map.
        } else if (const Rank c = merges_.find(a, b); c != kNone) {
            if (c < end_a && c <= end_b) {
                return false;
            }
        }
        const Split& sa = split_[a];
        const Split& sb = split_[b];
        // Step back in time past the later of the two merges that formed a and b.
        if (!sa.leaf && (sb.leaf || a > b)) {
            end_a = a;
            a = sa.right;
        } else if (!sb.leaf) {
            end_b = b;
            b = sb.left;
        } else {
            return true;
        }
    }
}

void BacktrackEncoder::encode(std::string_view piece, std::vector<Rank>& out) const {
    const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
    const std::size_t n = piece.size();
    const std::size_t base = out.size();
    // dead[i]: no valid encoding of the piece continues from byte i. On the stack for the
    // pieces of natural text (no allocation, no library call to clear it), else per thread.
    constexpr std::size_t kStackWords = 16;  // pieces up to 1023 bytes
    std::array<std::uint64_t, kStackWords> dead_words;
    thread_local std::vector<std::uint64_t> dead_heap;
    const std::size_t words = n / 64 + 1;
    std::uint64_t* dead = dead_words.data();
    if (words > kStackWords) {
        dead_heap.assign(words, 0);
        dead = dead_heap.data();
    } else {
        for (std::size_t w = 0; w < words; ++w) {
            dead_words[w] = 0;
        }
    }
    auto is_dead = [&](std::size_t i) { return ((dead[i / 64] >> (i % 64)) & 1U) != 0; };
    // Natural text repeats token pairs across pieces, and each valid_pair walks two spines of
    // splits (cache misses on large vocabularies), so answers are remembered per thread.
    thread_local std::unique_ptr<PairMemo> memo_of_thread;
    if (memo_of_thread == nullptr) {
        memo_of_thread = std::make_unique<PairMemo>();  // empty
        memo_of_thread->owner = id_;
    }
    PairMemo& memo = *memo_of_thread;
    if (memo.owner != id_) {
        memo.slots.fill(0);
        memo.owner = id_;
    }
    auto valid = [&](Rank a, Rank b) {
        const std::uint64_t key = pair_key(a, b);
        std::uint64_t& slot = memo.slots[PairMemo::slot_of(key)];
        if ((slot & ~PairMemo::kValid) == (key | PairMemo::kOccupied)) {
            return (slot & PairMemo::kValid) != 0;
        }
        const bool ok = valid_pair(a, b);
        slot = key | PairMemo::kOccupied | (ok ? PairMemo::kValid : 0);
        return ok;
    };
    std::size_t pos = 0;
    Rank next = longest_prefix(p, n);
    while (pos < n) {
        Rank token = next;
        const Rank last = out.size() > base ? out.back() : kNone;
        while (true) {
            const std::size_t end = pos + split_[token].len;
            if (!is_dead(end) && (last == kNone || valid(last, token))) {
                out.push_back(token);
                pos = end;
                if (pos < n) {
                    next = longest_prefix(p + pos, n - pos);
                }
                break;
            }
            token = split_[token].next_prefix;
            if (token == kNone) {
                if (last == kNone) {
                    // Cannot happen: the piece's BPE encoding is valid and gets found.
                    throw std::logic_error("backtracking BPE found no encoding");
                }
                dead[pos / 64] |= std::uint64_t{1} << (pos % 64);
                out.pop_back();
                pos -= split_[last].len;
                next = last;  // its end is dead now, so its shorter prefixes come next
                break;
            }
        }
    }
}

}  // namespace relay::tokenizer
