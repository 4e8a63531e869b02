// Streaming compression and decompression, and the decoding steps the one-shot path shares.
#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <new>

#include "common/errors.hpp"
#include "compress/compressor.hpp"
#include "compress/detail.hpp"

namespace relay::compress {
namespace detail {

namespace {
constexpr std::size_t kLz4OutputChunk = 256U << 10U;
}  // namespace

std::string format_name(FrameFormat format) {
    switch (format) {
        case FrameFormat::kZstd:
            return "zstd frame";
        case FrameFormat::kLz4:
            return "LZ4 frame";
        case FrameFormat::kSkippable:
            return "skippable frame";
        case FrameFormat::kUnknown:
            break;
    }
    return "frame";
}

void OutputLimit::exceeded() const {
    if (is_declared_size) {
        throw_corrupt(format, offset,
                      "it holds more than the " + std::to_string(limit) +
                          " bytes of output its header declares");
    }
    throw SizeLimitExceeded("decompressed data exceeds the limit of " + std::to_string(cap) +
                            " bytes (max_decompressed_size) while decoding the " +
                            format_name(format) + " at offset " + std::to_string(offset));
}

void throw_corrupt(FrameFormat format, std::uint64_t offset, std::string_view what) {
    throw CorruptFrame("corrupt " + format_name(format) + " at offset " + std::to_string(offset) +
                       ": " + std::string(what));
}

void throw_truncated(FrameFormat format, std::uint64_t offset) {
    if (format == FrameFormat::kUnknown) {
        throw CorruptFrame("truncated input at offset " + std::to_string(offset) +
                           ": too few bytes left for a frame header");
    }
    throw CorruptFrame("truncated " + format_name(format) + " at offset " + std::to_string(offset) +
                       ": the input ends before the frame does");
}

void throw_declared_too_large(FrameFormat format, std::uint64_t offset, std::uint64_t declared,
                              std::uint64_t room, std::uint64_t cap) {
    throw SizeLimitExceeded(
        "the " + format_name(format) + " at offset " + std::to_string(offset) + " declares " +
        std::to_string(declared) + " decompressed bytes, more than the " + std::to_string(room) +
        " left under the limit of " + std::to_string(cap) + " bytes (max_decompressed_size)");
}

void reserve_within(std::string& out, std::size_t needed, std::size_t limit) {
    if (needed <= out.capacity()) {
        return;
    }
    const std::size_t target = std::min(std::max(needed, out.capacity() * 2), limit);
    std::string bigger;
    bigger.reserve(std::max(target, needed));
    bigger.append(out);
    out.swap(bigger);
}

bool select_dictionary(const FrameHeader& header, const Dictionary* dictionary,
                       std::uint64_t offset) {
    if (header.dict_id != 0) {
        if (dictionary == nullptr) {
            throw CorruptFrame("the " + format_name(header.format) + " at offset " +
                               std::to_string(offset) + " needs dictionary id " +
                               std::to_string(header.dict_id) + ", and no dictionary was given");
        }
        if (dictionary->id() != header.dict_id) {
            throw CorruptFrame(
                "the " + format_name(header.format) + " at offset " + std::to_string(offset) +
                " needs dictionary id " + std::to_string(header.dict_id) +
                ", but the dictionary given has id " + std::to_string(dictionary->id()));
        }
        return true;
    }
    return dictionary != nullptr && dictionary->is_raw_content();
}

bool zstd_stream_step(ZSTD_DCtx* dctx, std::string_view& in, std::string& out,
                      const OutputLimit& limit) {
    ZSTD_inBuffer input{in.data(), in.size(), 0};
    const std::size_t chunk = ZSTD_DStreamOutSize();
    for (;;) {
        const std::size_t room = limit.limit - out.size();
        // At the limit, a one-byte probe tells "the frame ends here" from "there is more".
        char probe = 0;
        const std::size_t old = out.size();
        const std::size_t want = std::min(room, chunk);
        if (want > 0) {
            reserve_within(out, old + want, limit.limit);
            out.resize(old + want);
        }
        ZSTD_outBuffer output{want > 0 ? static_cast<void*>(out.data() + old) : &probe,
                              want > 0 ? want : 1, 0};
        const std::size_t ret = ZSTD_decompressStream(dctx, &output, &input);
        if (want > 0) {
            out.resize(old + output.pos);
        }
        if (ZSTD_isError(ret) != 0U) {
            in.remove_prefix(input.pos);
            throw_corrupt(FrameFormat::kZstd, limit.offset, ZSTD_getErrorName(ret));
        }
        if (want == 0 && output.pos > 0) {
            limit.exceeded();
        }
        if (ret == 0) {
            in.remove_prefix(input.pos);
            return true;
        }
        if (input.pos == input.size && output.pos < output.size) {
            in.remove_prefix(input.pos);
            return false;
        }
    }
}

bool lz4_stream_step(LZ4F_dctx* dctx, const Dictionary* dictionary, std::string_view& in,
                     std::string& out, const OutputLimit& limit) {
    LZ4F_decompressOptions_t options;
    std::memset(&options, 0, sizeof options);
    for (;;) {
        const std::size_t room = limit.limit - out.size();
        char probe = 0;
        const std::size_t old = out.size();
        const std::size_t want = std::min(room, kLz4OutputChunk);
        if (want > 0) {
            reserve_within(out, old + want, limit.limit);
            out.resize(old + want);
        }
        std::size_t dst_size = want > 0 ? want : 1;
        std::size_t src_size = in.size();
        void* dst = want > 0 ? static_cast<void*>(out.data() + old) : &probe;
        const std::size_t ret =
            dictionary != nullptr
                ? LZ4F_decompress_usingDict(dctx, dst, &dst_size, in.data(), &src_size,
                                            dictionary->bytes().data(), dictionary->bytes().size(),
                                            &options)
                : LZ4F_decompress(dctx, dst, &dst_size, in.data(), &src_size, &options);
        if (want > 0) {
            out.resize(old + (LZ4F_isError(ret) != 0U ? 0 : dst_size));
        }
        if (LZ4F_isError(ret) != 0U) {
            throw_corrupt(FrameFormat::kLz4, limit.offset, LZ4F_getErrorName(ret));
        }
        in.remove_prefix(src_size);
        if (want == 0 && dst_size > 0) {
            limit.exceeded();
        }
        if (ret == 0) {
            return true;
        }
        if (in.empty() && dst_size < (want > 0 ? want : 1)) {
            return false;
        }
    }
}

void prepare_zstd_stream(ZSTD_DCtx* dctx, const FrameHeader& header, const Dictionary* dictionary,
                         bool use_dictionary) {
    ZSTD_DCtx_reset(dctx, ZSTD_reset_session_and_parameters);
    // The caller has checked that the window fits under the cap, so any window the format allows
    // (up to 2^31 here) is accepted instead of zstd's default ceiling of 2^27.
    constexpr int kZstdDefaultWindowLogLimit = 27;
    const auto needed_log =
        static_cast<int>(std::bit_width(std::max<std::uint64_t>(header.window_size, 1) - 1));
    const int window_log = std::clamp(needed_log, kZstdDefaultWindowLogLimit, 31);
    ZSTD_DCtx_setParameter(dctx, ZSTD_d_windowLogMax, window_log);
    if (use_dictionary) {
        ZSTD_DCtx_refDDict(dctx, dictionary->zstd_ddict());
    }
}

void zstd_decode_bounded(ZSTD_DCtx* dctx, std::string_view frame, const Dictionary* dictionary,
                         bool use_dictionary, std::string& out, const OutputLimit& limit) {
    // A block yields at most 128 KiB and takes at least 4 bytes (a 3-byte header and a byte of
    // content, or 3 bytes for an empty one), which bounds what a frame can produce; a short bogus
    // frame then costs a small buffer, not the whole cap.
    constexpr std::size_t kBlockMax = std::size_t{128} << 10U;
    const std::size_t bound = (frame.size() / 4 + 1) * kBlockMax;
    const std::size_t old = out.size();
    const std::size_t cap_room = limit.limit - old;
    const std::size_t room = std::min(cap_room, bound);
    reserve_within(out, old + room, limit.limit);
    out.resize(old + room);
    char* dst = out.data() + old;
    const std::size_t got =
        zstd_one_shot(dctx, dst, room, frame, use_dictionary ? dictionary : nullptr);
    if (ZSTD_isError(got) != 0U) {
        out.resize(old);
        if (ZSTD_getErrorCode(got) == ZSTD_error_dstSize_tooSmall && room == cap_room) {
            limit.exceeded();
        }
        throw_corrupt(FrameFormat::kZstd, limit.offset, ZSTD_getErrorName(got));
    }
    out.resize(old + got);
}

std::size_t zstd_one_shot(ZSTD_DCtx* dctx, char* dst, std::size_t capacity, std::string_view frame,
                          const Dictionary* dictionary) {
    if (dictionary != nullptr) {
        return ZSTD_decompress_usingDDict(dctx, dst, capacity, frame.data(), frame.size(),
                                          dictionary->zstd_ddict());
    }
    // Not ZSTD_decompressDCtx: that would use a dictionary a previous streamed frame referenced
    // on this (pooled) context. An explicit empty dictionary means none.
    return ZSTD_decompress_usingDict(dctx, dst, capacity, frame.data(), frame.size(), nullptr, 0);
}

ZSTD_DCtx* new_zstd_dctx() {
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    if (dctx == nullptr) {
        throw std::bad_alloc();
    }
    return dctx;
}

LZ4F_dctx* new_lz4_dctx() {
    LZ4F_dctx* dctx = nullptr;
    if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)) != 0U) {
        throw std::bad_alloc();
    }
    return dctx;
}

