// Frame headers, dictionaries, one-shot compression and decompression.
#include "compress/compressor.hpp"

#include <zdict.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "common/errors.hpp"
#include "compress/detail.hpp"

namespace relay::compress {

using detail::OutputLimit;

namespace {

// Block size ceilings of the LZ4 frame format, by the block-size id in the BD byte (4..7).
constexpr std::array<std::uint64_t, 4> kLz4BlockSizes = {64U << 10U, 256U << 10U, 1U << 20U,
                                                         4U << 20U};
constexpr std::size_t kSkippableHeaderSize = 8;

std::uint64_t read_le(std::string_view data, std::size_t pos, std::size_t width) {
    std::uint64_t value = 0;
    for (std::size_t i = 0; i < width; ++i) {
        value |= std::uint64_t{static_cast<unsigned char>(data[pos + i])} << (8U * i);
    }
    return value;
}

std::string hex_bytes(std::string_view data, std::size_t n) {
    static constexpr std::string_view kDigits = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < std::min(n, data.size()); ++i) {
        const auto byte = static_cast<unsigned char>(data[i]);
        if (i > 0) {
            out += ' ';
        }
        out += kDigits[byte >> 4U];
        out += kDigits[byte & 0xFU];
    }
    return out;
}

std::optional<FrameHeader> parse_zstd_header(std::string_view data, std::uint64_t offset) {
    // RFC 8878 3.1.1: magic, Frame_Header_Descriptor, [Window_Descriptor], [Dictionary_ID],
    // [Frame_Content_Size].
    if (data.size() < 5) {
        return std::nullopt;
    }
    const auto descriptor = static_cast<unsigned char>(data[4]);
    const unsigned fcs_flag = descriptor >> 6U;
    const bool single_segment = ((descriptor >> 5U) & 1U) != 0;
    const unsigned dict_flag = descriptor & 3U;
    if ((descriptor & 0x08U) != 0) {
        detail::throw_corrupt(FrameFormat::kZstd, offset,
                              "the reserved bit of the frame header descriptor is set");
    }
    static constexpr std::array<std::size_t, 4> kDictIdBytes = {0, 1, 2, 4};
    static constexpr std::array<std::size_t, 4> kContentSizeBytes = {0, 2, 4, 8};
    const std::size_t dict_bytes = kDictIdBytes[dict_flag];
    const std::size_t fcs_bytes =
        (fcs_flag == 0 && single_segment) ? 1 : kContentSizeBytes[fcs_flag];
    const std::size_t window_bytes = single_segment ? 0 : 1;
    FrameHeader header;
    header.format = FrameFormat::kZstd;
    header.header_size = 5 + window_bytes + dict_bytes + fcs_bytes;
    if (data.size() < header.header_size) {
        return std::nullopt;
    }
    std::size_t pos = 5;
    if (!single_segment) {
        const auto descriptor_byte = static_cast<unsigned char>(data[pos++]);
        const unsigned window_log = 10U + (descriptor_byte >> 3U);
        if (window_log > 41) {  // the format's own maximum (exponent 31)
            detail::throw_corrupt(FrameFormat::kZstd, offset, "the window descriptor is invalid");
        }
        const std::uint64_t base = std::uint64_t{1} << window_log;
        header.window_size = base + (base / 8) * (descriptor_byte & 7U);
    }
    header.dict_id = static_cast<std::uint32_t>(read_le(data, pos, dict_bytes));
    pos += dict_bytes;
    if (fcs_bytes > 0) {
        std::uint64_t size = read_le(data, pos, fcs_bytes);
        if (fcs_bytes == 2) {
            size += 256;
        }
        header.content_size = size;
    }
    if (single_segment) {
        header.window_size = header.content_size.value_or(0);
    }
    return header;
}

std::optional<FrameHeader> parse_lz4_header(std::string_view data, std::uint64_t offset) {
    // LZ4 frame format: magic, FLG, BD, [Content Size (8)], [Dictionary ID (4)], HC.
    if (data.size() < 6) {
        return std::nullopt;
    }
    const auto flags = static_cast<unsigned char>(data[4]);
    const auto block_descriptor = static_cast<unsigned char>(data[5]);
    if ((flags >> 6U) != 1U) {
        detail::throw_corrupt(FrameFormat::kLz4, offset,
                              "unsupported frame version " + std::to_string(flags >> 6U) +
                                  " (only version 1 exists)");
    }
    if ((flags & 0x02U) != 0 || (block_descriptor & 0x8FU) != 0) {
        detail::throw_corrupt(FrameFormat::kLz4, offset, "reserved bits of the header are set");
    }
    const unsigned block_id = (block_descriptor >> 4U) & 7U;
    if (block_id < 4) {
        detail::throw_corrupt(FrameFormat::kLz4, offset,
                              "invalid block size id " + std::to_string(block_id));
    }
    const bool has_content_size = (flags & 0x08U) != 0;
    const bool has_dict_id = (flags & 0x01U) != 0;
    FrameHeader header;
    header.format = FrameFormat::kLz4;
    header.header_size = 7 + (has_content_size ? 8U : 0U) + (has_dict_id ? 4U : 0U);
    header.window_size = kLz4BlockSizes[block_id - 4];
    if (data.size() < header.header_size) {
        return std::nullopt;
    }
    std::size_t pos = 6;
    if (has_content_size) {
        // As in the reference decoder, a stored size of 0 means "not known".
        if (const std::uint64_t size = read_le(data, pos, 8); size != 0) {
            header.content_size = size;
        }
        pos += 8;
    }
    if (has_dict_id) {
        header.dict_id = static_cast<std::uint32_t>(read_le(data, pos, 4));
    }
    return header;
}

relay::Error codec_failure(std::string_view what, std::string_view reason) {
    return relay::Error(std::string(what) + " failed: " + std::string(reason));
}

void check_zstd_setup(std::size_t code, std::string_view what) {
    if (ZSTD_isError(code) != 0U) {
        throw codec_failure(what, ZSTD_getErrorName(code));
    }
}

ZSTD_CCtx* new_zstd_cctx(const CompressorOptions& options, ZSTD_CDict* cdict) {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    if (cctx == nullptr) {
        throw std::bad_alloc();
    }
    check_zstd_setup(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, options.level),
                     "setting the zstd level");
    check_zstd_setup(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, options.checksum ? 1 : 0),
                     "setting the zstd checksum flag");
    check_zstd_setup(ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1),
                     "setting the zstd content size flag");
    check_zstd_setup(ZSTD_CCtx_setParameter(cctx, ZSTD_c_dictIDFlag, 1),
                     "setting the zstd dictionary id flag");
    if (cdict != nullptr) {
        check_zstd_setup(ZSTD_CCtx_refCDict(cctx, cdict), "loading the zstd dictionary");
    }
    return cctx;
}

