// NearDuplicateIndex: shingles and Jaccard against sets of substrings, add/remove/query against
// brute force, recall against the LSH S-curve, and concurrent use.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstddef>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.hpp"
#include "fuzzy/near_duplicate_index.hpp"

namespace fz = relay::fuzzy;

namespace {

double reference_jaccard(const std::u32string& a, const std::u32string& b, std::size_t k) {
    const auto shingles = [k](const std::u32string& t) {
        std::set<std::u32string> out;
        if (t.size() < k) {
            if (!t.empty()) {
                out.insert(t);
            }
            return out;
        }
        for (std::size_t i = 0; i + k <= t.size(); ++i) {
            out.insert(t.substr(i, k));
        }
        return out;
    };
    const auto sa = shingles(a);
    const auto sb = shingles(b);
    if (sa.empty() && sb.empty()) {
        return 1.0;
    }
    std::size_t shared = 0;
    for (const auto& s : sa) {
        shared += sb.count(s);
    }
    return static_cast<double>(shared) / static_cast<double>(sa.size() + sb.size() - shared);
}

std::u32string random_words(std::mt19937_64& rng, std::size_t words) {
    static const std::vector<std::u32string> vocabulary = {
        U"context",       U"token",        U"budget",  U"model",  U"reply",   U"cache",
        U"\u00e9t\u00e9", U"\u4e2d\u6587", U"gateway", U"prompt", U"user",    U"system",
        U"window",        U"\U0001F600",   U"answer",  U"draft",  U"summary", U"fuzzy",
        U"index",         U"query",        U"vector",  U"shard"};
    std::uniform_int_distribution<std::size_t> pick(0, vocabulary.size() - 1);
    std::u32string text;
    for (std::size_t w = 0; w < words; ++w) {
        if (w != 0) {
            text.push_back(U' ');
        }
        text += vocabulary[pick(rng)];
    }
    return text;
}

std::u32string edit_words(std::mt19937_64& rng, std::u32string text, int edits) {
    std::uniform_int_distribution<std::size_t> at(0, text.size() - 1);
    for (int e = 0; e < edits; ++e) {
        text[at(rng)] = U'#';
    }
    return text;
}

// prefix + number (spelled out: GCC 12's -Wrestrict misfires on `key_of("k", i)`).
std::string key_of(const char* prefix, long long number) {
    std::string key(prefix);
    key.append(std::to_string(number));
    return key;
}

}  // namespace

TEST_CASE("shingle Jaccard equals the Jaccard of substring sets", "[fuzzy][index]") {
    std::mt19937_64 rng(1);
    for (const std::size_t k : {1U, 2U, 3U, 5U}) {
        for (int round = 0; round < 200; ++round) {
            const std::u32string a = random_words(rng, static_cast<std::size_t>(round % 6));
            const std::u32string b =
                round % 3 == 0 ? edit_words(rng, a + U" x", 2) : random_words(rng, 3);
            REQUIRE(fz::shingle_jaccard(a, b, k) == reference_jaccard(a, b, k));
        }
    }
    // Short texts are one shingle, distinct from any full shingle that starts with U+0000.
    REQUIRE(fz::shingle_jaccard(U"ab", std::u32string(U"\0ab", 3), 3) == 0.0);
    REQUIRE(fz::shingle_jaccard(U"", U"", 3) == 1.0);
    REQUIRE(fz::shingle_jaccard(U"", U"abc", 3) == 0.0);
}

TEST_CASE("options and thresholds are validated", "[fuzzy][index]") {
    REQUIRE_THROWS_AS(fz::NearDuplicateIndex({.shingle_size = 0}), relay::InvalidArgument);
    REQUIRE_THROWS_AS(fz::NearDuplicateIndex({.num_perm = 0}), relay::InvalidArgument);
    REQUIRE_THROWS_AS(fz::NearDuplicateIndex({.num_perm = 64, .bands = 10}),
                      relay::InvalidArgument);
    const fz::NearDuplicateIndex index;
    REQUIRE(index.rows() == 4);
    REQUIRE_THROWS_AS((void)index.query(U"x", 0.0), relay::InvalidArgument);
    REQUIRE_THROWS_AS((void)index.query(U"x", 1.01), relay::InvalidArgument);
    REQUIRE_THROWS_AS((void)index.query(U"x", std::nan("")), relay::InvalidArgument);
}

