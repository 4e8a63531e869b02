// The pieces of the Redis Cluster protocol the limiter needs: which slot a key hashes to (CRC16
// of its hash tag, as the Cluster specification defines it), how the limiter puts a user key
// into a hash tag without ambiguity, and what a MOVED / ASK redirection reply says.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relay::ratelimit {

inline constexpr int kClusterSlots = 16384;

// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection), the checksum Redis
// Cluster hashes keys with. crc16_xmodem("123456789") == 0x31C3.
[[nodiscard]] std::uint16_t crc16_xmodem(std::string_view bytes) noexcept;

// The part of `key` that Redis Cluster hashes: the bytes between the first '{' and the first
// '}' after it when that span is not empty, else the whole key.
[[nodiscard]] std::string_view hash_tag(std::string_view key) noexcept;

// CRC16(hash_tag(key)) mod 16384, the answer of CLUSTER KEYSLOT.
[[nodiscard]] int key_slot(std::string_view key) noexcept;

// A user key made safe to put between braces: '%', '{' and '}' become %25, %7B and %7D (so the
// hash tag ends exactly at the brace the limiter adds, and two keys never encode alike), and the
// empty key becomes a lone "%" (which no escaped key can be; an empty tag would make Redis hash
// the whole name and split a limit's keys over two slots).
[[nodiscard]] std::string encode_tag(std::string_view key);

// A cluster redirection: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>".
struct Redirect {
    bool ask = false;  // ASK: this command only, after ASKING; MOVED: the slot's new owner
    int slot = 0;
    std::string host;
    int port = 0;
};

// The redirection an error reply carries, or nothing when it is another error (or malformed).
// An empty host (Redis 7 may send ":<port>" when the node does not know its address) is kept
// empty: the caller substitutes the host of the node that answered.
[[nodiscard]] std::optional<Redirect> parse_redirect(std::string_view error) noexcept;

}  // namespace relay::ratelimit
