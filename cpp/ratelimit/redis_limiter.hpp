// Distributed rate limiting through Redis: one atomic Lua script per decision (EVALSHA, reloaded
// on NOSCRIPT) that reads the server's clock (TIME), so that every client agrees on time; pooled
// hiredis connections with connect and command timeouts; an explicit policy for outages, with
// retries under exponential backoff so that Redis takes over again when it comes back.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

#include "ratelimit/local_limiter.hpp"

namespace relay::ratelimit {

// What decides while Redis cannot be reached.
enum class FailurePolicy {
    kRaise,     // throw relay::BackendUnavailable
    kFallback,  // an in-process limiter with the same limits (limits per process, not global)
    kOpen,      // admit every request
    kClosed,    // deny every request
};

struct RedisOptions {
    std::string url = "redis://127.0.0.1:6379/0";
    std::string key_prefix = "relay:rl:";
    std::int64_t connect_timeout_us = 1'000'000;
    std::int64_t command_timeout_us = 500'000;
    std::size_t max_connections = 50;
    FailurePolicy on_failure = FailurePolicy::kFallback;
    std::int64_t retry_initial_us = 100'000;  // first wait before Redis is tried again
    std::int64_t retry_max_us = 5'000'000;    // the wait doubles up to this
};

struct RedisEndpoint {
    std::string host;  // empty for a Unix socket
    int port = 6379;
    std::string unix_path;  // set for unix:// URLs
    std::string username;
    std::string password;
    int db = 0;
    [[nodiscard]] std::string describe() const;  // for messages; never shows the password
};

// redis://[[user]:password@]host[:port][/db] and unix://[[user]:password@]/path[?db=N].
// Throws relay::InvalidArgument naming what is wrong.
[[nodiscard]] RedisEndpoint parse_redis_url(std::string_view url);

class ConnectionPool;

class RedisLimiter {
  public:
    // Connects once. If Redis is unreachable, the kRaise and kClosed policies throw
    // relay::BackendUnavailable (a wrong URL shows at start, not as refused traffic); kFallback
    // and kOpen start degraded and keep trying.
    RedisLimiter(Limits limits, RedisOptions options, StoreOptions fallback_store = {});
    ~RedisLimiter();
    RedisLimiter(const RedisLimiter&) = delete;
    RedisLimiter& operator=(const RedisLimiter&) = delete;

    [[nodiscard]] Decision decide(std::string_view key);
    // One pipelined round trip for the whole batch.
    [[nodiscard]] BatchDecisions decide_batch(std::span<const std::string> keys);
    // Forgets a key in Redis and in the fallback. Throws relay::BackendUnavailable when Redis
    // cannot be reached.
    void reset(std::string_view key);

    // False while Redis is considered down (between a failure and the next successful retry).
    [[nodiscard]] bool available() const noexcept { return up_.load(std::memory_order_acquire); }
    [[nodiscard]] std::string last_error() const;
    [[nodiscard]] const Limits& limits() const noexcept { return limits_; }
    [[nodiscard]] const LocalLimiter& fallback() const noexcept { return fallback_; }

  private:
    bool should_try_redis();
    void mark_up();
    void mark_down(const std::string& why);
    Decision degraded(std::string_view key);
    BatchDecisions degraded_batch(std::span<const std::string> keys);
    Decision policy_decision() const;
    std::string data_key(std::string_view key) const;
    std::string seq_key(std::string_view key) const;

    Limits limits_;
    RedisOptions options_;
    RedisEndpoint endpoint_;
    std::string script_;
    std::string script_sha_;  // guarded by state_mutex_
    std::unique_ptr<ConnectionPool> pool_;
    LocalLimiter fallback_;

    std::atomic<bool> up_{false};
    mutable std::mutex state_mutex_;
    bool probing_ = false;
    std::int64_t next_retry_steady_us_ = 0;
    std::int64_t backoff_us_ = 0;
    std::string last_error_;
};

}  // namespace relay::ratelimit
