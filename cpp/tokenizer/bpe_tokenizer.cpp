// BpeTokenizer: tiktoken-identical byte-level BPE (see bpe_tokenizer.hpp).
//
// Merge rule (tiktoken's byte_pair_merge): start from single bytes; repeatedly merge the adjacent
// pair whose concatenated bytes have the lowest rank, the leftmost pair on ties; stop when no
// adjacent concatenation is a token. A piece that is itself a token maps to it directly. Short
// pieces use tiktoken's array scan; longer ones the backtracking encoder (bpe_backtrack.hpp),
// near-linear in the piece length, or, for a vocabulary it cannot handle, a heap + linked list
// that selects the same pair (minimal (rank, start offset)) in O(n log n).
#include "tokenizer/bpe_tokenizer.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "absl/container/flat_hash_map.h"
#include "common/errors.hpp"
#include "tokenizer/bpe_backtrack.hpp"
#include "tokenizer/bytes_map.hpp"

namespace relay::tokenizer {
namespace {

constexpr Rank kNoRank = std::numeric_limits<Rank>::max();
// Ids index dense tables; real encodings stay far below this bound.
constexpr Rank kMaxId = Rank{1} << 24;
// Pieces up to this many bytes use the array merge; longer ones the backtracking encoder, or the
// heap merge for a vocabulary it cannot handle (above kSmallPiece). The array merge is
// quadratic and its merges are many for multi-byte characters: past 16 bytes of ASCII, or 6
// bytes of a piece that starts with a non-ASCII character (two CJK or Thai characters, three
// Cyrillic ones), backtracking is faster (simulated cost under callgrind's cache model on the
// natural corpus, benchmarks/natural_corpus.py: 4-10% less for CJK, Thai, Cyrillic, Devanagari).
constexpr std::size_t kBacktrackAbove = 16;  // at most Impl::kTinyPiece
constexpr std::size_t kBacktrackAboveNonAscii = 6;
constexpr std::size_t kSmallPiece = 96;
// Pieces pre-tokenised per chunk, bounding memory on long texts.
constexpr std::size_t kPieceChunk = 4096;

std::string hex_byte(unsigned b) {
    constexpr std::string_view kHex = "0123456789abcdef";
    return std::string("0x") + kHex[(b >> 4) & 0xFU] + kHex[b & 0xFU];
}

// Earliest occurrence of any string of a set (longest at equal positions).
class StringSet {
  public:
    struct Match {
        std::size_t pos = std::string_view::npos;
        std::size_t len = 0;
        Rank id = 0;
    };

    void add(std::string_view s, Rank id) {
        if (s.empty() || !tokens_.try_emplace(s, id).second) {
            return;
        }
        const auto b = static_cast<unsigned char>(s.front());
        if (!first_[b]) {
            first_[b] = true;
            ++n_first_;
            only_first_ = b;
        }
        if (std::find(lengths_.begin(), lengths_.end(), s.size()) == lengths_.end()) {
            lengths_.push_back(s.size());
            std::sort(lengths_.begin(), lengths_.end(), std::greater<>());
        }
    }

    [[nodiscard]] bool empty() const { return tokens_.empty(); }

    [[nodiscard]] Match find(std::string_view text, std::size_t from) const {
        Match m;
        if (tokens_.empty()) {
            return m;
        }
        const std::size_t n = text.size();
        std::size_t p = from;
        while (p < n) {
            if (n_first_ == 1) {
                const void* hit = std::memchr(text.data() + p, only_first_, n - p);
                if (hit == nullptr) {
                    return m;
                }
                p = static_cast<std::size_t>(static_cast<const char*>(hit) - text.data());
            } else if (!first_[static_cast<unsigned char>(text[p])]) {
                ++p;
                continue;
            }
            for (const std::size_t len : lengths_) {
                if (len <= n - p) {
                    const auto it = tokens_.find(text.substr(p, len));
                    if (it != tokens_.end()) {
                        m.pos = p;
                        m.len = len;
                        m.id = it->second;
                        return m;
                    }
                }
            }
            ++p;
        }
        return m;
    }

  private:
    BytesMap tokens_;
    std::array<bool, 256> first_{};
    std::size_t n_first_ = 0;
    unsigned char only_first_ = 0;
    std::vector<std::size_t> lengths_;
};

// Bounded LRU of whole-text counts keyed by (XXH3-64 of the text, length). One exact LRU under
// one mutex: the lock covers only the map/list update (counting happens outside it), and an exact
// LRU keeps hits predictable for callers (a sharded one would evict early in full shards).
class CountMemo {
  public:
    explicit CountMemo(std::size_t capacity) : capacity_(capacity) {}

    [[nodiscard]] bool enabled() const { return capacity_ != 0; }

    bool get(std::uint64_t hash, std::uint64_t len, std::size_t& value) {
        {
            const std::lock_guard lock(mu_);
            const auto it = index_.find(Key{hash, len});
            if (it != index_.end()) {
                lru_.splice(lru_.begin(), lru_, it->second);
                value = it->second->value;
                ++hits_;
                return true;
            }
            ++misses_;
        }
        return false;
    }

    void put(std::uint64_t hash, std::uint64_t len, std::size_t value) {
        const std::lock_guard lock(mu_);
        const Key key{hash, len};
        const auto it = index_.find(key);
        if (it != index_.end()) {
            it->second->value = value;
            lru_.splice(lru_.begin(), lru_, it->second);
            return;
        }
        lru_.push_front(Entry{key, value});
        index_.emplace(key, lru_.begin());
        if (lru_.size() > capacity_) {
            index_.erase(lru_.back().key);
            lru_.pop_back();
        }
    }

