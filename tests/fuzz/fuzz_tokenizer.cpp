// Pre-tokeniser + BPE encoder on any bytes (valid UTF-8 or not): the ids decode back to exactly
// the input bytes, count() equals the number of ids, encode() with every special allowed decodes
// back too, and truncate_point() gives a prefix that counts at most the limit.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "fuzz_support.hpp"

using relay::fuzzing::check;

// The vocabularies load once, before the first input: their seconds under ASan are not an input's.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
    (void)relay::fuzzing::cl100k();
    (void)relay::fuzzing::o200k();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    // The first byte picks the encoding and the limit for truncate_point.
    const auto& tok = (data[0] & 1U) != 0 ? relay::fuzzing::o200k() : relay::fuzzing::cl100k();
    const std::size_t limit = data[0] >> 1U;
    const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

    const std::vector<relay::tokenizer::Rank> ids = tok.encode_ordinary(text);
    check(tok.decode_bytes(ids) == text, "decode(encode_ordinary(text)) == text");
    check(tok.count(text) == ids.size(), "count(text) == len(encode_ordinary(text))");

    std::vector<std::string> allowed;
    for (const auto& special : tok.special_tokens()) {
        allowed.push_back(special.first);
    }
    const auto with_specials = tok.encode(text, allowed, {});
    check(tok.decode_bytes(with_specials) == text, "decode(encode(text, all allowed)) == text");
    check(with_specials.size() <= ids.size(), "a special token is one id, never more");

    const std::size_t cut = tok.truncate_point(text, limit);
    check(cut <= text.size(), "truncate_point within the text");
    check(tok.encode_ordinary(text.substr(0, cut)).size() <= limit,
          "the truncated prefix counts at most the limit");
    return 0;
}