LZ4F_cctx* new_lz4_cctx() {
    LZ4F_cctx* cctx = nullptr;
    if (LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION)) != 0U) {
        throw std::bad_alloc();
    }
    return cctx;
}

}  // namespace detail

// --- streaming compression -------------------------------------------------------------------

struct StreamCompressor::Lz4Dict {
    LZ4F_CDict* cdict = nullptr;
    LZ4F_preferences_t prefs{};
    ~Lz4Dict() { LZ4F_freeCDict(cdict); }
};

namespace {

constexpr std::size_t kLz4InputPiece = 1U << 20U;

void check_zstd(std::size_t code, std::string_view what) {
    if (ZSTD_isError(code) != 0U) {
        throw relay::Error(std::string(what) + " failed: " + ZSTD_getErrorName(code));
    }
}

void check_lz4(std::size_t code, std::string_view what) {
    if (LZ4F_isError(code) != 0U) {
        throw relay::Error(std::string(what) + " failed: " + LZ4F_getErrorName(code));
    }
}

// Runs the zstd stream compressor over `chunk` with `directive`, appending everything it emits.
void zstd_drive(ZSTD_CCtx* cctx, std::string_view chunk, ZSTD_EndDirective directive,
                std::string& out) {
    ZSTD_inBuffer input{chunk.data(), chunk.size(), 0};
    const std::size_t step = ZSTD_CStreamOutSize();
    for (;;) {
        const std::size_t old = out.size();
        out.resize(old + step);
        ZSTD_outBuffer output{out.data() + old, step, 0};
        const std::size_t left = ZSTD_compressStream2(cctx, &output, &input, directive);
        out.resize(old + output.pos);
        check_zstd(left, "zstd stream compression");
        const bool input_done = input.pos == input.size;
        if (directive == ZSTD_e_continue ? input_done : (input_done && left == 0)) {
            return;
        }
    }
}

}  // namespace

