// In-process limiters driven by an injected clock, checked against simple references built from
// the history of admitted requests.
#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/errors.hpp"
#include "ratelimit/local_limiter.hpp"

namespace rl = relay::ratelimit;

namespace {

constexpr std::int64_t kSecond = 1'000'000;
constexpr std::int64_t kStart = 1'700'000'000 * kSecond;  // a realistic Unix time

rl::LocalLimiter make(rl::Algorithm a, std::int64_t limit, std::int64_t window_us,
                      rl::StoreOptions store = {}) {
    return rl::LocalLimiter(rl::Limits{a, limit, window_us}, store);
}

std::int64_t us(double seconds) { return static_cast<std::int64_t>(seconds * 1e6 + 0.5); }

// Random, bursty arrival times: clusters of requests with gaps.
std::vector<std::int64_t> arrivals(std::mt19937_64& rng, std::size_t n, std::int64_t window) {
    std::vector<std::int64_t> out;
    std::int64_t t = kStart;
    std::uniform_int_distribution<int> kind(0, 9);
    for (std::size_t i = 0; i < n; ++i) {
        const int k = kind(rng);
        if (k < 6) {
            t += std::uniform_int_distribution<std::int64_t>(0, window / 50)(rng);
        } else if (k < 9) {
            t += std::uniform_int_distribution<std::int64_t>(0, window / 4)(rng);
        } else {
            t += std::uniform_int_distribution<std::int64_t>(0, 3 * window)(rng);
        }
        out.push_back(t);
    }
    return out;
}

}  // namespace

TEST_CASE("sliding log admits `limit` per window and says when to retry", "[ratelimit]") {
    auto lim = make(rl::Algorithm::kSlidingLog, 3, kSecond);
    for (int i = 0; i < 3; ++i) {
        const auto d = lim.decide_at("k", kStart + i);
        CHECK(d.allowed);
        CHECK(d.remaining == 2 - i);
        CHECK(d.limit == 3);
        CHECK(d.retry_after == 0.0);
    }
    const auto denied = lim.decide_at("k", kStart + 10);
    CHECK_FALSE(denied.allowed);
    CHECK(denied.remaining == 0);
    // The first entry (kStart) leaves the window (now - 1 s, now] at kStart + 1 s.
    CHECK(us(denied.retry_after) == kSecond - 10);
    CHECK(us(denied.reset_at) == kStart + 2 + kSecond);
    CHECK_FALSE(lim.decide_at("k", kStart + kSecond - 1).allowed);
    CHECK(lim.decide_at("k", kStart + kSecond).allowed);
    // Other keys are independent.
    CHECK(lim.decide_at("other", kStart + 10).allowed);
}

TEST_CASE("sliding log equals the brute-force reference on random traffic", "[ratelimit]") {
    std::mt19937_64 rng(7);
    for (const std::int64_t limit : {1, 2, 5, 17}) {
        const std::int64_t window = 2 * kSecond;
        auto lim = make(rl::Algorithm::kSlidingLog, limit, window);
        std::vector<std::int64_t> admitted;
        for (const auto t : arrivals(rng, 3000, window)) {
            const auto in_window = std::count_if(admitted.begin(), admitted.end(),
                                                 [&](auto a) { return a > t - window; });
            const bool expected = in_window < limit;
            const auto d = lim.decide_at("key", t);
            REQUIRE(d.allowed == expected);
            if (expected) {
                admitted.push_back(t);
            }
            REQUIRE(d.remaining ==
                    limit - std::min<std::int64_t>(limit, in_window + (expected ? 1 : 0)));
        }
        // Every window of the history holds at most `limit` admissions.
        for (std::size_t i = 0; i < admitted.size(); ++i) {
            const auto first =
                std::lower_bound(admitted.begin(), admitted.end(), admitted[i] - window + 1);
            REQUIRE(admitted.begin() + static_cast<std::ptrdiff_t>(i) - first + 1 <= limit);
        }
    }
}

