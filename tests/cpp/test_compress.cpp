// Catch2 tests of relay::compress: round-trips, frame headers, corrupt and truncated frames, the
// decompressed-size cap, dictionaries, streaming, and frames made by the reference libraries.
#include <zstd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "compress/compressor.hpp"

#define LZ4F_STATIC_LINKING_ONLY
#include <lz4frame.h>

namespace cz = relay::compress;

namespace {

constexpr std::uint64_t kNoCap = std::uint64_t{1} << 40U;

// Chat-like JSON messages: roles, recurring phrases, varied names and numbers.
std::vector<std::string> chat_messages(std::size_t count, std::uint32_t seed) {
    static const std::vector<std::string> kRoles = {"user", "assistant", "system", "tool"};
    static const std::vector<std::string> kPhrases = {"Could you help me with",
                                                      "Sure, here is how you can",
                                                      "Thanks, that worked!",
                                                      "I'm getting an error when I run",
                                                      "Let me check the logs for",
                                                      "The deployment of",
                                                      "Please summarize the following conversation",
                                                      "As an AI assistant, I can",
                                                      "What is the status of order",
                                                      "Here are the steps to reset your password",
                                                      "The function returns None instead of",
                                                      "Can you translate this into French:"};
    static const std::vector<std::string> kTopics = {
        "the billing service", "my Kubernetes cluster",  "the React component",
        "invoice #",           "the Postgres migration", "the API gateway",
        "a Python script",     "the weekly report"};
    std::mt19937 rng(seed);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < count; ++i) {
        std::string content;
        const auto parts = 1 + rng() % 4;
        for (unsigned p = 0; p < parts; ++p) {
            content += kPhrases[rng() % kPhrases.size()] + " " + kTopics[rng() % kTopics.size()] +
                       std::to_string(rng() % 100000) + ". ";
        }
        out.push_back(R"({"role": ")" + kRoles[rng() % kRoles.size()] + R"(", "content": ")" +
                      content + R"(", "id": "msg_)" + std::to_string(rng()) + R"(", "created": )" +
                      std::to_string(1700000000 + rng() % 10000000) + "}");
    }
    return out;
}

std::string random_bytes(std::size_t n, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::string out(n, '\0');
    for (auto& c : out) {
        c = static_cast<char>(rng() & 0xFFU);
    }
    return out;
}

std::string text_blob(std::size_t n) {
    std::string out;
    for (const auto& m : chat_messages(n / 100 + 1, 7)) {
        out += m + "\n";
    }
    out.resize(n);
    return out;
}

cz::Compressor make(cz::Algorithm algorithm, int level, bool checksum = false,
                    std::shared_ptr<const cz::Dictionary> dict = nullptr) {
    return cz::Compressor(
        cz::CompressorOptions{algorithm, level, checksum, std::move(dict), nullptr});
}

std::string stream_compress(cz::Algorithm algorithm, std::string_view data, std::size_t chunk,
                            int level = 3, std::shared_ptr<const cz::Dictionary> dict = nullptr) {
    cz::StreamCompressor sc(
        cz::CompressorOptions{algorithm, level, false, std::move(dict), nullptr});
    std::string out;
    while (!data.empty()) {
        out += sc.compress(data.substr(0, chunk));
        data.remove_prefix(std::min(chunk, data.size()));
    }
    out += sc.finish();
    return out;
}

std::string stream_decompress(std::string_view frames, std::size_t chunk,
                              std::uint64_t cap = kNoCap,
                              std::shared_ptr<const cz::Dictionary> dict = nullptr) {
    cz::StreamDecompressor sd(std::move(dict), cap);
    std::string out;
    while (!frames.empty()) {
        out += sd.decompress(frames.substr(0, chunk));
        frames.remove_prefix(std::min(chunk, frames.size()));
    }
    sd.finish();
    return out;
}

const std::vector<cz::Algorithm> kAlgorithms = {cz::Algorithm::kZstd, cz::Algorithm::kLz4};

}  // namespace