    MemoStats stats() {
        const std::lock_guard lock(mu_);
        MemoStats st;
        st.hits = hits_;
        st.misses = misses_;
        st.size = lru_.size();
        st.capacity = capacity_;
        return st;
    }

    void clear() {
        const std::lock_guard lock(mu_);
        lru_.clear();
        index_.clear();
        hits_ = 0;
        misses_ = 0;
    }

  private:
    struct Key {
        std::uint64_t hash;
        std::uint64_t len;
        bool operator==(const Key& o) const { return hash == o.hash && len == o.len; }
        template <typename H>
        friend H AbslHashValue(H h, const Key& k) {
            return H::combine(std::move(h), k.hash, k.len);
        }
    };
    struct Entry {
        Key key;
        std::size_t value;
    };

    const std::size_t capacity_;
    std::mutex mu_;
    std::list<Entry> lru_;  // most recent first
    absl::flat_hash_map<Key, std::list<Entry>::iterator> index_;
    std::uint64_t hits_ = 0;
    std::uint64_t misses_ = 0;
};

// Per-thread direct-mapped cache of pieces -> ids for one tokenizer. Natural text repeats its
// pieces (Zipf), so most lookups hit this table instead of the vocabulary map, and repeated
// non-token pieces skip the merge. Scripts written without spaces (Thai, Lao, Khmer, CJK) make
// long pieces, and scripts the vocabulary has few merges for (Georgian, Armenian, Ethiopic in
// cl100k) many ids per piece, so entries are variable-sized: a slot points into two arenas
// (bytes, ids). When an arena is full the whole cache starts over (an epoch), which bounds the
// memory (~2.4 MB per thread and tokenizer) without per-entry bookkeeping.
struct PieceCache {
    static constexpr std::size_t kSlots = 16384;  // at most; a power of two
    // A new cache gets slots for the text that makes it (about one per two bytes, at least
    // kMinSlots), and grows fourfold whenever its entries reach a quarter of its slots: glibc
    // hands a new thread reused heap memory, so calloc clears the whole table, and at full size
    // that memset (384 KB, ~35 us) was a sixth of the time of a 2,000-character text on a new
    // thread and pushed the vocabulary's lines out of the caches. (Starting every cache small
    // and growing it cost more on long texts than the memset: rehashing, and collisions in the
    // small tables evicting recurring pieces.)
    static constexpr std::size_t kMinSlots = 1024;
    static constexpr std::size_t kMaxBytes = 512;
    static constexpr std::size_t kByteArena = std::size_t{1} << 20U;
    static constexpr std::size_t kIdArena = std::size_t{1} << 18U;
    struct Slot {
        std::uint64_t hash = 0;
        std::uint32_t bytes_at = 0;
        std::uint32_t ids_at = 0;
        std::uint16_t len = 0;  // 0 = empty (pieces are never empty)
        std::uint16_t n_ids = 0;
    };
    // calloc/malloc, not vectors: a new thread's cache costs no 2.4 MB memset, and pages are
    // only touched as entries fill them (all-zero slots are empty).
    struct Free {
        void operator()(void* p) const noexcept { std::free(p); }
    };
    template <class T>
    static std::unique_ptr<T[], Free> allocate(std::size_t n, bool zeroed) {
        void* p = zeroed ? std::calloc(n, sizeof(T)) : std::malloc(n * sizeof(T));
        if (p == nullptr) {
            throw std::bad_alloc();
        }
        return std::unique_ptr<T[], Free>(static_cast<T*>(p));
    }
    explicit PieceCache(std::size_t text_bytes) {
        std::size_t n = kMinSlots;
        while (n < kSlots && n < text_bytes / 2) {
            n *= 2;
        }
        slots = allocate<Slot>(n, true);
        set_mask = n / 2 - 1;
        grow_at = n < kSlots ? n / 4 : kNever;
    }

    std::unique_ptr<Slot[], Free> slots;
    std::size_t set_mask = 0;  // sets - 1; two ways per set
    std::size_t entries = 0;   // stored since the table was made or cleared
    static constexpr std::size_t kNever = std::numeric_limits<std::size_t>::max();
    std::size_t grow_at = kNever;  // entries that make the table grow
    std::unique_ptr<char[], Free> bytes = allocate<char>(kByteArena, false);
    std::unique_ptr<Rank[], Free> ids = allocate<Rank>(kIdArena, false);
    std::size_t bytes_used = 0;
    std::size_t ids_used = 0;
    // The ids of the piece being encoded (kept here, not in a thread_local of its own: this
    // struct is already per thread, and each thread_local costs a TLS lookup in a shared object).
    std::vector<Rank> fresh;

    [[nodiscard]] std::size_t n_slots() const { return 2 * (set_mask + 1); }

    // Stores the piece in the first way of its set (the caller moved that way's entry to the
    // second way).
    [[gnu::always_inline]] void store(std::uint64_t hash, std::string_view piece, const Rank* id,
                                      std::size_t n_ids) {
        if (bytes_used + piece.size() > kByteArena || ids_used + n_ids > kIdArena) {
            std::fill(slots.get(), slots.get() + n_slots(), Slot{});
            bytes_used = 0;
            ids_used = 0;
            entries = 0;
        } else if (entries >= grow_at) {
            grow();
            Slot* const set = &slots[(hash & set_mask) * 2];
            set[1] = set[0];
        }
        ++entries;
        Slot& slot = slots[(hash & set_mask) * 2];
        slot.hash = hash;
        slot.bytes_at = static_cast<std::uint32_t>(bytes_used);
        slot.ids_at = static_cast<std::uint32_t>(ids_used);
        slot.len = static_cast<std::uint16_t>(piece.size());
        slot.n_ids = static_cast<std::uint16_t>(n_ids);
        copy_short(piece, bytes.get() + bytes_used);
        if (n_ids == 1) {
            ids[ids_used] = *id;
        } else {
            std::copy_n(id, n_ids, ids.get() + ids_used);
        }
        bytes_used += piece.size();
        ids_used += n_ids;
    }

