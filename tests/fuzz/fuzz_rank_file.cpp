// The `.tiktoken` rank-file parser on any bytes: it either returns ranks or throws
// RankFileError; a tokenizer built from what it returns encodes and decodes its own tokens.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "fuzz_support.hpp"

using relay::fuzzing::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view contents(reinterpret_cast<const char*>(data), size);
    std::vector<relay::tokenizer::RankedToken> ranks;
    try {
        ranks = relay::tokenizer::parse_tiktoken_ranks(contents);
    } catch (const relay::RankFileError&) {
        return 0;  // refused with a typed error: what a malformed file must get
    }
    for (const auto& [bytes, rank] : ranks) {
        check(!bytes.empty(), "a parsed token has bytes");
        (void)rank;
    }
    try {
        const relay::tokenizer::BpeTokenizer tok(ranks, {},
                                                 relay::tokenizer::PatternFamily::kCl100k, 0);
        for (const auto& [bytes, rank] : ranks) {
            check(tok.token_bytes(rank) == bytes, "token_bytes(rank) is the parsed token");
        }
    } catch (const relay::Error&) {
        // Ranks that parse but cannot make a vocabulary (no single bytes, gaps): refused, typed.
    }
    return 0;
}