StreamCompressor::StreamCompressor(CompressorOptions options)
    : options_(std::move(options)), lz4_dict_(std::make_unique<Lz4Dict>()) {
    if (options_.level < min_level(options_.algorithm) ||
        options_.level > max_level(options_.algorithm)) {
        throw InvalidArgument(std::string(algorithm_name(options_.algorithm)) + " level " +
                              std::to_string(options_.level) + " is out of range [" +
                              std::to_string(min_level(options_.algorithm)) + ", " +
                              std::to_string(max_level(options_.algorithm)) + "]");
    }
    if (options_.algorithm == Algorithm::kZstd) {
        zstd_ = ZSTD_createCCtx();
        if (zstd_ == nullptr) {
            throw std::bad_alloc();
        }
        check_zstd(ZSTD_CCtx_setParameter(zstd_, ZSTD_c_compressionLevel, options_.level),
                   "setting the zstd level");
        check_zstd(ZSTD_CCtx_setParameter(zstd_, ZSTD_c_checksumFlag, options_.checksum ? 1 : 0),
                   "setting the zstd checksum flag");
        if (options_.dictionary) {
            // Sticky: digested once, used by every frame this object writes.
            check_zstd(ZSTD_CCtx_loadDictionary(zstd_, options_.dictionary->bytes().data(),
                                                options_.dictionary->bytes().size()),
                       "loading the zstd dictionary");
        }
    } else {
        lz4_ = detail::new_lz4_cctx();
        LZ4F_preferences_t& prefs = lz4_dict_->prefs;
        std::memset(&prefs, 0, sizeof prefs);
        prefs.compressionLevel = options_.level;
        prefs.frameInfo.contentChecksumFlag =
            options_.checksum ? LZ4F_contentChecksumEnabled : LZ4F_noContentChecksum;
        if (options_.dictionary) {
            prefs.frameInfo.dictID = options_.dictionary->id();
            lz4_dict_->cdict = LZ4F_createCDict(options_.dictionary->bytes().data(),
                                                options_.dictionary->bytes().size());
            if (lz4_dict_->cdict == nullptr) {
                throw std::bad_alloc();
            }
        }
    }
}