    // Copies the piece's bytes to `to`. Pieces of up to 16 bytes (most of them) as two
    // overlapping words, inline: the library call of std::copy cost more than the bytes.
    static void copy_short(std::string_view piece, char* to) {
        const std::size_t n = piece.size();
        const char* from = piece.data();
        auto move = [&](std::size_t at, auto word) {
            std::memcpy(&word, from + at, sizeof word);
            std::memcpy(to + at, &word, sizeof word);
        };
        if (n >= 8 && n <= 16) {
            move(0, std::uint64_t{});
            move(n - 8, std::uint64_t{});
        } else if (n >= 4 && n < 8) {
            move(0, std::uint32_t{});
            move(n - 4, std::uint32_t{});
        } else if (n < 4) {
            for (std::size_t i = 0; i < n; ++i) {
                to[i] = from[i];
            }
        } else {
            std::copy(piece.begin(), piece.end(), to);
        }
    }

    // Four times the slots; the entries move over (second ways first, so that each set keeps
    // its newest entry first), dropping those that collide.
    [[gnu::noinline]] void grow() {
        const std::size_t old_slots = n_slots();
        const std::unique_ptr<Slot[], Free> old = std::move(slots);
        slots = allocate<Slot>(old_slots * 4, true);
        set_mask = old_slots * 2 - 1;
        grow_at = n_slots() < kSlots ? n_slots() / 4 : kNever;
        entries = 0;
        for (std::size_t way = 2; way-- > 0;) {
            for (std::size_t k = way; k < old_slots; k += 2) {
                const Slot& e = old[k];
                if (e.len == 0) {
                    continue;
                }
                Slot* const set = &slots[(e.hash & set_mask) * 2];
                if (set[0].len != 0) {
                    set[1] = set[0];
                } else {
                    ++entries;
                }
                set[0] = e;
            }
        }
    }
};

std::atomic<std::uint64_t> g_next_instance_id{1};

struct VectorSink {
    std::vector<Rank>* out;
    void push(Rank r) const { out->push_back(r); }
    void push_n(const Rank* r, std::size_t n) const {
        if (n == 1) {
            out->push_back(*r);  // most cached pieces are one token: no memmove call
        } else {
            out->insert(out->end(), r, r + n);
        }
    }
};

struct CountSink {
    std::size_t n = 0;
    void push(Rank /*r*/) { ++n; }
    void push_n(const Rank* /*r*/, std::size_t k) { n += k; }
};

}  // namespace

struct BpeTokenizer::Impl {
    std::vector<RankedToken> mergeable;
    std::vector<RankedToken> specials;
    PatternFamily family;
    BytesMap encoder;          // mergeable bytes -> rank
    BytesMap special_encoder;  // special text -> id
    std::array<Rank, 256> byte_rank{};
    // Rank of every two-byte string (kNoRank if not a token): the first round of every merge
    // looks up all adjacent byte pairs, and a 256 KB table beats hashing for those.
    std::vector<Rank> byte_pair_rank = std::vector<Rank>(std::size_t{1} << 16U, kNoRank);
    std::vector<std::string_view> decoder;  // id -> bytes; empty = no such id
    std::size_t n_vocab = 0;
    std::size_t max_token_len = 0;  // longest mergeable token, in bytes
    mutable CountMemo memo;
    // Linear-time merge for long pieces (null or !usable(): the heap merge instead).
    std::unique_ptr<BacktrackEncoder> backtrack;
    // Identifies this vocabulary in the per-thread piece caches (never reused).
    const std::uint64_t instance_id = g_next_instance_id.fetch_add(1);