TEST_CASE("one-shot round-trips at several levels and sizes", "[compress]") {
    const cz::Decompressor dec(nullptr, kNoCap);
    const std::vector<std::string> inputs = {"", "a", text_blob(1000), text_blob(300000),
                                             random_bytes(200000, 1)};
    for (const auto algorithm : kAlgorithms) {
        const std::vector<int> levels = algorithm == cz::Algorithm::kZstd
                                            ? std::vector<int>{-5, 1, 3, 9, 19}
                                            : std::vector<int>{0, 1, 9, 12};
        for (const int level : levels) {
            const auto comp = make(algorithm, level, level % 2 == 1);
            for (const auto& input : inputs) {
                const std::string frame = comp.compress(input);
                CHECK(cz::detect_format(frame) == (algorithm == cz::Algorithm::kZstd
                                                       ? cz::FrameFormat::kZstd
                                                       : cz::FrameFormat::kLz4));
                const auto header = cz::parse_frame_header(frame);
                REQUIRE(header);
                // LZ4 writes 0 as "size unknown", so an empty LZ4 frame declares nothing.
                CHECK(header->content_size.value_or(0) == input.size());
                CHECK((header->content_size || input.empty()));
                CHECK(dec.decompress(frame) == input);
            }
        }
    }
    // Text compresses well; random data does not grow by more than the framing.
    const auto zstd = make(cz::Algorithm::kZstd, 3);
    CHECK(zstd.compress(text_blob(300000)).size() < 300000 / 4);
    CHECK(zstd.compress(random_bytes(200000, 2)).size() < 200000 + 100);
}

TEST_CASE("levels outside the library's range are refused", "[compress]") {
    CHECK_THROWS_AS(make(cz::Algorithm::kZstd, 23), relay::InvalidArgument);
    CHECK_THROWS_AS(make(cz::Algorithm::kLz4, 13), relay::InvalidArgument);
    CHECK_THROWS_AS(make(cz::Algorithm::kLz4, -1), relay::InvalidArgument);
    CHECK_THROWS_WITH(make(cz::Algorithm::kZstd, 99), Catch::Contains("zstd level 99"));
    CHECK_THROWS_AS(
        cz::StreamCompressor(cz::CompressorOptions{cz::Algorithm::kZstd, 30, false, {}, {}}),
        relay::InvalidArgument);
}

TEST_CASE("concatenated zstd, LZ4 and skippable frames decode in order", "[compress]") {
    const std::string a = text_blob(5000);
    const std::string b = text_blob(7000);
    std::string skippable = {'\x50', '\x2a', '\x4d', '\x18', '\x03', '\0',
                             '\0',   '\0',   'x',    'y',    'z'};
    const std::string frames = make(cz::Algorithm::kZstd, 3).compress(a) + skippable +
                               make(cz::Algorithm::kLz4, 1).compress(b) +
                               stream_compress(cz::Algorithm::kZstd, a, 999);
    const cz::Decompressor dec(nullptr, kNoCap);
    CHECK(dec.decompress(frames) == a + b + a);
    for (const std::size_t chunk : {1UL, 7UL, 4096UL, frames.size()}) {
        CHECK(stream_decompress(frames, chunk) == a + b + a);
    }
}

TEST_CASE("decompress_all decodes many frames into one buffer", "[compress]") {
    const auto messages = chat_messages(50, 7);
    std::vector<std::string> blobs;
    for (std::size_t i = 0; i < messages.size(); ++i) {
        const auto algorithm = i % 3 == 0 ? cz::Algorithm::kLz4 : cz::Algorithm::kZstd;
        // Every fifth blob holds two frames: the path without a declared single size.
        blobs.push_back(make(algorithm, 3).compress(messages[i]) +
                        (i % 5 == 0 ? make(algorithm, 1).compress(messages[i]) : std::string()));
    }
    blobs.push_back(make(cz::Algorithm::kZstd, 3).compress(""));
    const std::vector<std::string_view> views(blobs.begin(), blobs.end());
    const cz::Decompressor dec(nullptr, kNoCap);
    std::string out = "left over";
    std::vector<std::size_t> ends = {1, 2};
    dec.decompress_all(views, out, ends);
    REQUIRE(ends.size() == blobs.size());
    std::size_t start = 0;
    for (std::size_t i = 0; i < blobs.size(); ++i) {
        CHECK(out.substr(start, ends[i] - start) == dec.decompress(blobs[i]));
        start = ends[i];
    }
    CHECK(start == out.size());
    std::vector<std::string_view> broken = views;
    broken[3] = broken[3].substr(0, broken[3].size() - 2);
    CHECK_THROWS_AS(dec.decompress_all(broken, out, ends), relay::CorruptFrame);
}