StreamCompressor::~StreamCompressor() {
    ZSTD_freeCCtx(zstd_);
    if (lz4_ != nullptr) {
        LZ4F_freeCompressionContext(lz4_);
    }
}

std::string StreamCompressor::begin_frame_if_needed() {
    std::string out;
    if (frame_open_) {
        return out;
    }
    frame_open_ = true;
    if (lz4_ != nullptr) {
        out.resize(LZ4F_HEADER_SIZE_MAX);
        const std::size_t written = LZ4F_compressBegin_usingCDict(
            lz4_, out.data(), out.size(), lz4_dict_->cdict, &lz4_dict_->prefs);
        check_lz4(written, "starting an LZ4 frame");
        out.resize(written);
    }
    return out;  // zstd writes its header with the first output
}

std::string StreamCompressor::compress(std::string_view chunk) {
    const std::lock_guard lock(mutex_);
    const std::size_t chunk_size = chunk.size();
    bytes_in_ += chunk_size;
    std::string out = begin_frame_if_needed();
    if (zstd_ != nullptr) {
        zstd_drive(zstd_, chunk, ZSTD_e_continue, out);
    } else {
        while (!chunk.empty()) {
            const std::string_view piece = chunk.substr(0, kLz4InputPiece);
            const std::size_t old = out.size();
            out.resize(old + LZ4F_compressBound(piece.size(), &lz4_dict_->prefs));
            const std::size_t written = LZ4F_compressUpdate(
                lz4_, out.data() + old, out.size() - old, piece.data(), piece.size(), nullptr);
            check_lz4(written, "LZ4 stream compression");
            out.resize(old + written);
            chunk.remove_prefix(piece.size());
        }
    }
    bytes_out_ += out.size();
    if (options_.counters) {
        options_.counters->add_compress(1, chunk_size, out.size());
    }
    return out;
}

std::string StreamCompressor::flush() {
    const std::lock_guard lock(mutex_);
    std::string out;
    if (!frame_open_) {
        return out;
    }
    if (zstd_ != nullptr) {
        zstd_drive(zstd_, {}, ZSTD_e_flush, out);
    } else {
        out.resize(LZ4F_compressBound(0, &lz4_dict_->prefs));
        const std::size_t written = LZ4F_flush(lz4_, out.data(), out.size(), nullptr);
        check_lz4(written, "LZ4 flush");
        out.resize(written);
    }
    bytes_out_ += out.size();
    if (options_.counters) {
        options_.counters->add_compress(0, 0, out.size());
    }
    return out;
}

std::string StreamCompressor::finish() {
    const std::lock_guard lock(mutex_);
    std::string out = begin_frame_if_needed();
    if (zstd_ != nullptr) {
        zstd_drive(zstd_, {}, ZSTD_e_end, out);
    } else {
        const std::size_t old = out.size();
        out.resize(old + LZ4F_compressBound(0, &lz4_dict_->prefs));
        const std::size_t written =
            LZ4F_compressEnd(lz4_, out.data() + old, out.size() - old, nullptr);
        check_lz4(written, "ending an LZ4 frame");
        out.resize(old + written);
    }
    frame_open_ = false;
    bytes_out_ += out.size();
    if (options_.counters) {
        options_.counters->add_compress(0, 0, out.size());
    }
    return out;
}

std::uint64_t StreamCompressor::bytes_in() const {
    const std::lock_guard lock(mutex_);
    return bytes_in_;
}

