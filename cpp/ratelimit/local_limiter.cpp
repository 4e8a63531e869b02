#include "ratelimit/local_limiter.hpp"

#include <absl/container/flat_hash_map.h>
#include <absl/hash/hash.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <mutex>
#include <string>
#include <utility>

#include "common/errors.hpp"

namespace relay::ratelimit {

std::int64_t system_clock_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::string_view source_name(Source source) noexcept {
    switch (source) {
        case Source::kMemory:
            return "memory";
        case Source::kRedis:
            return "redis";
        case Source::kFallback:
            return "fallback";
        case Source::kPolicy:
            return "policy";
    }
    return "memory";
}

void validate(const Limits& limits) {
    if (limits.limit < 1 || limits.limit > kMaxLimit) {
        throw InvalidArgument("rate limit must be between 1 and " + std::to_string(kMaxLimit) +
                              " requests, got " + std::to_string(limits.limit));
    }
    if (limits.algorithm == Algorithm::kSlidingLog && limits.limit > kMaxLogLimit) {
        throw InvalidArgument(
            "a sliding-window log keeps one timestamp per request, so its limit "
            "must be at most " +
            std::to_string(kMaxLogLimit) + ", got " + std::to_string(limits.limit) +
            "; use the sliding-window counter");
    }
    if (limits.window_us < 1 || limits.window_us > kMaxWindowUs) {
        throw InvalidArgument("rate-limit window must be between 1 microsecond and 366 days, got " +
                              std::to_string(limits.window_us) + " microseconds");
    }
}

void validate_key(std::string_view key) {
    if (key.size() > kMaxKeyBytes) {
        throw InvalidArgument("rate-limit key is " + std::to_string(key.size()) +
                              " bytes long; at most " + std::to_string(kMaxKeyBytes) +
                              " are accepted");
    }
}

void BatchDecisions::reserve(std::size_t n) {
    allowed.reserve(n);
    remaining.reserve(n);
    reset_at.reserve(n);
    retry_after.reserve(n);
    decided_at.reserve(n);
}

void BatchDecisions::push(const Decision& d) {
    allowed.push_back(d.allowed);
    remaining.push_back(d.remaining);
    reset_at.push_back(d.reset_at);
    retry_after.push_back(d.retry_after);
    decided_at.push_back(d.decided_at);
    source = d.source;
    limit = d.limit;
}

namespace {

constexpr double kEpsilon = 1e-9;

// This abseil build has its own string_view type; its string maps look up by that one.
absl::string_view as_absl(std::string_view s) { return {s.data(), s.size()}; }

double to_seconds(std::int64_t us) { return static_cast<double>(us) / 1e6; }

std::int64_t ceil_us(double us) { return static_cast<std::int64_t>(std::ceil(us)); }

std::int64_t floor_div(std::int64_t a, std::int64_t b) {
    std::int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) {
        --q;
    }
    return q;
}

}  // namespace

// One key's state. Which fields are used depends on the algorithm; the log's ring buffer stays
// empty for the other two.
struct KeyState {
    std::int64_t last_seen_us = 0;   // also the last refill of a token bucket
    std::int64_t window_index = 0;   // counter: index of the current fixed window
    std::int64_t current = 0;        // counter: admitted in the current fixed window
    std::int64_t previous = 0;       // counter: admitted in the previous fixed window
    double tokens = 0;               // bucket
    std::vector<std::int64_t> ring;  // log: admitted timestamps, oldest at `head`
    std::size_t head = 0;
    std::size_t size = 0;

    [[nodiscard]] std::int64_t at(std::size_t i) const { return ring[(head + i) % ring.size()]; }
    void pop_front() {
        head = (head + 1) % ring.size();
        --size;
    }
    void push_back(std::int64_t ts, std::size_t max_capacity) {
        if (size == ring.size()) {
            // Grow geometrically up to the limit, so that a key seen once costs a few bytes.
            const std::size_t capacity = std::min(std::max<std::size_t>(4, 2 * size), max_capacity);
            std::vector<std::int64_t> grown(capacity);
            for (std::size_t i = 0; i < size; ++i) {
                grown[i] = at(i);
            }
            ring = std::move(grown);
            head = 0;
        }
        ring[(head + size) % ring.size()] = ts;
        ++size;
    }
};

