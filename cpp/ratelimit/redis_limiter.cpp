#include "ratelimit/redis_limiter.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <utility>
#include <vector>

#include "common/errors.hpp"

namespace relay::ratelimit {

namespace {

// The connection failed or timed out: the outage policy applies. Error replies from a
// reachable server are plain BackendUnavailable and are always raised.
class RedisDown : public BackendUnavailable {
  public:
    using BackendUnavailable::BackendUnavailable;
};

std::int64_t steady_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

timeval to_timeval(std::int64_t us) {
    timeval tv{};
    tv.tv_sec = static_cast<decltype(tv.tv_sec)>(us / 1'000'000);
    tv.tv_usec = static_cast<decltype(tv.tv_usec)>(us % 1'000'000);
    return tv;
}

// Every script reads the server's clock, so clients with skewed clocks still share one time
// line. On Redis 3.2 to 6 a script must opt in to effects replication before calling TIME and
// then writing; on Redis 7 that is the default and the call is a no-op.
constexpr std::string_view kPrologue = R"lua(
if redis.replicate_commands then redis.replicate_commands() end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
)lua";

// KEYS[1]: sorted set of admitted requests (score = microseconds); KEYS[2]: a sequence that
// keeps members unique when two requests share a microsecond.
constexpr std::string_view kSlidingLogScript = R"lua(
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - window))
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  local seq = redis.call('INCR', KEYS[2])
  redis.call('ZADD', KEYS[1], string.format('%d', now), string.format('%d-%d', now, seq))
  count = count + 1
  allowed = 1
end
local ttl = math.ceil(window / 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
local reset_at = now + window
if allowed == 0 and count > 0 then
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  reset_at = tonumber(newest[2]) + window
end
local retry = 0
if allowed == 0 then
  local idx = count - limit
  local entry = redis.call('ZRANGE', KEYS[1], idx, idx, 'WITHSCORES')
  retry = tonumber(entry[2]) + window - now
end
local remaining = limit - count
if remaining < 0 then remaining = 0 end
return {allowed, remaining, reset_at, retry, now}
)lua";

// KEYS[1]: hash {w: current window index, c: its count, p: the previous window's count}.
constexpr std::string_view kSlidingCounterScript = R"lua(
local index = math.floor(now / window)
local st = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(st[1]) or index
local cur = tonumber(st[2]) or 0
local prev = tonumber(st[3]) or 0
if index > w then
  if index == w + 1 then prev = cur else prev = 0 end
  cur = 0
  w = index
end
local elapsed = now - index * window
local estimate = prev * (window - elapsed) / window + cur
local allowed = 0
if estimate + 1 <= limit + 1e-9 then
  allowed = 1
  cur = cur + 1
  estimate = estimate + 1
end
redis.call('HSET', KEYS[1], 'w', string.format('%d', w), 'c', cur, 'p', prev)
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * window / 1000) + 1000)
local remaining = math.floor(limit - estimate + 1e-9)
if remaining < 0 then remaining = 0 end
local reset_at = now
if cur > 0 then reset_at = (index + 2) * window elseif prev > 0 then reset_at = (index + 1) * window end
local retry = 0
if allowed == 0 then
  local room = limit - 1 - cur
  local rest = window - elapsed
  local found = false
  if room >= 0 and prev > 0 then
    local wait = math.max(1, rest - room * window / prev)
    if wait < rest then
      retry = math.ceil(wait)
      found = true
    end
  end
  if not found then
    local into_next = 0
    if cur > 0 then into_next = math.max(0, window - (limit - 1) * window / cur) end
    retry = rest + math.ceil(into_next)
  end
end
return {allowed, remaining, reset_at, retry, now}
)lua";

// KEYS[1]: hash {t: tokens, ts: microseconds of the last refill}.
constexpr std::string_view kTokenBucketScript = R"lua(
local st = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(st[1]) or limit
local last = tonumber(st[2]) or now
if now < last then now = last end
local per_us = limit / window
tokens = math.min(limit, tokens + (now - last) * per_us)
local allowed = 0
if tokens >= 1 - 1e-9 then
  allowed = 1
  tokens = math.max(0, tokens - 1)