    Impl(std::vector<RankedToken> m, std::vector<RankedToken> s, PatternFamily f,
         std::size_t memo_capacity)
        : mergeable(std::move(m)), specials(std::move(s)), family(f), memo(memo_capacity) {
        if (f != PatternFamily::kR50k && f != PatternFamily::kCl100k &&
            f != PatternFamily::kO200k) {
            throw InvalidArgument("unknown pattern family " +
                                  std::to_string(static_cast<unsigned>(f)));
        }
        if (mergeable.empty()) {
            throw RankFileError("the vocabulary (mergeable ranks) is empty");
        }
        Rank max_id = 0;
        for (const auto& [bytes, rank] : mergeable) {
            if (rank >= kMaxId) {
                throw InvalidArgument("token rank " + std::to_string(rank) +
                                      " is too large (ranks must be below 2^24)");
            }
            if (bytes.empty()) {
                throw RankFileError("the vocabulary contains an empty token (rank " +
                                    std::to_string(rank) + ")");
            }
            max_id = std::max(max_id, rank);
        }
        for (const auto& [text, id] : specials) {
            if (id >= kMaxId) {
                throw InvalidArgument("special token id " + std::to_string(id) +
                                      " is too large (ids must be below 2^24)");
            }
            if (text.empty()) {
                throw InvalidArgument("special token with id " + std::to_string(id) +
                                      " is the empty string");
            }
            max_id = std::max(max_id, id);
        }
        n_vocab = std::size_t{max_id} + 1;
        decoder.assign(n_vocab, std::string_view{});
        encoder.reserve(mergeable.size());
        for (const auto& [bytes, rank] : mergeable) {
            if (!decoder[rank].empty()) {
                throw RankFileError("duplicate rank " + std::to_string(rank) +
                                    " in the vocabulary");
            }
            decoder[rank] = bytes;
            max_token_len = std::max(max_token_len, bytes.size());
            if (!encoder.try_emplace(bytes, rank).second) {
                throw RankFileError("duplicate token in the vocabulary (ranks " +
                                    std::to_string(encoder.find(bytes)->second) + " and " +
                                    std::to_string(rank) + ")");
            }
        }
        for (unsigned b = 0; b < 256; ++b) {
            const char c = static_cast<char>(b);
            const auto it = encoder.find(std::string_view(&c, 1));
            if (it == encoder.end()) {
                throw RankFileError("byte " + hex_byte(b) +
                                    " is not a token; byte-level BPE needs all 256 single bytes "
                                    "in the vocabulary");
            }
            byte_rank[b] = it->second;
        }
        for (const auto& [bytes, rank] : mergeable) {
            if (bytes.size() == 2) {
                byte_pair_rank[pair_index(bytes[0], bytes[1])] = rank;
            }
        }
        for (const auto& [text, id] : specials) {
            if (!decoder[id].empty()) {
                throw InvalidArgument("special token '" + text + "' has id " + std::to_string(id) +
                                      ", which is already taken by " +
                                      (special_encoder.contains(decoder[id])
                                           ? std::string("another special token")
                                           : std::string("a mergeable token")));
            }
            if (!special_encoder.try_emplace(text, id).second) {
                throw InvalidArgument("duplicate special token '" + text + "'");
            }
            decoder[id] = text;
        }
        std::vector<std::string_view> mergeable_by_id(n_vocab);
        for (const auto& [bytes, rank] : mergeable) {
            mergeable_by_id[rank] = bytes;
        }
        backtrack = std::make_unique<BacktrackEncoder>(mergeable_by_id);
        std::size_t n_short = 0;
        for (const auto& [bytes, rank] : mergeable) {
            n_short += bytes.size() <= ShortSlot::kMaxLen ? std::size_t{1} : std::size_t{0};
        }
        std::size_t capacity = 16;
        unsigned bits = 4;
        while (capacity < 2 * n_short) {  // at most half full
            capacity *= 2;
            ++bits;
        }
        short_tokens.assign(capacity, ShortSlot{});
        short_shift = 64U - bits;
        for (const auto& [bytes, rank] : mergeable) {
            if (bytes.size() > ShortSlot::kMaxLen) {
                continue;
            }
            const std::size_t mask = short_tokens.size() - 1;
            std::size_t i = short_index(BytesHash{}(bytes));
            while (short_tokens[i].len != 0) {
                i = (i + 1) & mask;
            }
            ShortSlot& slot = short_tokens[i];
            slot.rank = rank;
            slot.len = static_cast<std::uint8_t>(bytes.size());
            std::copy(bytes.begin(), bytes.end(), slot.bytes.begin());
        }
    }

    // The tokens of up to 11 bytes (nearly all the vocabulary's, and the length of most pieces)
    // with their bytes inline, in an open-addressing table of 16-byte slots: a lookup of a
    // piece reads one slot, where the vocabulary map reads its control bytes, its slot and the
    // token's bytes elsewhere (three lines, each a miss for a piece not seen before: the cold
    // path of Latin-script text looks up every distinct piece). 8 MB for o200k_base.
    struct ShortSlot {
        static constexpr std::size_t kMaxLen = 11;
        Rank rank = 0;
        std::uint8_t len = 0;  // 0 = empty
        std::array<char, kMaxLen> bytes{};
    };
    static_assert(sizeof(ShortSlot) == 16);
    std::vector<ShortSlot> short_tokens = std::vector<ShortSlot>(1);  // finds nothing
    unsigned short_shift = 63;
    [[nodiscard]] std::size_t short_index(std::uint64_t hash) const {
        return static_cast<std::size_t>(hash >> short_shift) & (short_tokens.size() - 1);
    }
    // Whether the slot holds `bytes` (1 <= size <= kMaxLen): two overlapping word compares.
    static bool short_equal(const ShortSlot& slot, std::string_view bytes) {
        const std::size_t n = bytes.size();
        if (slot.len != n) {
            return false;
        }
        auto load = [](const char* p, auto width) {
            decltype(width) v = 0;
            std::memcpy(&v, p, sizeof v);
            return v;
        };
        const char* a = slot.bytes.data();
        const char* b = bytes.data();
        if (n >= 8) {
            return load(a, std::uint64_t{}) == load(b, std::uint64_t{}) &&
                   load(a + n - 8, std::uint64_t{}) == load(b + n - 8, std::uint64_t{});
        }
        if (n >= 4) {
            return load(a, std::uint32_t{}) == load(b, std::uint32_t{}) &&
                   load(a + n - 4, std::uint32_t{}) == load(b + n - 4, std::uint32_t{});
        }
        return a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1];
    }

    static std::size_t pair_index(char a, char b) {
        return (std::size_t{static_cast<unsigned char>(a)} << 8U) | static_cast<unsigned char>(b);
    }

    [[nodiscard]] Rank rank_of(std::string_view bytes) const {
        const auto it = encoder.find(bytes);
        return it == encoder.end() ? kNoRank : it->second;
    }

