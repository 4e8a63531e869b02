// Shared helpers of the libFuzzer targets: the shipped rank files, loaded once, and a check
// that aborts (so libFuzzer records the input) with a message when a property fails.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "tokenizer/bpe_tokenizer.hpp"

namespace relay::fuzzing {

[[noreturn]] inline void fail(const char* what) {
    std::fprintf(stderr, "property failed: %s\n", what);
    std::abort();
}

inline void check(bool ok, const char* what) {
    if (!ok) {
        fail(what);
    }
}

// RELAY_FUZZ_RANKS_DIR holds cl100k_base.tiktoken and o200k_base.tiktoken (scripts/fuzz
// decompresses the package's shipped .xz files there).
inline std::string read_rank_file(const std::string& name) {
    const char* dir = std::getenv("RELAY_FUZZ_RANKS_DIR");
    if (dir == nullptr) {
        fail("RELAY_FUZZ_RANKS_DIR is not set");
    }
    std::ifstream f(std::string(dir) + "/" + name + ".tiktoken", std::ios::binary);
    if (!f) {
        fail("cannot open a rank file in RELAY_FUZZ_RANKS_DIR");
    }
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline const tokenizer::BpeTokenizer& cl100k() {
    static const tokenizer::BpeTokenizer tok(
        tokenizer::parse_tiktoken_ranks(read_rank_file("cl100k_base")),
        {{"<|endoftext|>", 100257}, {"<|fim_prefix|>", 100258}, {"<|endofprompt|>", 100276}},
        tokenizer::PatternFamily::kCl100k);
    return tok;
}

inline const tokenizer::BpeTokenizer& o200k() {
    static const tokenizer::BpeTokenizer tok(
        tokenizer::parse_tiktoken_ranks(read_rank_file("o200k_base")),
        {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}, tokenizer::PatternFamily::kO200k);
    return tok;
}

}  // namespace relay::fuzzing
