#include "ratelimit/redis_limiter.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <thread>
#include <utility>
#include <vector>

#include "common/errors.hpp"
#include "ratelimit/cluster.hpp"

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
           text.starts_with("MASTERDOWN") || text.starts_with("TRYAGAIN") ||
           text.starts_with("CLUSTERDOWN");
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
    if (o.key_prefix.find_first_of("{}") != std::string::npos) {
        // The limiter puts each key's hash tag in braces; a brace in the prefix would move the
        // tag (every key in one Cluster slot, or an empty tag that splits a limit's two keys).
        throw InvalidArgument("key_prefix must not contain '{' or '}', got '" + o.key_prefix + "'");
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

bool is_tryagain(const redisReply* r) {
    return is_error(r) && reply_text(r).starts_with("TRYAGAIN");
}

std::optional<Redirect> redirect_of(const redisReply* r) {
    if (!is_error(r)) {
        return std::nullopt;
    }
    return parse_redirect(reply_text(r));
}

// TRYAGAIN (a multi-key command on a slot whose keys are half migrated) is retried this many
// times, after 1, 2, 4, ... ms, before the outage policy decides that one request.
constexpr int kMaxTryAgain = 6;

// A node the client has never heard of is created on first redirection; a server that keeps
// redirecting to new addresses is not followed past this many.
constexpr std::size_t kMaxNodes = 1024;

}  // namespace

struct RedisLimiter::Node {
    Node(RedisEndpoint where, const RedisOptions& options, std::int64_t first_backoff_us)
        : endpoint(std::move(where)), pool(endpoint, options), backoff_us(first_backoff_us) {}

    RedisEndpoint endpoint;
    ConnectionPool pool;
    std::atomic<bool> up{true};
    std::mutex mutex;  // guards the fields below
    bool probing = false;
    std::int64_t next_retry_steady_us = 0;
    std::int64_t backoff_us;
};

// One script call still to make: entry `index` of the batch, on `node`, after ASKING or not.
struct RedisLimiter::Pending {
    std::size_t index = 0;
    Node* node = nullptr;
    bool asking = false;
    int hops = 0;
    int tries = 0;  // TRYAGAIN replies so far
};

RedisLimiter::RedisLimiter(Limits limits, RedisOptions options, StoreOptions fallback_store)
    : limits_(limits),
      options_(std::move(options)),
      endpoint_(parse_redis_url(options_.url)),
      script_(script_for(limits.algorithm)),
      fallback_(limits, fallback_store) {
    validate(limits_);
    check_options(options_);
    nodes_.push_back(std::make_unique<Node>(endpoint_, options_, options_.retry_initial_us));
    slots_ = std::make_unique<std::atomic<Node*>[]>(kClusterSlots);
    seed_ = nodes_.front().get();
    Node& seed = *seed_;
    try {
        std::string sha =
            with_connection(seed.pool, [&](redisContext* c) { return load_script(c, script_); });
        const std::lock_guard lock(state_mutex_);
        script_sha_ = std::move(sha);
    } catch (const RedisDown& e) {
        if (options_.on_failure == FailurePolicy::kRaise ||
            options_.on_failure == FailurePolicy::kClosed) {
            throw BackendUnavailable(std::string(e.what()) +
                                     "; the outage policy fails at start (choose the fallback "
                                     "or fail-open policy to start without Redis)");
        }
        mark_down(seed, e.what());
    }
}

RedisLimiter::~RedisLimiter() = default;

std::string RedisLimiter::data_key(std::string_view key) const {
    // The braces hold the hash tag: a key's Redis keys share one Cluster slot, and different
    // keys spread over the slots. The key is escaped so that the tag ends at our brace.
    const std::string tag = encode_tag(key);
    std::string out;
    out.reserve(options_.key_prefix.size() + tag.size() + 8);
    out += options_.key_prefix;
    out += algorithm_tag(limits_.algorithm);
    out += ":{";
    out += tag;
    out += '}';
    return out;
}

std::string RedisLimiter::seq_key(std::string_view key) const { return data_key(key) + ":seq"; }

// The sliding log uses its sequence key; the other scripts touch only their hash. Declaring an
// unused key would make a migrating slot answer TRYAGAIN (keys present on both sides) for ever.
int RedisLimiter::key_count() const noexcept {
    return limits_.algorithm == Algorithm::kSlidingLog ? 2 : 1;
}

