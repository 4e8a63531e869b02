// Pre-tokenisation: splits UTF-8 text into the pieces tiktoken's regex would produce, without a
// regex engine (linear time, no backtracking blow-up on long runs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace relay::tokenizer {

// The pattern families of tiktoken's published encodings.
enum class PatternFamily : std::uint8_t {
    kR50k,    // gpt2, r50k_base, p50k_base, p50k_edit
    kCl100k,  // cl100k_base
    kO200k,   // o200k_base, o200k_harmony
};

// Byte range [begin, end) of one piece within the segment.
struct Piece {
    std::size_t begin;
    std::size_t end;
};

// Appends the pieces of `segment` to `out`. `segment` is a run of text between special tokens;
// `$` in the patterns means its end. Invalid UTF-8 never occurs here (inputs come from valid
// str); each invalid byte would be treated as one non-letter, non-digit, non-space character.
void pretokenize(PatternFamily family, std::string_view segment, std::vector<Piece>& out);

// Resumable form of pretokenize() for bounded memory on long texts: appends at most `max_pieces`
// pieces of `segment`, starting at byte `from` (0 or a value this function returned: a piece
// boundary), and returns the position after the last piece appended (segment.size() when done).
// Piece boundaries depend only on the position and the whole segment, so chunked calls produce
// exactly the pieces of one pretokenize() call.
std::size_t pretokenize_from(PatternFamily family, std::string_view segment, std::size_t from,
                             std::size_t max_pieces, std::vector<Piece>& out);

}  // namespace relay::tokenizer