end
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 'ts', string.format('%d', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
local remaining = math.floor(tokens + 1e-9)
local reset_at = now + math.ceil((limit - tokens) / per_us - 1e-9)
local retry = 0
if allowed == 0 then retry = math.max(1, math.ceil((1 - tokens) / per_us)) end
return {allowed, remaining, reset_at, retry, now}
)lua";

std::string_view algorithm_tag(Algorithm a) {
    switch (a) {
        case Algorithm::kSlidingLog:
            return "log";
        case Algorithm::kSlidingCounter:
            return "ctr";
        case Algorithm::kTokenBucket:
            return "tb";
    }
    return "log";
}

std::string script_for(Algorithm a) {
    std::string script(kPrologue);
    switch (a) {
        case Algorithm::kSlidingLog:
            script += kSlidingLogScript;
            break;
        case Algorithm::kSlidingCounter:
            script += kSlidingCounterScript;
            break;
        case Algorithm::kTokenBucket:
            script += kTokenBucketScript;
            break;
    }
    return script;
}

struct ReplyDeleter {
    void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
    void operator()(redisContext* c) const noexcept { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

Reply command(redisContext* c, const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    argv.reserve(args.size());
    lens.reserve(args.size());
    for (const auto a : args) {
        argv.push_back(a.data());
        lens.push_back(a.size());
    }
    void* raw = redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (raw == nullptr) {
        throw RedisDown(std::string("Redis connection failed: ") + c->errstr);
    }
    return Reply(static_cast<redisReply*>(raw));
}

std::string_view reply_text(const redisReply* r) { return {r->str, r->len}; }

bool is_error(const redisReply* r) { return r->type == REDIS_REPLY_ERROR; }

bool is_noscript(const redisReply* r) {
    return is_error(r) && reply_text(r).starts_with("NOSCRIPT");
}

// Error replies that mean "the server is not ready" rather than "the request is wrong".
bool is_transient(const redisReply* r) {
    const auto text = reply_text(r);
    return text.starts_with("LOADING") || text.starts_with("BUSY") ||
           text.starts_with("MASTERDOWN") || text.starts_with("TRYAGAIN");
}

void throw_reply_error(const redisReply* r, std::string_view what) {
    std::string message =
        "Redis answered " + std::string(what) + " with an error: " + std::string(reply_text(r));
    if (is_transient(r)) {
        throw RedisDown(message);
    }
    throw BackendUnavailable(message);
}

Decision parse_decision(const redisReply* r, std::int64_t limit) {
    if (is_error(r)) {
        throw_reply_error(r, "the rate-limit script");
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 5) {
        throw BackendUnavailable("Redis returned an unexpected reply to the rate-limit script");
    }
    std::int64_t v[5];
    for (std::size_t i = 0; i < 5; ++i) {
        const redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_INTEGER) {
            throw BackendUnavailable("Redis returned a non-integer in the rate-limit reply");
        }
        v[i] = e->integer;
    }
    Decision d;
    d.allowed = v[0] == 1;
    d.remaining = v[1];
    d.limit = limit;
    d.reset_at = static_cast<double>(v[2]) / 1e6;
    d.retry_after = static_cast<double>(v[3]) / 1e6;
    d.decided_at = static_cast<double>(v[4]) / 1e6;
    d.source = Source::kRedis;
    return d;
}

int parse_int(std::string_view text, std::string_view what, std::string_view url) {
    int value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end || value < 0) {
        throw InvalidArgument("Redis URL '" + std::string(url) + "' has an invalid " +
                              std::string(what) + " '" + std::string(text) + "'");
    }
    return value;
}

std::string percent_decode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            unsigned value = 0;
            const auto [ptr, ec] =
                std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
            if (ec == std::errc() && ptr == text.data() + i + 3) {
                out.push_back(static_cast<char>(value));
                i += 2;
                continue;
            }
        }
        out.push_back(text[i]);
    }
    return out;
}

}  // namespace

