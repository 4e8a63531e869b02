// zstd and LZ4 frame compression for context payloads: one-shot and streaming, optional
// dictionaries (trained with zstd's ZDICT), and a hard cap on the decompressed size so that a
// small "bomb" cannot make the process allocate more than the caller allowed.
//
// Frames are the standard ones (zstd: RFC 8878; LZ4: the LZ4 frame format), so they interoperate
// with every other zstd / lz4 implementation. Decompression detects the format of each frame from
// its magic number, so one input may mix zstd, LZ4 and skippable frames.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

struct ZSTD_DDict_s;
struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;
struct LZ4F_cctx_s;
struct LZ4F_dctx_s;

namespace relay::compress {

enum class Algorithm : std::uint8_t { kZstd, kLz4 };

enum class FrameFormat : std::uint8_t { kZstd, kLz4, kSkippable, kUnknown };

// Little-endian magic numbers at the start of each frame.
inline constexpr std::uint32_t kZstdMagic = 0xFD2FB528U;
inline constexpr std::uint32_t kLz4Magic = 0x184D2204U;
inline constexpr std::uint32_t kSkippableMagicFirst = 0x184D2A50U;  // ... 0x184D2A5F
inline constexpr std::uint32_t kZstdDictionaryMagic = 0xEC30A437U;

[[nodiscard]] std::string_view algorithm_name(Algorithm algorithm) noexcept;
// Accepted compression levels. zstd: its negative "fast" levels up to 22; LZ4: 0 (fast) to 12 (HC).
[[nodiscard]] int min_level(Algorithm algorithm) noexcept;
[[nodiscard]] int max_level(Algorithm algorithm) noexcept;

// The format of the frame starting at data[0] (kUnknown when fewer than 4 bytes).
[[nodiscard]] FrameFormat detect_format(std::string_view data) noexcept;

// What a frame header declares. Parsed by Relay itself (both formats are specified byte by byte)
// so that sizes are known before any decoder allocates anything.
struct FrameHeader {
    FrameFormat format = FrameFormat::kUnknown;
    std::size_t header_size = 0;                // bytes of the header itself
    std::optional<std::uint64_t> content_size;  // decompressed size, when the frame declares it
    std::uint32_t dict_id = 0;                  // 0: the frame names no dictionary
    std::uint64_t window_size = 0;     // zstd: history the decoder keeps; LZ4: largest block
    std::uint64_t skippable_size = 0;  // payload bytes of a skippable frame
};

// The header of the frame at data[0]; nullopt when `data` ends before the header does. Throws
// CorruptFrame on an unknown magic number or a malformed header. `offset` only names the position
// in error messages.
[[nodiscard]] std::optional<FrameHeader> parse_frame_header(std::string_view data,
                                                            std::uint64_t offset = 0);

// A compression dictionary: a zstd-trained dictionary (magic 0xEC30A437, carries an id) or raw
// content (id 0). Immutable and shareable between threads.
class Dictionary {
  public:
    explicit Dictionary(std::string bytes);
    ~Dictionary();
    Dictionary(const Dictionary&) = delete;
    Dictionary& operator=(const Dictionary&) = delete;

    [[nodiscard]] const std::string& bytes() const noexcept { return bytes_; }
    [[nodiscard]] std::uint32_t id() const noexcept { return id_; }
    [[nodiscard]] bool is_raw_content() const noexcept { return id_ == 0; }
    [[nodiscard]] ZSTD_DDict_s* zstd_ddict() const noexcept { return ddict_; }