void validate_options(const CompressorOptions& options) {
    if (options.level < min_level(options.algorithm) ||
        options.level > max_level(options.algorithm)) {
        throw InvalidArgument(std::string(algorithm_name(options.algorithm)) + " level " +
                              std::to_string(options.level) + " is out of range [" +
                              std::to_string(min_level(options.algorithm)) + ", " +
                              std::to_string(max_level(options.algorithm)) + "]");
    }
}

}  // namespace

// --- names, levels, formats ----------------------------------------------------------------

std::string_view algorithm_name(Algorithm algorithm) noexcept {
    return algorithm == Algorithm::kZstd ? "zstd" : "lz4";
}

int min_level(Algorithm algorithm) noexcept {
    return algorithm == Algorithm::kZstd ? ZSTD_minCLevel() : 0;
}

int max_level(Algorithm algorithm) noexcept {
    return algorithm == Algorithm::kZstd ? ZSTD_maxCLevel() : LZ4F_compressionLevel_max();
}

FrameFormat detect_format(std::string_view data) noexcept {
    if (data.size() < 4) {
        return FrameFormat::kUnknown;
    }
    const auto magic = static_cast<std::uint32_t>(read_le(data, 0, 4));
    if (magic == kZstdMagic) {
        return FrameFormat::kZstd;
    }
    if (magic == kLz4Magic) {
        return FrameFormat::kLz4;
    }
    if ((magic & 0xFFFFFFF0U) == kSkippableMagicFirst) {
        return FrameFormat::kSkippable;
    }
    return FrameFormat::kUnknown;
}