TEST_CASE("frame headers are parsed without decoding", "[compress]") {
    const auto header = cz::parse_frame_header(make(cz::Algorithm::kLz4, 0).compress("hello"));
    REQUIRE(header);
    CHECK(header->format == cz::FrameFormat::kLz4);
    CHECK(header->content_size == 5U);
    CHECK(header->dict_id == 0);
    const std::string streamed = stream_compress(cz::Algorithm::kZstd, text_blob(10000), 100);
    const auto zheader = cz::parse_frame_header(streamed);
    REQUIRE(zheader);
    CHECK_FALSE(zheader->content_size);
    CHECK(zheader->window_size >= (1U << 17U));
    // Every prefix shorter than the header asks for more bytes instead of guessing.
    CHECK_FALSE(cz::parse_frame_header(streamed.substr(0, 3)));
    CHECK_FALSE(cz::parse_frame_header(streamed.substr(0, 4)));
}

TEST_CASE("corrupt, truncated and unknown frames raise CorruptFrame", "[compress]") {
    const cz::Decompressor dec(nullptr, kNoCap);
    CHECK_THROWS_WITH(dec.decompress("hello world"), Catch::Contains("unknown frame format"));
    CHECK_THROWS_AS(dec.decompress(""), relay::CorruptFrame);
    CHECK_THROWS_AS(dec.decompress("\x28\xb5"), relay::CorruptFrame);
    const std::string input = text_blob(20000);
    for (const auto algorithm : kAlgorithms) {
        const std::string frame = make(algorithm, 3, true).compress(input);
        // Every truncation is reported, one-shot and streaming.
        for (std::size_t n = 1; n < frame.size(); n += 1 + n / 16) {
            const std::string cut = frame.substr(0, n);
            CHECK_THROWS_AS(dec.decompress(cut), relay::CorruptFrame);
            cz::StreamDecompressor sd(nullptr, kNoCap);
            CHECK_NOTHROW(static_cast<void>(sd.decompress(cut)));
            CHECK_FALSE(sd.at_frame_boundary());
            CHECK_THROWS_WITH(sd.finish(), Catch::Contains("truncated"));
        }
        // Flipped bytes past the header are caught by the block structure or the checksum.
        std::mt19937 rng(3);
        for (int trial = 0; trial < 200; ++trial) {
            std::string bad = frame;
            const std::size_t pos = 12 + rng() % (bad.size() - 12);
            bad[pos] = static_cast<char>(bad[pos] ^ static_cast<char>(1 + rng() % 255));
            CHECK_THROWS_AS(dec.decompress(bad), relay::CorruptFrame);
        }
        // Trailing garbage after a valid frame is an unknown frame, not silently ignored.
        CHECK_THROWS_WITH(dec.decompress(frame + "junk"), Catch::Contains("unknown frame format"));
    }
}

TEST_CASE("a stream decompressor refuses input after an error", "[compress]") {
    cz::StreamDecompressor sd(nullptr, kNoCap);
    CHECK_THROWS_AS(sd.decompress("definitely not a frame"), relay::CorruptFrame);
    CHECK_THROWS_WITH(sd.decompress(make(cz::Algorithm::kZstd, 1).compress("x")),
                      Catch::Contains("earlier error"));
}

