// Bit-parallel Levenshtein / LCS against the textbook dynamic programmes, the normalised scores
// against their formulas, token_set_ratio on known values, and the batch scorers against the
// single-pair ones.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <random>
#include <string>
#include <vector>

#include "common/errors.hpp"
#include "fuzzy/similarity.hpp"
#include "fuzzy_reference.hpp"

namespace fz = relay::fuzzy;
using relay::fuzzy::testing::reference_lcs;
using relay::fuzzy::testing::reference_levenshtein;

namespace {

// Random text over a small alphabet (so that matches are frequent) mixing ASCII, Latin-1,
// CJK and astral code points, so both pattern tables (array and hash map) are exercised.
std::u32string random_text(std::mt19937_64& rng, std::size_t max_length) {
    static const std::u32string alphabet = U"abcde \u00e9\u00ff\u4e2d\u6587\U0001F600";
    std::uniform_int_distribution<std::size_t> length(0, max_length);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    std::u32string text(length(rng), U'a');
    for (char32_t& c : text) {
        c = alphabet[pick(rng)];
    }
    return text;
}

// A copy of `text` with a few random edits (so that long pairs are similar, not random).
std::u32string mutate(std::mt19937_64& rng, std::u32string text, std::size_t edits) {
    std::uniform_int_distribution<int> op(0, 2);
    for (std::size_t e = 0; e < edits; ++e) {
        std::uniform_int_distribution<std::size_t> at(0, text.size());
        const std::size_t pos = at(rng);
        const int kind = op(rng);
        if (kind == 0 || text.empty()) {
            text.insert(pos, 1, U'x');
        } else if (kind == 1 && pos < text.size()) {
            text.erase(pos, 1);
        } else if (pos < text.size()) {
            text[pos] = U'\u4e2d';
        }
    }
    return text;
}

double expected_normalized(std::size_t dist, std::size_t maximum) {
    return maximum == 0 ? 1.0 : 1.0 - static_cast<double>(dist) / static_cast<double>(maximum);
}

}  // namespace

TEST_CASE("levenshtein and lcs equal the DP on random pairs of every length class", "[fuzzy]") {
    std::mt19937_64 rng(20261123);
    for (const std::size_t max_length :
         {std::size_t{8}, std::size_t{70}, std::size_t{200}, std::size_t{700}}) {
        const int rounds = max_length > 300 ? 20 : 300;
        for (int round = 0; round < rounds; ++round) {
            const std::u32string a = random_text(rng, max_length);
            const std::u32string b =
                round % 2 == 0 ? random_text(rng, max_length) : mutate(rng, a, max_length / 10 + 1);
            const std::size_t lev = reference_levenshtein(a, b);
            const std::size_t lcs = reference_lcs(a, b);
            INFO("lengths " << a.size() << " and " << b.size());
            REQUIRE(fz::levenshtein_distance(a, b) == lev);
            REQUIRE(fz::levenshtein_distance(b, a) == lev);
            REQUIRE(fz::lcs_length(a, b) == lcs);
            REQUIRE(fz::indel_distance(a, b) == a.size() + b.size() - 2 * lcs);
            // A bound at or above the distance returns it; below it returns bound + 1.
            REQUIRE(fz::levenshtein_distance(a, b, lev) == lev);
            if (lev > 0) {
                REQUIRE(fz::levenshtein_distance(a, b, lev - 1) == lev);
                REQUIRE(fz::levenshtein_distance(a, b, lev / 2) == lev / 2 + 1);
            }
        }
    }
}

TEST_CASE("word boundaries: patterns of 63, 64, 65, 128 and 129 code points", "[fuzzy]") {
    std::mt19937_64 rng(7);
    for (const std::size_t m : {63U, 64U, 65U, 127U, 128U, 129U}) {
        for (int round = 0; round < 40; ++round) {
            std::u32string a = random_text(rng, 0);
            a.resize(m, U'a');
            std::uniform_int_distribution<int> pick(0, 6);
            for (char32_t& c : a) {
                c = U"ab\u00e9\u4e2dxyz"[pick(rng)];
            }
            const std::u32string b = mutate(rng, a, static_cast<std::size_t>(round % 12));
            REQUIRE(fz::levenshtein_distance(a, b) == reference_levenshtein(a, b));
            REQUIRE(fz::lcs_length(a, b) == reference_lcs(a, b));
        }
    }
}