std::optional<FrameHeader> parse_frame_header(std::string_view data, std::uint64_t offset) {
    if (data.size() < 4) {
        return std::nullopt;
    }
    switch (detect_format(data)) {
        case FrameFormat::kZstd:
            return parse_zstd_header(data, offset);
        case FrameFormat::kLz4:
            return parse_lz4_header(data, offset);
        case FrameFormat::kSkippable: {
            if (data.size() < kSkippableHeaderSize) {
                return std::nullopt;
            }
            FrameHeader header;
            header.format = FrameFormat::kSkippable;
            header.header_size = kSkippableHeaderSize;
            header.skippable_size = read_le(data, 4, 4);
            return header;
        }
        case FrameFormat::kUnknown:
            break;
    }
    throw CorruptFrame("unknown frame format at offset " + std::to_string(offset) +
                       ": the data starts with " + hex_bytes(data, 4) +
                       ", which is neither a zstd frame (28 b5 2f fd) nor an LZ4 frame "
                       "(04 22 4d 18)");
}

// --- dictionaries ----------------------------------------------------------------------------

Dictionary::Dictionary(std::string bytes) : bytes_(std::move(bytes)) {
    if (bytes_.empty()) {
        throw InvalidArgument("a dictionary must not be empty");
    }
    if (bytes_.size() >= 8 && read_le(bytes_, 0, 4) == kZstdDictionaryMagic) {
        id_ = ZSTD_getDictID_fromDict(bytes_.data(), bytes_.size());
    }
    ddict_ = ZSTD_createDDict(bytes_.data(), bytes_.size());
    if (ddict_ == nullptr) {
        throw InvalidArgument("not a valid zstd dictionary (" + std::to_string(bytes_.size()) +
                              " bytes starting with the dictionary magic, but its tables do not "
                              "load)");
    }
}

Dictionary::~Dictionary() { ZSTD_freeDDict(ddict_); }

std::shared_ptr<const Dictionary> train_dictionary(std::span<const std::string_view> samples,
                                                   std::size_t capacity) {
    if (capacity < 256) {
        throw InvalidArgument("dictionary size must be at least 256 bytes, got " +
                              std::to_string(capacity));
    }
    if (samples.empty()) {
        throw InvalidArgument("cannot train a dictionary from no samples");
    }
    if (samples.size() > std::numeric_limits<unsigned>::max()) {
        throw InvalidArgument("too many samples: " + std::to_string(samples.size()));
    }
    std::string joined;
    std::vector<std::size_t> sizes;
    sizes.reserve(samples.size());
    std::size_t total = 0;
    for (const auto sample : samples) {
        total += sample.size();
    }
    joined.reserve(total);
    for (const auto sample : samples) {
        joined.append(sample);
        sizes.push_back(sample.size());
    }
    std::string dictionary(capacity, '\0');
    const std::size_t written =
        ZDICT_trainFromBuffer(dictionary.data(), capacity, joined.data(), sizes.data(),
                              static_cast<unsigned>(samples.size()));
    if (ZDICT_isError(written) != 0U) {
        throw InvalidArgument("could not train a dictionary from " +
                              std::to_string(samples.size()) + " samples (" +
                              std::to_string(total) + " bytes): " + ZDICT_getErrorName(written) +
                              "; zstd needs many varied samples, ideally about 100 times the "
                              "dictionary size in total");
    }
    dictionary.resize(written);
    return std::make_shared<const Dictionary>(std::move(dictionary));
}