namespace {

struct RawDecision {
    bool allowed = false;
    std::int64_t remaining = 0;
    std::int64_t reset_at_us = 0;
    std::int64_t retry_after_us = 0;
};

RawDecision decide_log(KeyState& s, const Limits& lim, std::int64_t now) {
    const std::int64_t cutoff = now - lim.window_us;
    while (s.size > 0 && s.at(0) <= cutoff) {
        s.pop_front();
    }
    RawDecision d;
    const auto limit = static_cast<std::size_t>(lim.limit);
    d.allowed = s.size < limit;
    if (d.allowed) {
        s.push_back(now, limit);
    }
    d.remaining = static_cast<std::int64_t>(limit - std::min(limit, s.size));
    d.reset_at_us = s.size > 0 ? s.at(s.size - 1) + lim.window_us : now;
    if (!d.allowed) {
        // The request is admitted once the entry that keeps the log full expires.
        d.retry_after_us = s.at(s.size - limit) + lim.window_us - now;
    }
    return d;
}

RawDecision decide_counter(KeyState& s, const Limits& lim, std::int64_t now) {
    const std::int64_t window = lim.window_us;
    const std::int64_t index = floor_div(now, window);
    if (index > s.window_index) {
        s.previous = index == s.window_index + 1 ? s.current : 0;
        s.current = 0;
        s.window_index = index;
    }
    const std::int64_t elapsed = now - index * window;
    const auto w = static_cast<double>(window);
    const double weight = static_cast<double>(window - elapsed) / w;
    double estimate = static_cast<double>(s.previous) * weight + static_cast<double>(s.current);
    const auto limit = static_cast<double>(lim.limit);

    RawDecision d;
    d.allowed = estimate + 1.0 <= limit + kEpsilon;
    if (d.allowed) {
        ++s.current;
        estimate += 1.0;
    }
    d.remaining = std::max<std::int64_t>(
        0, static_cast<std::int64_t>(std::floor(limit - estimate + kEpsilon)));
    if (s.current > 0) {
        d.reset_at_us = (index + 2) * window;
    } else if (s.previous > 0) {
        d.reset_at_us = (index + 1) * window;
    } else {
        d.reset_at_us = now;
    }
    if (!d.allowed) {
        const double room = limit - 1.0 - static_cast<double>(s.current);
        const double rest_of_window = static_cast<double>(window - elapsed);
        if (room >= 0 && s.previous > 0) {
            // previous * (window - elapsed - t) / window <= room
            const double t =
                std::max(1.0, rest_of_window - room * w / static_cast<double>(s.previous));
            if (t < rest_of_window) {
                d.retry_after_us = ceil_us(t);
                return d;
            }
        }
        // In the next window the current count becomes the weighted previous one.
        const double into_next =
            s.current > 0 ? std::max(0.0, w - (limit - 1.0) * w / static_cast<double>(s.current))
                          : 0.0;
        d.retry_after_us = (window - elapsed) + ceil_us(into_next);
    }
    return d;
}

RawDecision decide_bucket(KeyState& s, const Limits& lim, std::int64_t now) {
    const auto limit = static_cast<double>(lim.limit);
    const double per_us = limit / static_cast<double>(lim.window_us);
    s.tokens = std::min(limit, s.tokens + static_cast<double>(now - s.last_seen_us) * per_us);
    RawDecision d;
    d.allowed = s.tokens >= 1.0 - kEpsilon;
    if (d.allowed) {
        s.tokens = std::max(0.0, s.tokens - 1.0);
    }
    d.remaining = static_cast<std::int64_t>(std::floor(s.tokens + kEpsilon));
    d.reset_at_us = now + ceil_us((limit - s.tokens) / per_us - kEpsilon);
    if (!d.allowed) {
        d.retry_after_us = std::max<std::int64_t>(1, ceil_us((1.0 - s.tokens) / per_us));
    }
    return d;
}

}  // namespace

struct LocalLimiter::Shard {
    std::mutex mutex;
    absl::flat_hash_map<std::string, KeyState> map;
    std::int64_t last_sweep_us = 0;
    std::uint64_t idle_evictions = 0;
    std::uint64_t active_evictions = 0;
};

LocalLimiter::LocalLimiter(Limits limits, StoreOptions options, Clock clock)
    : limits_(limits), clock_(clock ? std::move(clock) : Clock(system_clock_us)) {
    validate(limits_);
    if (options.max_keys < 1) {
        throw InvalidArgument("max_keys must be at least 1, got 0");
    }
    if (options.shards < 1 || options.shards > 4096) {
        throw InvalidArgument("shards must be between 1 and 4096, got " +
                              std::to_string(options.shards));
    }
    const std::size_t shards = std::bit_ceil(options.shards);
    per_shard_cap_ = std::max<std::size_t>(1, (options.max_keys + shards - 1) / shards);
    // A key whose last decision is this old holds no state any more (its log entries expired,
    // its counter windows passed, its bucket refilled), so dropping it changes no decision.
    idle_after_us_ =
        limits_.algorithm == Algorithm::kSlidingCounter ? 2 * limits_.window_us : limits_.window_us;
    shards_.reserve(shards);
    for (std::size_t i = 0; i < shards; ++i) {
        shards_.push_back(std::make_unique<Shard>());
    }
}

LocalLimiter::~LocalLimiter() = default;

LocalLimiter::Shard& LocalLimiter::shard_for(std::string_view key) const {
    const std::size_t h = absl::Hash<absl::string_view>{}(as_absl(key));
    // The top bits: the table inside a shard uses the low ones.
    const auto bits = static_cast<unsigned>(std::countr_zero(shards_.size()));
    const std::size_t index = bits == 0 ? 0 : (h >> (sizeof(std::size_t) * 8 - bits));
    return *shards_[index];
}

