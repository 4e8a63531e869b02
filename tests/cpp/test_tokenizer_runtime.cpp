// count memo, count_batch, truncate_point and near-linear worst cases.
#include <algorithm>
#include <catch2/catch.hpp>
#include <ctime>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "test_tokenizer_util.hpp"
#include "tokenizer/bpe_tokenizer.hpp"

using relay::tokenizer::BpeTokenizer;
using relay::tokenizer::PatternFamily;
using relay::tokenizer::Rank;
namespace tt = relay::tokenizer::testing;

namespace {

const std::vector<std::string>& sample_texts() {
    static const std::vector<std::string> texts = [] {
        std::vector<std::string> v = {
            "",
            "hello world",
            "The quick brown fox jumps over the lazy dog. " + std::string(40, '!'),
            "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9"
            "\xE3\x83\x88 \xF0\x9F\x98\x80\xF0\x9F\x98\x80 caf\xC3\xA9",
            "  indented\n\tcode();\r\n\r\n// done   ",
            "1234567890 3.14159 2,718,281,828",
        };
        for (int i = 0; i < 200; ++i) {
            v.push_back("document " + std::to_string(i) + ": " +
                        std::string(static_cast<std::size_t>(i % 17), ' ') + "it's " +
                        std::to_string(i * 7919) + " words\n");
        }
        return v;
    }();
    return texts;
}

// CPU time of the calling thread: unlike the wall clock it does not count time spent waiting for
// a core, so growth ratios hold on a loaded machine.
double thread_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Best-of-5 thread CPU times of `small` and `large`, measured alternately.
std::pair<double, double> best_times(const std::function<void()>& small,
                                     const std::function<void()>& large) {
    double best_small = 1e9;
    double best_large = 1e9;
    for (int rep = 0; rep < 5; ++rep) {
        double t0 = thread_seconds();
        small();
        best_small = std::min(best_small, thread_seconds() - t0);
        t0 = thread_seconds();
        large();
        best_large = std::min(best_large, thread_seconds() - t0);
    }
    return {best_small, best_large};
}

bool is_char_boundary(std::string_view s, std::size_t i) {
    return i == 0 || i >= s.size() || (static_cast<unsigned char>(s[i]) & 0xC0U) != 0x80U;
}

}  // namespace

TEST_CASE("count memo: hits, misses, LRU bound, clear", "[tokenizer][memo]") {
    const BpeTokenizer tok(tt::cl100k_ranks(), tt::cl100k_specials(), PatternFamily::kCl100k, 2);
    CHECK(tok.memo_stats().capacity == 2);
    CHECK(tok.count("hello world") == 2);
    CHECK(tok.count("hello world") == 2);
    auto st = tok.memo_stats();
    CHECK(st.hits == 1);
    CHECK(st.misses == 1);
    CHECK(st.size == 1);
    CHECK(tok.count("a b c") == 3);
    CHECK(tok.count("hello world") == 2);  // hit; "a b c" is now least recent
    CHECK(tok.count("x") == 1);            // evicts "a b c"
    st = tok.memo_stats();
    CHECK(st.size == 2);
    CHECK(st.hits == 2);
    CHECK(st.misses == 3);
    CHECK(tok.count("a b c") == 3);  // miss again; evicts "hello world" (order was x, hello)
    CHECK(tok.memo_stats().misses == 4);
    CHECK(tok.count("x") == 1);  // still cached
    CHECK(tok.memo_stats().hits == 3);
    CHECK(tok.count("hello world") == 2);  // was evicted
    CHECK(tok.memo_stats().misses == 5);
    tok.clear_memo();
    st = tok.memo_stats();
    CHECK(st.size == 0);
    CHECK(st.hits == 0);
    CHECK(st.misses == 0);
}

TEST_CASE("count memo capacity 0 disables it", "[tokenizer][memo]") {
    const BpeTokenizer tok(tt::cl100k_ranks(), {}, PatternFamily::kCl100k, 0);
    CHECK(tok.count("hello world") == 2);
    CHECK(tok.count("hello world") == 2);
    const auto st = tok.memo_stats();
    CHECK(st.size == 0);
    CHECK(st.capacity == 0);
    CHECK(st.hits == 0);
}