TEST_CASE("add, replace, remove, contains and size", "[fuzzy][index]") {
    fz::NearDuplicateIndex index;
    index.add("a", U"the quick brown fox");
    index.add("b", U"the quick brown fox!");
    index.add("c", U"something else entirely");
    REQUIRE(index.size() == 3);
    REQUIRE(index.contains("b"));
    auto hits = index.query(U"the quick brown fox", 0.8);
    REQUIRE(hits.size() == 2);
    REQUIRE(hits[0].key == "a");
    REQUIRE(hits[0].score == 1.0);
    REQUIRE(hits[1].key == "b");
    // Replacing a key moves it.
    index.add("b", U"something else entirely!");
    REQUIRE(index.size() == 3);
    hits = index.query(U"the quick brown fox", 0.8);
    REQUIRE(hits.size() == 1);
    hits = index.query(U"something else entirely", 0.8);
    REQUIRE(hits.size() == 2);
    REQUIRE(index.remove("c"));
    REQUIRE_FALSE(index.remove("c"));
    REQUIRE_FALSE(index.contains("c"));
    REQUIRE(index.size() == 2);
    hits = index.query(U"something else entirely", 0.8);
    REQUIRE(hits.size() == 1);
    REQUIRE(hits[0].key == "b");
    index.clear();
    REQUIRE(index.size() == 0);
    REQUIRE(index.query(U"the quick brown fox", 0.5).empty());
}

TEST_CASE("query equals brute force over the candidates, never reports a false match",
          "[fuzzy][index]") {
    std::mt19937_64 rng(42);
    fz::NearDuplicateIndex index({.shingle_size = 3, .num_perm = 128, .bands = 32});
    std::map<std::string, std::u32string> live;
    std::vector<std::u32string> bases;
    for (int i = 0; i < 300; ++i) {
        bases.push_back(random_words(rng, 8));
    }
    for (int i = 0; i < 3000; ++i) {
        const std::string key = key_of("k", i);
        const std::u32string text =
            edit_words(rng, bases[static_cast<std::size_t>(i) % 300], static_cast<int>(i % 4));
        index.add(key, text);
        live[key] = text;
        if (i % 7 == 0) {
            const std::string gone = key_of("k", i / 2);
            REQUIRE(index.remove(gone) == (live.erase(gone) == 1));
        }
    }
    REQUIRE(index.size() == live.size());
    std::size_t expected_total = 0;
    std::size_t found_total = 0;
    for (int q = 0; q < 60; ++q) {
        const std::u32string query = edit_words(rng, bases[static_cast<std::size_t>(q) * 5], 1);
        const auto hits = index.query(query, 0.7);
        std::map<std::string, double> truth;
        for (const auto& [key, text] : live) {
            const double s = reference_jaccard(query, text, 3);
            if (s >= 0.7) {
                truth[key] = s;
            }
        }
        for (const auto& hit : hits) {
            REQUIRE(truth.count(hit.key) == 1);  // precise: every hit is a real match
            REQUIRE(truth[hit.key] == hit.score);
        }
        expected_total += truth.size();
        found_total += hits.size();
    }
    // 32 bands of 4 rows: recall at s >= 0.7 is >= 1 - (1 - 0.7^4)^32 = 0.9998.
    REQUIRE(expected_total > 100);
    REQUIRE(static_cast<double>(found_total) >= 0.99 * static_cast<double>(expected_total));
}