TEST_CASE("sliding counter follows the weighted two-window estimate", "[ratelimit]") {
    std::mt19937_64 rng(11);
    const std::int64_t window = kSecond;
    for (const std::int64_t limit : {1, 3, 10, 50}) {
        auto lim = make(rl::Algorithm::kSlidingCounter, limit, window);
        std::vector<std::int64_t> admitted;
        for (const auto t : arrivals(rng, 3000, window)) {
            const std::int64_t index = t / window;
            const auto in = [&](std::int64_t w) {
                return std::count_if(admitted.begin(), admitted.end(),
                                     [&](auto a) { return a / window == w; });
            };
            const auto current = static_cast<double>(in(index));
            const auto previous = static_cast<double>(in(index - 1));
            const double weight =
                static_cast<double>(window - (t - index * window)) / static_cast<double>(window);
            const bool expected =
                previous * weight + current + 1.0 <= static_cast<double>(limit) + 1e-9;
            const auto d = lim.decide_at("key", t);
            REQUIRE(d.allowed == expected);
            if (expected) {
                admitted.push_back(t);
            }
        }
        // Its guarantee: never more than `limit` in one fixed window.
        for (const auto a : admitted) {
            REQUIRE(std::count_if(admitted.begin(), admitted.end(),
                                  [&](auto b) { return b / window == a / window; }) <= limit);
        }
    }
}

TEST_CASE("token bucket allows a burst, then the refill rate", "[ratelimit]") {
    // 5 tokens of burst refilled over 1 s: 5 requests per second.
    auto lim = make(rl::Algorithm::kTokenBucket, 5, kSecond);
    for (int i = 0; i < 5; ++i) {
        CHECK(lim.decide_at("k", kStart).allowed);
    }
    const auto denied = lim.decide_at("k", kStart);
    CHECK_FALSE(denied.allowed);
    CHECK(us(denied.retry_after) == kSecond / 5);
    CHECK(us(denied.reset_at) == kStart + kSecond);
    CHECK_FALSE(lim.decide_at("k", kStart + kSecond / 5 - 1).allowed);
    CHECK(lim.decide_at("k", kStart + kSecond / 5).allowed);
    // Over any interval at most burst + rate * length requests get through.
    std::mt19937_64 rng(3);
    auto bucket = make(rl::Algorithm::kTokenBucket, 7, 2 * kSecond);
    std::vector<std::int64_t> admitted;
    for (const auto t : arrivals(rng, 4000, 2 * kSecond)) {
        if (bucket.decide_at("k", t).allowed) {
            admitted.push_back(t);
        }
    }
    REQUIRE(admitted.size() > 100);
    for (std::size_t i = 0; i < admitted.size(); i += 7) {
        for (std::size_t j = i; j < admitted.size() && j < i + 200; ++j) {
            const double span = static_cast<double>(admitted[j] - admitted[i]) / 1e6;
            REQUIRE(static_cast<double>(j - i + 1) <= 7.0 + 3.5 * span + 1e-6);
        }
    }
}

TEST_CASE("a denied request is admitted once retry_after has passed", "[ratelimit]") {
    std::mt19937_64 rng(5);
    for (const auto a : {rl::Algorithm::kSlidingLog, rl::Algorithm::kSlidingCounter,
                         rl::Algorithm::kTokenBucket}) {
        for (const std::int64_t limit : {1, 4, 9}) {
            auto lim = make(a, limit, kSecond);
            int denials = 0;
            for (const auto t : arrivals(rng, 600, kSecond)) {
                const auto d = lim.decide_at("k", t);
                if (!d.allowed) {
                    ++denials;
                    REQUIRE(d.retry_after > 0.0);
                    // The next request, sent exactly when told, goes through.
                    const auto probe = lim.decide_at("k", t + us(d.retry_after));
                    REQUIRE(probe.allowed);
                    break;
                }
            }
            REQUIRE(denials == 1);
        }
    }
}