TEST_CASE("count memo stays bounded under many texts and threads", "[tokenizer][memo]") {
    const BpeTokenizer tok(tt::cl100k_ranks(), {}, PatternFamily::kCl100k, 300);
    std::vector<std::string_view> views;
    for (const std::string& t : sample_texts()) {
        views.push_back(t);
    }
    const auto first = tok.count_batch(views, 4);
    const auto second = tok.count_batch(views, 4);
    CHECK(first == second);
    const auto st = tok.memo_stats();
    CHECK(st.size <= 300);
    CHECK(st.hits + st.misses == 2 * views.size());
    CHECK(st.size == 206);           // distinct texts, all fit
    CHECK(st.hits >= views.size());  // the whole second pass hits
}

TEST_CASE("count_batch equals per-text count, in input order", "[tokenizer]") {
    const BpeTokenizer& tok = tt::o200k();
    std::vector<std::string_view> views;
    std::vector<std::size_t> expected;
    for (const std::string& t : sample_texts()) {
        views.push_back(t);
        expected.push_back(tok.encode_ordinary(t).size());
    }
    for (const unsigned threads : {0U, 1U, 3U, 64U}) {
        CHECK(tok.count_batch(views, threads) == expected);
    }
    CHECK(tok.count_batch({}, 0).empty());
}

TEST_CASE("truncate_point properties", "[tokenizer]") {
    for (const BpeTokenizer* tok : {&tt::cl100k(), &tt::o200k()}) {
        for (const std::string& text : sample_texts()) {
            const std::size_t total = tok->encode_ordinary(text).size();
            for (const std::size_t max : {std::size_t{0}, std::size_t{1}, std::size_t{2},
                                          std::size_t{5}, total / 2, total, total + 3}) {
                INFO("text: " << text << " max: " << max);
                const std::size_t cut = tok->truncate_point(text, max);
                REQUIRE(cut <= text.size());
                CHECK(is_char_boundary(text, cut));
                CHECK(tok->encode_ordinary(std::string_view(text).substr(0, cut)).size() <= max);
                if (total <= max) {
                    CHECK(cut == text.size());
                } else {
                    CHECK(cut < text.size());
                }
                if (max > 0 && total > 0 && max <= total) {
                    CHECK(cut > 0);
                }
            }
        }
    }
    // Emoji split across tokens: the cut never lands inside a character.
    const std::string emoji = "\xF0\x9F\x98\x80\xF0\x9F\x98\x81\xF0\x9F\x98\x82";
    for (std::size_t max = 0; max < 10; ++max) {
        const std::size_t cut = tt::cl100k().truncate_point(emoji, max);
        CHECK(cut % 4 == 0);
    }
}

TEST_CASE("long single pieces stay near-linear", "[tokenizer][perf]") {
    for (const BpeTokenizer* tok : {&tt::cl100k(), &tt::o200k()}) {
        for (const char c : {'a', ' '}) {
            const std::string small(20000, c);
            const std::string large(200000, c);
            std::size_t n_small = 0;
            std::size_t n_large = 0;
            const auto [t_small, t_large] =
                best_times([&] { n_small = tok->encode_ordinary(small).size(); },
                           [&] { n_large = tok->encode_ordinary(large).size(); });
            INFO("char '" << c << "': 20k chars " << t_small << " s, 200k chars " << t_large
                          << " s");
            CHECK(n_large > n_small);
            CHECK(t_large < 20.0 * t_small);
            CHECK(tok->decode_bytes(tok->encode_ordinary(large)) == large);
        }
    }
}

TEST_CASE("long mixed runs stay near-linear", "[tokenizer][perf]") {
    std::string unit = "  \t\n \xC2\xA0\xE3\x80\x80x'S1234567!!/\r\n";
    std::string small;
    for (int i = 0; i < 1000; ++i) {
        small += unit;
    }
    std::string large;
    for (int i = 0; i < 10; ++i) {
        large += small;
    }
    for (const BpeTokenizer* tok : {&tt::cl100k(), &tt::o200k(), &tt::r50k_on_cl100k()}) {
        const auto [t_small, t_large] = best_times([&] { (void)tok->encode_ordinary(small); },
                                                   [&] { (void)tok->encode_ordinary(large); });
        CHECK(t_large < 20.0 * t_small);
    }
}
