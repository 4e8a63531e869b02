// The Redis limiter against the real Redis on 127.0.0.1:6379. These tests fail (they do not
// skip) when that server is missing.
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/errors.hpp"
#include "ratelimit/redis_limiter.hpp"

namespace rl = relay::ratelimit;

namespace {

// hiredis writes with write(2): a peer that went away must not kill the test with SIGPIPE.
const bool kSigpipeIgnored = [] {
    std::signal(SIGPIPE, SIG_IGN);
    return true;
}();

constexpr std::int64_t kSecond = 1'000'000;
const char* const kUrl = "redis://127.0.0.1:6379/0";

std::string unique_prefix() {
    static std::atomic<int> counter{0};
    const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    return "relay:test:cpp:" + std::to_string(::getpid()) + ":" + std::to_string(t) + ":" +
           std::to_string(counter.fetch_add(1)) + ":";
}

rl::RedisOptions options(rl::FailurePolicy policy = rl::FailurePolicy::kRaise,
                         std::string url = kUrl) {
    rl::RedisOptions o;
    o.url = std::move(url);
    o.key_prefix = unique_prefix();
    o.on_failure = policy;
    o.max_connections = 8;
    o.connect_timeout_us = 500'000;
    o.command_timeout_us = 500'000;
    return o;
}

struct Raw {
    Raw() : ctx(redisConnect("127.0.0.1", 6379)) {
        REQUIRE(ctx != nullptr);
        REQUIRE(ctx->err == 0);
    }
    ~Raw() { redisFree(ctx); }
    Raw(const Raw&) = delete;
    Raw& operator=(const Raw&) = delete;
    long long integer(const std::vector<std::string>& args) {
        std::vector<const char*> argv;
        std::vector<std::size_t> lens;
        for (const auto& a : args) {
            argv.push_back(a.c_str());
            lens.push_back(a.size());
        }
        auto* r = static_cast<redisReply*>(
            redisCommandArgv(ctx, static_cast<int>(argv.size()), argv.data(), lens.data()));
        REQUIRE(r != nullptr);
        const long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
        freeReplyObject(r);
        return v;
    }
    redisContext* ctx;
};

int free_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// A throwaway redis-server on a free port, so that tests can flush or stop it without touching
// the machine's shared Redis.
class ThrowawayRedis {
  public:
    ThrowawayRedis() : port_(free_port()) { start(); }
    ~ThrowawayRedis() { stop(); }
    ThrowawayRedis(const ThrowawayRedis&) = delete;
    ThrowawayRedis& operator=(const ThrowawayRedis&) = delete;

    [[nodiscard]] std::string url() const {
        return "redis://127.0.0.1:" + std::to_string(port_) + "/0";
    }
    [[nodiscard]] int port() const { return port_; }

    void start() {
        const std::string port = std::to_string(port_);
        pid_ = ::fork();
        REQUIRE(pid_ >= 0);
        if (pid_ == 0) {
            std::freopen("/dev/null", "w", stdout);
            ::execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1",
                     "--save", "", "--appendonly", "no", static_cast<char*>(nullptr));
            std::_Exit(127);
        }
        for (int i = 0; i < 200; ++i) {
            redisContext* c = redisConnect("127.0.0.1", port_);
            const bool ok = c != nullptr && c->err == 0;
            redisFree(c);
            if (ok) {
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(25));
        }
        FAIL("redis-server did not start on port " << port_);
    }

    void stop() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
            pid_ = -1;
        }
    }

  private:
    int port_;
    pid_t pid_ = -1;
};

}  // namespace

TEST_CASE("Redis sliding log admits the limit, stores it, and uses server time", "[redis]") {
    REQUIRE(kSigpipeIgnored);
    auto o = options();
    const std::string prefix = o.key_prefix;
    rl::RedisLimiter lim(rl::Limits{rl::Algorithm::kSlidingLog, 5, 10 * kSecond}, o);
    REQUIRE(lim.available());
    for (int i = 0; i < 5; ++i) {
        const auto d = lim.decide("user-1");
        CHECK(d.allowed);
        CHECK(d.remaining == 4 - i);
        CHECK(d.source == rl::Source::kRedis);
    }
    const auto denied = lim.decide("user-1");
    CHECK_FALSE(denied.allowed);
    CHECK(denied.remaining == 0);
    CHECK(denied.retry_after > 9.0);
    CHECK(denied.retry_after <= 10.0);
    CHECK(denied.reset_at > denied.decided_at);
    // The server's clock, which this machine shares, decided.
    const double local = static_cast<double>(rl::system_clock_us()) / 1e6;
    CHECK(std::abs(denied.decided_at - local) < 5.0);

    Raw raw;
    CHECK(raw.integer({"ZCARD", prefix + "log:{user-1}"}) == 5);
    const long long ttl = raw.integer({"PTTL", prefix + "log:{user-1}"});
    CHECK(ttl > 9000);
    CHECK(ttl <= 11000);

    lim.reset("user-1");
    CHECK(raw.integer({"EXISTS", prefix + "log:{user-1}"}) == 0);
    CHECK(lim.decide("user-1").allowed);
}