// --- one-shot compression --------------------------------------------------------------------

struct Compressor::Impl {
    ZSTD_CDict* zstd_dict = nullptr;
    LZ4F_CDict* lz4_dict = nullptr;
    detail::ContextPool<ZSTD_CCtx> zstd_pool;
    detail::ContextPool<LZ4F_cctx> lz4_pool;

    Impl(const CompressorOptions& options, ZSTD_CDict* zdict, LZ4F_CDict* ldict)
        : zstd_dict(zdict),
          lz4_dict(ldict),
          zstd_pool([options, zdict] { return new_zstd_cctx(options, zdict); },
                    [](ZSTD_CCtx* c) { ZSTD_freeCCtx(c); }),
          lz4_pool(detail::new_lz4_cctx, [](LZ4F_cctx* c) { LZ4F_freeCompressionContext(c); }) {}
    ~Impl() {
        ZSTD_freeCDict(zstd_dict);
        LZ4F_freeCDict(lz4_dict);
    }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
};

Compressor::Compressor(CompressorOptions options) : options_(std::move(options)) {
    validate_options(options_);
    ZSTD_CDict* zstd_dict = nullptr;
    LZ4F_CDict* lz4_dict = nullptr;
    if (options_.dictionary) {
        const std::string& bytes = options_.dictionary->bytes();
        if (options_.algorithm == Algorithm::kZstd) {
            zstd_dict = ZSTD_createCDict(bytes.data(), bytes.size(), options_.level);
            if (zstd_dict == nullptr) {
                throw InvalidArgument("the dictionary does not load into zstd");
            }
        } else {
            lz4_dict = LZ4F_createCDict(bytes.data(), bytes.size());
            if (lz4_dict == nullptr) {
                throw std::bad_alloc();
            }
        }
    }
    impl_ = std::make_unique<Impl>(options_, zstd_dict, lz4_dict);
}

Compressor::~Compressor() = default;

namespace {

LZ4F_preferences_t lz4_frame_prefs(const CompressorOptions& options, std::size_t content_size) {
    LZ4F_preferences_t prefs;
    std::memset(&prefs, 0, sizeof prefs);
    prefs.compressionLevel = options.level;
    prefs.frameInfo.contentSize = content_size;
    prefs.frameInfo.contentChecksumFlag =
        options.checksum ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum;
    prefs.frameInfo.dictID = options.dictionary ? options.dictionary->id() : 0;
    return prefs;
}

}  // namespace

std::size_t Compressor::compress_bound(std::size_t size) const noexcept {
    if (options_.algorithm == Algorithm::kZstd) {
        return ZSTD_compressBound(size);
    }
    const LZ4F_preferences_t prefs = lz4_frame_prefs(options_, size);
    return LZ4F_compressFrameBound(size, &prefs);
}

std::size_t Compressor::compress_into(std::string_view data, std::span<char> dst) const {
    if (dst.size() < compress_bound(data.size())) {
        throw InvalidArgument("compress_into needs compress_bound(" + std::to_string(data.size()) +
                              ") = " + std::to_string(compress_bound(data.size())) +
                              " bytes of room, got " + std::to_string(dst.size()));
    }
    std::size_t written = 0;
    if (options_.algorithm == Algorithm::kZstd) {
        const auto lease = impl_->zstd_pool.acquire();
        written = ZSTD_compress2(lease.get(), dst.data(), dst.size(), data.data(), data.size());
        if (ZSTD_isError(written) != 0U) {
            throw codec_failure("zstd compression", ZSTD_getErrorName(written));
        }
    } else {
        const LZ4F_preferences_t prefs = lz4_frame_prefs(options_, data.size());
        const auto lease = impl_->lz4_pool.acquire();
        written = LZ4F_compressFrame_usingCDict(lease.get(), dst.data(), dst.size(), data.data(),
                                                data.size(), impl_->lz4_dict, &prefs);
        if (LZ4F_isError(written) != 0U) {
            throw codec_failure("LZ4 compression", LZ4F_getErrorName(written));
        }
    }
    if (options_.counters) {
        options_.counters->add_compress(1, data.size(), written);
    }
    return written;
}

