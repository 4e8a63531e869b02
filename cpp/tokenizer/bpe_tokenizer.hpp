// Byte-level BPE tokenizer whose output is identical to OpenAI's tiktoken.
//
// Pipeline: split on allowed special tokens -> pre-tokenise each segment with the encoding's
// pattern family (hand-written state machine, see pretokenizer.hpp) -> byte-pair merge each piece
// by rank (lowest rank first, leftmost on ties, exactly as tiktoken) -> ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/pretokenizer.hpp"

namespace relay::tokenizer {

using Rank = std::uint32_t;

// Token bytes with their rank, as listed in a `.tiktoken` file or a special-token table.
using RankedToken = std::pair<std::string, Rank>;

// Parses a `.tiktoken` rank file: one "base64(token bytes) SP rank" per line.
// Throws relay::RankFileError naming the line on any malformed input.
std::vector<RankedToken> parse_tiktoken_ranks(std::string_view contents);

struct MemoStats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::size_t size = 0;
    std::size_t capacity = 0;
};

class BpeTokenizer {
  public:
    // `memo_capacity` bounds the LRU memo of whole-text counts (0 disables it).
    BpeTokenizer(std::vector<RankedToken> mergeable_ranks, std::vector<RankedToken> special_tokens,
                 PatternFamily family, std::size_t memo_capacity = 4096);
    ~BpeTokenizer();
    BpeTokenizer(const BpeTokenizer&) = delete;
    BpeTokenizer& operator=(const BpeTokenizer&) = delete;
    BpeTokenizer(BpeTokenizer&&) noexcept;
    BpeTokenizer& operator=(BpeTokenizer&&) noexcept;

    // All methods below are const and safe to call from many threads at once.

    // tiktoken's encode_ordinary: special tokens are plain text.
    [[nodiscard]] std::vector<Rank> encode_ordinary(std::string_view text) const;

    // tiktoken's encode: throws DisallowedSpecialToken if `text` contains any of `disallowed`;
    // occurrences of `allowed` become their special ids, the rest is encoded ordinarily.
    [[nodiscard]] std::vector<Rank> encode(std::string_view text,
                                           const std::vector<std::string>& allowed,
                                           const std::vector<std::string>& disallowed) const;

    // encode_ordinary(text).size(), memoised by xxHash64 of the text in a bounded LRU.
    [[nodiscard]] std::size_t count(std::string_view text) const;

    // count() of each text, spread over `threads` threads (0 = hardware concurrency).
    [[nodiscard]] std::vector<std::size_t> count_batch(std::span<const std::string_view> texts,
                                                       unsigned threads = 0) const;

    // Concatenated bytes of the ids; throws UnknownTokenId for an id not in the vocabulary.
    [[nodiscard]] std::string decode_bytes(std::span<const Rank> ids) const;

    // Bytes of one token (mergeable or special); throws UnknownTokenId.
    [[nodiscard]] std::string token_bytes(Rank id) const;

    // Length in bytes of the longest prefix of `text` that (a) ends on a UTF-8 character boundary
    // and (b) counts at most `max_tokens` tokens when encoded on its own.
    [[nodiscard]] std::size_t truncate_point(std::string_view text, std::size_t max_tokens) const;

    // Largest id + 1 over mergeable and special tokens (tiktoken's n_vocab).
    [[nodiscard]] std::size_t n_vocab() const noexcept;
    [[nodiscard]] PatternFamily family() const noexcept;
    [[nodiscard]] const std::vector<RankedToken>& special_tokens() const noexcept;
    [[nodiscard]] MemoStats memo_stats() const;
    void clear_memo() const;

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace relay::tokenizer
