#include <catch2/catch.hpp>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "drift/topic_drift.hpp"

using relay::drift::relevance;
using relay::drift::topic_drift;
using relay::drift::word_hashes;
using Docs = std::vector<std::string_view>;

TEST_CASE("words: ASCII case folded, short words and punctuation dropped", "[drift]") {
    CHECK(word_hashes("Hello, HELLO hello!") ==
          std::vector<std::uint64_t>(3, word_hashes("hello").front()));
    CHECK(word_hashes("a b c . ,").empty());
    CHECK(word_hashes("x1 42").size() == 2);
    // Non-ASCII bytes are word characters: one word, not split inside the characters.
    CHECK(word_hashes("größe café").size() == 2);
    CHECK(word_hashes("日本語").size() == 1);
}

TEST_CASE("drift is 0 for the same topic and 1 for disjoint vocabularies", "[drift]") {
    const Docs python{"how do I sort a list in python", "use sorted or list sort in python"};
    const Docs cooking{"what temperature bakes bread", "preheat the oven to 220 degrees"};
    CHECK(topic_drift(python, python) == Approx(0.0).margin(1e-12));
    CHECK(topic_drift(python, cooking) == Approx(1.0));
    const Docs mixed{"sort the list in python", "then bake bread in the oven"};
    const double d = topic_drift(python, mixed);
    CHECK(d > 0.0);
    CHECK(d < 1.0);
}

TEST_CASE("drift without words in a window is 0", "[drift]") {
    const Docs some{"some words here"};
    CHECK(topic_drift({}, some) == 0.0);
    CHECK(topic_drift(some, Docs{"!!! ..."}) == 0.0);
}

TEST_CASE("drift is symmetric and bounded", "[drift]") {
    const Docs a{"alpha beta gamma", "beta gamma delta"};
    const Docs b{"gamma delta epsilon", "epsilon zeta eta"};
    const double ab = topic_drift(a, b);
    CHECK(ab == Approx(topic_drift(b, a)));
    CHECK(ab >= 0.0);
    CHECK(ab <= 1.0);
}

TEST_CASE("relevance ranks the document that shares rare query words first", "[drift]") {
    const Docs docs{"the weather is nice today", "the knapsack solver picks messages",
                    "the the the", ""};
    const auto scores = relevance("which knapsack solver", docs);
    REQUIRE(scores.size() == 4);
    CHECK(scores[1] > scores[0]);
    CHECK(scores[1] > scores[2]);
    CHECK(scores[3] == 0.0);
    for (const double s : scores) {
        CHECK(s >= 0.0);
        CHECK(s <= 1.0);
    }
    CHECK(relevance("", docs) == std::vector<double>(4, 0.0));
}

TEST_CASE("RelevanceIndex scores as relevance over the included documents", "[drift]") {
    const Docs docs{
        "the weather is nice today",        "the knapsack solver picks messages", "the the the", "",
        "knapsack knapsack weather report", "Größe und Gewicht der Nachrichten"};
    relay::drift::RelevanceIndex index;
    index.add(std::span<const std::string_view>(docs.data(), 3));
    index.add(std::span<const std::string_view>(docs.data() + 3, docs.size() - 3));
    REQUIRE(index.size() == docs.size());
    const std::vector<std::vector<std::uint8_t>> masks{
        {1, 1, 1, 1, 1, 1}, {0, 1, 0, 1, 1, 0}, {1, 0, 1, 0, 0, 1}, {0, 0, 0, 0, 0, 0}};
    for (const char* query :
         {"which knapsack solver", "weather weather today", "", "Größe", "nothing shared"}) {
        for (const auto& mask : masks) {
            Docs subset;
            for (std::size_t i = 0; i < docs.size(); ++i) {
                if (mask[i] != 0) {
                    subset.push_back(docs[i]);
                }
            }
            const auto expected = relevance(query, subset);
            const auto got = index.relevance(query, mask);
            REQUIRE(got.size() == expected.size());
            for (std::size_t i = 0; i < got.size(); ++i) {
                CHECK(got[i] == Approx(expected[i]).margin(1e-12));
            }
        }
    }
    const auto shorter = index.relevance("knapsack", std::vector<std::uint8_t>{1, 1});
    const auto first_two = relevance("knapsack", Docs{docs[0], docs[1]});
    REQUIRE(shorter.size() == 2);
    CHECK(shorter[0] == Approx(first_two[0]).margin(1e-12));
    CHECK(shorter[1] == Approx(first_two[1]).margin(1e-12));
    CHECK_THROWS_AS(index.relevance("x", std::vector<std::uint8_t>(docs.size() + 1, 1)),
                    relay::InvalidArgument);
}

TEST_CASE("RelevanceIndex grown between queries scores as a fresh one", "[drift]") {
    // The postings are rebuilt after every add: documents appended after a query (new words
    // and old ones) must be scored as if the index had been made with all of them at once.
    const Docs docs{"the weather is nice today", "knapsack solver picks messages",
                    "weather report for the knapsack", "a brand new word appears: zeppelin",
                    "zeppelin weather zeppelin"};
    relay::drift::RelevanceIndex grown;
    std::vector<std::uint8_t> all;
    for (std::size_t n = 0; n < docs.size(); ++n) {
        grown.add(std::span<const std::string_view>(docs.data() + n, 1));
        all.push_back(1);
        relay::drift::RelevanceIndex fresh;
        fresh.add(std::span<const std::string_view>(docs.data(), n + 1));
        for (const char* query : {"zeppelin weather", "knapsack", "nothing"}) {
            const auto got = grown.relevance(query, all);
            const auto expected = fresh.relevance(query, all);
            REQUIRE(got.size() == n + 1);
            CHECK(got == expected);  // the same sums in the same order
            const auto reference = relevance(
                query, Docs(docs.begin(), docs.begin() + static_cast<std::ptrdiff_t>(n) + 1));
            for (std::size_t i = 0; i <= n; ++i) {
                CHECK(got[i] == Approx(reference[i]).margin(1e-12));
            }
        }
    }
}
