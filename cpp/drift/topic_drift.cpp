// TF-IDF cosine similarity over hashed words (see topic_drift.hpp).
#include "drift/topic_drift.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "common/errors.hpp"

namespace relay::drift {
namespace {

using TermCounts = absl::flat_hash_map<std::uint64_t, double>;

constexpr bool is_word_byte(unsigned char b) {
    return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9') || b >= 0x80U;
}

// Term counts of one document, and each distinct term once into `df`.
TermCounts count_terms(std::string_view text, absl::flat_hash_map<std::uint64_t, double>& df) {
    TermCounts tf;
    for (const std::uint64_t h : word_hashes(text)) {
        tf[h] += 1.0;
    }
    for (const auto& [h, n] : tf) {
        df[h] += 1.0;
    }
    return tf;
}

double idf(double n_docs, double doc_freq) {
    return std::log((1.0 + n_docs) / (1.0 + doc_freq)) + 1.0;
}

double cosine(const TermCounts& a, const TermCounts& b) {
    double dot = 0.0;
    double na = 0.0;
    double nb = 0.0;
    for (const auto& [h, w] : a) {
        na += w * w;
        if (const auto it = b.find(h); it != b.end()) {
            dot += w * it->second;
        }
    }
    for (const auto& [h, w] : b) {
        nb += w * w;
    }
    if (na == 0.0 || nb == 0.0) {
        return 0.0;
    }
    // Rounding can push a cosine of identical vectors a hair above 1.
    return std::clamp(dot / (std::sqrt(na) * std::sqrt(nb)), 0.0, 1.0);
}

void weigh(TermCounts& tf, const TermCounts& df, double n_docs) {
    for (auto& [h, w] : tf) {
        w *= idf(n_docs, df.at(h));
    }
}

}  // namespace

namespace {

// Per byte: 0 when it ends a word, else the byte as it goes into the word's hash (ASCII
// letters lower-cased, digits and non-ASCII bytes as they are). One table lookup per byte
// both finds the words and lower-cases them.
constexpr std::array<unsigned char, 256> kWordBytes = [] {
    std::array<unsigned char, 256> table{};
    for (std::size_t b = 0; b < table.size(); ++b) {
        const auto c = static_cast<unsigned char>(b);
        if (is_word_byte(c)) {
            table[b] = c >= 'A' && c <= 'Z' ? static_cast<unsigned char>(c - 'A' + 'a') : c;
        }
    }
    return table;
}();

// Calls `emit(hash)` for each word of `text` of at least kMinWordBytes bytes: XXH3-64 of its
// ASCII-lowercased bytes. A word is lowercased into a stack buffer when it fits (the common
// case), so no string is built per character.
template <typename Emit>
void for_each_word_hash(std::string_view text, Emit&& emit) {
    constexpr std::size_t kBuffer = 256;
    char buffer[kBuffer];
    std::string long_word;
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const auto* const end = p + text.size();
    while (p < end) {
        while (p < end && kWordBytes[*p] == 0) {
            ++p;
        }
        // Lower-case into the buffer while scanning; a word longer than it continues in
        // long_word.
        std::size_t length = 0;
        while (p < end && length < kBuffer) {
            const unsigned char mapped = kWordBytes[*p];
            if (mapped == 0) {
                break;
            }
            buffer[length++] = static_cast<char>(mapped);
            ++p;
        }
        if (length == kBuffer && p < end && kWordBytes[*p] != 0) {
            long_word.assign(buffer, kBuffer);
            for (unsigned char mapped = 0; p < end && (mapped = kWordBytes[*p]) != 0; ++p) {
                long_word.push_back(static_cast<char>(mapped));
            }
            emit(XXH3_64bits(long_word.data(), long_word.size()));
            continue;
        }
        if (length >= kMinWordBytes) {
            emit(XXH3_64bits(buffer, length));
        }
    }
}

}  // namespace

std::vector<std::uint64_t> word_hashes(std::string_view text) {
    std::vector<std::uint64_t> out;
    for_each_word_hash(text, [&](std::uint64_t h) { out.push_back(h); });
    return out;
}

double topic_drift(std::span<const std::string_view> earlier,
                   std::span<const std::string_view> recent) {
    TermCounts df;
    TermCounts a;
    TermCounts b;
    for (const std::string_view doc : earlier) {
        for (const auto& [h, n] : count_terms(doc, df)) {
            a[h] += n;
        }
    }
    for (const std::string_view doc : recent) {
        for (const auto& [h, n] : count_terms(doc, df)) {
            b[h] += n;
        }
    }
    if (a.empty() || b.empty()) {
        return 0.0;
    }
    const auto n_docs = static_cast<double>(earlier.size() + recent.size());
    weigh(a, df, n_docs);
    weigh(b, df, n_docs);
    return 1.0 - cosine(a, b);
}

std::vector<double> relevance(std::string_view query, std::span<const std::string_view> documents) {
    TermCounts df;
    TermCounts q = count_terms(query, df);
    std::vector<TermCounts> docs;
    docs.reserve(documents.size());
    for (const std::string_view doc : documents) {
        docs.push_back(count_terms(doc, df));
    }
    const auto n_docs = static_cast<double>(documents.size() + 1);
    weigh(q, df, n_docs);
    std::vector<double> out;
    out.reserve(docs.size());
    for (TermCounts& d : docs) {
        weigh(d, df, n_docs);
        out.push_back(cosine(q, d));
    }
    return out;
}

void RelevanceIndex::add(std::span<const std::string_view> documents) {
    const std::scoped_lock lock(mutex_);
    const std::size_t held = doc_start_.size() - 1;
    if (held + documents.size() > std::numeric_limits<std::uint32_t>::max()) {
        throw InvalidArgument("RelevanceIndex holds at most 2^32 - 1 documents, got " +
                              std::to_string(held + documents.size()));
    }
    std::vector<std::uint64_t> hashes;
    doc_start_.reserve(doc_start_.size() + documents.size());
    for (const std::string_view text : documents) {
        // The document's distinct terms in hash order with their counts: its hashes sorted,
        // equal ones counted (no hash map per document).
        hashes.clear();
        for_each_word_hash(text, [&](std::uint64_t h) { hashes.push_back(h); });
        std::sort(hashes.begin(), hashes.end());
        const std::size_t first = terms_.size();
        for (std::size_t k = 0; k < hashes.size();) {
            std::size_t end = k + 1;
            while (end < hashes.size() && hashes[end] == hashes[k]) {
                ++end;
            }
            const auto next_id = static_cast<std::uint32_t>(term_ids_.size());
            const auto [it, inserted] = term_ids_.try_emplace(hashes[k], next_id);
            if (inserted && next_id == std::numeric_limits<std::uint32_t>::max()) {
                term_ids_.erase(it);
                terms_.resize(first);  // the documents before this one stay as they were
                throw InvalidArgument("RelevanceIndex holds at most 2^32 - 1 distinct words");
            }
            terms_.push_back(Term{it->second, static_cast<std::uint32_t>(end - k)});
            k = end;
        }
        doc_start_.push_back(terms_.size());
    }
    prepared_ = false;
}

std::size_t RelevanceIndex::size() const {
    const std::scoped_lock lock(mutex_);
    return doc_start_.size() - 1;
}

void RelevanceIndex::build_postings() {
    // A counting sort of every (document, term) by term: documents are visited in order, so
    // each term's postings come out in document order.
    posting_start_.assign(term_ids_.size() + 1, 0);
    for (const Term& t : terms_) {
        ++posting_start_[t.id + 1];
    }
    for (std::size_t t = 1; t < posting_start_.size(); ++t) {
        posting_start_[t] += posting_start_[t - 1];
    }
    postings_.resize(terms_.size());
    std::vector<std::size_t> next(posting_start_.begin(), posting_start_.end() - 1);
    const std::size_t docs = doc_start_.size() - 1;
    for (std::size_t d = 0; d < docs; ++d) {
        for (std::size_t k = doc_start_[d]; k < doc_start_[d + 1]; ++k) {
            postings_[next[terms_[k].id]++] =
                Posting{static_cast<std::uint32_t>(d), terms_[k].count};
        }
    }
    postings_docs_ = docs;
}

void RelevanceIndex::prepare(std::span<const std::uint8_t> included) {
    const std::size_t docs = doc_start_.size() - 1;
    if (postings_docs_ != docs || posting_start_.size() != term_ids_.size() + 1) {
        build_postings();
        prepared_ = false;
    }
    if (prepared_ &&
        std::equal(included.begin(), included.end(), prepared_for_.begin(), prepared_for_.end())) {
        return;
    }
    doc_freq_.assign(term_ids_.size(), 0);
    std::size_t count = 0;
    for (std::size_t d = 0; d < docs; ++d) {
        if (included[d] == 0) {
            continue;
        }
        ++count;
        for (std::size_t k = doc_start_[d]; k < doc_start_[d + 1]; ++k) {
            ++doc_freq_[terms_[k].id];
        }
    }
    n_docs_ = static_cast<double>(count + 1);  // the query is one of the documents
    // A term's weight depends on its document frequency only, an integer in [1, count]: one
    // logarithm per frequency instead of one per (document, term).
    std::vector<double> idf_of(count + 1, 0.0);
    for (std::size_t df = 1; df <= count; ++df) {
        idf_of[df] = idf(n_docs_, static_cast<double>(df));
    }
    base_norm2_.assign(docs, 0.0);
    for (std::size_t d = 0; d < docs; ++d) {
        if (included[d] == 0) {
            continue;
        }
        double sum = 0.0;
        for (std::size_t k = doc_start_[d]; k < doc_start_[d + 1]; ++k) {
            const double w = static_cast<double>(terms_[k].count) * idf_of[doc_freq_[terms_[k].id]];
            sum += w * w;
        }
        base_norm2_[d] = sum;
    }
    prepared_for_.assign(included.begin(), included.end());
    prepared_ = true;
}

std::vector<double> RelevanceIndex::relevance(std::string_view query,
                                              std::span<const std::uint8_t> included) {
    const std::scoped_lock lock(mutex_);
    const std::size_t docs = doc_start_.size() - 1;
    if (included.size() > docs) {
        throw InvalidArgument("included has " + std::to_string(included.size()) + " flags for " +
                              std::to_string(docs) + " documents");
    }
    // Documents added after the caller made its flags are not among its documents.
    std::vector<std::uint8_t> padded;
    if (included.size() < docs) {
        padded.assign(included.begin(), included.end());
        padded.resize(docs, 0);
        included = padded;
    }
    prepare(included);
    TermCounts q;
    for (const std::uint64_t h : word_hashes(query)) {
        q[h] += 1.0;
    }
    // Only documents sharing a word with the query score above 0: accumulate over the
    // postings of the query's words. The query raises the document frequency of its words by
    // one, which changes those words' weights in each document's norm: corrected per posting.
    std::vector<double> dot(docs, 0.0);
    std::vector<double> norm2 = base_norm2_;
    double query_norm2 = 0.0;
    for (const auto& [h, n] : q) {
        const auto id = term_ids_.find(h);
        const double df = id == term_ids_.end() ? 0.0 : static_cast<double>(doc_freq_[id->second]);
        const double with_query = idf(n_docs_, df + 1.0);
        const double wq = n * with_query;
        query_norm2 += wq * wq;
        if (df == 0.0) {
            continue;
        }
        const double without_query = idf(n_docs_, df);
        for (std::size_t k = posting_start_[id->second]; k < posting_start_[id->second + 1]; ++k) {
            const Posting& p = postings_[k];
            if (included[p.doc] == 0) {
                continue;
            }
            const double count = static_cast<double>(p.count);
            const double wd = count * with_query;
            const double old = count * without_query;
            dot[p.doc] += wq * wd;
            norm2[p.doc] += wd * wd - old * old;
        }
    }
    std::vector<double> out;
    out.reserve(docs);
    for (std::size_t d = 0; d < docs; ++d) {
        if (included[d] == 0) {
            continue;
        }
        if (dot[d] == 0.0 || query_norm2 == 0.0 || norm2[d] <= 0.0) {
            out.push_back(0.0);
            continue;
        }
        out.push_back(
            std::clamp(dot[d] / (std::sqrt(query_norm2) * std::sqrt(norm2[d])), 0.0, 1.0));
    }
    return out;
}

}  // namespace relay::drift
