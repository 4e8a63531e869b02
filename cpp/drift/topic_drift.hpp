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
#include <span>
#include <string_view>
#include <vector>

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

}  // namespace relay::drift