std::string RedisEndpoint::describe() const {
    std::string where = unix_path.empty() ? host + ":" + std::to_string(port) : unix_path;
    return where + " (db " + std::to_string(db) + ")";
}

RedisEndpoint parse_redis_url(std::string_view url) {
    RedisEndpoint ep;
    std::string_view rest;
    bool unix_socket = false;
    if (url.starts_with("redis://")) {
        rest = url.substr(8);
    } else if (url.starts_with("unix://")) {
        rest = url.substr(7);
        unix_socket = true;
    } else if (url.starts_with("rediss://")) {
        throw InvalidArgument("Redis URL '" + std::string(url.substr(0, 9)) +
                              "...' uses TLS (rediss://), which the rate limiter does not support");
    } else {
        throw InvalidArgument("Redis URL must start with redis:// or unix://, got '" +
                              std::string(url.substr(0, std::min<std::size_t>(url.size(), 40))) +
                              "'");
    }
    // Query string: only db=N is understood.
    if (const auto q = rest.find('?'); q != std::string_view::npos) {
        const std::string_view query = rest.substr(q + 1);
        rest = rest.substr(0, q);
        std::size_t start = 0;
        while (start <= query.size()) {
            const auto amp = query.find('&', start);
            const auto part = query.substr(
                start, amp == std::string_view::npos ? std::string_view::npos : amp - start);
            if (part.starts_with("db=")) {
                ep.db = parse_int(part.substr(3), "database number", url);
            }
            if (amp == std::string_view::npos) {
                break;
            }
            start = amp + 1;
        }
    }
    // Credentials: the last '@' separates them from the address.
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
        const std::string_view credentials = rest.substr(0, at);
        rest = rest.substr(at + 1);
        if (const auto colon = credentials.find(':'); colon != std::string_view::npos) {
            ep.username = percent_decode(credentials.substr(0, colon));
            ep.password = percent_decode(credentials.substr(colon + 1));
        } else {
            ep.password = percent_decode(credentials);
        }
    }
    if (unix_socket) {
        if (rest.empty() || rest.front() != '/') {
            throw InvalidArgument("unix:// Redis URL needs an absolute socket path, got '" +
                                  std::string(rest) + "'");
        }
        ep.unix_path = std::string(rest);
        ep.host.clear();
        return ep;
    }
    std::string_view hostport = rest;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
        hostport = rest.substr(0, slash);
        const auto db = rest.substr(slash + 1);
        if (!db.empty()) {
            ep.db = parse_int(db, "database number", url);
        }
    }
    if (hostport.starts_with('[')) {  // [IPv6]:port
        const auto close = hostport.find(']');
        if (close == std::string_view::npos) {
            throw InvalidArgument("Redis URL has an unclosed IPv6 address: '" +
                                  std::string(hostport) + "'");
        }
        ep.host = std::string(hostport.substr(1, close - 1));
        const auto after = hostport.substr(close + 1);
        if (after.starts_with(':')) {
            ep.port = parse_int(after.substr(1), "port", url);
        }
    } else if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        ep.host = std::string(hostport.substr(0, colon));
        ep.port = parse_int(hostport.substr(colon + 1), "port", url);
    } else {
        ep.host = std::string(hostport);
    }
    if (ep.host.empty()) {
        ep.host = "127.0.0.1";
    }
    if (ep.port < 1 || ep.port > 65535) {
        throw InvalidArgument("Redis URL port must be between 1 and 65535, got " +
                              std::to_string(ep.port));
    }
    return ep;
}

// A bounded pool of blocking hiredis connections. A connection that saw an I/O error is closed,
// never returned.
class ConnectionPool {
  public:
    ConnectionPool(RedisEndpoint endpoint, const RedisOptions& options)
        : endpoint_(std::move(endpoint)),
          connect_timeout_(to_timeval(options.connect_timeout_us)),
          command_timeout_(to_timeval(options.command_timeout_us)),
          wait_us_(options.connect_timeout_us + options.command_timeout_us),
          max_(options.max_connections) {}

