// zstd / LZ4 frame decoding with a size cap on any bytes (bombs, truncated and corrupt frames):
// one-shot and streaming decoders either agree on the output, which never exceeds the cap, or
// refuse with CorruptFrame / SizeLimitExceeded. Any input also round-trips through both
// compressors.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/errors.hpp"
#include "compress/compressor.hpp"
#include "fuzz_support.hpp"

using relay::fuzzing::check;
namespace rc = relay::compress;

namespace {

constexpr std::uint64_t kCap = 1U << 20U;  // 1 MiB: far below what a bomb declares

std::optional<std::string> one_shot(std::string_view data) {
    static const rc::Decompressor decompressor(nullptr, kCap);
    try {
        return decompressor.decompress(data);
    } catch (const relay::CorruptFrame&) {
    } catch (const relay::SizeLimitExceeded&) {
    }
    return std::nullopt;
}

std::optional<std::string> streamed(std::string_view data, std::size_t split) {
    rc::StreamDecompressor decompressor(nullptr, kCap);
    try {
        std::string out = decompressor.decompress(data.substr(0, split));
        out += decompressor.decompress(data.substr(split));
        decompressor.finish();
        return out;
    } catch (const relay::CorruptFrame&) {
    } catch (const relay::SizeLimitExceeded&) {
    }
    return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view bytes(reinterpret_cast<const char*>(data), size);

    const auto whole = one_shot(bytes);
    if (whole) {
        check(whole->size() <= kCap, "one-shot output within the cap");
    }
    const auto pieces = streamed(bytes, size / 2);
    if (pieces) {
        check(pieces->size() <= kCap, "streamed output within the cap");
    }
    if (whole && pieces) {
        check(*whole == *pieces, "one-shot and streamed decoders agree");
    }

    for (const auto algorithm : {rc::Algorithm::kZstd, rc::Algorithm::kLz4}) {
        rc::CompressorOptions options;
        options.algorithm = algorithm;
        options.level = 1;
        options.checksum = (size & 1U) != 0;
        const rc::Compressor compressor(options);
        const auto restored = one_shot(compressor.compress(bytes));
        check(restored.has_value() && *restored == bytes, "compress then decompress round-trips");
    }
    return 0;
}