TEST_CASE("the size cap stops bombs, declared or streamed", "[compress][cap]") {
    const std::string zeros(8U << 20U, '\0');
    for (const auto algorithm : kAlgorithms) {
        const std::string declared = make(algorithm, 3).compress(zeros);
        const std::string streamed = stream_compress(algorithm, zeros, 1U << 20U);
        CHECK(declared.size() < zeros.size() / 200);
        const cz::Decompressor small(nullptr, 1U << 20U);
        CHECK_THROWS_WITH(small.decompress(declared), Catch::Contains("declares 8388608"));
        CHECK_THROWS_AS(small.decompress(streamed), relay::SizeLimitExceeded);
        for (const std::size_t chunk : {100UL, 1UL << 20U}) {
            CHECK_THROWS_AS(stream_decompress(declared, chunk, 1U << 20U),
                            relay::SizeLimitExceeded);
            CHECK_THROWS_AS(stream_decompress(streamed, chunk, 1U << 20U),
                            relay::SizeLimitExceeded);
        }
        // Exactly at the cap is allowed; one byte less is not.
        const cz::Decompressor exact(nullptr, zeros.size());
        CHECK(exact.decompress(streamed).size() == zeros.size());
        CHECK(stream_decompress(streamed, 4096, zeros.size()).size() == zeros.size());
        const cz::Decompressor short_by_one(nullptr, zeros.size() - 1);
        CHECK_THROWS_AS(short_by_one.decompress(streamed), relay::SizeLimitExceeded);
        CHECK_THROWS_AS(short_by_one.decompress(declared), relay::SizeLimitExceeded);
        CHECK_THROWS_AS(stream_decompress(streamed, 4096, zeros.size() - 1),
                        relay::SizeLimitExceeded);
    }
}

TEST_CASE("the cap applies across frames and across stream chunks", "[compress][cap]") {
    const std::string part(3000, 'q');
    const std::string one = make(cz::Algorithm::kZstd, 3).compress(part);
    const std::string three = one + one + one;
    CHECK(cz::Decompressor(nullptr, 9000).decompress(three).size() == 9000);
    CHECK_THROWS_AS(cz::Decompressor(nullptr, 8999).decompress(three), relay::SizeLimitExceeded);
    CHECK_THROWS_AS(stream_decompress(three, 5, 8999), relay::SizeLimitExceeded);
}

TEST_CASE("a streamed zstd frame whose window exceeds the cap decodes within the cap",
          "[compress][cap]") {
    // Level 19 streams declare an 8 MiB window; small content must still decode under a 64 KiB cap.
    const std::string text = text_blob(20000);
    const std::string frame = stream_compress(cz::Algorithm::kZstd, text, 1000, 19);
    const auto header = cz::parse_frame_header(frame);
    REQUIRE(header);
    REQUIRE_FALSE(header->content_size);
    REQUIRE(header->window_size > 65536);
    CHECK(cz::Decompressor(nullptr, 65536).decompress(frame) == text);
    CHECK(stream_decompress(frame + frame, 777, 65536) == text + text);
    CHECK_THROWS_AS(cz::Decompressor(nullptr, 19999).decompress(frame), relay::SizeLimitExceeded);
    CHECK_THROWS_AS(stream_decompress(frame, 777, 19999), relay::SizeLimitExceeded);
}

TEST_CASE("trained dictionaries carry their id and are required to decode", "[compress][dict]") {
    const auto samples = chat_messages(3000, 11);
    const std::vector<std::string_view> views(samples.begin(), samples.end());
    const auto dict = cz::train_dictionary(views, 16384);
    REQUIRE(dict->id() != 0);
    CHECK(dict->bytes().size() <= 16384);
    const auto other = cz::train_dictionary(views, 8192);
    const auto fresh = chat_messages(200, 99);  // not in the training set
    for (const auto algorithm : kAlgorithms) {
        const auto with_dict = make(algorithm, 3, false, dict);
        const auto plain = make(algorithm, 3);
        std::size_t dict_total = 0;
        std::size_t plain_total = 0;
        for (const auto& msg : fresh) {
            const std::string frame = with_dict.compress(msg);
            dict_total += frame.size();
            plain_total += plain.compress(msg).size();
            const auto header = cz::parse_frame_header(frame);
            REQUIRE(header);
            CHECK(header->dict_id == dict->id());
            CHECK(cz::Decompressor(dict, kNoCap).decompress(frame) == msg);
            CHECK_THROWS_WITH(
                cz::Decompressor(nullptr, kNoCap).decompress(frame),
                Catch::Contains("needs dictionary id " + std::to_string(dict->id())) &&
                    Catch::Contains("no dictionary was given"));
            if (other->id() != dict->id()) {
                CHECK_THROWS_WITH(cz::Decompressor(other, kNoCap).decompress(frame),
                                  Catch::Contains("but the dictionary given has id"));
            }
        }
        CHECK(dict_total * 2 < plain_total);  // the point of dictionaries on short messages
        // Streaming with the dictionary, decoded in small chunks.
        const std::string streamed = stream_compress(algorithm, fresh[0] + fresh[1], 17, 3, dict);
        CHECK(stream_decompress(streamed, 3, kNoCap, dict) == fresh[0] + fresh[1]);
        CHECK_THROWS_AS(stream_decompress(streamed, 3, kNoCap, nullptr), relay::CorruptFrame);
    }
    // Frames without a dictionary still decode when one is configured.
    const std::string plain_frame = make(cz::Algorithm::kZstd, 3).compress(fresh[0]);
    CHECK(cz::Decompressor(dict, kNoCap).decompress(plain_frame) == fresh[0]);
}

