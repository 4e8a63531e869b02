// Character-class lookup for the pre-tokenisers: one flag byte per Unicode code point, stored as a
// two-stage table generated from the Unicode 16.0.0 database by scripts/gen_unicode_tables.py
// (the Unicode version of the regex tables inside tiktoken 0.14.0).
#pragma once

#include <cstddef>
#include <cstdint>

namespace relay::tokenizer::unicode {

// Flag bits of a code point.
inline constexpr std::uint8_t kL = 1;   // \p{L}: Lu, Ll, Lt, Lm, Lo
inline constexpr std::uint8_t kN = 2;   // \p{N}: Nd, Nl, No
inline constexpr std::uint8_t kWS = 4;  // \s: the White_Space property
inline constexpr std::uint8_t kU = 8;   // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
inline constexpr std::uint8_t kW = 16;  // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
inline constexpr std::uint8_t kM = 32;  // \p{M}: Mn, Mc, Me

// Code points per stage-2 block = 1 << kStage1Shift (checked by the generated file).
inline constexpr unsigned kStage1Shift = 7;
extern const std::uint8_t kStage1[];
extern const std::uint8_t kStage2[];

// A non-ASCII code point whose simple case folding equals an ASCII contraction letter.
struct FoldEntry {
    std::uint32_t code_point;
    char ascii_lower;
};
extern const FoldEntry kContractionFolds[];
extern const std::size_t kContractionFoldCount;

// Flags of `cp` (0 for code points above U+10FFFF).
inline std::uint8_t flags_of(std::uint32_t cp) noexcept {
    if (cp >= 0x110000) {
        return 0;
    }
    const std::uint32_t block = kStage1[cp >> kStage1Shift];
    return kStage2[(block << kStage1Shift) | (cp & ((1U << kStage1Shift) - 1U))];
}

// flags_of for a code point known to be below U+10000 (a three-byte UTF-8 character).
inline std::uint8_t flags_of_bmp(std::uint32_t cp) noexcept {
    const std::uint32_t block = kStage1[cp >> kStage1Shift];
    return kStage2[(block << kStage1Shift) | (cp & ((1U << kStage1Shift) - 1U))];
}

// The lower-case ASCII letter that `cp` matches case-insensitively under simple case folding
// (e.g. 'S' -> 's', U+017F LONG S -> 's'), or 0 if `cp` folds to no ASCII letter.
inline char ascii_fold(std::uint32_t cp) noexcept {
    if (cp < 0x80) {
        if (cp >= 'A' && cp <= 'Z') {
            return static_cast<char>(cp - 'A' + 'a');
        }
        if (cp >= 'a' && cp <= 'z') {
            return static_cast<char>(cp);
        }
        return 0;
    }
    for (std::size_t i = 0; i < kContractionFoldCount; ++i) {
        if (kContractionFolds[i].code_point == cp) {
            return kContractionFolds[i].ascii_lower;
        }
    }
    return 0;
}

}  // namespace relay::tokenizer::unicode
