// Distributed rate limiting through Redis: one atomic Lua script per decision (EVALSHA, reloaded
// on NOSCRIPT) that reads the server's clock (TIME), so that every client agrees on time; pooled
// hiredis connections with connect and command timeouts; an explicit policy for outages, with
// retries under exponential backoff so that Redis takes over again when it comes back.
// On Redis Cluster (or Valkey cluster) the client follows MOVED / ASK redirections, learns which
// node serves which slot, and keeps that outage state per node: a node that is down degrades
// only the keys it serves.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ratelimit/local_limiter.hpp"

struct redisReply;  // hiredis

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

// How the client has met Redis Cluster so far (all zero on a standalone server).
struct ClusterStats {
    bool cluster = false;              // a MOVED reply was seen: commands are routed by slot
    std::size_t nodes = 1;             // nodes the client has a pool for
    std::uint64_t moved = 0;           // MOVED replies followed
    std::uint64_t ask = 0;             // ASK replies followed
    std::uint64_t tryagain = 0;        // TRYAGAIN replies (a slot mid-migration) retried
    std::uint64_t slot_refreshes = 0;  // CLUSTER SLOTS maps loaded
};

// At most this many MOVED / ASK hops per command; past it the outage policy decides.
inline constexpr int kMaxRedirections = 5;

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

    // False while Redis (on a cluster: any node the client uses) is considered down, between a
    // failure and the next successful retry.
    [[nodiscard]] bool available() const noexcept {
        return down_nodes_.load(std::memory_order_acquire) == 0;
    }
    [[nodiscard]] ClusterStats cluster_stats() const;
    [[nodiscard]] std::string last_error() const;
    [[nodiscard]] const Limits& limits() const noexcept { return limits_; }
    [[nodiscard]] const LocalLimiter& fallback() const noexcept { return fallback_; }

  private:
    struct Node;  // one server (the standalone one, or a cluster master): a pool and its health
    struct Pending;

    bool should_try(Node& node);
    void mark_up(Node& node);
    void mark_down(Node& node, const std::string& why);
    void note_error(const std::string& why);
    Decision degraded(std::string_view key, Node* node);
    Decision policy_decision(Node* node) const;
    std::string data_key(std::string_view key) const;
    std::string seq_key(std::string_view key) const;
    int key_count() const noexcept;

    Node& route(const std::string& data_key);
    Node& node_at(const std::string& host, int port, const Node& answered);
    void learn_moved(int slot, Node& owner);
    void refresh_slots(Node& from);
    void maybe_refresh_slots();
    std::vector<Decision> decide_all(std::span<const std::string_view> keys);
    using OwnedReply = std::unique_ptr<redisReply, void (*)(void*)>;  // freed by freeReplyObject
    std::vector<OwnedReply> run_scripts(Node& node, std::span<const Pending> calls,
                                        std::span<const std::string> k1s,
                                        std::span<const std::string> k2s);

    Limits limits_;
    RedisOptions options_;
    RedisEndpoint endpoint_;
    std::string script_;
    std::string script_sha_;  // guarded by state_mutex_
    LocalLimiter fallback_;

    // Nodes are created on first sight and live as long as the limiter, so the raw pointers in
    // slots_ stay valid. nodes_[0] is the server of the URL.
    mutable std::mutex nodes_mutex_;
    std::vector<std::unique_ptr<Node>> nodes_;
    Node* seed_ = nullptr;  // nodes_[0], read without the lock (nodes_ may grow meanwhile)
    std::unique_ptr<std::atomic<Node*>[]> slots_;  // null: not known yet (ask the URL's server)
    std::atomic<bool> cluster_{false};
    std::atomic<bool> slots_stale_{false};  // a node failed: its slots may have a new owner
    std::atomic<std::int64_t> next_refresh_steady_us_{0};
    std::atomic<int> down_nodes_{0};
    std::atomic<std::uint64_t> moved_{0};
    std::atomic<std::uint64_t> ask_{0};
    std::atomic<std::uint64_t> tryagain_{0};
    std::atomic<std::uint64_t> refreshes_{0};

    mutable std::mutex state_mutex_;
    std::string last_error_;
};

}  // namespace relay::ratelimit
