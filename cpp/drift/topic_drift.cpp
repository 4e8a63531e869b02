// TF-IDF cosine similarity over hashed words (see topic_drift.hpp).
#include "drift/topic_drift.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <algorithm>
#include <cmath>

#include "absl/container/flat_hash_map.h"

namespace relay::drift {
namespace {

using TermCounts = absl::flat_hash_map<std::uint64_t, double>;

bool is_word_byte(unsigned char b) {
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

std::vector<std::uint64_t> word_hashes(std::string_view text) {
    std::vector<std::uint64_t> out;
    std::string word;
    const auto flush = [&] {
        if (word.size() >= kMinWordBytes) {
            out.push_back(XXH3_64bits(word.data(), word.size()));
        }
        word.clear();
    };
    for (const char c : text) {
        const auto b = static_cast<unsigned char>(c);
        if (is_word_byte(b)) {
            word.push_back(b >= 'A' && b <= 'Z' ? static_cast<char>(b - 'A' + 'a') : c);
        } else {
            flush();
        }
    }
    flush();
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

}  // namespace relay::drift