TEST_CASE("normalized similarities follow rapidfuzz's formulas and cutoffs", "[fuzzy]") {
    std::mt19937_64 rng(99);
    for (int round = 0; round < 400; ++round) {
        const std::u32string a = random_text(rng, 90);
        const std::u32string b = random_text(rng, 90);
        const double lev =
            expected_normalized(reference_levenshtein(a, b), std::max(a.size(), b.size()));
        const double indel =
            expected_normalized(a.size() + b.size() - 2 * reference_lcs(a, b), a.size() + b.size());
        REQUIRE(fz::levenshtein_normalized_similarity(a, b) == lev);
        REQUIRE(fz::indel_normalized_similarity(a, b) == indel);
        REQUIRE(fz::ratio(a, b) == indel * 100.0);
        // Below the cutoff: 0; at or above: the same score.
        // The 0..1 similarities compare the cutoff at single precision (as rapidfuzz's Python
        // API): the float just below the score keeps it.
        const auto float_below = [](double x) {
            return static_cast<double>(std::nextafter(static_cast<float>(x), 0.0F));
        };
        REQUIRE(fz::levenshtein_normalized_similarity(a, b, float_below(lev)) == lev);
        REQUIRE(fz::indel_normalized_similarity(a, b, float_below(indel)) == indel);
        if (lev < 0.999) {
            REQUIRE(fz::levenshtein_normalized_similarity(a, b, lev + 0.001) == 0.0);
        }
        if (indel < 0.999) {
            REQUIRE(fz::indel_normalized_similarity(a, b, indel + 0.001) == 0.0);
            REQUIRE(fz::ratio(a, b, indel * 100.0 + 0.1) == 0.0);
        }
    }
    // 0.8 as a float is 0.800000012 > 4 / 5: rapidfuzz's Indel.normalized_similarity gives 0,
    // its fuzz.ratio (double cutoff) keeps 80.
    REQUIRE(fz::indel_normalized_similarity(U"aaa", U"aa", 0.8) == 0.0);
    REQUIRE(fz::ratio(U"aaa", U"aa", 80.0) == 80.0);
    REQUIRE(fz::ratio(U"", U"") == 100.0);
    REQUIRE(fz::ratio(U"abc", U"") == 0.0);
    REQUIRE(fz::levenshtein_normalized_similarity(U"", U"") == 1.0);
    REQUIRE(fz::ratio(U"this is a test", U"this is a test!") == Approx(96.55172413793103));
}

TEST_CASE("normalised similarities reject cutoffs outside [0, 1]", "[fuzzy]") {
    REQUIRE_THROWS_AS(fz::indel_normalized_similarity(U"a", U"b", 1.5), relay::InvalidArgument);
    REQUIRE_THROWS_AS(fz::levenshtein_normalized_similarity(U"a", U"b", std::nan("")),
                      relay::InvalidArgument);
}

TEST_CASE("fuzz scorers take any cutoff, as rapidfuzz's do", "[fuzzy]") {
    for (const auto score : {fz::ratio, fz::token_set_ratio, fz::partial_ratio,
                             fz::token_sort_ratio, fz::wratio, fz::qratio}) {
        REQUIRE(score(U"a b", U"a b", 100.5) == 0.0);
        REQUIRE(score(U"a b", U"a c", std::nan("")) == 0.0);
        REQUIRE(score(U"a b", U"a b", -1.0) == 100.0);
    }
}

TEST_CASE("partial_ratio, token_sort_ratio, WRatio and QRatio on rapidfuzz's examples", "[fuzzy]") {
    REQUIRE(fz::partial_ratio(U"this is a test", U"this is a test!") == 100.0);
    REQUIRE(fz::partial_ratio(U"", U"") == 100.0);
    REQUIRE(fz::partial_ratio(U"abc", U"") == 0.0);
    REQUIRE(fz::token_sort_ratio(U"fuzzy wuzzy was a bear", U"wuzzy fuzzy was a bear") == 100.0);
    REQUIRE(fz::wratio(U"this is a test", U"this is a new test!!!") == Approx(85.5).margin(1e-9));
    REQUIRE(fz::wratio(U"", U"") == 0.0);
    REQUIRE(fz::qratio(U"this is a test", U"THIS is a test!") == Approx(68.96551724137932));
    REQUIRE(fz::qratio(U"", U"") == 0.0);
}

