// Shared helpers of the tokenizer tests: the official encodings, loaded once.
#pragma once

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tokenizer/bpe_tokenizer.hpp"

namespace relay::tokenizer::testing {

inline std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        throw std::runtime_error("cannot open " + path);
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline std::vector<RankedToken> load_ranks(const std::string& name) {
    return parse_tiktoken_ranks(
        read_file(std::string(RELAY_SHARED_DIR) + "/data/bpe/" + name + ".tiktoken"));
}

inline std::vector<RankedToken> cl100k_specials() {
    return {{"<|endoftext|>", 100257},
            {"<|fim_prefix|>", 100258},
            {"<|fim_middle|>", 100259},
            {"<|fim_suffix|>", 100260},
            {"<|endofprompt|>", 100276}};
}

inline std::vector<RankedToken> o200k_specials() {
    return {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}};
}

// Mergeable ranks of cl100k_base, parsed once.
inline const std::vector<RankedToken>& cl100k_ranks() {
    static const std::vector<RankedToken> ranks = load_ranks("cl100k_base");
    return ranks;
}

inline const BpeTokenizer& cl100k() {
    static const BpeTokenizer tok(cl100k_ranks(), cl100k_specials(), PatternFamily::kCl100k);
    return tok;
}

inline const BpeTokenizer& o200k() {
    static const BpeTokenizer tok(load_ranks("o200k_base"), o200k_specials(),
                                  PatternFamily::kO200k);
    return tok;
}

// The r50k/p50k pattern over cl100k's ranks (the r50k rank file is not shipped); the expected
// ids come from tiktoken.Encoding(pat_str=r50k_pat_str, mergeable_ranks=cl100k's).
inline const BpeTokenizer& r50k_on_cl100k() {
    static const BpeTokenizer tok(cl100k_ranks(), {{"<|endoftext|>", 100257}},
                                  PatternFamily::kR50k);
    return tok;
}

// A minimal vocabulary: the 256 single bytes (rank = byte value) plus `extra` in order.
inline std::vector<RankedToken> byte_vocab(const std::vector<std::string>& extra) {
    std::vector<RankedToken> v;
    for (unsigned b = 0; b < 256; ++b) {
        v.emplace_back(std::string(1, static_cast<char>(b)), b);
    }
    Rank r = 256;
    for (const std::string& s : extra) {
        v.emplace_back(s, r++);
    }
    return v;
}

}  // namespace relay::tokenizer::testing