  private:
    std::string bytes_;
    std::uint32_t id_ = 0;
    ZSTD_DDict_s* ddict_ = nullptr;  // digested once, shared by every decompression
};

// Trains a zstd dictionary of at most `capacity` bytes from sample messages
// (ZDICT_trainFromBuffer). Throws InvalidArgument when zstd cannot train one (too few or too
// uniform samples), naming why.
[[nodiscard]] std::shared_ptr<const Dictionary> train_dictionary(
    std::span<const std::string_view> samples, std::size_t capacity);

// Running totals of one engine, shared by its one-shot and streaming objects. Relaxed atomics:
// each counter is exact, a snapshot of several is not a single instant.
struct Counters {
    std::atomic<std::uint64_t> compress_calls{0};
    std::atomic<std::uint64_t> compress_in{0};
    std::atomic<std::uint64_t> compress_out{0};
    std::atomic<std::uint64_t> decompress_calls{0};
    std::atomic<std::uint64_t> decompress_in{0};
    std::atomic<std::uint64_t> decompress_out{0};

    void add_compress(std::uint64_t calls, std::uint64_t in, std::uint64_t out) noexcept {
        compress_calls.fetch_add(calls, std::memory_order_relaxed);
        compress_in.fetch_add(in, std::memory_order_relaxed);
        compress_out.fetch_add(out, std::memory_order_relaxed);
    }
    void add_decompress(std::uint64_t calls, std::uint64_t in, std::uint64_t out) noexcept {
        decompress_calls.fetch_add(calls, std::memory_order_relaxed);
        decompress_in.fetch_add(in, std::memory_order_relaxed);
        decompress_out.fetch_add(out, std::memory_order_relaxed);
    }
    void reset() noexcept {
        for (auto* c : {&compress_calls, &compress_in, &compress_out, &decompress_calls,
                        &decompress_in, &decompress_out}) {
            c->store(0, std::memory_order_relaxed);
        }
    }
};

struct CompressorOptions {
    Algorithm algorithm = Algorithm::kZstd;
    int level = 3;
    bool checksum = false;  // content checksum in each frame (both formats)
    std::shared_ptr<const Dictionary> dictionary;
    std::shared_ptr<Counters> counters;  // optional: where calls and bytes are counted
};

// One-shot compression: each call makes one complete frame that declares its content size and,
// with a dictionary, its dictionary id. Thread-safe: contexts come from a small pool.
class Compressor {
  public:
    explicit Compressor(CompressorOptions options);
    ~Compressor();
    Compressor(const Compressor&) = delete;
    Compressor& operator=(const Compressor&) = delete;

    [[nodiscard]] std::string compress(std::string_view data) const;
    // The most bytes a frame of `size` input bytes can take, and compression straight into memory
    // the caller owns (at least that large), returning the frame's size. Lets the binding write
    // into a Python bytes object without zero-filling or copying it.
    [[nodiscard]] std::size_t compress_bound(std::size_t size) const noexcept;
    std::size_t compress_into(std::string_view data, std::span<char> dst) const;
    [[nodiscard]] const CompressorOptions& options() const noexcept { return options_; }

  private:
    struct Impl;
    CompressorOptions options_;
    std::unique_ptr<Impl> impl_;
};

// One-shot decompression of one or more concatenated frames (zstd, LZ4, skippable, mixed).
// The total output never exceeds `max_output` bytes: a declared content size over the cap is
// refused before anything is allocated (SizeLimitExceeded), and frames without a declared size are
// decoded into buffers that never grow past the cap. Thread-safe.
class Decompressor {
  public:
    Decompressor(std::shared_ptr<const Dictionary> dictionary, std::uint64_t max_output,
                 std::shared_ptr<Counters> counters = nullptr);
    ~Decompressor();
    Decompressor(const Decompressor&) = delete;
    Decompressor& operator=(const Decompressor&) = delete;

    [[nodiscard]] std::string decompress(std::string_view data) const;
    [[nodiscard]] std::uint64_t max_output() const noexcept { return max_output_; }

    // The fast path for what Compressor writes: when `data` is exactly one zstd or LZ4 frame that
    // declares its content size, within the cap and with the dictionary it names at hand, that
    // size; otherwise nullopt (decompress() then decodes, or reports what is wrong). Never throws.
    [[nodiscard]] std::optional<std::size_t> single_frame_size(
        std::string_view data) const noexcept;
    // Decodes such a frame straight into `dst` (exactly single_frame_size(data) bytes), so that a
    // caller can decode into memory it owns, such as a Python bytes object, without a copy.
    void decompress_into(std::string_view data, std::span<char> dst) const;
    // Each of `frames` decompressed (as decompress() would) one after the other into `out`,
    // which is cleared first: frame j's content is out[ends[j-1], ends[j]) (from 0 for j = 0).
    // One call for the many small frames of a session's stored messages.
    void decompress_all(std::span<const std::string_view> frames, std::string& out,
                        std::vector<std::size_t>& ends) const;

