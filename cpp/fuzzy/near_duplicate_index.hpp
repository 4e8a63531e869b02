// Near-duplicate index: MinHash signatures of character shingles, banded into an LSH table for
// candidates, every candidate verified by the exact Jaccard similarity of the shingle sets.
//
// A text's shingles are its substrings of `shingle_size` code points (a text shorter than that
// is one shingle; the empty text has none). Two texts with Jaccard similarity s share one band
// of `rows = num_perm / bands` MinHash values with probability s^rows, so they become candidates
// with probability 1 - (1 - s^rows)^bands (candidate_probability): high above the S-curve's
// threshold (~ (1 / bands)^(1 / rows)), low below it. Results are precise (each is verified);
// recall is that probability. More bands (fewer rows) raise recall at lower similarities and
// cost more candidates per query; more permutations cost more hashing per add/query.
//
// Thread-safe: queries share a lock, add/remove take it exclusively; hashing happens outside it.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzzy/similarity.hpp"

namespace relay::fuzzy {

struct NearDuplicateOptions {
    std::size_t shingle_size = 3;  // code points per shingle, 1..64
    std::size_t num_perm = 64;     // MinHash values per text, 1..1024
    std::size_t bands = 16;        // LSH bands; must divide num_perm
    std::uint64_t seed = 0x5EED5EED;
};

struct NearDuplicate {
    std::string key;
    double score = 0.0;  // exact Jaccard similarity of the shingle sets
};

// The sorted, deduplicated shingles of `text` as 64-bit codes. Shingles of up to 3 code points
// are packed losslessly (21 bits per code point), so equal codes mean equal shingles; longer
// shingles are hashed with XXH3-64 (a collision needs ~2^32 distinct shingles).
[[nodiscard]] std::vector<std::uint64_t> shingle_set(Text text, std::size_t shingle_size);

// |a & b| / |a | b| of two sorted sets; 1 when both are empty.
[[nodiscard]] double jaccard(std::span<const std::uint64_t> a, std::span<const std::uint64_t> b);

// Jaccard similarity of the shingle sets of two texts.
[[nodiscard]] double shingle_jaccard(Text a, Text b, std::size_t shingle_size);

// Probability that two texts of Jaccard similarity `similarity` become LSH candidates.
[[nodiscard]] double candidate_probability(double similarity, std::size_t bands, std::size_t rows);

class NearDuplicateIndex {
  public:
    struct Signature {
        std::vector<std::uint32_t> band_keys;
    };
    // What similar_earlier() found for a batch, with the texts and their signatures kept, so
    // that the ones chosen afterwards are added (add_from) without being signed again.
    struct EarlierBatch {
        TextBatch texts;
        std::vector<Signature> signatures;
        std::vector<std::vector<std::uint32_t>> similar;  // as similar_earlier() returns
        // collapse_earlier() only: per position, the later position it collapsed into, or
        // kNotCollapsed.
        std::vector<std::uint32_t> into;
    };
    static constexpr std::uint32_t kNotCollapsed = 0xFFFFFFFFU;

    // Throws relay::InvalidArgument on options out of range.
    explicit NearDuplicateIndex(NearDuplicateOptions options = {});

    // Adds `text` under `key`, replacing what `key` held before.
    void add(std::string key, Text text);
    // The same for many entries: signatures are computed on up to `threads` threads first.
    void add_many(std::span<const std::string> keys, const TextBatch& texts, unsigned threads = 1);
    // False when `key` was not present.
    bool remove(std::string_view key);
    void clear();

    // Every entry whose exact similarity to `text` is >= threshold among the LSH candidates,
    // best first (ties by key). `threshold` must be in (0, 1].
    [[nodiscard]] std::vector<NearDuplicate> query(Text text, double threshold) const;
    // For each of `texts`, the positions of the earlier texts that `query(text, threshold)`
    // would return were they stored (LSH candidates under this index's options whose shingle
    // Jaccard is >= threshold), ascending. The index itself is neither read nor changed: this
    // is "query, then add" over a sequence, with each text shingled and signed once.
    [[nodiscard]] std::vector<std::vector<std::uint32_t>> similar_earlier(const TextBatch& texts,
                                                                          double threshold) const;
    // similar_earlier() of `texts`, keeping them and their signatures for add_from().
    [[nodiscard]] EarlierBatch similar_earlier_kept(TextBatch texts, double threshold) const;
    // The near-duplicate rule of a conversation replayed over `texts` in order (what adding
    // them one at a time to an index of the survivors gives, as the context engine does): text
    // j collapses every earlier text i still live (not collapsed, not pinned) that is an LSH
    // candidate of it with shingle Jaccard >= `threshold` and ratio(texts[j], texts[i]) >=
    // `ratio_cutoff`, or that is the live text equal to it; then j is live unless pinned[j].
    // `signatures[j]` are text j's band keys when known (stored with it; see band_keys()),
    // else empty: then they are computed here. The ratio is checked before the Jaccard (the
    // outcome is their conjunction), so only the few pairs that pass it are shingled. Every
    // signature is kept, for add_from() of the survivors and for storing.
    [[nodiscard]] EarlierBatch collapse_earlier(TextBatch texts, std::vector<Signature> signatures,
                                                std::span<const std::uint8_t> pinned,
                                                double threshold, double ratio_cutoff) const;
    // The band keys of `text` (bands() values): what collapse_earlier() takes as known.
    [[nodiscard]] Signature signature(Text text) const { return sign(text); }
    // add() of batch.texts[positions[i]] under keys[i] for each i, with the kept signatures.
    void add_from(const EarlierBatch& batch, std::span<const std::uint32_t> positions,
                  std::span<const std::string> keys);

    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] bool contains(std::string_view key) const;
    [[nodiscard]] const NearDuplicateOptions& options() const noexcept { return options_; }
    [[nodiscard]] std::size_t rows() const noexcept { return rows_; }

  private:
    struct Entry {
        std::string key;
        std::string text_utf8;  // UTF-8 (any code point, lone surrogates included)
        bool live = false;
    };

    [[nodiscard]] Signature sign(Text text) const;
    [[nodiscard]] Signature sign_shingles(std::span<const std::uint64_t> shingles) const;
    [[nodiscard]] std::vector<std::vector<std::uint32_t>> find_earlier(
        const TextBatch& texts, double threshold, std::vector<Signature>* signatures) const;
    void insert_locked(std::string key, Text text, const Signature& signature);
    void link(std::uint32_t id);
    void unlink(std::uint32_t id);
    // Makes the table large enough for `extra` more entries.
    void grow_table_if_needed(std::size_t extra = 1);
    [[nodiscard]] std::size_t slot(std::uint32_t band_key) const noexcept {
        return band_key & (table_size_ - 1);
    }

    NearDuplicateOptions options_;
    std::size_t rows_;
    std::vector<std::uint64_t> perm_mul_;
    std::vector<std::uint64_t> perm_add_;

    mutable std::shared_mutex mutex_;
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> band_keys_;  // entries_.size() * bands
    std::vector<std::uint32_t> next_;       // chain links, same layout
    std::vector<std::uint32_t> heads_;      // bands * table_size_ chain heads
    std::size_t table_size_ = 0;
    std::vector<std::uint32_t> free_ids_;
    absl::flat_hash_map<std::string, std::uint32_t> ids_;
};

}  // namespace relay::fuzzy