std::string RedisLimiter::last_error() const {
    const std::lock_guard lock(state_mutex_);
    return last_error_;
}

ClusterStats RedisLimiter::cluster_stats() const {
    ClusterStats s;
    s.cluster = cluster_.load(std::memory_order_acquire);
    {
        const std::lock_guard lock(nodes_mutex_);
        s.nodes = nodes_.size();
    }
    s.moved = moved_.load(std::memory_order_relaxed);
    s.ask = ask_.load(std::memory_order_relaxed);
    s.tryagain = tryagain_.load(std::memory_order_relaxed);
    s.slot_refreshes = refreshes_.load(std::memory_order_relaxed);
    return s;
}

void RedisLimiter::note_error(const std::string& why) {
    const std::lock_guard lock(state_mutex_);
    last_error_ = why;
}

bool RedisLimiter::should_try(Node& node) {
    if (node.up.load(std::memory_order_acquire)) {
        return true;
    }
    const std::lock_guard lock(node.mutex);
    if (node.up.load(std::memory_order_relaxed)) {
        return true;
    }
    // One caller probes the node once the backoff has passed; the others keep the policy.
    if (!node.probing && steady_us() >= node.next_retry_steady_us) {
        node.probing = true;
        return true;
    }
    return false;
}

void RedisLimiter::mark_up(Node& node) {
    if (node.up.load(std::memory_order_acquire)) {
        return;
    }
    const std::lock_guard lock(node.mutex);
    node.probing = false;
    node.backoff_us = options_.retry_initial_us;
    if (!node.up.exchange(true, std::memory_order_acq_rel)) {
        down_nodes_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void RedisLimiter::mark_down(Node& node, const std::string& why) {
    {
        const std::lock_guard lock(node.mutex);
        if (node.up.load(std::memory_order_relaxed) || !node.probing) {
            node.backoff_us = options_.retry_initial_us;  // a fresh outage
        } else {
            node.backoff_us = std::min(node.backoff_us * 2, options_.retry_max_us);  // a retry
        }
        node.probing = false;
        node.next_retry_steady_us = steady_us() + node.backoff_us;
        if (node.up.exchange(false, std::memory_order_acq_rel)) {
            down_nodes_.fetch_add(1, std::memory_order_acq_rel);
        }
    }
    note_error(why);
    if (cluster_.load(std::memory_order_acquire)) {
        slots_stale_.store(true, std::memory_order_release);  // a replica may take its slots
    }
}

Decision RedisLimiter::policy_decision(Node* node) const {
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
        std::int64_t wait = options_.retry_initial_us;
        if (node != nullptr) {
            const std::lock_guard lock(node->mutex);
            wait = std::max<std::int64_t>(node->next_retry_steady_us - steady_us(), 1000);
        }
        d.allowed = false;
        d.remaining = 0;
        d.retry_after = static_cast<double>(wait) / 1e6;
        d.reset_at = d.decided_at + d.retry_after;
    }
    return d;
}

// `node` is the server that could not decide, or null when no server is to blame (too many
// redirections).
Decision RedisLimiter::degraded(std::string_view key, Node* node) {
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
            return policy_decision(node);
    }
    return policy_decision(node);
}

RedisLimiter::Node& RedisLimiter::route(const std::string& data_key) {
    if (!cluster_.load(std::memory_order_acquire)) {
        return *seed_;  // standalone, or no MOVED seen yet: no slot to compute
    }
    Node* owner =
        slots_[static_cast<std::size_t>(key_slot(data_key))].load(std::memory_order_acquire);
    return owner != nullptr ? *owner : *seed_;
}

RedisLimiter::Node& RedisLimiter::node_at(const std::string& host, int port, const Node& answered) {
    // Redis may leave the host out when a node does not know its own address: it is the host
    // of the node that answered.
    const std::string& where = host.empty() ? answered.endpoint.host : host;
    const std::lock_guard lock(nodes_mutex_);
    for (const auto& node : nodes_) {
        if (node->endpoint.unix_path.empty() && node->endpoint.host == where &&
            node->endpoint.port == port) {
            return *node;
        }
    }
    if (nodes_.size() >= kMaxNodes) {
        throw BackendUnavailable("Redis redirected to more than " + std::to_string(kMaxNodes) +
                                 " different nodes; not following " + where + ":" +
                                 std::to_string(port));
    }
    RedisEndpoint endpoint = endpoint_;  // same credentials; a cluster has only db 0
    endpoint.host = where;
    endpoint.port = port;
    endpoint.unix_path.clear();
    nodes_.push_back(
        std::make_unique<Node>(std::move(endpoint), options_, options_.retry_initial_us));
    return *nodes_.back();
}

