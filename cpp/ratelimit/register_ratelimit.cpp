// Binding of relay::ratelimit. Names, defaults and docstrings belong to the Python facade
// (relay_context/security/rate_limiter.py); this file only exposes the C++ calls.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "common/binding.hpp"
#include "ratelimit/local_limiter.hpp"
#include "ratelimit/redis_limiter.hpp"

namespace rl = relay::ratelimit;
using relay::bind::without_gil;

namespace {

// (allowed, remaining, reset_at, retry_after, decided_at, source)
using DecisionTuple = std::tuple<bool, std::int64_t, double, double, double, std::string_view>;

DecisionTuple as_tuple(const rl::Decision& d) {
    return {d.allowed,     d.remaining,  d.reset_at,
            d.retry_after, d.decided_at, rl::source_name(d.source)};
}

// (allowed, remaining, reset_at, retry_after, decided_at, source, sources): `sources` is empty
// unless the entries came from different places (a Redis Cluster with a node down).
using BatchTuple = std::tuple<std::vector<bool>, std::vector<std::int64_t>, std::vector<double>,
                              std::vector<double>, std::vector<double>, std::string_view,
                              std::vector<std::string_view>>;

BatchTuple as_tuple(rl::BatchDecisions&& b) {
    std::vector<std::string_view> sources;
    sources.reserve(b.sources.size());
    for (const rl::Source s : b.sources) {
        sources.push_back(rl::source_name(s));
    }
    return {std::move(b.allowed),     std::move(b.remaining),  std::move(b.reset_at),
            std::move(b.retry_after), std::move(b.decided_at), rl::source_name(b.source),
            std::move(sources)};
}

}  // namespace

void register_ratelimit(py::module_& m) {
    py::enum_<rl::Algorithm>(m, "Algorithm")
        .value("SLIDING_LOG", rl::Algorithm::kSlidingLog)
        .value("SLIDING_COUNTER", rl::Algorithm::kSlidingCounter)
        .value("TOKEN_BUCKET", rl::Algorithm::kTokenBucket);

    py::enum_<rl::FailurePolicy>(m, "FailurePolicy")
        .value("RAISE", rl::FailurePolicy::kRaise)
        .value("FALLBACK", rl::FailurePolicy::kFallback)
        .value("OPEN", rl::FailurePolicy::kOpen)
        .value("CLOSED", rl::FailurePolicy::kClosed);

    py::class_<rl::LocalLimiter>(m, "LocalLimiter")
        .def(py::init([](rl::Algorithm algorithm, std::int64_t limit, std::int64_t window_us,
                         std::size_t max_keys, std::size_t shards) {
                 return new rl::LocalLimiter(rl::Limits{algorithm, limit, window_us},
                                             rl::StoreOptions{max_keys, shards});
             }),
             py::arg("algorithm"), py::arg("limit"), py::arg("window_us"), py::arg("max_keys"),
             py::arg("shards"))
        .def(
            "decide",
            // One decision is a few hundred nanoseconds: releasing the GIL would cost more.
            [](rl::LocalLimiter& self, std::string_view key) { return as_tuple(self.decide(key)); },
            py::arg("key"))
        .def(
            "decide_at",
            [](rl::LocalLimiter& self, std::string_view key, std::int64_t now_us) {
                return as_tuple(self.decide_at(key, now_us));
            },
            py::arg("key"), py::arg("now_us"))
        .def(
            "decide_batch",
            [](rl::LocalLimiter& self, const std::vector<std::string>& keys) {
                // Safe: `keys` is a C++ copy; the store has its own sharded locks.
                return as_tuple(without_gil(
                    [&] { return self.decide_batch(std::span<const std::string>(keys)); }));
            },
            py::arg("keys"))
        .def(
            "decide_batch_at",
            [](rl::LocalLimiter& self, const std::vector<std::string>& keys, std::int64_t now_us) {
                // Safe: as decide_batch.
                return as_tuple(without_gil([&] {
                    return self.decide_batch_at(std::span<const std::string>(keys), now_us);
                }));
            },
            py::arg("keys"), py::arg("now_us"))
        .def("reset", &rl::LocalLimiter::reset, py::arg("key"))
        .def("clear", &rl::LocalLimiter::clear)
        .def("stats", [](const rl::LocalLimiter& self) {
            const auto s = self.stats();
            py::dict out;
            out["keys"] = s.keys;
            out["max_keys"] = s.max_keys;
            out["idle_evictions"] = s.idle_evictions;
            out["active_evictions"] = s.active_evictions;
            return out;
        });

    py::class_<rl::RedisLimiter>(m, "RedisLimiter")
        .def(py::init([](rl::Algorithm algorithm, std::int64_t limit, std::int64_t window_us,
                         std::string url, std::string key_prefix, std::int64_t connect_timeout_us,
                         std::int64_t command_timeout_us, std::size_t max_connections,
                         rl::FailurePolicy on_failure, std::int64_t retry_initial_us,
                         std::int64_t retry_max_us, std::size_t fallback_max_keys) {
                 rl::RedisOptions options{std::move(url),     std::move(key_prefix),
                                          connect_timeout_us, command_timeout_us,
                                          max_connections,    on_failure,
                                          retry_initial_us,   retry_max_us};
                 // Safe: connecting touches only C++ copies of the arguments.
                 return without_gil([&] {
                     return new rl::RedisLimiter(rl::Limits{algorithm, limit, window_us},
                                                 std::move(options),
                                                 rl::StoreOptions{fallback_max_keys, 64});
                 });
             }),
             py::arg("algorithm"), py::arg("limit"), py::arg("window_us"), py::arg("url"),
             py::arg("key_prefix"), py::arg("connect_timeout_us"), py::arg("command_timeout_us"),
             py::arg("max_connections"), py::arg("on_failure"), py::arg("retry_initial_us"),
             py::arg("retry_max_us"), py::arg("fallback_max_keys"))
        .def(
            "decide",
            [](rl::RedisLimiter& self, const std::string& key) {
                // Safe: `key` is a C++ copy; the pool and the outage state have their own locks.
                return as_tuple(without_gil([&] { return self.decide(key); }));
            },
            py::arg("key"))
        .def(
            "decide_batch",
            [](rl::RedisLimiter& self, const std::vector<std::string>& keys) {
                // Safe: as decide.
                return as_tuple(without_gil(
                    [&] { return self.decide_batch(std::span<const std::string>(keys)); }));
            },
            py::arg("keys"))
        .def(
            "reset",
            [](rl::RedisLimiter& self, const std::string& key) {
                // Safe: as decide.
                without_gil([&] { self.reset(key); });
            },
            py::arg("key"))
        .def_property_readonly("available", &rl::RedisLimiter::available)
        .def("cluster_stats",
             [](const rl::RedisLimiter& self) {
                 const rl::ClusterStats s = self.cluster_stats();
                 py::dict out;
                 out["cluster"] = s.cluster;
                 out["nodes"] = s.nodes;
                 out["moved"] = s.moved;
                 out["ask"] = s.ask;
                 out["tryagain"] = s.tryagain;
                 out["slot_refreshes"] = s.slot_refreshes;
                 return out;
             })
        .def("last_error", &rl::RedisLimiter::last_error);
}