TEST_CASE("raw-content dictionaries and bad training input", "[compress][dict]") {
    const auto raw = std::make_shared<const cz::Dictionary>(
        std::string(R"({"role": "assistant", "content": "Sure, here is how you can)"));
    CHECK(raw->id() == 0);
    CHECK(raw->is_raw_content());
    const std::string msg =
        R"({"role": "assistant", "content": "Sure, here is how you can fix it"})";
    for (const auto algorithm : kAlgorithms) {
        const std::string frame = make(algorithm, 3, false, raw).compress(msg);
        CHECK(cz::Decompressor(raw, kNoCap).decompress(frame) == msg);
    }
    CHECK_THROWS_AS(cz::Dictionary(std::string()), relay::InvalidArgument);
    const std::vector<std::string_view> few = {"a", "b"};
    CHECK_THROWS_AS(cz::train_dictionary(few, 4096), relay::InvalidArgument);
    CHECK_THROWS_AS(cz::train_dictionary({}, 4096), relay::InvalidArgument);
    CHECK_THROWS_WITH(cz::train_dictionary(few, 10), Catch::Contains("at least 256"));
}

TEST_CASE("streaming compression: chunks, flush, and several frames", "[compress][stream]") {
    const std::string text = text_blob(100000);
    for (const auto algorithm : kAlgorithms) {
        cz::StreamCompressor sc(cz::CompressorOptions{algorithm, 3, true, {}, {}});
        std::string out = sc.compress(std::string_view(text).substr(0, 40000));
        out += sc.flush();
        // After a flush everything fed so far is decodable, though the frame is still open.
        cz::StreamDecompressor sd(nullptr, kNoCap);
        CHECK(sd.decompress(out) == text.substr(0, 40000));
        CHECK_FALSE(sd.at_frame_boundary());
        std::string rest = sc.compress(std::string_view(text).substr(40000));
        rest += sc.finish();
        CHECK(sd.decompress(rest) == text.substr(40000));
        CHECK(sd.at_frame_boundary());
        CHECK_NOTHROW(sd.finish());
        // The same object then writes a second frame.
        std::string second = sc.compress("second frame");
        second += sc.finish();
        CHECK(sd.decompress(second) == "second frame");
        CHECK(sd.frames() == 2);
        CHECK(sc.bytes_in() == text.size() + 12);
        CHECK(sc.bytes_out() == out.size() + rest.size() + second.size());
        // finish() on a fresh frame writes an empty frame, which decodes to nothing.
        const std::string empty = sc.finish();
        CHECK_FALSE(empty.empty());
        CHECK(cz::Decompressor(nullptr, kNoCap).decompress(empty).empty());
    }
}

TEST_CASE("our frames decode with the reference libraries and theirs with ours",
          "[compress][interop]") {
    const std::string text = text_blob(50000);
    const cz::Decompressor dec(nullptr, kNoCap);
    // zstd one-shot, theirs -> ours and ours -> theirs.
    std::string theirs(ZSTD_compressBound(text.size()), '\0');
    theirs.resize(ZSTD_compress(theirs.data(), theirs.size(), text.data(), text.size(), 5));
    CHECK(dec.decompress(theirs) == text);
    const std::string ours = make(cz::Algorithm::kZstd, 5).compress(text);
    std::string back(text.size(), '\0');
    CHECK(ZSTD_decompress(back.data(), back.size(), ours.data(), ours.size()) == text.size());
    CHECK(back == text);
    // LZ4 frame, both ways.
    std::string lz(LZ4F_compressFrameBound(text.size(), nullptr), '\0');
    lz.resize(LZ4F_compressFrame(lz.data(), lz.size(), text.data(), text.size(), nullptr));
    CHECK(dec.decompress(lz) == text);
    const std::string our_lz = make(cz::Algorithm::kLz4, 0).compress(text);
    LZ4F_dctx* dctx = nullptr;
    REQUIRE(LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION)) == 0);
    std::string lz_back(text.size(), '\0');
    std::size_t dst = lz_back.size();
    std::size_t src = our_lz.size();
    CHECK(LZ4F_decompress(dctx, lz_back.data(), &dst, our_lz.data(), &src, nullptr) == 0);
    LZ4F_freeDecompressionContext(dctx);
    CHECK(dst == text.size());
    CHECK(lz_back == text);
}