TEST_CASE("token_set_ratio on rapidfuzz's documented examples", "[fuzzy]") {
    REQUIRE(fz::token_set_ratio(U"fuzzy was a bear", U"fuzzy fuzzy was a bear") == 100.0);
    REQUIRE(fz::token_set_ratio(U"fuzzy was a bear but not a dog", U"fuzzy was a bear") == 100.0);
    REQUIRE(fz::token_set_ratio(U"fuzzy was a bear but not a dog",
                                U"fuzzy was a bear but not a cat") == Approx(92.3076923076923));
    REQUIRE(fz::token_set_ratio(U"", U"abc") == 0.0);
    REQUIRE(fz::token_set_ratio(U"   ", U"   ") == 0.0);
    // Unicode white space separates words, as str.split() does.
    REQUIRE(fz::token_set_ratio(U"a\u3000b", U"b a") == 100.0);
    REQUIRE(fz::token_set_ratio(U"a\u200bb", U"b a") < 100.0);  // ZERO WIDTH SPACE is not one
    // As rapidfuzz: NEL and NBSP split only texts that hold a code point above U+00FF.
    REQUIRE(fz::token_set_ratio(U"a\u00a0b", U"b a") < 100.0);
    REQUIRE(fz::token_set_ratio(U"a\u00a0b \u4e2d", U"b a") == 100.0);
    REQUIRE(fz::token_set_ratio(U"a\u0085b \u4e2d", U"b a") == 100.0);
    // No shared word: the plain ratio of the sorted, joined words.
    REQUIRE(fz::token_set_ratio(U"xyz abc", U"abd xyw") == fz::ratio(U"abc xyz", U"abd xyw"));
}

TEST_CASE("score_many and extract agree with the single-pair scorers", "[fuzzy]") {
    std::mt19937_64 rng(5);
    std::vector<std::u32string> texts;
    fz::TextBatch batch;
    for (int i = 0; i < 500; ++i) {
        texts.push_back(random_text(rng, i % 5 == 0 ? 200 : 40));
        batch.append(texts.back());
    }
    for (const std::u32string& query :
         {std::u32string(U"abc de\u4e2d"), texts[10], texts[15], std::u32string()}) {
        for (const unsigned threads : {1U, 2U}) {
            const auto ratios = fz::score_many(fz::Scorer::kRatio, query, batch, 30.0, threads);
            const auto sets =
                fz::score_many(fz::Scorer::kTokenSetRatio, query, batch, 0.0, threads);
            const auto levs =
                fz::score_many(fz::Scorer::kLevenshteinNormalized, query, batch, 0.4, threads);
            const auto indels =
                fz::score_many(fz::Scorer::kIndelNormalized, query, batch, 0.0, threads);
            for (std::size_t i = 0; i < texts.size(); ++i) {
                REQUIRE(ratios[i] == fz::ratio(query, texts[i], 30.0));
                REQUIRE(sets[i] == fz::token_set_ratio(query, texts[i]));
                REQUIRE(levs[i] == fz::levenshtein_normalized_similarity(query, texts[i], 0.4));
                REQUIRE(indels[i] == fz::indel_normalized_similarity(query, texts[i]));
            }
        }
    }
    const auto best = fz::extract(fz::Scorer::kRatio, texts[3], batch, 20.0, 7);
    REQUIRE(best.size() == 7);
    REQUIRE(best.front().score == 100.0);
    for (std::size_t k = 1; k < best.size(); ++k) {
        REQUIRE((best[k - 1].score > best[k].score ||
                 (best[k - 1].score == best[k].score && best[k - 1].index < best[k].index)));
    }
    const auto all = fz::score_many(fz::Scorer::kRatio, texts[3], batch, 20.0);
    std::vector<double> sorted_scores = all;
    std::sort(sorted_scores.rbegin(), sorted_scores.rend());
    for (std::size_t k = 0; k < best.size(); ++k) {
        REQUIRE(best[k].score == sorted_scores[k]);
        REQUIRE(all[best[k].index] == best[k].score);
    }
}
