// The textbook dynamic programmes the bit-parallel fuzzy kernels are checked against (by the
// Catch2 tests and by the fuzz target tests/fuzz/fuzz_fuzzy.cpp).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>
#include <vector>

namespace relay::fuzzy::testing {

inline std::size_t reference_levenshtein(const std::u32string& a, const std::u32string& b) {
    std::vector<std::size_t> row(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) {
        row[j] = j;
    }
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = row[0];
        row[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] =
                std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0U : 1U)});
            diagonal = up;
        }
    }
    return row[b.size()];
}

inline std::size_t reference_lcs(const std::u32string& a, const std::u32string& b) {
    std::vector<std::size_t> row(b.size() + 1, 0);
    for (std::size_t i = 1; i <= a.size(); ++i) {
        std::size_t diagonal = 0;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t up = row[j];
            row[j] = a[i - 1] == b[j - 1] ? diagonal + 1 : std::max(row[j], row[j - 1]);
            diagonal = up;
        }
    }
    return row[b.size()];
}

}  // namespace relay::fuzzy::testing