    class Lease {
      public:
        Lease(ConnectionPool* pool, Context ctx, bool reused)
            : pool_(pool), ctx_(std::move(ctx)), reused_(reused) {}
        Lease(Lease&&) = default;
        Lease& operator=(Lease&&) = delete;
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        ~Lease() {
            if (pool_ != nullptr) {
                pool_->give_back(std::move(ctx_));
            }
        }
        [[nodiscard]] redisContext* get() const noexcept { return ctx_.get(); }
        [[nodiscard]] bool reused() const noexcept { return reused_; }
        void discard() noexcept { ctx_.reset(); }

      private:
        ConnectionPool* pool_;
        Context ctx_;
        bool reused_;
    };

    Lease acquire() {
        {
            std::unique_lock lock(mutex_);
            if (const pid_t pid = ::getpid(); pid != owner_pid_) {
                // A forked child must not share its parent's sockets: forget the inherited
                // connections (closing our copy of a descriptor leaves the parent's open).
                idle_.clear();
                open_ = 0;
                owner_pid_ = pid;
            }
            const bool ready = cv_.wait_for(lock, std::chrono::microseconds(wait_us_),
                                            [&] { return !idle_.empty() || open_ < max_; });
            if (!ready) {
                throw BackendUnavailable(
                    "all " + std::to_string(max_) + " Redis connections stayed busy for " +
                    std::to_string(wait_us_ / 1000) + " ms; raise max_connections");
            }
            if (!idle_.empty()) {
                Context ctx = std::move(idle_.back());
                idle_.pop_back();
                return {this, std::move(ctx), true};
            }
            ++open_;
        }
        try {
            return {this, connect(), false};
        } catch (...) {
            const std::lock_guard lock(mutex_);
            --open_;
            cv_.notify_one();
            throw;
        }
    }

    // Closes the idle connections: after a failure they are likely dead too.
    void drop_idle() {
        std::vector<Context> dropped;
        const std::lock_guard lock(mutex_);
        open_ -= idle_.size();
        dropped.swap(idle_);
        cv_.notify_all();
    }

  private:
    void give_back(Context ctx) {
        const std::lock_guard lock(mutex_);
        if (ctx && ctx->err == 0) {
            idle_.push_back(std::move(ctx));
        } else {
            --open_;
        }
        cv_.notify_one();
    }

    Context connect() {
        redisContext* raw =
            endpoint_.unix_path.empty()
                ? redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, connect_timeout_)
                : redisConnectUnixWithTimeout(endpoint_.unix_path.c_str(), connect_timeout_);
        if (raw == nullptr) {
            throw RedisDown("cannot allocate a Redis connection");
        }
        Context ctx(raw);
        if (ctx->err != 0) {
            throw RedisDown("cannot connect to Redis at " + endpoint_.describe() + ": " +
                            ctx->errstr);
        }
        if (redisSetTimeout(ctx.get(), command_timeout_) != REDIS_OK) {
            throw RedisDown("cannot set the Redis command timeout: " + std::string(ctx->errstr));
        }
        if (!endpoint_.password.empty()) {
            Reply r = endpoint_.username.empty()
                          ? command(ctx.get(), {"AUTH", endpoint_.password})
                          : command(ctx.get(), {"AUTH", endpoint_.username, endpoint_.password});
            if (is_error(r.get())) {
                throw_reply_error(r.get(), "AUTH");
            }
        }
        if (endpoint_.db != 0) {
            const std::string db = std::to_string(endpoint_.db);
            Reply r = command(ctx.get(), {"SELECT", db});
            if (is_error(r.get())) {
                throw_reply_error(r.get(), "SELECT " + db);
            }
        }
        return ctx;
    }

    RedisEndpoint endpoint_;
    timeval connect_timeout_;
    timeval command_timeout_;
    std::int64_t wait_us_;
    std::size_t max_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<Context> idle_;
    std::size_t open_ = 0;
    pid_t owner_pid_ = ::getpid();
};

