// Topic drift and relevance between texts, by TF-IDF cosine similarity over words.
//
// Words are maximal runs of ASCII letters and digits, lower-cased, plus any non-ASCII UTF-8
// sequence (so scripts without ASCII case still form words); words shorter than
// `kMinWordBytes` bytes are ignored. Words are hashed (XXH3-64) rather than stored; a
// collision between two of the few thousand words of a session is negligible (~n^2 / 2^64).
//
// IDF is smoothed as in scikit-learn: idf(t) = ln((1 + N) / (1 + df(t))) + 1, where N is the
// number of documents (messages) and df(t) the number containing t.
#pragma once

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace relay::drift {

inline constexpr std::size_t kMinWordBytes = 2;

// Hashes of the words of `text`, in order, with repeats.
std::vector<std::uint64_t> word_hashes(std::string_view text);

// How far the topic of `recent` moved from that of `earlier`: 1 - cosine similarity of the two
// windows' TF-IDF vectors (IDF over all the messages of both windows), in [0, 1]. 0 when either
// window has no words (no evidence of drift).
double topic_drift(std::span<const std::string_view> earlier,
                   std::span<const std::string_view> recent);

// Cosine similarity in [0, 1] of `query` with each document, TF-IDF weighted with IDF over the
// documents and the query. A document or query without words scores 0.
std::vector<double> relevance(std::string_view query, std::span<const std::string_view> documents);

// `relevance` against many queries over documents that grow by appending (a conversation):
// each document's words are hashed and counted once, at `add`, into an inverted index, so a
// query costs the postings of its own words rather than a pass over every document. The
// scores equal `relevance(query, the included documents)` up to rounding (the same sums, in
// another order). Thread-safe (a mutex guards the statistics cached per set of documents).
class RelevanceIndex {
  public:
    // Appends documents; the first one added is document 0.
    void add(std::span<const std::string_view> documents);
    [[nodiscard]] std::size_t size() const;
    // Scores of the documents whose `included` flag is non-zero, in order (IDF over them and
    // the query); documents past the end of `included` are left out (added since the caller
    // made its flags). Throws InvalidArgument when `included` has more than size() flags.
    [[nodiscard]] std::vector<double> relevance(std::string_view query,
                                                std::span<const std::uint8_t> included);

  private:
    // A distinct word of one document: its dense id and how often the document has it.
    struct Term {
        std::uint32_t id;
        std::uint32_t count;
    };
    struct Posting {
        std::uint32_t doc;
        std::uint32_t count;
    };
    void prepare(std::span<const std::uint8_t> included);
    void build_postings();

    mutable std::mutex mutex_;
    // Word hash -> dense term id (in order of first appearance).
    absl::flat_hash_map<std::uint64_t, std::uint32_t> term_ids_;
    // Every document's distinct terms, in hash order, one document after another: document d's
    // are terms_[doc_start_[d], doc_start_[d + 1]). Flat, so a document costs no allocation.
    std::vector<Term> terms_;
    std::vector<std::size_t> doc_start_{0};
    // The inverted index over all documents, rebuilt by prepare after an add (one counting
    // sort of terms_): term t's postings are postings_[posting_start_[t], posting_start_[t+1]),
    // in document order.
    std::vector<std::size_t> posting_start_;
    std::vector<Posting> postings_;
    std::size_t postings_docs_ = 0;
    // Cached for the last `included` set: document frequency per term id, N, squared norms
    // without the query.
    bool prepared_ = false;
    std::vector<std::uint8_t> prepared_for_;
    std::vector<std::uint32_t> doc_freq_;
    double n_docs_ = 0.0;
    std::vector<double> base_norm2_;
};

}  // namespace relay::drift
