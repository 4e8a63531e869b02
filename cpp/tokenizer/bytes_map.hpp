// Hash map from token bytes to rank, shared by the tokenizer and its backtracking encoder.
#pragma once

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "absl/container/flat_hash_map.h"

namespace relay::tokenizer {

// XXH3 is markedly faster than the default string hash on the short keys of a vocabulary.
struct BytesHash {
    std::size_t operator()(std::string_view s) const noexcept {
        return static_cast<std::size_t>(XXH3_64bits(s.data(), s.size()));
    }
};

// Inline comparison: keys are short, and a libc memcmp call costs more than the bytes.
struct BytesEq {
    bool operator()(std::string_view a, std::string_view b) const noexcept {
        if (a.size() != b.size()) {
            return false;
        }
        for (std::size_t i = 0; i < a.size(); ++i) {
            if (a[i] != b[i]) {
                return false;
            }
        }
        return true;
    }
};

using BytesMap = absl::flat_hash_map<std::string_view, std::uint32_t, BytesHash, BytesEq>;

}  // namespace relay::tokenizer