namespace {

void check_options(const RedisOptions& o) {
    if (o.connect_timeout_us < 1000 || o.command_timeout_us < 1000) {
        throw InvalidArgument("Redis timeouts must be at least 1 ms, got connect " +
                              std::to_string(o.connect_timeout_us) + " us, command " +
                              std::to_string(o.command_timeout_us) + " us");
    }
    if (o.max_connections < 1 || o.max_connections > 10'000) {
        throw InvalidArgument("max_connections must be between 1 and 10000, got " +
                              std::to_string(o.max_connections));
    }
    if (o.retry_initial_us < 1000 || o.retry_max_us < o.retry_initial_us) {
        throw InvalidArgument(
            "retry backoff must start at 1 ms or more and its maximum must not be smaller, got " +
            std::to_string(o.retry_initial_us) + " us and " + std::to_string(o.retry_max_us) +
            " us");
    }
    if (o.key_prefix.size() > 256) {
        throw InvalidArgument("key_prefix is longer than 256 bytes");
    }
}

// Runs `fn` on a pooled connection. A reused connection may have died while idle (for example
// Redis restarted), so one failure on it is retried once on a fresh connection.
template <class Fn>
auto with_connection(ConnectionPool& pool, Fn&& fn) {
    for (int attempt = 0;; ++attempt) {
        ConnectionPool::Lease lease = pool.acquire();
        try {
            return fn(lease.get());
        } catch (const RedisDown&) {
            lease.discard();
            if (attempt == 0 && lease.reused()) {
                pool.drop_idle();
                continue;
            }
            throw;
        }
    }
}

std::string load_script(redisContext* c, const std::string& script) {
    Reply r = command(c, {"SCRIPT", "LOAD", script});
    if (is_error(r.get())) {
        throw_reply_error(r.get(), "SCRIPT LOAD");
    }
    if (r->type != REDIS_REPLY_STRING) {
        throw BackendUnavailable("Redis returned an unexpected reply to SCRIPT LOAD");
    }
    return std::string(reply_text(r.get()));
}

}  // namespace

RedisLimiter::RedisLimiter(Limits limits, RedisOptions options, StoreOptions fallback_store)
    : limits_(limits),
      options_(std::move(options)),
      endpoint_(parse_redis_url(options_.url)),
      script_(script_for(limits.algorithm)),
      fallback_(limits, fallback_store) {
    validate(limits_);
    check_options(options_);
    pool_ = std::make_unique<ConnectionPool>(endpoint_, options_);
    backoff_us_ = options_.retry_initial_us;
    try {
        std::string sha =
            with_connection(*pool_, [&](redisContext* c) { return load_script(c, script_); });
        const std::lock_guard lock(state_mutex_);
        script_sha_ = std::move(sha);
    } catch (const RedisDown& e) {
        if (options_.on_failure == FailurePolicy::kRaise ||
            options_.on_failure == FailurePolicy::kClosed) {
            throw BackendUnavailable(std::string(e.what()) +
                                     "; the outage policy fails at start (choose the fallback "
                                     "or fail-open policy to start without Redis)");
        }
        mark_down(e.what());
        return;
    }
    up_.store(true, std::memory_order_release);
}

RedisLimiter::~RedisLimiter() = default;

std::string RedisLimiter::data_key(std::string_view key) const {
    // The braces make both keys of one limit share a hash slot on Redis Cluster.
    std::string out;
    out.reserve(options_.key_prefix.size() + key.size() + 8);
    out += options_.key_prefix;
    out += algorithm_tag(limits_.algorithm);
    out += ":{";
    out += key;
    out += '}';
    return out;
}

std::string RedisLimiter::seq_key(std::string_view key) const { return data_key(key) + ":seq"; }

