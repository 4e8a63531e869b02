// Internals shared by the one-shot and the streaming decoders (compressor.cpp, stream.cpp).
#pragma once

#include <zstd.h>
#include <zstd_errors.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "compress/compressor.hpp"

#define LZ4F_STATIC_LINKING_ONLY  // dictionaries (LZ4F_createCDict, LZ4F_decompress_usingDict)
#include <lz4frame.h>

namespace relay::compress::detail {

[[nodiscard]] std::string format_name(FrameFormat format);

// What the output of one decoding step may grow to, and how to word going past it.
struct OutputLimit {
    std::size_t limit = 0;     // out.size() may not exceed this
    std::uint64_t cap = 0;     // the user's max_output, for the message
    std::uint64_t offset = 0;  // of the frame, for the message
    FrameFormat format = FrameFormat::kZstd;
    bool is_declared_size = false;  // the limit is the frame's own declared content size

    [[noreturn]] void exceeded() const;
};

[[noreturn]] void throw_corrupt(FrameFormat format, std::uint64_t offset, std::string_view what);
[[noreturn]] void throw_truncated(FrameFormat format, std::uint64_t offset);
[[noreturn]] void throw_declared_too_large(FrameFormat format, std::uint64_t offset,
                                           std::uint64_t declared, std::uint64_t room,
                                           std::uint64_t cap);

// Makes room for `needed` bytes in `out` without its capacity ever exceeding `limit` (std::string's
// own growth may double past it).
void reserve_within(std::string& out, std::size_t needed, std::size_t limit);

// Whether to decode a frame with `dictionary`: yes when the frame names the dictionary's id, or
// names none and the dictionary is raw content (which frames cannot name). Throws CorruptFrame
// when the frame names a dictionary that was not given or differs from the one given.
[[nodiscard]] bool select_dictionary(const FrameHeader& header, const Dictionary* dictionary,
                                     std::uint64_t offset);

// Feeds `in` to a zstd (resp. LZ4) streaming decoder, appending to `out` within `limit`. Consumes
// `in` up to the end of the current frame and returns true there; returns false when `in` is
// used up before the frame ends.
[[nodiscard]] bool zstd_stream_step(ZSTD_DCtx* dctx, std::string_view& in, std::string& out,
                                    const OutputLimit& limit);
[[nodiscard]] bool lz4_stream_step(LZ4F_dctx* dctx, const Dictionary* dictionary,
                                   std::string_view& in, std::string& out,
                                   const OutputLimit& limit);

// Prepares `dctx` for a zstd frame of `header` (dictionary, window limit).
void prepare_zstd_stream(ZSTD_DCtx* dctx, const FrameHeader& header, const Dictionary* dictionary,
                         bool use_dictionary);

// One-shot decode of one zstd frame into dst[0, capacity) with `dictionary` or explicitly none.
// Returns zstd's result code.
[[nodiscard]] std::size_t zstd_one_shot(ZSTD_DCtx* dctx, char* dst, std::size_t capacity,
                                        std::string_view frame, const Dictionary* dictionary);

// Decodes one complete zstd frame whose content size is not declared into at most `room` bytes
// appended to `out`, without a window buffer (the output is the window). Used when the frame's
// window is larger than what may still be produced.
void zstd_decode_bounded(ZSTD_DCtx* dctx, std::string_view frame, const Dictionary* dictionary,
                         bool use_dictionary, std::string& out, const OutputLimit& limit);

// A small pool of reusable codec contexts, so that one-shot calls from many threads neither share
// a context nor pay for creating one each time.
template <class T>
class ContextPool {
  public:
    ContextPool(std::function<T*()> create, std::function<void(T*)> destroy)
        : create_(std::move(create)), destroy_(std::move(destroy)) {}
    ~ContextPool() {
        for (T* ctx : idle_) {
            destroy_(ctx);
        }
    }
    ContextPool(const ContextPool&) = delete;
    ContextPool& operator=(const ContextPool&) = delete;

    class Lease {
      public:
        Lease(ContextPool* pool, T* ctx) : pool_(pool), ctx_(ctx) {}
        ~Lease() { pool_->give_back(ctx_); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        [[nodiscard]] T* get() const noexcept { return ctx_; }

      private:
        ContextPool* pool_;
        T* ctx_;
    };

    [[nodiscard]] Lease acquire() {
        {
            const std::lock_guard lock(mutex_);
            if (!idle_.empty()) {
                T* ctx = idle_.back();
                idle_.pop_back();
                return Lease(this, ctx);
            }
        }
        return Lease(this, create_());
    }

  private:
    static constexpr std::size_t kMaxIdle = 16;

    void give_back(T* ctx) {
        {
            const std::lock_guard lock(mutex_);
            if (idle_.size() < kMaxIdle) {
                idle_.push_back(ctx);
                return;
            }
        }
        destroy_(ctx);
    }

    std::function<T*()> create_;
    std::function<void(T*)> destroy_;
    std::mutex mutex_;
    std::vector<T*> idle_;
};

[[nodiscard]] ZSTD_DCtx* new_zstd_dctx();
[[nodiscard]] LZ4F_dctx* new_lz4_dctx();
[[nodiscard]] LZ4F_cctx* new_lz4_cctx();

}  // namespace relay::compress::detail
