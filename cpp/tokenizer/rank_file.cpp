// Strict parser of tiktoken's `.tiktoken` rank files: one "base64(token bytes) SP rank" per
// non-empty line (a trailing "\r" is tolerated), as read by tiktoken.load.load_tiktoken_bpe.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <array>
#include <charconv>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/errors.hpp"
#include "tokenizer/bpe_tokenizer.hpp"

namespace relay::tokenizer {
namespace {

constexpr std::uint8_t kBad = 0xFF;
constexpr std::uint8_t kPad = 0xFE;

constexpr std::array<std::uint8_t, 256> kBase64 = [] {
    std::array<std::uint8_t, 256> t{};
    t.fill(kBad);
    constexpr std::string_view kAlphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
        t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::uint8_t>(i);
    }
    t['='] = kPad;
    return t;
}();

struct BytesHash {
    std::size_t operator()(std::string_view s) const noexcept {
        return static_cast<std::size_t>(XXH3_64bits(s.data(), s.size()));
    }
};

[[noreturn]] void fail(std::size_t line, const std::string& what) {
    throw RankFileError("rank file line " + std::to_string(line) + ": " + what);
}

// Standard base64 with padding; rejects anything else. Returns false on malformed input.
bool decode_base64(std::string_view in, std::string& out) {
    out.clear();
    if (in.empty() || in.size() % 4 != 0) {
        return false;
    }
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        std::array<std::uint8_t, 4> v{};
        for (std::size_t k = 0; k < 4; ++k) {
            v[k] = kBase64[static_cast<unsigned char>(in[i + k])];
            if (v[k] == kBad) {
                return false;
            }
        }
        const bool last = i + 4 == in.size();
        if (v[0] == kPad || v[1] == kPad) {
            return false;
        }
        const std::uint32_t b0 = v[0];
        const std::uint32_t b1 = v[1];
        out.push_back(static_cast<char>((b0 << 2) | (b1 >> 4)));
        if (v[2] == kPad) {
            // "xx==": the unused low 4 bits of the second symbol must be zero.
            if (!last || v[3] != kPad || (b1 & 0x0FU) != 0) {
                return false;
            }
            break;
        }
        const std::uint32_t b2 = v[2];
        out.push_back(static_cast<char>(((b1 & 0x0FU) << 4) | (b2 >> 2)));
        if (v[3] == kPad) {
            if (!last || (b2 & 0x03U) != 0) {
                return false;
            }
            break;
        }
        out.push_back(static_cast<char>(((b2 & 0x03U) << 6) | v[3]));
    }
    return true;
}

}  // namespace

std::vector<RankedToken> parse_tiktoken_ranks(std::string_view contents) {
    std::vector<RankedToken> result;
    std::vector<std::size_t> lines;  // line number of each entry, for duplicate messages
    result.reserve(contents.size() / 12 + 1);
    lines.reserve(contents.size() / 12 + 1);
    std::size_t line_no = 0;
    std::size_t pos = 0;
    std::string bytes;
    while (pos < contents.size()) {
        ++line_no;
        std::size_t eol = contents.find('\n', pos);
        if (eol == std::string_view::npos) {
            eol = contents.size();
        }
        std::string_view line = contents.substr(pos, eol - pos);
        pos = eol + 1;
        if (!line.empty() && line.back() == '\r') {
            line.remove_suffix(1);
        }
        if (line.empty()) {
            continue;
        }
        const std::size_t sp = line.find(' ');
        if (sp == std::string_view::npos) {
            fail(line_no, "missing rank (expected \"<base64 token> <rank>\")");
        }
        const std::string_view b64 = line.substr(0, sp);
        const std::string_view rank_text = line.substr(sp + 1);
        if (b64.empty()) {
            fail(line_no, "empty token");
        }
        if (rank_text.empty()) {
            fail(line_no, "missing rank (expected \"<base64 token> <rank>\")");
        }
        if (!decode_base64(b64, bytes)) {
            fail(line_no, "bad base64 token '" + std::string(b64.substr(0, 64)) + "'");
        }
        Rank rank = 0;
        const char* first = rank_text.data();
        const char* last = first + rank_text.size();
        const auto [ptr, ec] = std::from_chars(first, last, rank);
        if (ec == std::errc::result_out_of_range) {
            fail(line_no, "rank '" + std::string(rank_text.substr(0, 32)) + "' is out of range");
        }
        if (ec != std::errc() || ptr != last || rank_text.front() == '-' ||
            rank_text.front() == '+') {
            fail(line_no, "rank '" + std::string(rank_text.substr(0, 32)) +
                              "' is not a non-negative decimal integer");
        }
        if (rank == std::numeric_limits<Rank>::max()) {
            fail(line_no, "rank " + std::to_string(rank) + " is reserved");
        }
        result.emplace_back(bytes, rank);
        lines.push_back(line_no);
    }
    if (result.empty()) {
        throw RankFileError("rank file is empty (no \"<base64 token> <rank>\" lines)");
    }

    // Duplicates, checked once the vector no longer moves (the views point into it).
    absl::flat_hash_map<Rank, std::size_t> by_rank;
    absl::flat_hash_map<std::string_view, std::size_t, BytesHash> by_token;
    by_rank.reserve(result.size());
    by_token.reserve(result.size());
    for (std::size_t i = 0; i < result.size(); ++i) {
        const auto [rit, rnew] = by_rank.try_emplace(result[i].second, i);
        if (!rnew) {
            fail(lines[i], "duplicate rank " + std::to_string(result[i].second) +
                               " (first on line " + std::to_string(lines[rit->second]) + ")");
        }
        const auto [tit, tnew] = by_token.try_emplace(result[i].first, i);
        if (!tnew) {
            fail(lines[i],
                 "duplicate token (first on line " + std::to_string(lines[tit->second]) + ")");
        }
    }
    return result;
}

}  // namespace relay::tokenizer