std::string RedisLimiter::last_error() const {
    const std::lock_guard lock(state_mutex_);
    return last_error_;
}

bool RedisLimiter::should_try_redis() {
    if (up_.load(std::memory_order_acquire)) {
        return true;
    }
    const std::lock_guard lock(state_mutex_);
    if (up_.load(std::memory_order_relaxed)) {
        return true;
    }
    // One caller probes Redis once the backoff has passed; the others keep the policy meanwhile.
    if (!probing_ && steady_us() >= next_retry_steady_us_) {
        probing_ = true;
        return true;
    }
    return false;
}

void RedisLimiter::mark_up() {
    if (up_.load(std::memory_order_acquire)) {
        return;
    }
    const std::lock_guard lock(state_mutex_);
    probing_ = false;
    backoff_us_ = options_.retry_initial_us;
    up_.store(true, std::memory_order_release);
}

void RedisLimiter::mark_down(const std::string& why) {
    const std::lock_guard lock(state_mutex_);
    if (up_.load(std::memory_order_relaxed) || !probing_) {
        backoff_us_ = options_.retry_initial_us;  // a fresh outage
    } else {
        backoff_us_ = std::min(backoff_us_ * 2, options_.retry_max_us);  // a failed retry
    }
    probing_ = false;
    next_retry_steady_us_ = steady_us() + backoff_us_;
    last_error_ = why;
    up_.store(false, std::memory_order_release);
}

Decision RedisLimiter::policy_decision() const {
    Decision d;
    d.limit = limits_.limit;
    d.source = Source::kPolicy;
    const std::int64_t now = system_clock_us();
    d.decided_at = static_cast<double>(now) / 1e6;
    d.reset_at = d.decided_at;
    if (options_.on_failure == FailurePolicy::kOpen) {
        d.allowed = true;
        d.remaining = limits_.limit;
    } else {
        std::int64_t wait = 0;
        {
            const std::lock_guard lock(state_mutex_);
            wait = std::max<std::int64_t>(next_retry_steady_us_ - steady_us(), 1000);
        }
        d.allowed = false;
        d.remaining = 0;
        d.retry_after = static_cast<double>(wait) / 1e6;
        d.reset_at = d.decided_at + d.retry_after;
    }
    return d;
}

Decision RedisLimiter::degraded(std::string_view key) {
    switch (options_.on_failure) {
        case FailurePolicy::kRaise:
            throw BackendUnavailable("Redis is unavailable (" + last_error() +
                                     "); it is retried with backoff");
        case FailurePolicy::kFallback: {
            Decision d = fallback_.decide(key);
            d.source = Source::kFallback;
            return d;
        }
        case FailurePolicy::kOpen:
        case FailurePolicy::kClosed:
            return policy_decision();
    }
    return policy_decision();
}

BatchDecisions RedisLimiter::degraded_batch(std::span<const std::string> keys) {
    if (options_.on_failure == FailurePolicy::kFallback) {
        BatchDecisions out = fallback_.decide_batch(keys);
        out.source = Source::kFallback;
        return out;
    }
    BatchDecisions out;
    out.reserve(keys.size());
    out.limit = limits_.limit;
    out.source = Source::kPolicy;
    for (const auto& key : keys) {
        out.push(degraded(key));
    }
    return out;
}

Decision RedisLimiter::decide(std::string_view key) {
    validate_key(key);
    if (!should_try_redis()) {
        return degraded(key);
    }
    const std::string k1 = data_key(key);
    const std::string k2 = seq_key(key);
    const std::string limit = std::to_string(limits_.limit);
    const std::string window = std::to_string(limits_.window_us);
    try {
        Decision d = with_connection(*pool_, [&](redisContext* c) {
            std::string sha;
            {
                const std::lock_guard lock(state_mutex_);
                sha = script_sha_;
            }
            if (sha.empty()) {
                sha = load_script(c, script_);
            }
            Reply r = command(c, {"EVALSHA", sha, "2", k1, k2, limit, window});
            if (is_noscript(r.get())) {
                // The server lost its script cache (restart, SCRIPT FLUSH): load it again.
                sha = load_script(c, script_);
                r = command(c, {"EVALSHA", sha, "2", k1, k2, limit, window});
            }
            {
                const std::lock_guard lock(state_mutex_);
                script_sha_ = sha;
            }
            return parse_decision(r.get(), limits_.limit);
        });
        mark_up();
        return d;
    } catch (const RedisDown& e) {
        mark_down(e.what());
        return degraded(key);
    } catch (...) {
        // A reachable server that answered with an error: not an outage, but a probe is over.
        mark_up();
        throw;
    }
}