TEST_CASE("recall follows the S-curve 1 - (1 - s^r)^b", "[fuzzy][index]") {
    // Many independent pairs at a controlled similarity: shingle_size 1 over distinct code
    // points makes Jaccard exactly |shared| / |union|.
    const fz::NearDuplicateOptions options{.shingle_size = 1, .num_perm = 32, .bands = 4};
    std::size_t hit_low = 0;
    std::size_t hit_high = 0;
    const int pairs = 400;
    char32_t next = 0x4E00;
    // `prefix` followed by n code points never used before.
    const auto fresh = [&next](std::size_t n, std::u32string s = {}) {
        for (std::size_t i = 0; i < n; ++i) {
            s.push_back(next++);
        }
        return s;
    };
    fz::NearDuplicateIndex index(options);
    for (int p = 0; p < pairs; ++p) {
        // Jaccard 0.5: 20 shared of 40.  Jaccard 0.9: 36 shared of 40.
        const std::u32string shared_low = fresh(20);
        const std::u32string a_low = fresh(10, shared_low);
        const std::u32string b_low = fresh(10, shared_low);
        const std::u32string shared_high = fresh(36);
        const std::u32string a_high = fresh(2, shared_high);
        const std::u32string b_high = fresh(2, shared_high);
        REQUIRE(fz::shingle_jaccard(a_low, b_low, 1) == 0.5);
        REQUIRE(fz::shingle_jaccard(a_high, b_high, 1) == 0.9);
        index.add(key_of("low", p), a_low);
        index.add(key_of("high", p), a_high);
        hit_low += index.query(b_low, 0.5).size();
        hit_high += index.query(b_high, 0.9).size();
    }
    const double expected_low = fz::candidate_probability(0.5, 4, 8);   // ~0.0155
    const double expected_high = fz::candidate_probability(0.9, 4, 8);  // ~0.86
    const double low = static_cast<double>(hit_low) / pairs;
    const double high = static_cast<double>(hit_high) / pairs;
    // Binomial standard deviations at n = 400 are ~0.006 and ~0.017: allow ~4.
    REQUIRE(low == Approx(expected_low).margin(0.03));
    REQUIRE(high == Approx(expected_high).margin(0.07));
    REQUIRE(fz::candidate_probability(1.0, 4, 8) == 1.0);
    REQUIRE(fz::candidate_probability(0.0, 4, 8) == 0.0);
}

TEST_CASE("concurrent adds, removes and queries stay consistent", "[fuzzy][index]") {
    fz::NearDuplicateIndex index;
    const std::u32string anchor = U"the anchor text that is always present in the index";
    index.add("anchor", anchor);
    std::atomic<bool> failed{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 2; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937_64 rng(static_cast<std::uint64_t>(t));
            for (int i = 0; i < 2000; ++i) {
                const std::string key = key_of(t == 0 ? "a-" : "b-", i % 300);
                index.add(key, random_words(rng, 6));
                if (i % 3 == 0) {
                    (void)index.remove(key);
                }
            }
        });
    }
    threads.emplace_back([&] {
        for (int i = 0; i < 2000; ++i) {
            const auto hits = index.query(anchor, 0.99);
            if (hits.size() != 1 || hits[0].key != "anchor") {
                failed = true;
            }
        }
    });
    for (auto& th : threads) {
        th.join();
    }
    REQUIRE_FALSE(failed);
    REQUIRE(index.contains("anchor"));
    REQUIRE(index.size() <= 601);
}

TEST_CASE("add_many equals repeated add", "[fuzzy][index]") {
    std::mt19937_64 rng(3);
    fz::NearDuplicateIndex one_by_one;
    fz::NearDuplicateIndex batched;
    std::vector<std::string> keys;
    fz::TextBatch texts;
    for (int i = 0; i < 2000; ++i) {
        keys.push_back(key_of("k", i % 1500));  // some keys repeat: last one wins
        const std::u32string text = random_words(rng, 5);
        texts.append(text);
        one_by_one.add(keys.back(), text);
    }
    batched.add_many(keys, texts, 2);
    REQUIRE(batched.size() == one_by_one.size());
    for (int q = 0; q < 50; ++q) {
        const std::u32string query = random_words(rng, 5);
        const auto a = one_by_one.query(query, 0.3);
        const auto b = batched.query(query, 0.3);
        REQUIRE(a.size() == b.size());
        for (std::size_t i = 0; i < a.size(); ++i) {
            REQUIRE(a[i].key == b[i].key);
            REQUIRE(a[i].score == b[i].score);
        }
    }
    REQUIRE_THROWS_AS(batched.add_many(std::vector<std::string>{"x"}, fz::TextBatch{}),
                      relay::InvalidArgument);
}

