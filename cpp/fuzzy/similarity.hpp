// String similarity on Unicode code points, with the same scores as rapidfuzz.
//
// Distances use bit-parallel column updates: Hyyrö's formulation of Myers' algorithm for the
// Levenshtein distance and the Allison-Dix/Hyyrö bit-vector LCS for the Indel distance
// (insertions and deletions only: len(a) + len(b) - 2 * LCS). The shorter string is the
// "pattern"; strings longer than 64 code points use ceil(len / 64) machine words per column with
// carries between the words, so the cost is O(ceil(m / 64) * n) for lengths m <= n.
//
// Normalised scores and their cutoffs follow rapidfuzz 3 exactly (same formulas, same floating
// point operations), so `ratio(a, b) == rapidfuzz.fuzz.ratio(a, b)` bit for bit.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::fuzzy {

// Text as code points (a Python str converted once at the binding).
using Text = std::u32string_view;

inline constexpr std::size_t kNoLimit = std::numeric_limits<std::size_t>::max();

// --- raw distances ---------------------------------------------------------------------------

// Unit-cost Levenshtein distance. With `max_distance`, any result above it is reported as
// `max_distance + 1` (and the computation may stop early).
[[nodiscard]] std::size_t levenshtein_distance(Text a, Text b, std::size_t max_distance = kNoLimit);

// Length of the longest common subsequence.
[[nodiscard]] std::size_t lcs_length(Text a, Text b);

// Indel distance: len(a) + len(b) - 2 * LCS. Same `max_distance` convention as above.
[[nodiscard]] std::size_t indel_distance(Text a, Text b, std::size_t max_distance = kNoLimit);

// --- normalised scores (rapidfuzz semantics) -------------------------------------------------

// 1 - distance / max(len a, len b) in [0, 1]; 1 for two empty strings. Scores below
// `score_cutoff` (in [0, 1], compared at single precision as rapidfuzz's Python API does) are
// returned as 0.
[[nodiscard]] double levenshtein_normalized_similarity(Text a, Text b, double score_cutoff = 0.0);

// 1 - indel distance / (len a + len b) in [0, 1]; 1 for two empty strings.
[[nodiscard]] double indel_normalized_similarity(Text a, Text b, double score_cutoff = 0.0);

// rapidfuzz.fuzz.ratio: indel_normalized_similarity * 100; any cutoff (above 100: 0).
[[nodiscard]] double ratio(Text a, Text b, double score_cutoff = 0.0);

// rapidfuzz.fuzz.token_set_ratio: the words (split on Unicode white space, as str.split(), but
// U+0085 and U+00A0 only in texts with a code point above U+00FF, as rapidfuzz does) are
// deduplicated and sorted; the score compares the shared words plus each side's own words.
// 0 when either side has no word; 100 when the word set of one side contains the other's.
[[nodiscard]] double token_set_ratio(Text a, Text b, double score_cutoff = 0.0);

// rapidfuzz.fuzz.partial_ratio: the best ratio of the shorter text against any window of the
// longer one of its length (and the longer one's shorter prefixes and suffixes). The fuzz
// scorers below take any cutoff: above 100 every score is 0, below 0 it cuts nothing, as in
// rapidfuzz.
[[nodiscard]] double partial_ratio(Text a, Text b, double score_cutoff = 0.0);

// rapidfuzz.fuzz.token_sort_ratio: ratio of the texts' words, sorted and joined by one space.
[[nodiscard]] double token_sort_ratio(Text a, Text b, double score_cutoff = 0.0);

// rapidfuzz.fuzz.WRatio: ratio, token and partial scores weighted by the length ratio.
[[nodiscard]] double wratio(Text a, Text b, double score_cutoff = 0.0);

// rapidfuzz.fuzz.QRatio: ratio, but 0 when either text is empty.
[[nodiscard]] double qratio(Text a, Text b, double score_cutoff = 0.0);

// True for the code points Python's str.isspace() accepts (and str.split() splits on).
[[nodiscard]] bool is_unicode_space(char32_t c) noexcept;

// --- one query against many choices ----------------------------------------------------------

enum class Scorer : std::uint8_t {
    kRatio,                  // 0..100
    kTokenSetRatio,          // 0..100
    kLevenshteinNormalized,  // 0..1
    kIndelNormalized,        // 0..1
    kPartialRatio,           // 0..100
    kTokenSortRatio,         // 0..100
    kWRatio,                 // 0..100
    kQRatio,                 // 0..100
};

// Many texts in one flat buffer: text i is data[offsets[i] .. offsets[i + 1]).
class TextBatch {
  public:
    TextBatch() { offsets_.push_back(0); }
    void reserve(std::size_t texts, std::size_t code_points);
    void append(Text text);
    // Makes room for a text of `length` code points and returns where to write it.
    [[nodiscard]] char32_t* append_uninitialized(std::size_t length);
    [[nodiscard]] std::size_t size() const noexcept { return offsets_.size() - 1; }
    [[nodiscard]] Text operator[](std::size_t i) const noexcept {
        return {data_.data() + offsets_[i], offsets_[i + 1] - offsets_[i]};
    }

  private:
    std::u32string data_;
    std::vector<std::size_t> offsets_;
};

// Scores `query` against every choice with `scorer` (the query is preprocessed once: its
// pattern-match table or its word set). `threads` > 1 splits the choices between threads.
[[nodiscard]] std::vector<double> score_many(Scorer scorer, Text query, const TextBatch& choices,
                                             double score_cutoff, unsigned threads = 1);

// token_set_ratio of many queries against one fixed list of choices: each choice's sorted word
// set is made once (a session's messages scored against every new query).
class TokenSetChoices {
  public:
    explicit TokenSetChoices(TextBatch choices);
    [[nodiscard]] std::size_t size() const noexcept { return words_.size(); }
    // token_set_ratio(query, choice) for every choice, in order (same cutoff rules).
    [[nodiscard]] std::vector<double> scores(Text query, double score_cutoff,
                                             unsigned threads = 1) const;

  private:
    TextBatch texts_;
    std::vector<std::vector<Text>> words_;  // views into texts_
    std::vector<std::u32string> joined_;    // each word set joined by spaces
};

struct ScoredIndex {
    std::size_t index = 0;
    double score = 0.0;
};

// The best `limit` choices with score >= `score_cutoff`, best first (ties: lower index first),
// as rapidfuzz.process.extract orders them (and, like it, with the cutoff at single precision).
[[nodiscard]] std::vector<ScoredIndex> extract(Scorer scorer, Text query, const TextBatch& choices,
                                               double score_cutoff, std::size_t limit,
                                               unsigned threads = 1);

}  // namespace relay::fuzzy