TEST_CASE("counters add up one-shot and streaming work", "[compress]") {
    const auto counters = std::make_shared<cz::Counters>();
    const cz::Compressor comp(cz::CompressorOptions{cz::Algorithm::kZstd, 3, false, {}, counters});
    const cz::Decompressor dec(nullptr, kNoCap, counters);
    const std::string text = text_blob(10000);
    const std::string frame = comp.compress(text);
    CHECK(dec.decompress(frame) == text);
    CHECK_THROWS_AS(dec.decompress("bad!"), relay::CorruptFrame);  // failures are not counted
    cz::StreamCompressor sc(cz::CompressorOptions{cz::Algorithm::kLz4, 0, false, {}, counters});
    std::string streamed = sc.compress(text);
    streamed += sc.finish();
    cz::StreamDecompressor sd(nullptr, kNoCap, counters);
    CHECK(sd.decompress(streamed) == text);
    CHECK(counters->compress_calls == 2);
    CHECK(counters->compress_in == 2 * text.size());
    CHECK(counters->compress_out == frame.size() + streamed.size());
    CHECK(counters->decompress_calls == 2);
    CHECK(counters->decompress_in == frame.size() + streamed.size());
    CHECK(counters->decompress_out == 2 * text.size());
    counters->reset();
    CHECK(counters->compress_calls == 0);
}

TEST_CASE("a pooled context never keeps a dictionary for a later plain frame", "[compress][dict]") {
    const auto samples = chat_messages(3000, 21);
    const std::vector<std::string_view> views(samples.begin(), samples.end());
    const auto dict = cz::train_dictionary(views, 8192);
    const cz::Decompressor dec(dict, kNoCap);
    const auto plain = make(cz::Algorithm::kZstd, 3, true);
    for (int round = 0; round < 20; ++round) {
        const std::string& msg = samples[static_cast<std::size_t>(round)];
        // An undeclared-size frame with the dictionary goes through the streaming decoder,
        // which references the dictionary on the pooled context ...
        CHECK(dec.decompress(stream_compress(cz::Algorithm::kZstd, msg, 64, 3, dict)) == msg);
        // ... and a plain frame decoded next on that context must not see it.
        CHECK(dec.decompress(plain.compress(msg + msg)) == msg + msg);
    }
}