TEST_CASE("the injected clock drives decide() and batches", "[ratelimit]") {
    std::int64_t now = kStart;
    rl::LocalLimiter lim(rl::Limits{rl::Algorithm::kSlidingLog, 2, kSecond}, {},
                         [&] { return now; });
    CHECK(lim.decide("a").allowed);
    CHECK(lim.decide("a").allowed);
    CHECK_FALSE(lim.decide("a").allowed);
    CHECK(lim.decide("a").decided_at == Approx(1'700'000'000.0));
    now += kSecond;
    const std::vector<std::string_view> keys = {"a", "a", "a", "b"};
    const auto batch = lim.decide_batch(keys);
    REQUIRE(batch.allowed.size() == 4);
    CHECK(batch.allowed == std::vector<bool>{true, true, false, true});
    CHECK(batch.remaining == std::vector<std::int64_t>{1, 0, 0, 1});
    CHECK(batch.limit == 2);
    CHECK(batch.source == rl::Source::kMemory);
}

TEST_CASE("a clock stepping back does not reopen a window", "[ratelimit]") {
    auto lim = make(rl::Algorithm::kSlidingLog, 1, kSecond);
    CHECK(lim.decide_at("k", kStart).allowed);
    CHECK_FALSE(lim.decide_at("k", kStart - 5 * kSecond).allowed);
    CHECK(lim.decide_at("k", kStart + kSecond).allowed);
}

TEST_CASE("idle keys are evicted and memory stays bounded", "[ratelimit]") {
    // One shard, so that the 64 first keys fit exactly.
    auto lim = make(rl::Algorithm::kSlidingLog, 3, kSecond, rl::StoreOptions{64, 1});
    for (int i = 0; i < 64; ++i) {
        (void)lim.decide_at("idle-" + std::to_string(i), kStart);
    }
    // A second later every one of them is idle: new keys replace them without losing state.
    for (int i = 0; i < 1000; ++i) {
        (void)lim.decide_at("new-" + std::to_string(i), kStart + 2 * kSecond + i);
        REQUIRE(lim.stats().keys <= lim.stats().max_keys);
    }
    const auto s = lim.stats();
    CHECK(s.max_keys == 64);
    CHECK(s.idle_evictions == 64);
    CHECK(s.active_evictions > 0);  // 1000 active keys do not fit in 64
    lim.clear();
    CHECK(lim.stats().keys == 0);
}

TEST_CASE("threads hammering one key never exceed the limit", "[ratelimit]") {
    for (const auto a : {rl::Algorithm::kSlidingLog, rl::Algorithm::kSlidingCounter,
                         rl::Algorithm::kTokenBucket}) {
        // A long window: nothing refills during the test, so exactly `limit` get through.
        auto lim = make(a, 1000, 3600 * kSecond);
        std::atomic<int> admitted{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 2000; ++i) {
                    if (lim.decide("shared").allowed) {
                        admitted.fetch_add(1);
                    }
                }
            });
        }
        for (auto& th : threads) {
            th.join();
        }
        CHECK(admitted.load() == 1000);
    }
}

TEST_CASE("bad limits, windows and keys are rejected", "[ratelimit]") {
    using rl::Algorithm;
    CHECK_THROWS_AS(make(Algorithm::kSlidingLog, 0, kSecond), relay::InvalidArgument);
    CHECK_THROWS_AS(make(Algorithm::kSlidingLog, -5, kSecond), relay::InvalidArgument);
    CHECK_THROWS_AS(make(Algorithm::kTokenBucket, 5, 0), relay::InvalidArgument);
    CHECK_THROWS_AS(make(Algorithm::kSlidingCounter, 5, -1), relay::InvalidArgument);
    CHECK_THROWS_AS(make(Algorithm::kSlidingLog, rl::kMaxLogLimit + 1, kSecond),
                    relay::InvalidArgument);
    CHECK_NOTHROW(make(Algorithm::kSlidingCounter, rl::kMaxLogLimit + 1, kSecond));
    CHECK_THROWS_AS(make(Algorithm::kSlidingLog, 5, kSecond, rl::StoreOptions{0, 4}),
                    relay::InvalidArgument);
    auto lim = make(Algorithm::kSlidingLog, 5, kSecond);
    CHECK_THROWS_AS(lim.decide(std::string(rl::kMaxKeyBytes + 1, 'k')), relay::InvalidArgument);
    CHECK_THROWS_WITH(make(Algorithm::kSlidingLog, 0, kSecond), Catch::Contains("got 0"));
}