    // rank_of with the bytes' BytesHash already computed (the piece cache hashes each piece
    // with the same function, so a piece it misses is not hashed twice).
    [[nodiscard]] Rank rank_of(std::string_view bytes, std::size_t hash) const {
        if (bytes.size() <= ShortSlot::kMaxLen) {
            const std::size_t mask = short_tokens.size() - 1;
            for (std::size_t i = short_index(hash);; i = (i + 1) & mask) {
                const ShortSlot& slot = short_tokens[i];
                if (slot.len == 0) {
                    return kNoRank;
                }
                if (short_equal(slot, bytes)) {
                    return slot.rank;
                }
            }
        }
        const auto it = encoder.find(bytes, hash);
        return it == encoder.end() ? kNoRank : it->second;
    }

    // tiktoken's array merge for short pieces (2 <= size <= kSmallPiece).
    template <class Sink>
    [[gnu::noinline]] void merge_small(std::string_view piece, Sink& sink) const {
        const std::size_t n = piece.size();
        std::array<std::uint32_t, kSmallPiece + 1> start;  // start[k]: offset of part k
        std::array<Rank, kSmallPiece> pair;                // rank of part k + part k+1
        std::array<Rank, kSmallPiece> id;                  // token of part k
        for (std::size_t k = 0; k < n; ++k) {
            start[k] = static_cast<std::uint32_t>(k);
            id[k] = byte_rank[static_cast<unsigned char>(piece[k])];
        }
        start[n] = static_cast<std::uint32_t>(n);
        std::size_t m = n;  // number of parts
        const BacktrackEncoder* pairs = backtrack->usable() ? backtrack.get() : nullptr;
        Rank best = kNoRank;
        std::size_t best_k = 0;
        for (std::size_t k = 0; k + 1 < m; ++k) {
            pair[k] = byte_pair_rank[pair_index(piece[k], piece[k + 1])];
            if (pair[k] < best) {
                best = pair[k];
                best_k = k;
            }
        }
        pair[m - 1] = kNoRank;
        while (best != kNoRank) {
            const std::size_t k = best_k;
            id[k] = best;
            // Remove part k+1.
            for (std::size_t q = k + 1; q + 1 < m; ++q) {
                start[q] = start[q + 1];
                pair[q] = pair[q + 1];
                id[q] = id[q + 1];
            }
            start[m - 1] = start[m];
            --m;
            if (pairs != nullptr) {
                // By part ids (an in-cache filter, then an integer map) instead of hashing and
                // comparing the concatenated bytes: the vocabulary map's probes are cache misses.
                if (k > 0) {
                    pair[k - 1] = pairs->merged(id[k - 1], id[k]);
                }
                pair[k] = k + 1 < m ? pairs->merged(id[k], id[k + 1]) : kNoRank;
            } else {
                if (k > 0) {
                    pair[k - 1] = rank_of(piece.substr(start[k - 1], start[k + 1] - start[k - 1]));
                }
                pair[k] =
                    k + 1 < m ? rank_of(piece.substr(start[k], start[k + 2] - start[k])) : kNoRank;
            }
            best = kNoRank;
            for (std::size_t q = 0; q + 1 < m; ++q) {
                if (pair[q] < best) {
                    best = pair[q];
                    best_k = q;
                }
            }
        }
        for (std::size_t k = 0; k < m; ++k) {
            sink.push(id[k]);
        }
    }

    // merge_small for pieces of 2..kTinyPiece bytes when the backtracking encoder's id-pair
    // table is usable, with the same merges in the same order. Each part keeps the offset of its
    // first byte as its index (a merge clears the right part's bit in `live` instead of shifting
    // three arrays down), and the next pair to merge is the minimum of 16 keys, rank << 4 |
    // offset (lowest rank, leftmost on ties), in one branch-free pass that the compiler
    // vectorises, where merge_small shifts, rescans and branches per part. The pieces of
    // Latin-script words that are not tokens spent about half of merge_small's instructions on
    // that bookkeeping (callgrind, German in o200k_base).
    static constexpr std::size_t kTinyPiece = 16;
    static constexpr std::size_t kTinyAbove = 6;
    static_assert(kTinyPiece == 16, "offsets are kept in the keys' low four bits; min16");