void RedisLimiter::learn_moved(int slot, Node& owner) {
    moved_.fetch_add(1, std::memory_order_relaxed);
    slots_[static_cast<std::size_t>(slot)].store(&owner, std::memory_order_release);
    if (!cluster_.exchange(true, std::memory_order_acq_rel)) {
        refresh_slots(owner);  // the first MOVED: learn the whole map at once
    }
}

// Loads the slot map with CLUSTER SLOTS from `from`. Best effort: when it fails, MOVED replies
// keep teaching the map one slot at a time.
void RedisLimiter::refresh_slots(Node& from) {
    try {
        struct Range {
            int first;
            int last;
            std::string host;
            int port;
        };
        const std::vector<Range> ranges = with_connection(from.pool, [&](redisContext* c) {
            Reply r = command(c, {"CLUSTER", "SLOTS"});
            std::vector<Range> out;
            if (r->type != REDIS_REPLY_ARRAY) {
                return out;
            }
            for (std::size_t i = 0; i < r->elements; ++i) {
                const redisReply* e = r->element[i];
                if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
                    e->element[0]->type != REDIS_REPLY_INTEGER ||
                    e->element[1]->type != REDIS_REPLY_INTEGER ||
                    e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
                    e->element[2]->element[0]->type != REDIS_REPLY_STRING ||
                    e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
                    continue;
                }
                const long long first = e->element[0]->integer;
                const long long last = e->element[1]->integer;
                const long long port = e->element[2]->element[1]->integer;
                if (first < 0 || last < first || last >= kClusterSlots || port <= 0 ||
                    port > 65535) {
                    continue;
                }
                std::string host(reply_text(e->element[2]->element[0]));
                if (host == "?") {
                    host.clear();  // unknown endpoint: the answering node's host
                }
                out.push_back({static_cast<int>(first), static_cast<int>(last), std::move(host),
                               static_cast<int>(port)});
            }
            return out;
        });
        for (const auto& range : ranges) {
            Node& owner = node_at(range.host, range.port, from);
            for (int slot = range.first; slot <= range.last; ++slot) {
                slots_[static_cast<std::size_t>(slot)].store(&owner, std::memory_order_release);
            }
        }
        refreshes_.fetch_add(1, std::memory_order_relaxed);
    } catch (const BackendUnavailable&) {
        // Lazy learning from MOVED replies continues.
    }
}

// After a node failed, ask a node that is up for the map (at most once per retry_initial): a
// replica promoted in the failed master's place is then found without waiting for MOVED.
void RedisLimiter::maybe_refresh_slots() {
    if (!slots_stale_.load(std::memory_order_acquire)) {
        return;
    }
    const std::int64_t now = steady_us();
    std::int64_t due = next_refresh_steady_us_.load(std::memory_order_acquire);
    if (now < due ||
        !next_refresh_steady_us_.compare_exchange_strong(due, now + options_.retry_initial_us)) {
        return;
    }
    Node* from = nullptr;
    {
        const std::lock_guard lock(nodes_mutex_);
        for (const auto& node : nodes_) {
            if (node->up.load(std::memory_order_acquire)) {
                from = node.get();
                break;
            }
        }
    }
    if (from != nullptr) {
        slots_stale_.store(false, std::memory_order_release);
        refresh_slots(*from);
    }
}

