// Hash map from token bytes to rank, shared by the tokenizer and its backtracking encoder.
#pragma once

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "absl/container/flat_hash_map.h"

namespace relay::tokenizer {

// XXH3 is markedly faster than the default string hash on the short keys of a vocabulary.
struct BytesHash {
    std::size_t operator()(std::string_view s) const noexcept {
        return static_cast<std::size_t>(XXH3_64bits(s.data(), s.size()));
    }
};

// Inline comparison: keys are short, and a libc memcmp call costs more than the bytes. Eight
// bytes at a time (unaligned loads through memcpy, which compile to single moves); a tail of
// one to seven bytes is compared as the last eight bytes when the keys are that long, else byte
// by byte.
struct BytesEq {
    bool operator()(std::string_view a, std::string_view b) const noexcept {
        const std::size_t n = a.size();
        if (n != b.size()) {
            return false;
        }
        if (n >= 8) {
            std::size_t i = 0;
            for (; i + 8 <= n; i += 8) {
                if (load8(a.data() + i) != load8(b.data() + i)) {
                    return false;
                }
            }
            return i == n || load8(a.data() + n - 8) == load8(b.data() + n - 8);
        }
        for (std::size_t i = 0; i < n; ++i) {
            if (a[i] != b[i]) {
                return false;
            }
        }
        return true;
    }

  private:
    static std::uint64_t load8(const char* p) noexcept {
        std::uint64_t v = 0;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
};

using BytesMap = absl::flat_hash_map<std::string_view, std::uint32_t, BytesHash, BytesEq>;

}  // namespace relay::tokenizer