TEST_CASE("Redis limiter reloads its script after SCRIPT FLUSH (NOSCRIPT)", "[redis]") {
    // Flushing scripts on the shared Redis would disturb other clients: use a private server.
    ThrowawayRedis server;
    rl::RedisLimiter lim(rl::Limits{rl::Algorithm::kSlidingCounter, 3, 10 * kSecond},
                         options(rl::FailurePolicy::kRaise, server.url()));
    CHECK(lim.decide("k").allowed);
    const auto flush = [&] {
        redisContext* c = redisConnect("127.0.0.1", server.port());
        REQUIRE(c != nullptr);
        auto* r = static_cast<redisReply*>(redisCommand(c, "SCRIPT FLUSH"));
        REQUIRE(r != nullptr);
        CHECK(r->type == REDIS_REPLY_STATUS);
        freeReplyObject(r);
        redisFree(c);
    };
    flush();
    CHECK(lim.decide("k").allowed);
    flush();
    const std::vector<std::string> keys = {"k", "k", "j"};
    const auto batch = lim.decide_batch(keys);
    CHECK(batch.allowed == std::vector<bool>{true, false, true});
    CHECK(batch.source == rl::Source::kRedis);
}

TEST_CASE("Redis batches and threads never admit more than the limit", "[redis]") {
    for (const auto a : {rl::Algorithm::kSlidingLog, rl::Algorithm::kSlidingCounter,
                         rl::Algorithm::kTokenBucket}) {
        rl::RedisLimiter lim(rl::Limits{a, 40, 3600 * kSecond}, options());
        std::atomic<int> admitted{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
            threads.emplace_back([&] {
                for (int i = 0; i < 10; ++i) {
                    if (lim.decide("shared").allowed) {
                        admitted.fetch_add(1);
                    }
                }
                const std::vector<std::string> keys(20, "shared");
                const auto batch = lim.decide_batch(keys);
                for (const bool ok : batch.allowed) {
                    admitted.fetch_add(ok ? 1 : 0);
                }
            });
        }
        for (auto& th : threads) {
            th.join();
        }
        CHECK(admitted.load() == 40);
        lim.reset("shared");  // an hour-long TTL would otherwise linger on the shared server
    }
}