// Pipelines the script calls of `calls` on one connection of `node` (ASKING before those that
// follow an ASK) and returns the raw replies in order; the caller owns them. Calls whose script
// the node did not have (NOSCRIPT) are sent again once after loading it there.
std::vector<RedisLimiter::OwnedReply> RedisLimiter::run_scripts(Node& node,
                                                                std::span<const Pending> calls,
                                                                std::span<const std::string> k1s,
                                                                std::span<const std::string> k2s) {
    const std::string limit = std::to_string(limits_.limit);
    const std::string window = std::to_string(limits_.window_us);
    const int nkeys = key_count();
    const std::string nkeys_text = std::to_string(nkeys);
    std::vector<Reply> replies = with_connection(node.pool, [&](redisContext* c) {
        std::string sha;
        {
            const std::lock_guard lock(state_mutex_);
            sha = script_sha_;
        }
        if (sha.empty()) {
            sha = load_script(c, script_);
        }
        std::vector<Reply> out(calls.size());
        std::vector<std::size_t> todo(calls.size());
        for (std::size_t i = 0; i < calls.size(); ++i) {
            todo[i] = i;
        }
        const auto fail = [&] {
            throw RedisDown(std::string("Redis connection failed: ") + c->errstr + " (" +
                            node.endpoint.describe() + ")");
        };
        for (int round = 0; round < 2 && !todo.empty(); ++round) {
            for (const std::size_t t : todo) {
                const Pending& call = calls[t];
                if (call.asking && redisAppendCommand(c, "ASKING") != REDIS_OK) {
                    fail();
                }
                const std::string& k1 = k1s[call.index];
                const std::string& k2 = k2s[call.index];
                const char* argv[7] = {"EVALSHA", sha.data(),   nkeys_text.data(), k1.data(),
                                       k2.data(), limit.data(), window.data()};
                const std::size_t lens[7] = {7,         sha.size(),   nkeys_text.size(), k1.size(),
                                             k2.size(), limit.size(), window.size()};
                int rc = REDIS_OK;
                if (nkeys == 2) {
                    rc = redisAppendCommandArgv(c, 7, argv, lens);
                } else {
                    const char* argv1[6] = {argv[0], argv[1], argv[2], argv[3], argv[5], argv[6]};
                    const std::size_t lens1[6] = {lens[0], lens[1], lens[2],
                                                  lens[3], lens[5], lens[6]};
                    rc = redisAppendCommandArgv(c, 6, argv1, lens1);
                }
                if (rc != REDIS_OK) {
                    fail();
                }
            }
            std::vector<std::size_t> missing;
            for (const std::size_t t : todo) {
                void* raw = nullptr;
                if (calls[t].asking) {
                    // ASKING answers +OK; a failure shows again in the command's own reply.
                    if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
                        fail();
                    }
                    freeReplyObject(raw);
                    raw = nullptr;
                }
                if (redisGetReply(c, &raw) != REDIS_OK || raw == nullptr) {
                    fail();
                }
                out[t] = Reply(static_cast<redisReply*>(raw));
                if (is_noscript(out[t].get())) {
                    missing.push_back(t);
                }
            }
            if (!missing.empty()) {
                sha = load_script(c, script_);
            }
            todo.swap(missing);
        }
        {
            const std::lock_guard lock(state_mutex_);
            script_sha_ = sha;
        }
        return out;
    });
    std::vector<OwnedReply> owned;
    owned.reserve(replies.size());
    for (Reply& r : replies) {
        owned.emplace_back(r.release(), &freeReplyObject);
    }
    return owned;
}

