#include "ratelimit/cluster.hpp"

#include <array>
#include <charconv>

namespace relay::ratelimit {

namespace {

constexpr std::array<std::uint16_t, 256> make_crc16_table() {
    std::array<std::uint16_t, 256> table{};
    for (unsigned byte = 0; byte < 256; ++byte) {
        unsigned crc = byte << 8U;
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc & 0x8000U) != 0 ? (crc << 1U) ^ 0x1021U : crc << 1U;
        }
        table[byte] = static_cast<std::uint16_t>(crc & 0xFFFFU);
    }
    return table;
}

constexpr std::array<std::uint16_t, 256> kCrc16Table = make_crc16_table();

bool parse_number(std::string_view text, int& out) noexcept {
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, out);
    return !text.empty() && ec == std::errc() && ptr == end;
}

}  // namespace

std::uint16_t crc16_xmodem(std::string_view bytes) noexcept {
    std::uint16_t crc = 0;
    for (const char c : bytes) {
        const unsigned high = static_cast<unsigned>(crc) >> 8U;
        const unsigned index = (high ^ static_cast<unsigned char>(c)) & 0xFFU;
        crc = static_cast<std::uint16_t>(((static_cast<unsigned>(crc) << 8U) ^ kCrc16Table[index]) &
                                         0xFFFFU);
    }
    return crc;
}

std::string_view hash_tag(std::string_view key) noexcept {
    const auto open = key.find('{');
    if (open == std::string_view::npos) {
        return key;
    }
    const auto close = key.find('}', open + 1);
    if (close == std::string_view::npos || close == open + 1) {
        return key;
    }
    return key.substr(open + 1, close - open - 1);
}

int key_slot(std::string_view key) noexcept {
    return static_cast<int>(crc16_xmodem(hash_tag(key)) % kClusterSlots);
}

std::string encode_tag(std::string_view key) {
    if (key.empty()) {
        return "%";
    }
    std::string out;
    out.reserve(key.size());
    for (const char c : key) {
        switch (c) {
            case '%':
                out += "%25";
                break;
            case '{':
                out += "%7B";
                break;
            case '}':
                out += "%7D";
                break;
            default:
                out.push_back(c);
        }
    }
    return out;
}

std::optional<Redirect> parse_redirect(std::string_view error) noexcept {
    Redirect r;
    if (error.starts_with("MOVED ")) {
        error.remove_prefix(6);
    } else if (error.starts_with("ASK ")) {
        error.remove_prefix(4);
        r.ask = true;
    } else {
        return std::nullopt;
    }
    const auto space = error.find(' ');
    if (space == std::string_view::npos || !parse_number(error.substr(0, space), r.slot) ||
        r.slot < 0 || r.slot >= kClusterSlots) {
        return std::nullopt;
    }
    const std::string_view address = error.substr(space + 1);
    const auto colon = address.rfind(':');  // IPv6 hosts contain colons; the port follows the last
    if (colon == std::string_view::npos || !parse_number(address.substr(colon + 1), r.port) ||
        r.port <= 0 || r.port > 65535) {
        return std::nullopt;
    }
    std::string_view host = address.substr(0, colon);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
    }
    try {
        r.host = std::string(host);
    } catch (...) {
        return std::nullopt;
    }
    return r;
}

}  // namespace relay::ratelimit