    // The least of 16 keys. With SSE2 (every x86-64) in ~20 instructions: GCC 12 does not
    // vectorise the plain loop (no signed 32-bit min before SSE4.1), which then cost merge_tiny
    // more than merge_small's shifting saved.
    static std::int32_t min16(const std::array<std::int32_t, 16>& key) {
#if defined(__SSE2__)
        auto vmin = [](__m128i a, __m128i b) {
            const __m128i a_less = _mm_cmplt_epi32(a, b);
            return _mm_or_si128(_mm_and_si128(a_less, a), _mm_andnot_si128(a_less, b));
        };
        auto load = [&](std::size_t at) {
            return _mm_loadu_si128(reinterpret_cast<const __m128i*>(key.data() + at));
        };
        __m128i m = vmin(vmin(load(0), load(4)), vmin(load(8), load(12)));
        m = vmin(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
        m = vmin(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
        return _mm_cvtsi128_si32(m);
#else
        std::int32_t best = key[0];
        for (const std::int32_t k : key) {
            best = std::min(best, k);
        }
        return best;
#endif
    }
    // Out of line, as merge_small: inlined into the piece loop, the merges made the compiler
    // lay out the cache-hit path and the piece hash worse (+20% instructions in XXH3).
    template <class Sink>
    [[gnu::noinline]] void merge_tiny(std::string_view piece, Sink& sink) const {
        // Signed keys: SSE2 has a signed 32-bit compare, so the minimum vectorises without
        // SSE4.1. Ranks are below 2^21 (BacktrackEncoder::usable()), so a key is below 2^25.
        constexpr std::int32_t kDead = std::numeric_limits<std::int32_t>::max();
        const std::size_t n = piece.size();
        const auto* p = reinterpret_cast<const unsigned char*>(piece.data());
        std::array<Rank, kTinyPiece> id;
        std::array<std::int32_t, kTinyPiece> key;
        key.fill(kDead);
        for (std::size_t k = 0; k < n; ++k) {
            id[k] = byte_rank[p[k]];
        }
        auto key_of = [](Rank rank, std::size_t k) {
            return rank == kNoRank ? kDead : static_cast<std::int32_t>((rank << 4U) | k);
        };
        for (std::size_t k = 0; k + 1 < n; ++k) {
            key[k] = key_of(byte_pair_rank[(std::size_t{p[k]} << 8U) | p[k + 1]], k);
        }
        const BacktrackEncoder& pairs = *backtrack;
        std::uint32_t live = (std::uint32_t{1} << n) - 1;  // bit k: a part starts at byte k
        while (true) {
            const std::int32_t best = min16(key);
            if (best == kDead) {
                break;
            }
            const auto k = static_cast<unsigned>(best) & 15U;
            const std::uint32_t after = live & ~((2U << k) - 1U);  // parts right of part k
            const auto right = static_cast<unsigned>(__builtin_ctz(after));  // its partner
            live &= ~(1U << right);
            key[right] = kDead;
            id[k] = static_cast<Rank>(best) >> 4U;
            if (const std::uint32_t beyond = after & (after - 1U); beyond != 0) {
                const auto next = static_cast<unsigned>(__builtin_ctz(beyond));
                key[k] = key_of(pairs.merged(id[k], id[next]), k);
            } else {
                key[k] = kDead;
            }
            if (const std::uint32_t before = live & ((1U << k) - 1U); before != 0) {
                const auto prev = 31U - static_cast<unsigned>(__builtin_clz(before));
                key[prev] = key_of(pairs.merged(id[prev], id[k]), prev);
            }
        }
        for (; live != 0; live &= live - 1U) {
            sink.push(id[static_cast<unsigned>(__builtin_ctz(live))]);
        }
    }

    // Heap + linked-list merge for long pieces; same merge order as merge_small.
    //
    // Heap entries pack (rank << 32 | start offset), so the smallest entry is the lowest rank,
    // leftmost on ties. An entry is current iff pair_rank[start] still equals its rank: the span
    // of the pair starting at a live offset only ever grows, and distinct spans starting there
    // are distinct byte strings with distinct ranks, so a rank never recurs at an offset; merged
    // away parts get kNoRank.
    template <class Sink>
    void merge_large(std::string_view piece, Sink& sink) const {
        const auto n = static_cast<std::uint32_t>(piece.size());
        constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();
        std::vector<std::uint32_t> next(n);
        std::vector<std::uint32_t> prev(n);
        std::vector<Rank> pair_rank(n, kNoRank);
        std::vector<Rank> id(n);
        std::vector<std::uint64_t> heap;
        heap.reserve(n);
        const auto later = std::greater<>();
        for (std::uint32_t k = 0; k < n; ++k) {
            next[k] = k + 1;
            prev[k] = k == 0 ? kNone : k - 1;
            id[k] = byte_rank[static_cast<unsigned char>(piece[k])];
        }
        // Part k spans [k, next[k]); its pair with the following part spans [k, next[next[k]]).
        auto update_pair = [&](std::uint32_t k, bool push) {
            const std::uint32_t r = next[k];
            Rank rank = kNoRank;
            if (r < n && next[r] - k <= max_token_len) {
                rank = rank_of(piece.substr(k, next[r] - k));
            }
            pair_rank[k] = rank;
            if (rank != kNoRank) {
                heap.push_back((std::uint64_t{rank} << 32U) | k);
                if (push) {
                    std::push_heap(heap.begin(), heap.end(), later);
                }
            }
        };
        for (std::uint32_t k = 0; k + 1 < n; ++k) {
            update_pair(k, false);
        }
        std::make_heap(heap.begin(), heap.end(), later);
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), later);
            const std::uint64_t top = heap.back();
            heap.pop_back();
            const auto k = static_cast<std::uint32_t>(top & 0xFFFFFFFFU);
            const auto rank = static_cast<Rank>(top >> 32U);
            if (pair_rank[k] != rank) {
                continue;  // stale
            }
            const std::uint32_t r = next[k];
            id[k] = rank;
            next[k] = next[r];
            if (next[r] < n) {
                prev[next[r]] = k;
            }
            pair_rank[r] = kNoRank;  // part r no longer exists
            update_pair(k, true);
            if (prev[k] != kNone) {
                update_pair(prev[k], true);
            }
        }
        for (std::uint32_t k = 0; k < n; k = next[k]) {
            sink.push(id[k]);
        }
    }

    static std::size_t backtrack_above(std::string_view piece) {
        const bool non_ascii = static_cast<unsigned char>(piece[0]) >= 0x80U ||
                               static_cast<unsigned char>(piece[1]) >= 0x80U;
        return non_ascii ? kBacktrackAboveNonAscii : kBacktrackAbove;
    }

    template <class Sink>
    void encode_piece(std::string_view piece, Sink& sink) const {
        if (piece.size() == 1) {
            sink.push(byte_rank[static_cast<unsigned char>(piece[0])]);
            return;
        }
        if (piece.size() <= max_token_len) {
            if (const Rank r = rank_of(piece); r != kNoRank) {
                sink.push(r);
                return;
            }
        }
        encode_non_token(piece, sink);
    }

    // encode_piece for a piece of two or more bytes that is not itself a token.
    template <class Sink>
    void encode_non_token(std::string_view piece, Sink& sink) const {
        if (piece.size() > kTinyAbove && piece.size() <= backtrack_above(piece) &&
            backtrack->usable()) {
            merge_tiny(piece, sink);
        } else if (piece.size() <= backtrack_above(piece) ||
                   (piece.size() <= kSmallPiece && !backtrack->usable())) {
            merge_small(piece, sink);
        } else if (backtrack->usable()) {
            if constexpr (std::is_same_v<Sink, VectorSink>) {
                backtrack->encode(piece, *sink.out);  // straight into the result
            } else {
                thread_local std::vector<Rank> ids;
                ids.clear();
                backtrack->encode(piece, ids);
                for (const Rank r : ids) {
                    sink.push(r);
                }
            }
        } else {
            merge_large(piece, sink);
        }
    }

    // This thread's piece cache for this tokenizer (a few tokenizers per thread are kept; the
    // least recently used one is dropped).
    // `text_bytes`: the size of the text that asks, which sizes a new cache.
    [[nodiscard]] PieceCache& thread_cache(std::size_t text_bytes) const {
        constexpr std::size_t kMaxCachesPerThread = 4;
        struct Caches {
            std::array<std::uint64_t, kMaxCachesPerThread> owner{};
            std::array<std::uint64_t, kMaxCachesPerThread> last_use{};
            std::array<std::unique_ptr<PieceCache>, kMaxCachesPerThread> cache;
            std::uint64_t tick = 0;
        };
        thread_local Caches caches;
        ++caches.tick;
        std::size_t victim = 0;
        for (std::size_t i = 0; i < kMaxCachesPerThread; ++i) {
            if (caches.owner[i] == instance_id && caches.cache[i] != nullptr) {
                caches.last_use[i] = caches.tick;
                return *caches.cache[i];
            }
            if (caches.last_use[i] < caches.last_use[victim]) {
                victim = i;
            }
        }
        caches.cache[victim] = std::make_unique<PieceCache>(text_bytes);
        caches.owner[victim] = instance_id;
        caches.last_use[victim] = caches.tick;
        return *caches.cache[victim];
    }

    template <class Sink>
    void encode_piece_cached(std::string_view piece, PieceCache& cache, Sink& sink) const {
        if (piece.size() == 1) {
            sink.push(byte_rank[static_cast<unsigned char>(piece[0])]);
            return;
        }
        if (piece.size() > PieceCache::kMaxBytes) {
            encode_piece(piece, sink);
            return;
        }
        const std::uint64_t hash = BytesHash{}(piece);  // also the vocabulary map's hash
        // Two ways per set: a direct-mapped table loses 3-6% more pieces of natural text to
        // collisions (two recurring pieces evicting each other), each a full merge again.
        PieceCache::Slot* const set = &cache.slots[(hash & cache.set_mask) * 2];
        for (std::size_t way = 0; way < 2; ++way) {
            const PieceCache::Slot& s = set[way];
            if (s.hash == hash && s.len == piece.size() &&
                BytesEq{}(std::string_view(cache.bytes.get() + s.bytes_at, s.len), piece)) {
                sink.push_n(cache.ids.get() + s.ids_at, s.n_ids);
                return;
            }
        }
        set[1] = set[0];  // the newer entry moves to the second way; the older one is dropped
        if (piece.size() <= max_token_len) {
            if (const Rank r = rank_of(piece, static_cast<std::size_t>(hash)); r != kNoRank) {
                sink.push(r);
                cache.store(hash, piece, &r, 1);
                return;
            }
        }
        std::vector<Rank>& fresh = cache.fresh;
        fresh.clear();
        VectorSink into{&fresh};
        encode_non_token(piece, into);
        sink.push_n(fresh.data(), fresh.size());
        cache.store(hash, piece, fresh.data(), fresh.size());
    }

    // Encodes one haystack (text between special tokens) ordinarily.
    template <class Sink>
    void encode_segment(std::string_view segment, Sink& sink) const {
        thread_local std::vector<Piece> pieces;
        PieceCache& cache = thread_cache(segment.size());
        std::size_t pos = 0;
        while (pos < segment.size()) {
            pieces.clear();
            pos = pretokenize_from(family, segment, pos, kPieceChunk, pieces);
            for (const Piece& p : pieces) {
                encode_piece_cached(segment.substr(p.begin, p.end - p.begin), cache, sink);
            }
        }
    }

    [[nodiscard]] std::vector<Rank> encode_ordinary(std::string_view text) const {
        std::vector<Rank> out;
        out.reserve(text.size() / 4 + 1);
        VectorSink sink{&out};
        encode_segment(text, sink);
        return out;
    }

    [[nodiscard]] std::size_t count_uncached(std::string_view text) const {
        CountSink sink;
        encode_segment(text, sink);
        return sink.n;
    }
};

