// Redis Cluster pieces of the limiter: the key slot function against answers of a real
// `CLUSTER KEYSLOT` (Redis 7.0.15, recorded), hash-tag extraction, the escaping that keeps a
// user key inside the limiter's tag, and the parsing of MOVED / ASK replies.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ratelimit/cluster.hpp"

namespace rl = relay::ratelimit;

TEST_CASE("CRC16/XMODEM matches the Redis Cluster specification", "[cluster]") {
    CHECK(rl::crc16_xmodem("123456789") == 0x31C3);
    CHECK(rl::crc16_xmodem("") == 0);
}

TEST_CASE("key_slot agrees with CLUSTER KEYSLOT", "[cluster]") {
    // (key, what `redis-cli CLUSTER KEYSLOT key` answered)
    const std::vector<std::pair<std::string, int>> recorded = {
        {"123456789", 12739},
        {"foo", 12182},
        {"bar", 5061},
        {"{user1000}.following", 3443},
        {"{user1000}.followers", 3443},
        {"foo{}{bar}", 8363},     // empty first tag: the whole key is hashed
        {"foo{{bar}}zap", 4015},  // tag is "{bar"
        {"foo{bar}{zap}", 5061},  // first tag only: "bar"
        {"{}", 15257},
        {"{", 4092},
        {"}", 12090},
        {"a{b", 13340},  // no closing brace: whole key
        {"", 0},
        {"relay:rl:log:{user-1}", 12542},
        {"relay:rl:log:{user-1}:seq", 12542},
        {"relay:rl:log:{%}", 13511},
        {"relay:rl:log:{a%7Db}", 13663},
        {"h\xc3\xa9llo", 11061},
    };
    for (const auto& [key, slot] : recorded) {
        INFO(key);
        CHECK(rl::key_slot(key) == slot);
    }
}

TEST_CASE("hash_tag takes the first brace pair, or the whole key", "[cluster]") {
    CHECK(rl::hash_tag("plain") == "plain");
    CHECK(rl::hash_tag("a{b}c") == "b");
    CHECK(rl::hash_tag("a{}c{d}") == "a{}c{d}");
    CHECK(rl::hash_tag("a{b{c}d}") == "b{c");
    CHECK(rl::hash_tag("a}b{c}") == "c");
    CHECK(rl::hash_tag("a{bc") == "a{bc");
}

TEST_CASE("encode_tag keeps any user key inside the limiter's tag, one name per key", "[cluster]") {
    const std::vector<std::string> keys = {"",    "%",      "{",     "}",     "{}",  "}{",
                                           "a}b", "a{b",    "%7B",   "%7D",   "%25", "user-1",
                                           "{x}", "x}:seq", "a%7Db", "a}b{c}"};
    std::set<std::string> names;
    for (const auto& key : keys) {
        INFO(key);
        const std::string tag = rl::encode_tag(key);
        CHECK(tag.find_first_of("{}") == std::string::npos);
        CHECK_FALSE(tag.empty());
        const std::string data = "relay:rl:log:{" + tag + "}";
        // The tag Redis hashes is exactly the encoded key, for the data key and its sequence.
        CHECK(rl::hash_tag(data) == tag);
        CHECK(rl::key_slot(data) == rl::key_slot(data + ":seq"));
        names.insert(tag);
    }
    CHECK(names.size() == keys.size());           // injective
    CHECK(rl::encode_tag("user-1") == "user-1");  // plain keys keep their pre-cluster names
    CHECK(rl::encode_tag("a}b") == "a%7Db");
    CHECK(rl::encode_tag("") == "%");
}

TEST_CASE("MOVED and ASK replies are parsed, anything else is not a redirection", "[cluster]") {
    const auto moved = rl::parse_redirect("MOVED 3999 127.0.0.1:6381");
    REQUIRE(moved.has_value());
    CHECK_FALSE(moved->ask);
    CHECK(moved->slot == 3999);
    CHECK(moved->host == "127.0.0.1");
    CHECK(moved->port == 6381);

    const auto ask = rl::parse_redirect("ASK 12182 10.0.0.7:30002");
    REQUIRE(ask.has_value());
    CHECK(ask->ask);
    CHECK(ask->slot == 12182);
    CHECK(ask->host == "10.0.0.7");
    CHECK(ask->port == 30002);

    const auto v6 = rl::parse_redirect("MOVED 1 [::1]:7000");
    REQUIRE(v6.has_value());
    CHECK(v6->host == "::1");
    CHECK(v6->port == 7000);

    const auto no_host = rl::parse_redirect("MOVED 5 :7001");  // the node's address is unknown
    REQUIRE(no_host.has_value());
    CHECK(no_host->host.empty());
    CHECK(no_host->port == 7001);

    for (const char* bad : {"MOVED", "MOVED 3999", "MOVED x 127.0.0.1:1", "MOVED 16384 h:1",
                            "MOVED -1 h:1", "MOVED 1 h", "MOVED 1 h:0", "MOVED 1 h:70000",
                            "MOVED 1 h:1x", "ASK 1", "ERR wrong", "NOSCRIPT No matching script",
                            "TRYAGAIN Multiple keys request during rehashing of slot"}) {
        INFO(bad);
        CHECK_FALSE(rl::parse_redirect(bad).has_value());
    }
}