std::string Compressor::compress(std::string_view data) const {
    std::string out(compress_bound(data.size()), '\0');
    out.resize(compress_into(data, out));
    return out;
}

// --- one-shot decompression ------------------------------------------------------------------

struct Decompressor::Impl {
    detail::ContextPool<ZSTD_DCtx> zstd_pool{detail::new_zstd_dctx,
                                             [](ZSTD_DCtx* d) { ZSTD_freeDCtx(d); }};
    detail::ContextPool<LZ4F_dctx> lz4_pool{detail::new_lz4_dctx,
                                            [](LZ4F_dctx* d) { LZ4F_freeDecompressionContext(d); }};
};

Decompressor::Decompressor(std::shared_ptr<const Dictionary> dictionary, std::uint64_t max_output,
                           std::shared_ptr<Counters> counters)
    : dictionary_(std::move(dictionary)),
      max_output_(std::min<std::uint64_t>(max_output, std::numeric_limits<std::size_t>::max() / 2)),
      counters_(std::move(counters)),
      impl_(std::make_unique<Impl>()) {}

Decompressor::~Decompressor() = default;

std::string Decompressor::decompress(std::string_view data) const {
    if (data.empty()) {
        throw CorruptFrame("no frame to decompress: the input is empty");
    }
    const auto cap = static_cast<std::size_t>(max_output_);
    const Dictionary* dict = dictionary_.get();
    std::string out;
    std::size_t pos = 0;
    while (pos < data.size()) {
        const std::string_view rest = data.substr(pos);
        const auto header = parse_frame_header(rest, pos);
        if (!header) {
            detail::throw_truncated(detect_format(rest), pos);
        }
        const std::size_t room = cap - out.size();
        OutputLimit limit{cap, max_output_, pos, header->format, false};
        switch (header->format) {
            case FrameFormat::kSkippable: {
                if (rest.size() - kSkippableHeaderSize < header->skippable_size) {
                    detail::throw_truncated(FrameFormat::kSkippable, pos);
                }
                pos += kSkippableHeaderSize + static_cast<std::size_t>(header->skippable_size);
                continue;
            }
            case FrameFormat::kZstd: {
                const bool use_dict = detail::select_dictionary(*header, dict, pos);
                const std::size_t frame_size =
                    ZSTD_findFrameCompressedSize(rest.data(), rest.size());
                if (ZSTD_isError(frame_size) != 0U) {
                    if (ZSTD_getErrorCode(frame_size) == ZSTD_error_srcSize_wrong) {
                        detail::throw_truncated(FrameFormat::kZstd, pos);
                    }
                    detail::throw_corrupt(FrameFormat::kZstd, pos, ZSTD_getErrorName(frame_size));
                }
                const std::string_view frame = rest.substr(0, frame_size);
                const auto lease = impl_->zstd_pool.acquire();
                if (header->content_size) {
                    const std::uint64_t declared = *header->content_size;
                    if (declared > room) {
                        detail::throw_declared_too_large(FrameFormat::kZstd, pos, declared, room,
                                                         max_output_);
                    }
                    const std::size_t old = out.size();
                    const auto n = static_cast<std::size_t>(declared);
                    detail::reserve_within(out, old + n, cap);
                    out.resize(old + n);
                    const std::size_t got = detail::zstd_one_shot(lease.get(), out.data() + old, n,
                                                                  frame, use_dict ? dict : nullptr);
                    if (ZSTD_isError(got) != 0U) {
                        detail::throw_corrupt(FrameFormat::kZstd, pos, ZSTD_getErrorName(got));
                    }
                    if (got != n) {
                        detail::throw_corrupt(FrameFormat::kZstd, pos,
                                              "it declares " + std::to_string(n) +
                                                  " bytes but holds " + std::to_string(got));
                    }
                } else if (header->window_size <= room) {
                    detail::prepare_zstd_stream(lease.get(), *header, dict, use_dict);
                    std::string_view in = frame;
                    if (!detail::zstd_stream_step(lease.get(), in, out, limit)) {
                        detail::throw_truncated(FrameFormat::kZstd, pos);
                    }
                } else {
                    detail::zstd_decode_bounded(lease.get(), frame, dict, use_dict, out, limit);
                }
                pos += frame_size;
                continue;
            }
            case FrameFormat::kLz4: {
                const bool use_dict = detail::select_dictionary(*header, dict, pos);
                if (header->content_size && *header->content_size > room) {
                    detail::throw_declared_too_large(FrameFormat::kLz4, pos, *header->content_size,
                                                     room, max_output_);
                }
                if (header->content_size) {
                    const std::size_t declared_end =
                        out.size() + static_cast<std::size_t>(*header->content_size);
                    detail::reserve_within(out, declared_end, cap);
                    limit.limit = declared_end;
                    limit.is_declared_size = true;
                }
                const auto lease = impl_->lz4_pool.acquire();
                LZ4F_resetDecompressionContext(lease.get());
                std::string_view in = rest;
                if (!detail::lz4_stream_step(lease.get(), use_dict ? dict : nullptr, in, out,
                                             limit)) {
                    detail::throw_truncated(FrameFormat::kLz4, pos);
                }
                pos += rest.size() - in.size();
                continue;
            }
            case FrameFormat::kUnknown:
                break;  // parse_frame_header has thrown already
        }
        detail::throw_corrupt(FrameFormat::kUnknown, pos, "unknown frame format");
    }
    if (counters_) {
        counters_->add_decompress(1, data.size(), out.size());
    }
    return out;
}