TEST_CASE("similar_earlier equals query-then-add over a sequence", "[fuzzy][index]") {
    std::mt19937_64 rng(77);
    std::vector<std::u32string> texts;
    for (int i = 0; i < 300; ++i) {
        if (i > 0 && i % 3 == 0) {
            texts.push_back(edit_words(rng, texts[rng() % texts.size()], static_cast<int>(i % 4)));
        } else {
            texts.push_back(random_words(rng, 6));
        }
    }
    texts.emplace_back();
    texts.push_back(texts.front());
    fz::TextBatch batch;
    for (const auto& t : texts) {
        batch.append(t);
    }
    fz::NearDuplicateIndex index;
    const auto batched = index.similar_earlier(batch, 0.5);
    REQUIRE(batched.size() == texts.size());
    REQUIRE(index.size() == 0);
    std::size_t found = 0;
    for (std::size_t j = 0; j < texts.size(); ++j) {
        std::vector<std::uint32_t> expected;
        for (const auto& hit : index.query(texts[j], 0.5)) {
            expected.push_back(static_cast<std::uint32_t>(std::stoul(hit.key)));
        }
        std::sort(expected.begin(), expected.end());
        CHECK(batched[j] == expected);
        found += expected.size();
        index.add(std::to_string(j), texts[j]);
    }
    CHECK(found > 50);
    CHECK_THROWS_AS(index.similar_earlier(batch, 0.0), relay::InvalidArgument);
}

TEST_CASE("collapse_earlier equals one-by-one adds to an index of the survivors",
          "[fuzzy][index]") {
    std::mt19937_64 rng(91);
    std::vector<std::u32string> texts;
    for (int i = 0; i < 300; ++i) {
        if (i > 0 && i % 4 == 0) {
            texts.push_back(texts[rng() % texts.size()]);  // word for word
        } else if (i > 0 && i % 3 == 0) {
            texts.push_back(edit_words(rng, texts[rng() % texts.size()], static_cast<int>(i % 3)));
        } else {
            texts.push_back(random_words(rng, 8));
        }
    }
    std::vector<std::uint8_t> pinned(texts.size(), 0);
    for (std::size_t i = 5; i < pinned.size(); i += 17) {
        pinned[i] = 1;
    }
    fz::TextBatch batch;
    for (const auto& t : texts) {
        batch.append(t);
    }
    const double cutoff = 90.0;
    fz::NearDuplicateIndex index;
    // Half the signatures known (as stored with the messages), half made by the call.
    std::vector<fz::NearDuplicateIndex::Signature> known(texts.size());
    for (std::size_t i = 0; i < texts.size(); i += 2) {
        known[i] = index.signature(texts[i]);
    }
    const auto result = index.collapse_earlier(batch, known, pinned, 0.5, cutoff);
    REQUIRE(index.size() == 0);
    REQUIRE(result.into.size() == texts.size());

    fz::NearDuplicateIndex survivors;
    std::map<std::size_t, std::u32string> held;
    std::vector<std::uint32_t> expected(texts.size(), fz::NearDuplicateIndex::kNotCollapsed);
    std::size_t collapsed = 0;
    for (std::size_t j = 0; j < texts.size(); ++j) {
        std::set<std::size_t> older;
        for (const auto& [i, text] : held) {
            if (text == texts[j]) {
                older.insert(i);
            }
        }
        for (const auto& hit : survivors.query(texts[j], 0.5)) {
            const std::size_t i = std::stoul(hit.key);
            if (fz::ratio(texts[j], held.at(i), cutoff) >= cutoff) {
                older.insert(i);
            }
        }
        for (const std::size_t i : older) {
            survivors.remove(std::to_string(i));
            held.erase(i);
            expected[i] = static_cast<std::uint32_t>(j);
            ++collapsed;
        }
        if (pinned[j] == 0) {
            survivors.add(std::to_string(j), texts[j]);
            held.emplace(j, texts[j]);
        }
    }
    CHECK(collapsed > 50);
    CHECK(result.into == expected);
    for (std::size_t i = 0; i < texts.size(); ++i) {
        CHECK(result.signatures[i].band_keys == index.signature(texts[i]).band_keys);
    }
    std::vector<fz::NearDuplicateIndex::Signature> short_one(texts.size());
    // A signature of other options (8 bands): not this index's.
    const fz::NearDuplicateIndex other(fz::NearDuplicateOptions{.num_perm = 8, .bands = 8});
    short_one[0] = other.signature(texts[0]);
    CHECK_THROWS_AS(index.collapse_earlier(batch, short_one, pinned, 0.5, cutoff),
                    relay::InvalidArgument);
    CHECK_THROWS_AS(index.collapse_earlier(batch, known, pinned, 0.0, cutoff),
                    relay::InvalidArgument);
}