std::uint64_t StreamCompressor::bytes_out() const {
    const std::lock_guard lock(mutex_);
    return bytes_out_;
}

// --- streaming decompression -----------------------------------------------------------------

namespace {
// The longest frame header of any format (LZ4: 7 + 8 + 4).
constexpr std::size_t kMaxHeaderSize = 19;
}  // namespace

StreamDecompressor::StreamDecompressor(std::shared_ptr<const Dictionary> dictionary,
                                       std::uint64_t max_output, std::shared_ptr<Counters> counters)
    : dictionary_(std::move(dictionary)),
      max_output_(std::min<std::uint64_t>(max_output, std::numeric_limits<std::size_t>::max() / 2)),
      counters_(std::move(counters)),
      zstd_(detail::new_zstd_dctx()),
      lz4_(detail::new_lz4_dctx()) {}

StreamDecompressor::~StreamDecompressor() {
    ZSTD_freeDCtx(zstd_);
    LZ4F_freeDecompressionContext(lz4_);
}

void StreamDecompressor::start_frame(std::string& out) {
    const std::uint64_t offset = frame_start_;
    const std::size_t room = static_cast<std::size_t>(max_output_ - bytes_out_) - out.size();
    switch (header_.format) {
        case FrameFormat::kSkippable:
            skip_left_ = header_.skippable_size;
            pending_.clear();
            stage_ = Stage::kSkip;
            return;
        case FrameFormat::kZstd: {
            use_dictionary_ = detail::select_dictionary(header_, dictionary_.get(), offset);
            if (header_.content_size && *header_.content_size > room) {
                detail::throw_declared_too_large(FrameFormat::kZstd, offset, *header_.content_size,
                                                 room, max_output_);
            }
            if (!header_.content_size && header_.window_size > room) {
                // zstd's streaming decoder would allocate the whole window up front. Keep the
                // compressed frame instead and decode it at its end into what the cap leaves.
                stage_ = Stage::kZstdBuffered;
                return;
            }
            detail::prepare_zstd_stream(zstd_, header_, dictionary_.get(), use_dictionary_);
            stage_ = Stage::kZstdBody;
            break;
        }
        case FrameFormat::kLz4: {
            use_dictionary_ = detail::select_dictionary(header_, dictionary_.get(), offset);
            if (header_.content_size && *header_.content_size > room) {
                detail::throw_declared_too_large(FrameFormat::kLz4, offset, *header_.content_size,
                                                 room, max_output_);
            }
            LZ4F_resetDecompressionContext(lz4_);
            stage_ = Stage::kLz4Body;
            break;
        }
        case FrameFormat::kUnknown:
            detail::throw_corrupt(FrameFormat::kUnknown, offset, "unknown frame format");
    }
}

void StreamDecompressor::end_frame() {
    stage_ = Stage::kHeader;
    pending_.clear();
    ++frames_;
}