namespace {

void sweep_idle(absl::flat_hash_map<std::string, KeyState>& map, std::int64_t now,
                std::int64_t idle_after, std::uint64_t& evicted) {
    const std::size_t before = map.size();
    absl::erase_if(map, [&](const auto& kv) { return now - kv.second.last_seen_us >= idle_after; });
    evicted += before - map.size();
}

void evict_least_recent(absl::flat_hash_map<std::string, KeyState>& map, std::uint64_t& evicted) {
    // Drop the least recently seen eighth at once, so that eviction is amortised O(1) per key.
    std::vector<std::int64_t> seen;
    seen.reserve(map.size());
    for (const auto& kv : map) {
        seen.push_back(kv.second.last_seen_us);
    }
    const std::size_t k = std::max<std::size_t>(1, seen.size() / 8) - 1;
    std::nth_element(seen.begin(), seen.begin() + static_cast<std::ptrdiff_t>(k), seen.end());
    const std::int64_t threshold = seen[k];
    const std::size_t before = map.size();
    absl::erase_if(map, [&](const auto& kv) { return kv.second.last_seen_us <= threshold; });
    evicted += before - map.size();
}

}  // namespace

Decision LocalLimiter::decide_locked(Shard& shard, std::string_view key, std::int64_t now) {
    auto it = shard.map.find(as_absl(key));
    if (it == shard.map.end()) {
        const std::int64_t sweep_every = std::max<std::int64_t>(idle_after_us_, 1'000'000);
        if (shard.map.size() >= per_shard_cap_ || now - shard.last_sweep_us >= sweep_every) {
            sweep_idle(shard.map, now, idle_after_us_, shard.idle_evictions);
            shard.last_sweep_us = now;
        }
        if (shard.map.size() >= per_shard_cap_) {
            evict_least_recent(shard.map, shard.active_evictions);
        }
        it = shard.map.try_emplace(std::string(key)).first;
        KeyState& fresh = it->second;
        fresh.last_seen_us = now;
        fresh.window_index = floor_div(now, limits_.window_us);
        fresh.tokens = static_cast<double>(limits_.limit);
    }
    KeyState& state = it->second;
    // A clock that steps back must not make time run backwards for a key.
    now = std::max(now, state.last_seen_us);

    RawDecision raw;
    switch (limits_.algorithm) {
        case Algorithm::kSlidingLog:
            raw = decide_log(state, limits_, now);
            break;
        case Algorithm::kSlidingCounter:
            raw = decide_counter(state, limits_, now);
            break;
        case Algorithm::kTokenBucket:
            raw = decide_bucket(state, limits_, now);
            break;
    }
    state.last_seen_us = now;

    Decision d;
    d.allowed = raw.allowed;
    d.remaining = raw.remaining;
    d.limit = limits_.limit;
    d.reset_at = to_seconds(raw.reset_at_us);
    d.retry_after = to_seconds(raw.retry_after_us);
    d.decided_at = to_seconds(now);
    d.source = Source::kMemory;
    return d;
}

Decision LocalLimiter::decide(std::string_view key) { return decide_at(key, clock_()); }

Decision LocalLimiter::decide_at(std::string_view key, std::int64_t now_us) {
    validate_key(key);
    Shard& shard = shard_for(key);
    const std::lock_guard lock(shard.mutex);
    return decide_locked(shard, key, now_us);
}

template <class Key>
BatchDecisions LocalLimiter::batch_at(std::span<const Key> keys, std::int64_t now_us) {
    for (const auto& key : keys) {
        validate_key(key);
    }
    BatchDecisions out;
    out.reserve(keys.size());
    out.limit = limits_.limit;
    for (const auto& key : keys) {
        Shard& shard = shard_for(key);
        const std::lock_guard lock(shard.mutex);
        out.push(decide_locked(shard, key, now_us));
    }
    return out;
}

BatchDecisions LocalLimiter::decide_batch(std::span<const std::string_view> keys) {
    return batch_at(keys, clock_());
}

BatchDecisions LocalLimiter::decide_batch_at(std::span<const std::string_view> keys,
                                             std::int64_t now_us) {
    return batch_at(keys, now_us);
}

BatchDecisions LocalLimiter::decide_batch(std::span<const std::string> keys) {
    return batch_at(keys, clock_());
}

BatchDecisions LocalLimiter::decide_batch_at(std::span<const std::string> keys,
                                             std::int64_t now_us) {
    return batch_at(keys, now_us);
}

void LocalLimiter::reset(std::string_view key) {
    Shard& shard = shard_for(key);
    const std::lock_guard lock(shard.mutex);
    if (auto it = shard.map.find(as_absl(key)); it != shard.map.end()) {
        shard.map.erase(it);
    }
}

void LocalLimiter::clear() {
    for (auto& shard : shards_) {
        const std::lock_guard lock(shard->mutex);
        shard->map.clear();
    }
}

StoreStats LocalLimiter::stats() const {
    StoreStats s;
    s.max_keys = per_shard_cap_ * shards_.size();
    for (const auto& shard : shards_) {
        const std::lock_guard lock(shard->mutex);
        s.keys += shard->map.size();
        s.idle_evictions += shard->idle_evictions;
        s.active_evictions += shard->active_evictions;
    }
    return s;
}

}  // namespace relay::ratelimit