std::vector<Decision> RedisLimiter::decide_all(std::span<const std::string_view> keys) {
    maybe_refresh_slots();
    std::vector<std::string> k1s(keys.size());
    std::vector<std::string> k2s(keys.size());
    std::vector<Pending> pending(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
        k1s[i] = data_key(keys[i]);
        if (key_count() == 2) {
            k2s[i] = k1s[i] + ":seq";
        }
        pending[i].index = i;
        pending[i].node = &route(k1s[i]);
    }
    std::vector<Decision> out(keys.size());
    while (!pending.empty()) {
        // One pipeline per node; a key's repeated entries keep their order (stable sort).
        std::stable_sort(pending.begin(), pending.end(),
                         [](const Pending& a, const Pending& b) { return a.node < b.node; });
        std::vector<Pending> next;
        int wait_ms = 0;
        for (std::size_t begin = 0; begin < pending.size();) {
            Node& node = *pending[begin].node;
            std::size_t end = begin;
            while (end < pending.size() && pending[end].node == &node) {
                ++end;
            }
            const std::span<const Pending> group(pending.data() + begin, end - begin);
            begin = end;
            if (!should_try(node)) {
                for (const Pending& p : group) {
                    out[p.index] = degraded(keys[p.index], &node);
                }
                continue;
            }
            std::vector<OwnedReply> replies;
            try {
                replies = run_scripts(node, group, k1s, k2s);
            } catch (const RedisDown& e) {
                mark_down(node, e.what());
                for (const Pending& p : group) {
                    out[p.index] = degraded(keys[p.index], &node);
                }
                continue;
            } catch (...) {
                mark_up(node);  // a reachable server that answered with an error
                throw;
            }
            mark_up(node);
            for (std::size_t j = 0; j < group.size(); ++j) {
                Pending p = group[j];
                const redisReply* r = replies[j].get();
                if (const auto redirect = redirect_of(r)) {
                    if (++p.hops > kMaxRedirections) {
                        note_error("Redis redirected a command more than " +
                                   std::to_string(kMaxRedirections) +
                                   " times (last: " + std::string(reply_text(r)) + ")");
                        out[p.index] = degraded(keys[p.index], nullptr);
                        continue;
                    }
                    Node& target = node_at(redirect->host, redirect->port, node);
                    if (redirect->ask) {
                        ask_.fetch_add(1, std::memory_order_relaxed);
                    } else {
                        learn_moved(redirect->slot, target);
                    }
                    p.node = &target;
                    p.asking = redirect->ask;
                    next.push_back(p);
                    continue;
                }
                if (is_tryagain(r)) {
                    tryagain_.fetch_add(1, std::memory_order_relaxed);
                    if (++p.tries > kMaxTryAgain) {
                        note_error("Redis kept answering TRYAGAIN: " + std::string(reply_text(r)));
                        out[p.index] = degraded(keys[p.index], nullptr);
                        continue;
                    }
                    wait_ms = std::max(wait_ms, 1 << (p.tries - 1));
                    next.push_back(p);
                    continue;
                }
                try {
                    out[p.index] = parse_decision(r, limits_.limit);
                } catch (const RedisDown& e) {
                    // LOADING, BUSY, MASTERDOWN, CLUSTERDOWN: this node cannot decide now.
                    mark_down(node, e.what());
                    out[p.index] = degraded(keys[p.index], &node);
                }
            }
        }
        if (wait_ms > 0) {
            std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
        }
        pending.swap(next);
    }
    return out;
}

Decision RedisLimiter::decide(std::string_view key) {
    validate_key(key);
    const std::string_view one[1] = {key};
    return decide_all(one).front();
}

BatchDecisions RedisLimiter::decide_batch(std::span<const std::string> keys) {
    for (const auto& key : keys) {
        validate_key(key);
    }
    BatchDecisions result;
    result.limit = limits_.limit;
    result.source = Source::kRedis;
    if (keys.empty()) {
        return result;
    }
    std::vector<std::string_view> views(keys.begin(), keys.end());
    const std::vector<Decision> decisions = decide_all(views);
    result.reserve(keys.size());
    bool mixed = false;
    const Source first = decisions.front().source;
    for (const Decision& d : decisions) {
        result.push(d);
        mixed = mixed || d.source != first;
    }
    result.source = first;
    if (mixed) {
        result.sources.reserve(decisions.size());
        for (const Decision& d : decisions) {
            result.sources.push_back(d.source);
            if (d.source != Source::kRedis) {
                result.source = d.source;  // the batch names its degraded source
            }
        }
    }
    return result;
}

void RedisLimiter::reset(std::string_view key) {
    validate_key(key);
    fallback_.reset(key);
    const std::string k1 = data_key(key);
    const std::string k2 = seq_key(key);
    Node* node = &route(k1);
    bool asking = false;
    for (int hop = 0; hop <= kMaxRedirections; ++hop) {
        Reply r = with_connection(node->pool, [&](redisContext* c) {
            if (asking) {
                Reply ok = command(c, {"ASKING"});
            }
            return key_count() == 2 ? command(c, {"DEL", k1, k2}) : command(c, {"DEL", k1});
        });
        if (const auto redirect = redirect_of(r.get())) {
            Node& target = node_at(redirect->host, redirect->port, *node);
            if (redirect->ask) {
                ask_.fetch_add(1, std::memory_order_relaxed);
            } else {
                learn_moved(redirect->slot, target);
            }
            node = &target;
            asking = redirect->ask;
            continue;
        }
        if (is_error(r.get())) {
            throw_reply_error(r.get(), "DEL");
        }
        return;
    }
    throw BackendUnavailable("Redis redirected DEL of a rate-limit key more than " +
                             std::to_string(kMaxRedirections) + " times");
}

}  // namespace relay::ratelimit
