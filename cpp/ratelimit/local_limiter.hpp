// In-process rate limiting: sliding-window log, sliding-window counter and token bucket, per key,
// thread-safe through sharded locks, with bounded memory (idle keys are evicted).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace relay::ratelimit {

enum class Algorithm {
    kSlidingLog,      // exact: one timestamp per admitted request in (now - window, now]
    kSlidingCounter,  // approximate: current + weighted previous fixed window, O(1) per key
    kTokenBucket,     // `limit` tokens of burst, refilled at limit / window per second
};

// Who decided: the in-process store, Redis, the in-process fallback during a Redis outage, or
// the outage policy itself (fail open / fail closed).
enum class Source { kMemory, kRedis, kFallback, kPolicy };

[[nodiscard]] std::string_view source_name(Source source) noexcept;

// Microseconds since the Unix epoch. Injectable so that tests can drive time by hand.
using Clock = std::function<std::int64_t()>;
[[nodiscard]] std::int64_t system_clock_us();

struct Limits {
    Algorithm algorithm = Algorithm::kSlidingLog;
    std::int64_t limit = 100;             // requests per window; the burst of a token bucket
    std::int64_t window_us = 60'000'000;  // window; for a bucket, the time to refill `limit`
};

// Largest accepted values: a log keeps one timestamp per admitted request, so its limit also
// bounds the memory of one key.
inline constexpr std::int64_t kMaxLimit = 1'000'000'000;
inline constexpr std::int64_t kMaxLogLimit = 10'000'000;
inline constexpr std::int64_t kMaxWindowUs = std::int64_t{366} * 24 * 3600 * 1'000'000;
inline constexpr std::size_t kMaxKeyBytes = 4096;

// Throws relay::InvalidArgument naming the bad value.
void validate(const Limits& limits);
void validate_key(std::string_view key);

struct Decision {
    bool allowed = false;
    std::int64_t remaining = 0;  // requests still admitted right after this decision
    std::int64_t limit = 0;
    double reset_at = 0;     // Unix seconds at which the key's whole quota is back
    double retry_after = 0;  // seconds until a request would be admitted; 0 when allowed
    double decided_at = 0;   // Unix seconds of the clock that decided (Redis TIME for Redis)
    Source source = Source::kMemory;
};

// Column-wise results of a batch: one entry per key, in order.
struct BatchDecisions {
    std::vector<bool> allowed;
    std::vector<std::int64_t> remaining;
    std::vector<double> reset_at;
    std::vector<double> retry_after;
    std::vector<double> decided_at;
    std::int64_t limit = 0;
    // The batch's source. A batch is decided in one place, except on a Redis Cluster where some
    // nodes are down: then `source` is the degraded one and `sources` holds each entry's.
    Source source = Source::kMemory;
    std::vector<Source> sources;  // empty: every entry is `source`

    void reserve(std::size_t n);
    void push(const Decision& d);
};

struct StoreOptions {
    std::size_t max_keys = 1'000'000;  // bound on tracked keys (all shards together)
    std::size_t shards = 64;           // rounded up to a power of two
};

struct StoreStats {
    std::size_t keys = 0;
    std::size_t max_keys = 0;
    std::uint64_t idle_evictions = 0;    // keys dropped with no state left (lossless)
    std::uint64_t active_evictions = 0;  // keys dropped while still limited (at max_keys)
};

class LocalLimiter {
  public:
    explicit LocalLimiter(Limits limits, StoreOptions options = {}, Clock clock = {});
    ~LocalLimiter();
    LocalLimiter(const LocalLimiter&) = delete;
    LocalLimiter& operator=(const LocalLimiter&) = delete;

    [[nodiscard]] Decision decide(std::string_view key);
    [[nodiscard]] Decision decide_at(std::string_view key, std::int64_t now_us);
    // Every decision of a batch is taken at one reading of the clock; repeated keys are
    // several decisions for the same key, in order.
    [[nodiscard]] BatchDecisions decide_batch(std::span<const std::string_view> keys);
    [[nodiscard]] BatchDecisions decide_batch_at(std::span<const std::string_view> keys,
                                                 std::int64_t now_us);
    [[nodiscard]] BatchDecisions decide_batch(std::span<const std::string> keys);
    [[nodiscard]] BatchDecisions decide_batch_at(std::span<const std::string> keys,
                                                 std::int64_t now_us);

    // Forgets a key (its quota is whole again).
    void reset(std::string_view key);
    void clear();
    [[nodiscard]] StoreStats stats() const;
    [[nodiscard]] const Limits& limits() const noexcept { return limits_; }
    [[nodiscard]] std::int64_t now_us() const { return clock_(); }

  private:
    struct Shard;
    Shard& shard_for(std::string_view key) const;
    Decision decide_locked(Shard& shard, std::string_view key, std::int64_t now_us);
    template <class Key>
    BatchDecisions batch_at(std::span<const Key> keys, std::int64_t now_us);

    Limits limits_;
    Clock clock_;
    std::size_t per_shard_cap_;
    std::int64_t idle_after_us_;
    std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace relay::ratelimit