  private:
    struct Impl;
    std::shared_ptr<const Dictionary> dictionary_;
    std::uint64_t max_output_;
    std::shared_ptr<Counters> counters_;
    std::unique_ptr<Impl> impl_;
};

// Incremental compression: feed chunks, collect what is ready. flush() makes everything fed so far
// decodable without ending the frame; finish() ends the frame, and the next chunk starts a new
// one (so one object can write many frames). Frames declare no content size. Calls are
// serialised by an internal mutex.
class StreamCompressor {
  public:
    explicit StreamCompressor(CompressorOptions options);
    ~StreamCompressor();
    StreamCompressor(const StreamCompressor&) = delete;
    StreamCompressor& operator=(const StreamCompressor&) = delete;

    [[nodiscard]] std::string compress(std::string_view chunk);
    [[nodiscard]] std::string flush();
    [[nodiscard]] std::string finish();
    [[nodiscard]] std::uint64_t bytes_in() const;
    [[nodiscard]] std::uint64_t bytes_out() const;

  private:
    std::string begin_frame_if_needed();
    CompressorOptions options_;
    mutable std::mutex mutex_;
    ZSTD_CCtx_s* zstd_ = nullptr;
    LZ4F_cctx_s* lz4_ = nullptr;
    struct Lz4Dict;
    std::unique_ptr<Lz4Dict> lz4_dict_;
    bool frame_open_ = false;
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
};

// Incremental decompression of a stream of frames split at arbitrary points. The cap applies to
// the whole stream: the frame headers' declared sizes are checked as soon as a header is complete,
// and the output is checked while decoding, so decoding stops at the cap instead of allocating
// past it. Calls are serialised by an internal mutex.
class StreamDecompressor {
  public:
    StreamDecompressor(std::shared_ptr<const Dictionary> dictionary, std::uint64_t max_output,
                       std::shared_ptr<Counters> counters = nullptr);
    ~StreamDecompressor();
    StreamDecompressor(const StreamDecompressor&) = delete;
    StreamDecompressor& operator=(const StreamDecompressor&) = delete;

    [[nodiscard]] std::string decompress(std::string_view chunk);
    // True when no frame is partly read (every frame fed so far is complete).
    [[nodiscard]] bool at_frame_boundary() const;
    // Throws CorruptFrame when the stream stops inside a frame (truncated input).
    void finish() const;
    [[nodiscard]] std::uint64_t bytes_in() const;
    [[nodiscard]] std::uint64_t bytes_out() const;
    [[nodiscard]] std::uint64_t frames() const;

  private:
    enum class Stage : std::uint8_t { kHeader, kZstdBody, kZstdBuffered, kLz4Body, kSkip };
    void start_frame(std::string& out);
    void end_frame();

    std::shared_ptr<const Dictionary> dictionary_;
    std::uint64_t max_output_;
    std::shared_ptr<Counters> counters_;
    mutable std::mutex mutex_;
    ZSTD_DCtx_s* zstd_ = nullptr;
    LZ4F_dctx_s* lz4_ = nullptr;
    Stage stage_ = Stage::kHeader;
    std::string pending_;  // header bytes, or a whole frame in kZstdBuffered
    FrameHeader header_;
    bool use_dictionary_ = false;
    bool failed_ = false;  // an error left the decoders mid-frame; refuse further input
    std::uint64_t skip_left_ = 0;
    std::uint64_t frame_start_ = 0;  // stream offset of the current frame, for messages
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
    std::uint64_t frames_ = 0;
};

}  // namespace relay::compress