BpeTokenizer::BpeTokenizer(std::vector<RankedToken> mergeable_ranks,
                           std::vector<RankedToken> special_tokens, PatternFamily family,
                           std::size_t memo_capacity)
    : impl_(std::make_unique<Impl>(std::move(mergeable_ranks), std::move(special_tokens), family,
                                   memo_capacity)) {}

BpeTokenizer::~BpeTokenizer() = default;
BpeTokenizer::BpeTokenizer(BpeTokenizer&&) noexcept = default;
BpeTokenizer& BpeTokenizer::operator=(BpeTokenizer&&) noexcept = default;

std::vector<Rank> BpeTokenizer::encode_ordinary(std::string_view text) const {
    return impl_->encode_ordinary(text);
}

std::vector<Rank> BpeTokenizer::encode(std::string_view text,
                                       const std::vector<std::string>& allowed,
                                       const std::vector<std::string>& disallowed) const {
    if (!disallowed.empty()) {
        StringSet bad;
        for (const std::string& s : disallowed) {
            bad.add(s, 0);
        }
        const StringSet::Match m = bad.find(text, 0);
        if (m.pos != std::string_view::npos) {
            throw DisallowedSpecialToken(std::string(text.substr(m.pos, m.len)));
        }
    }
    StringSet ok;
    for (const std::string& s : allowed) {
        const auto it = impl_->special_encoder.find(s);
        if (it != impl_->special_encoder.end()) {
            ok.add(it->first, it->second);
        }
    }
    if (ok.empty()) {
        return impl_->encode_ordinary(text);
    }
    std::vector<Rank> out;
    out.reserve(text.size() / 4 + 1);
    VectorSink sink{&out};
    std::size_t pos = 0;
    while (true) {
        const StringSet::Match m = ok.find(text, pos);
        const std::size_t seg_end = m.pos == std::string_view::npos ? text.size() : m.pos;
        impl_->encode_segment(text.substr(pos, seg_end - pos), sink);
        if (m.pos == std::string_view::npos) {
            break;
        }
        out.push_back(m.id);
        pos = m.pos + m.len;
    }
    return out;
}