namespace {

// The end of the LZ4 frame whose header is `header`, by walking its block headers (no decoding),
// or nullopt when `data` ends first or a block header is impossible.
std::optional<std::size_t> lz4_frame_end(std::string_view data, const FrameHeader& header) {
    const auto flags = static_cast<unsigned char>(data[4]);
    const bool block_checksum = (flags & 0x10U) != 0;
    const bool content_checksum = (flags & 0x04U) != 0;
    std::size_t pos = header.header_size;
    for (;;) {
        if (data.size() - pos < 4) {
            return std::nullopt;
        }
        const std::uint64_t word = read_le(data, pos, 4);
        pos += 4;
        if (word == 0) {
            break;  // end mark
        }
        const std::uint64_t size = word & 0x7FFFFFFFU;
        if (size > header.window_size) {
            return std::nullopt;
        }
        const std::uint64_t skip = size + (block_checksum ? 4U : 0U);
        if (data.size() - pos < skip) {
            return std::nullopt;
        }
        pos += static_cast<std::size_t>(skip);
    }
    pos += content_checksum ? 4U : 0U;
    if (pos > data.size()) {
        return std::nullopt;
    }
    return pos;
}

}  // namespace

std::optional<std::size_t> Decompressor::single_frame_size(std::string_view data) const noexcept {
    try {
        const auto header = parse_frame_header(data);
        if (!header || !header->content_size || *header->content_size > max_output_) {
            return std::nullopt;
        }
        if (header->dict_id != 0 && (!dictionary_ || dictionary_->id() != header->dict_id)) {
            return std::nullopt;
        }
        std::optional<std::size_t> frame_end;
        if (header->format == FrameFormat::kZstd) {
            const std::size_t size = ZSTD_findFrameCompressedSize(data.data(), data.size());
            if (ZSTD_isError(size) == 0U) {
                frame_end = size;
            }
        } else if (header->format == FrameFormat::kLz4) {
            frame_end = lz4_frame_end(data, *header);
        }
        if (frame_end != data.size()) {
            return std::nullopt;
        }
        return static_cast<std::size_t>(*header->content_size);
    } catch (...) {
        return std::nullopt;
    }
}

