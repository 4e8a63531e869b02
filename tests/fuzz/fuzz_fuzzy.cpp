// The fuzzy scorers on any code points: distances equal a plain dynamic-programming reference
// (within the bit-parallel kernel's multi-word path too), scores stay in [0, 100], the symmetric
// ones are symmetric, and identical texts score 100.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "fuzzy/similarity.hpp"
#include "fuzzy_reference.hpp"

using relay::fuzzing::check;
namespace rf = relay::fuzzy;
using relay::fuzzy::testing::reference_lcs;
using relay::fuzzy::testing::reference_levenshtein;

namespace {

// Two texts from the bytes: a small alphabet (so texts share characters), spaces for the token
// scorers, and now and then a code point from anywhere in Unicode.
std::u32string text_from(const std::uint8_t* data, std::size_t size) {
    std::u32string out;
    for (std::size_t i = 0; i < size; ++i) {
        const std::uint8_t b = data[i];
        if (b < 200) {
            out.push_back(U'a' + (b % 6));
        } else if (b < 230) {
            out.push_back(U' ');
        } else if (i + 2 < size) {
            out.push_back(static_cast<char32_t>(
                (static_cast<std::uint32_t>(data[i + 1]) << 8U | data[i + 2]) % 0x110000U));
            i += 2;
        }
    }
    return out;
}

bool in_range(double score) { return score >= 0.0 && score <= 100.0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size > 4096) {
        return 0;  // the quadratic references would dominate; multi-word paths start at 65
    }
    const std::size_t half = size / 2;
    const std::u32string a = text_from(data, half);
    const std::u32string b = text_from(data + half, size - half);

    check(rf::levenshtein_distance(a, b) == reference_levenshtein(a, b), "levenshtein == DP");
    check(rf::lcs_length(a, b) == reference_lcs(a, b), "lcs == DP");
    check(rf::indel_distance(a, b) == a.size() + b.size() - 2 * reference_lcs(a, b),
          "indel == len a + len b - 2 lcs");
    const std::size_t bound = size % 7;
    const std::size_t capped = rf::levenshtein_distance(a, b, bound);
    const std::size_t exact = reference_levenshtein(a, b);
    check(capped == (exact <= bound ? exact : bound + 1), "levenshtein with max_distance");

    for (const double s : {rf::ratio(a, b), rf::token_set_ratio(a, b), rf::partial_ratio(a, b),
                           rf::token_sort_ratio(a, b), rf::wratio(a, b), rf::qratio(a, b)}) {
        check(in_range(s), "score in [0, 100]");
    }
    check(rf::ratio(a, b) == rf::ratio(b, a), "ratio is symmetric");
    check(rf::token_sort_ratio(a, b) == rf::token_sort_ratio(b, a), "token_sort_ratio symmetric");
    check(rf::ratio(a, a) == 100.0, "ratio(a, a) == 100");
    return 0;
}