std::string StreamDecompressor::decompress(std::string_view chunk) {
    const std::lock_guard lock(mutex_);
    if (failed_) {
        throw CorruptFrame("this stream decompressor stopped at an earlier error; start a new one");
    }
    std::string out;
    const auto limit_for_call = static_cast<std::size_t>(max_output_ - bytes_out_);
    std::string carry;  // input handed back by a buffered frame that ended inside a chunk
    std::string_view in = chunk;
    try {
        while (!in.empty()) {
            const std::uint64_t position = bytes_in_;
            const detail::OutputLimit limit{limit_for_call, max_output_, frame_start_,
                                            header_.format, false};
            switch (stage_) {
                case Stage::kHeader: {
                    const std::size_t take = std::min(in.size(), kMaxHeaderSize - pending_.size());
                    std::string candidate = pending_;
                    candidate.append(in.substr(0, take));
                    if (pending_.empty()) {
                        frame_start_ = position;
                    }
                    const auto header = parse_frame_header(candidate, frame_start_);
                    if (!header) {
                        pending_ = std::move(candidate);
                        in.remove_prefix(take);
                        bytes_in_ += take;
                        break;
                    }
                    header_ = *header;
                    const std::size_t from_in = header_.header_size - pending_.size();
                    pending_ = candidate.substr(0, header_.header_size);
                    in.remove_prefix(from_in);
                    bytes_in_ += from_in;
                    start_frame(out);
                    // Hand the header bytes to the decoder (or keep them in a buffered frame).
                    const detail::OutputLimit frame_limit{limit_for_call, max_output_, frame_start_,
                                                          header_.format, false};
                    std::string_view header_bytes = pending_;
                    if (stage_ == Stage::kZstdBody) {
                        if (detail::zstd_stream_step(zstd_, header_bytes, out, frame_limit)) {
                            end_frame();
                        }
                        pending_.clear();
                    } else if (stage_ == Stage::kLz4Body) {
                        const Dictionary* dict = use_dictionary_ ? dictionary_.get() : nullptr;
                        if (detail::lz4_stream_step(lz4_, dict, header_bytes, out, frame_limit)) {
                            end_frame();
                        }
                        pending_.clear();
                    }
                    if (stage_ == Stage::kSkip && skip_left_ == 0) {
                        end_frame();
                    }
                    break;
                }
                case Stage::kSkip: {
                    const auto take =
                        static_cast<std::size_t>(std::min<std::uint64_t>(skip_left_, in.size()));
                    in.remove_prefix(take);
                    bytes_in_ += take;
                    skip_left_ -= take;
                    if (skip_left_ == 0) {
                        end_frame();
                    }
                    break;
                }
                case Stage::kZstdBody: {
                    const std::size_t before = in.size();
                    const bool done = detail::zstd_stream_step(zstd_, in, out, limit);
                    bytes_in_ += before - in.size();
                    if (done) {
                        end_frame();
                    }
                    break;
                }
                case Stage::kLz4Body: {
                    const std::size_t before = in.size();
                    const Dictionary* dict = use_dictionary_ ? dictionary_.get() : nullptr;
                    const bool done = detail::lz4_stream_step(lz4_, dict, in, out, limit);
                    bytes_in_ += before - in.size();
                    if (done) {
                        end_frame();
                    }
                    break;
                }
                case Stage::kZstdBuffered: {
                    const std::size_t already = pending_.size();
                    pending_.append(in);
                    const std::size_t frame_size =
                        ZSTD_findFrameCompressedSize(pending_.data(), pending_.size());
                    if (ZSTD_isError(frame_size) != 0U) {
                        if (ZSTD_getErrorCode(frame_size) != ZSTD_error_srcSize_wrong) {
                            detail::throw_corrupt(FrameFormat::kZstd, frame_start_,
                                                  ZSTD_getErrorName(frame_size));
                        }
                        // A frame within the cap cannot be much larger than its output (raw
                        // blocks add 3 bytes per 128 KiB), so stop buffering past that.
                        const std::size_t room = limit_for_call - out.size();
                        if (pending_.size() > room + room / 1024 + 1024) {
                            limit.exceeded();
                        }
                        bytes_in_ += in.size();
                        in = {};
                        break;
                    }
                    const std::size_t from_in = frame_size - already;
                    bytes_in_ += from_in;
                    carry = std::string(in.substr(from_in));
                    in = carry;
                    detail::zstd_decode_bounded(zstd_,
                                                std::string_view(pending_).substr(0, frame_size),
                                                dictionary_.get(), use_dictionary_, out, limit);
                    end_frame();
                    break;
                }
            }
        }
    } catch (...) {
        failed_ = true;
        throw;
    }
    bytes_out_ += out.size();
    if (counters_) {
        counters_->add_decompress(1, chunk.size(), out.size());
    }
    return out;
}

bool StreamDecompressor::at_frame_boundary() const {
    const std::lock_guard lock(mutex_);
    return stage_ == Stage::kHeader && pending_.empty();
}

void StreamDecompressor::finish() const {
    const std::lock_guard lock(mutex_);
    if (stage_ == Stage::kHeader && pending_.empty()) {
        return;
    }
    const FrameFormat format = stage_ == Stage::kHeader ? detect_format(pending_) : header_.format;
    throw CorruptFrame("truncated stream: it ends inside the " + detail::format_name(format) +
                       " that starts at offset " + std::to_string(frame_start_));
}

std::uint64_t StreamDecompressor::bytes_in() const {
    const std::lock_guard lock(mutex_);
    return bytes_in_;
}

std::uint64_t StreamDecompressor::bytes_out() const {
    const std::lock_guard lock(mutex_);
    return bytes_out_;
}

std::uint64_t StreamDecompressor::frames() const {
    const std::lock_guard lock(mutex_);
    return frames_;
}

}  // namespace relay::compress