void Decompressor::decompress_all(std::span<const std::string_view> frames, std::string& out,
                                  std::vector<std::size_t>& ends) const {
    out.clear();
    ends.clear();
    ends.reserve(frames.size());
    for (const std::string_view frame : frames) {
        const std::size_t start = out.size();
        if (const auto size = single_frame_size(frame)) {
            // The common case: one frame of declared size, decoded in place at the end.
            out.resize(start + *size);
            decompress_into(frame, std::span<char>(out.data() + start, *size));
        } else {
            out += decompress(frame);
        }
        ends.push_back(out.size());
    }
}

void Decompressor::decompress_into(std::string_view data, std::span<char> dst) const {
    const auto header = parse_frame_header(data);
    if (!header || header->content_size != dst.size() || dst.size() > max_output_) {
        throw InvalidArgument("decompress_into needs one frame that declares exactly " +
                              std::to_string(dst.size()) + " bytes (see single_frame_size)");
    }
    const Dictionary* dict = dictionary_.get();
    const bool use_dict = detail::select_dictionary(*header, dict, 0);
    if (header->format == FrameFormat::kZstd) {
        const auto lease = impl_->zstd_pool.acquire();
        const std::size_t got = detail::zstd_one_shot(lease.get(), dst.data(), dst.size(), data,
                                                      use_dict ? dict : nullptr);
        if (ZSTD_isError(got) != 0U) {
            detail::throw_corrupt(FrameFormat::kZstd, 0, ZSTD_getErrorName(got));
        }
        if (got != dst.size()) {
            detail::throw_corrupt(FrameFormat::kZstd, 0,
                                  "it declares " + std::to_string(dst.size()) +
                                      " bytes but holds " + std::to_string(got));
        }
    } else {
        const auto lease = impl_->lz4_pool.acquire();
        LZ4F_resetDecompressionContext(lease.get());
        LZ4F_decompressOptions_t options;
        std::memset(&options, 0, sizeof options);
        options.stableDst = 1;  // dst holds the whole output, so earlier blocks stay readable
        std::size_t produced = 0;
        std::size_t consumed = 0;
        for (;;) {
            std::size_t dst_size = dst.size() - produced;
            std::size_t src_size = data.size() - consumed;
            const void* dict_bytes = use_dict ? dict->bytes().data() : nullptr;
            const std::size_t dict_size = use_dict ? dict->bytes().size() : 0;
            const std::size_t ret = LZ4F_decompress_usingDict(
                lease.get(), dst.data() + produced, &dst_size, data.data() + consumed, &src_size,
                dict_bytes, dict_size, &options);
            if (LZ4F_isError(ret) != 0U) {
                detail::throw_corrupt(FrameFormat::kLz4, 0, LZ4F_getErrorName(ret));
            }
            produced += dst_size;
            consumed += src_size;
            if (ret == 0) {
                break;
            }
            if (src_size == 0 && dst_size == 0) {
                detail::throw_corrupt(FrameFormat::kLz4, 0,
                                      produced == dst.size()
                                          ? "it holds more than the bytes its header declares"
                                          : "the frame ends early");
            }
        }
        if (produced != dst.size()) {
            detail::throw_corrupt(FrameFormat::kLz4, 0,
                                  "it declares " + std::to_string(dst.size()) +
                                      " bytes but holds " + std::to_string(produced));
        }
    }
    if (counters_) {
        counters_->add_decompress(1, data.size(), dst.size());
    }
}

}  // namespace relay::compress