BatchDecisions RedisLimiter::decide_batch(std::span<const std::string> keys) {
    for (const auto& key : keys) {
        validate_key(key);
    }
    if (keys.empty()) {
        BatchDecisions empty;
        empty.limit = limits_.limit;
        empty.source = Source::kRedis;
        return empty;
    }
    if (!should_try_redis()) {
        return degraded_batch(keys);
    }
    const std::string limit = std::to_string(limits_.limit);
    const std::string window = std::to_string(limits_.window_us);
    try {
        BatchDecisions out = with_connection(*pool_, [&](redisContext* c) {
            std::string sha;
            {
                const std::lock_guard lock(state_mutex_);
                sha = script_sha_;
            }
            if (sha.empty()) {
                sha = load_script(c, script_);
            }
            std::vector<Reply> replies(keys.size());
            std::vector<std::size_t> pending(keys.size());
            for (std::size_t i = 0; i < keys.size(); ++i) {
                pending[i] = i;
            }
            // Pipelined: every command is written, then every reply read. Keys whose script was
            // missing (NOSCRIPT) are sent again once after reloading it.
            for (int round = 0; round < 2 && !pending.empty(); ++round) {
                for (const std::size_t i : pending) {
                    const std::string k1 = data_key(keys[i]);
                    const std::string k2 = seq_key(keys[i]);
                    const char* argv[7] = {"EVALSHA", sha.data(),   "2",          k1.data(),
                                           k2.data(), limit.data(), window.data()};
                    const std::size_t lens[7] = {
                        7, sha.size(), 1, k1.size(), k2.size(), limit.size(), window.size()};
                    if (redisAppendCommandArgv(c, 7, argv, lens) != REDIS_OK) {
                        throw RedisDown(std::string("Redis connection failed: ") + c->errstr);
                    }
                }
                std::vector<std::size_t> missing;
                for (const std::size_t i : pending) {
                    void* raw = nullptr;
                    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
                        throw RedisDown(std::string("Redis connection failed: ") + c->errstr);
                    }
                    replies[i] = Reply(static_cast<redisReply*>(raw));
                    if (is_noscript(replies[i].get())) {
                        missing.push_back(i);
                    }
                }
                if (!missing.empty()) {
                    sha = load_script(c, script_);
                }
                pending.swap(missing);
            }
            {
                const std::lock_guard lock(state_mutex_);
                script_sha_ = sha;
            }
            BatchDecisions result;
            result.reserve(keys.size());
            result.limit = limits_.limit;
            result.source = Source::kRedis;
            for (const auto& r : replies) {
                result.push(parse_decision(r.get(), limits_.limit));
            }
            return result;
        });
        mark_up();
        return out;
    } catch (const RedisDown& e) {
        mark_down(e.what());
        return degraded_batch(keys);
    } catch (...) {
        mark_up();
        throw;
    }
}

void RedisLimiter::reset(std::string_view key) {
    validate_key(key);
    fallback_.reset(key);
    const std::string k1 = data_key(key);
    const std::string k2 = seq_key(key);
    with_connection(*pool_, [&](redisContext* c) {
        Reply r = command(c, {"DEL", k1, k2});
        if (is_error(r.get())) {
            throw_reply_error(r.get(), "DEL");
        }
        return 0;
    });
}

}  // namespace relay::ratelimit