std::size_t BpeTokenizer::count(std::string_view text) const {
    CountMemo& memo = impl_->memo;
    if (!memo.enabled()) {
        return impl_->count_uncached(text);
    }
    const std::uint64_t hash = XXH3_64bits(text.data(), text.size());
    std::size_t n = 0;
    if (memo.get(hash, text.size(), n)) {
        return n;
    }
    n = impl_->count_uncached(text);
    memo.put(hash, text.size(), n);
    return n;
}

std::vector<std::size_t> BpeTokenizer::count_batch(std::span<const std::string_view> texts,
                                                   unsigned threads) const {
    std::vector<std::size_t> out(texts.size(), 0);
    unsigned n_threads = threads != 0 ? threads : std::max(1U, std::thread::hardware_concurrency());
    n_threads = static_cast<unsigned>(std::min<std::size_t>(n_threads, texts.size()));
    if (n_threads <= 1) {
        for (std::size_t i = 0; i < texts.size(); ++i) {
            out[i] = count(texts[i]);
        }
        return out;
    }
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex error_mu;
    std::exception_ptr error;
    auto work = [&] {
        while (!stop.load(std::memory_order_relaxed)) {
            const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
            if (i >= texts.size()) {
                return;
            }
            try {
                out[i] = count(texts[i]);
            } catch (...) {
                const std::lock_guard lock(error_mu);
                if (!error) {
                    error = std::current_exception();
                }
                stop.store(true, std::memory_order_relaxed);
            }
        }
    };
    {
        std::vector<std::jthread> pool;
        pool.reserve(n_threads - 1);
        try {
            for (unsigned t = 0; t + 1 < n_threads; ++t) {
                pool.emplace_back(work);
            }
        } catch (...) {
            stop.store(true, std::memory_order_relaxed);
            throw;  // the started threads are joined by ~jthread
        }
        work();
    }
    if (error) {
        std::rethrow_exception(error);
    }
    return out;
}

std::string BpeTokenizer::decode_bytes(std::span<const Rank> ids) const {
    const auto& dec = impl_->decoder;
    std::size_t total = 0;
    for (const Rank id : ids) {
        if (id >= dec.size() || dec[id].empty()) {
            throw UnknownTokenId("unknown token id " + std::to_string(id));
        }
        total += dec[id].size();
    }
    std::string out;
    out.reserve(total);
    for (const Rank id : ids) {
        out.append(dec[id]);
    }
    return out;
}

std::string BpeTokenizer::token_bytes(Rank id) const {
    const auto& dec = impl_->decoder;
    if (id >= dec.size() || dec[id].empty()) {
        throw UnknownTokenId("unknown token id " + std::to_string(id));
    }
    return std::string(dec[id]);
}

std::size_t BpeTokenizer::truncate_point(std::string_view text, std::size_t max_tokens) const {
    if (max_tokens == 0 || text.empty()) {
        return 0;
    }
    auto char_floor = [&](std::size_t cut) {
        while (cut > 0 && cut < text.size() &&
               (static_cast<unsigned char>(text[cut]) & 0xC0U) == 0x80U) {
            --cut;
        }
        return cut;
    };
    std::size_t cut = text.size();
    std::vector<Rank> ids = impl_->encode_ordinary(text);
    while (ids.size() > max_tokens) {
        // Byte end of the max_tokens-th token, backed off to a character boundary.
        std::size_t end = 0;
        for (std::size_t k = 0; k < max_tokens; ++k) {
            end += impl_->decoder[ids[k]].size();
        }
        std::size_t next_cut = char_floor(std::min(end, cut));
        if (next_cut >= cut) {
            // No progress (cannot happen for valid UTF-8): drop one more character.
            next_cut = char_floor(cut - 1);
        }
        cut = next_cut;
        if (cut == 0) {
            return 0;
        }
        ids = impl_->encode_ordinary(text.substr(0, cut));
    }
    return cut;
}

std::size_t BpeTokenizer::n_vocab() const noexcept { return impl_->n_vocab; }

PatternFamily BpeTokenizer::family() const noexcept { return impl_->family; }

const std::vector<RankedToken>& BpeTokenizer::special_tokens() const noexcept {
    return impl_->specials;
}

MemoStats BpeTokenizer::memo_stats() const { return impl_->memo.stats(); }

void BpeTokenizer::clear_memo() const { impl_->memo.clear(); }

}  // namespace relay::tokenizer