TEST_CASE("Redis token bucket refills at the rate, by the server's clock", "[redis]") {
    // Burst 2, refilled over 200 ms: one token per 100 ms.
    rl::RedisLimiter lim(rl::Limits{rl::Algorithm::kTokenBucket, 2, 200'000}, options());
    CHECK(lim.decide("b").allowed);
    CHECK(lim.decide("b").allowed);
    const auto denied = lim.decide("b");
    CHECK_FALSE(denied.allowed);
    CHECK(denied.retry_after > 0.0);
    CHECK(denied.retry_after <= 0.1);
    std::this_thread::sleep_for(
        std::chrono::microseconds(static_cast<std::int64_t>(denied.retry_after * 1e6) + 5000));
    CHECK(lim.decide("b").allowed);
}

TEST_CASE("an unreachable Redis follows the outage policy", "[redis]") {
    const std::string url = "redis://127.0.0.1:" + std::to_string(free_port()) + "/0";
    const rl::Limits limits{rl::Algorithm::kSlidingLog, 2, 10 * kSecond};

    CHECK_THROWS_AS(rl::RedisLimiter(limits, options(rl::FailurePolicy::kRaise, url)),
                    relay::BackendUnavailable);
    CHECK_THROWS_WITH(rl::RedisLimiter(limits, options(rl::FailurePolicy::kClosed, url)),
                      Catch::Contains("cannot connect to Redis at 127.0.0.1"));

    rl::RedisLimiter fallback(limits, options(rl::FailurePolicy::kFallback, url));
    CHECK_FALSE(fallback.available());
    CHECK_THAT(fallback.last_error(), Catch::Contains("cannot connect"));
    CHECK(fallback.decide("k").source == rl::Source::kFallback);
    CHECK(fallback.decide("k").allowed);
    CHECK_FALSE(fallback.decide("k").allowed);  // the in-process limits apply
    const std::vector<std::string> keys = {"x", "x", "x"};
    const auto batch = fallback.decide_batch(keys);
    CHECK(batch.allowed == std::vector<bool>{true, true, false});
    CHECK(batch.source == rl::Source::kFallback);

    rl::RedisLimiter open(limits, options(rl::FailurePolicy::kOpen, url));
    for (int i = 0; i < 5; ++i) {
        const auto d = open.decide("k");
        CHECK(d.allowed);
        CHECK(d.source == rl::Source::kPolicy);
    }
    CHECK_THROWS_AS(open.reset("k"), relay::BackendUnavailable);
}

TEST_CASE("Redis URLs are parsed or rejected with a clear error", "[redis]") {
    auto ep = rl::parse_redis_url("redis://user:p%40ss@example.com:6380/3");
    CHECK(ep.host == "example.com");
    CHECK(ep.port == 6380);
    CHECK(ep.db == 3);
    CHECK(ep.username == "user");
    CHECK(ep.password == "p@ss");
    CHECK(ep.describe().find("p@ss") == std::string::npos);
    ep = rl::parse_redis_url("redis://:secret@[::1]:7000");
    CHECK(ep.host == "::1");
    CHECK(ep.port == 7000);
    CHECK(ep.password == "secret");
    CHECK(ep.username.empty());
    ep = rl::parse_redis_url("redis://localhost");
    CHECK(ep.host == "localhost");
    CHECK(ep.port == 6379);
    CHECK(ep.db == 0);
    ep = rl::parse_redis_url("unix:///run/redis.sock?db=2");
    CHECK(ep.unix_path == "/run/redis.sock");
    CHECK(ep.db == 2);
    CHECK_THROWS_AS(rl::parse_redis_url("http://localhost"), relay::InvalidArgument);
    CHECK_THROWS_AS(rl::parse_redis_url("rediss://localhost"), relay::InvalidArgument);
    CHECK_THROWS_AS(rl::parse_redis_url("redis://localhost:99999"), relay::InvalidArgument);
    CHECK_THROWS_AS(rl::parse_redis_url("redis://localhost:abc"), relay::InvalidArgument);
    CHECK_THROWS_AS(rl::parse_redis_url("redis://localhost/x"), relay::InvalidArgument);
    CHECK_THROWS_AS(rl::RedisLimiter(rl::Limits{rl::Algorithm::kSlidingLog, 0, kSecond}, options()),
                    relay::InvalidArgument);
}

TEST_CASE("Redis stopped and started again: fallback, then Redis takes over", "[redis]") {
    ThrowawayRedis server;
    auto o = options(rl::FailurePolicy::kFallback, server.url());
    o.retry_initial_us = 50'000;
    o.retry_max_us = 200'000;
    rl::RedisLimiter lim(rl::Limits{rl::Algorithm::kSlidingLog, 3, 60 * kSecond}, o);
    CHECK(lim.decide("k").source == rl::Source::kRedis);

    server.stop();
    const auto during = lim.decide("k");
    CHECK(during.source == rl::Source::kFallback);
    CHECK_FALSE(lim.available());
    // The fallback keeps limiting on its own count (Redis's one admission is not known here).
    CHECK(lim.decide("k").allowed);
    CHECK(lim.decide("k").allowed);
    CHECK_FALSE(lim.decide("k").allowed);

    server.start();  // same port, empty data
    rl::Decision after;
    for (int i = 0; i < 100; ++i) {
        after = lim.decide("k");
        if (after.source == rl::Source::kRedis) {
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(after.source == rl::Source::kRedis);
    CHECK(after.allowed);
    CHECK(after.remaining == 2);
    CHECK(lim.available());
}

TEST_CASE("with the raise policy an outage throws, and Redis is used again after", "[redis]") {
    ThrowawayRedis server;
    auto o = options(rl::FailurePolicy::kRaise, server.url());
    o.retry_initial_us = 50'000;
    o.retry_max_us = 100'000;
    rl::RedisLimiter lim(rl::Limits{rl::Algorithm::kTokenBucket, 3, kSecond}, o);
    CHECK(lim.decide("k").allowed);
    server.stop();
    CHECK_THROWS_AS(lim.decide("k"), relay::BackendUnavailable);
    CHECK_THROWS_WITH(lim.decide("k"), Catch::Contains("Redis is unavailable"));
    server.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    CHECK(lim.decide("k").source == rl::Source::kRedis);
}