TEST_CASE("single-frame fast path decodes into caller memory", "[compress]") {
    const std::string text = text_blob(70000);
    const cz::Decompressor dec(nullptr, kNoCap);
    for (const auto algorithm : kAlgorithms) {
        for (const bool checksum : {false, true}) {
            const std::string frame = make(algorithm, 3, checksum).compress(text);
            const auto size = dec.single_frame_size(frame);
            REQUIRE(size == text.size());
            std::string out(*size, '\0');
            dec.decompress_into(frame, out);
            CHECK(out == text);
            // Anything else takes the general path.
            CHECK_FALSE(dec.single_frame_size(frame + frame));
            CHECK_FALSE(dec.single_frame_size(frame.substr(0, frame.size() - 1)));
            CHECK_FALSE(cz::Decompressor(nullptr, text.size() - 1).single_frame_size(frame));
            CHECK_FALSE(dec.single_frame_size(stream_compress(algorithm, text, 1000)));
            CHECK_FALSE(dec.single_frame_size("nonsense"));
        }
    }
    // LZ4 frames with block checksums, from the reference library.
    LZ4F_preferences_t prefs{};
    prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    prefs.frameInfo.contentSize = text.size();
    std::string lz(LZ4F_compressFrameBound(text.size(), &prefs), '\0');
    lz.resize(LZ4F_compressFrame(lz.data(), lz.size(), text.data(), text.size(), &prefs));
    REQUIRE(dec.single_frame_size(lz) == text.size());
    std::string out(text.size(), '\0');
    dec.decompress_into(lz, out);
    CHECK(out == text);
    // A corrupt block is still caught on the fast path.
    std::string bad = lz;
    bad[bad.size() / 2] = static_cast<char>(bad[bad.size() / 2] ^ 0x40);
    if (dec.single_frame_size(bad)) {
        CHECK_THROWS_AS(dec.decompress_into(bad, out), relay::CorruptFrame);
    }
    // A frame naming a dictionary that is not at hand goes to the general path, which explains.
    const auto samples = chat_messages(2000, 5);
    const std::vector<std::string_view> views(samples.begin(), samples.end());
    const auto dict = cz::train_dictionary(views, 4096);
    const std::string with_dict = make(cz::Algorithm::kZstd, 3, false, dict).compress(samples[0]);
    CHECK_FALSE(dec.single_frame_size(with_dict));
    CHECK(cz::Decompressor(dict, kNoCap).single_frame_size(with_dict) == samples[0].size());
}

namespace {
// A hand-made zstd frame: no declared size, a 1 GiB window, and `blocks` RLE blocks of 128 KiB of
// 'z' each (4 bytes per block) - the classic small bomb.
std::string rle_bomb(std::size_t blocks) {
    std::string frame = {'\x28', '\xb5', '\x2f', '\xfd', '\x00', static_cast<char>(20U << 3U)};
    for (std::size_t i = 0; i < blocks; ++i) {
        const std::uint32_t header = (std::uint32_t{1} << 20U) | (1U << 1U) |
                                     (i + 1 == blocks ? 1U : 0U);  // 128 KiB, RLE, last?
        frame += static_cast<char>(header & 0xFFU);
        frame += static_cast<char>((header >> 8U) & 0xFFU);
        frame += static_cast<char>((header >> 16U) & 0xFFU);
        frame += 'z';
    }
    return frame;
}
}  // namespace

TEST_CASE("a huge declared window does not make the decoder allocate it", "[compress][cap]") {
    const std::string bomb = rle_bomb(8192);  // 1 GiB of output from 32 KiB
    const auto header = cz::parse_frame_header(bomb);
    REQUIRE(header);
    CHECK(header->window_size == (std::uint64_t{1} << 30U));
    CHECK_FALSE(header->content_size);
    CHECK_THROWS_AS(cz::Decompressor(nullptr, 1U << 20U).decompress(bomb),
                    relay::SizeLimitExceeded);
    CHECK_THROWS_AS(stream_decompress(bomb, 1000, 1U << 20U), relay::SizeLimitExceeded);
    // The same construction within the cap decodes, one-shot and streamed.
    const std::string small = rle_bomb(8);  // exactly 1 MiB
    const std::string expected(std::size_t{1} << 20U, 'z');
    CHECK(cz::Decompressor(nullptr, 1U << 20U).decompress(small) == expected);
    CHECK(stream_decompress(small, 5, 1U << 20U) == expected);
    CHECK_THROWS_AS(cz::Decompressor(nullptr, (1U << 20U) - 1).decompress(small),
                    relay::SizeLimitExceeded);
}

TEST_CASE("compression straight into caller memory", "[compress]") {
    const std::string text = text_blob(50000);
    for (const auto algorithm : kAlgorithms) {
        const auto comp = make(algorithm, 3);
        std::string dst(comp.compress_bound(text.size()), '\0');
        const std::size_t written = comp.compress_into(text, dst);
        dst.resize(written);
        CHECK(dst == comp.compress(text));
        CHECK(cz::Decompressor(nullptr, kNoCap).decompress(dst) == text);
        std::string too_small(comp.compress_bound(text.size()) - 1, '\0');
        CHECK_THROWS_AS(static_cast<void>(comp.compress_into(text, too_small)),
                        relay::InvalidArgument);
    }
}
