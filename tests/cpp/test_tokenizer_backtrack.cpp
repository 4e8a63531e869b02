// The backtracking encoder against a plain reference merge (tiktoken's rule, written out here
// without any of the production code's tables), on the official vocabularies and on small ones.
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "test_tokenizer_util.hpp"
#include "tokenizer/bpe_backtrack.hpp"
#include "tokenizer/bpe_tokenizer.hpp"
#include "tokenizer/bytes_map.hpp"

using relay::tokenizer::BacktrackEncoder;
using relay::tokenizer::BpeTokenizer;
using relay::tokenizer::BytesMap;
using relay::tokenizer::PatternFamily;
using relay::tokenizer::Rank;
using relay::tokenizer::RankedToken;
namespace tt = relay::tokenizer::testing;

namespace {

constexpr Rank kNone = BacktrackEncoder::kNone;

// A vocabulary in the three forms the tests need: ids -> bytes, bytes -> id for the encoder,
// and an independent std::unordered_map for the reference merge.
struct Vocab {
    std::vector<std::string> storage;
    std::vector<std::string_view> by_id;
    BytesMap encoder;
    std::unordered_map<std::string, Rank> ranks;

    explicit Vocab(const std::vector<RankedToken>& tokens) {
        Rank max_id = 0;
        for (const auto& [bytes, rank] : tokens) {
            max_id = std::max(max_id, rank);
        }
        storage.resize(std::size_t{max_id} + 1);
        by_id.resize(storage.size());
        for (const auto& [bytes, rank] : tokens) {
            storage[rank] = bytes;
            ranks.emplace(bytes, rank);
        }
        for (std::size_t i = 0; i < storage.size(); ++i) {
            by_id[i] = storage[i];
            if (!storage[i].empty()) {
                encoder.emplace(by_id[i], static_cast<Rank>(i));
            }
        }
    }

    [[nodiscard]] Rank rank(const std::string& s) const {
        const auto it = ranks.find(s);
        return it == ranks.end() ? kNone : it->second;
    }

    // tiktoken's byte_pair_merge: merge the lowest-ranked adjacent pair, leftmost on ties, until
    // no adjacent pair is a token. No whole-piece shortcut.
    [[nodiscard]] std::vector<Rank> reference_merge(const std::string& piece) const {
        std::vector<std::string> parts;
        for (const char c : piece) {
            parts.emplace_back(1, c);
        }
        while (parts.size() > 1) {
            Rank best = kNone;
            std::size_t at = 0;
            for (std::size_t k = 0; k + 1 < parts.size(); ++k) {
                const Rank r = rank(parts[k] + parts[k + 1]);
                if (r < best) {
                    best = r;
                    at = k;
                }
            }
            if (best == kNone) {
                break;
            }
            parts[at] += parts[at + 1];
            parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(at) + 1);
        }
        std::vector<Rank> ids;
        ids.reserve(parts.size());
        for (const std::string& p : parts) {
            ids.push_back(rank(p));
        }
        return ids;
    }
};

std::vector<Rank> backtrack(const BacktrackEncoder& enc, std::string_view piece) {
    std::vector<Rank> out;
    enc.encode(piece, out);
    return out;
}

// Pieces that stress the encoder: long runs, words of scripts without spaces, concatenations of
// random tokens (boundaries where BPE must re-merge differently), random bytes.
std::vector<std::string> stress_pieces(const Vocab& v, std::uint32_t seed) {
    std::vector<std::string> out = {
        std::string(1000, 'a'),
        std::string(333, ' '),
        std::string(257, '\n'),
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
        // Thai, Japanese, Burmese, Malayalam: long pre-tokenised pieces in real text.
        "\340\270\201\340\270\262\340\270\243\340\270\250\340\270\266\340\270\201\340\270\251"
        "\340\270\262\340\271\200\340\270\233\340\271\207\340\270\231\340\270\201\340\270\262"
        "\340\270\243\340\270\236\340\270\261\340\270\222\340\270\231\340\270\262",
        "\346\230\250\346\227\245\343\201\257\344\270\200\346\227\245\344\270\255\346\277\200"
        "\343\201\227\343\201\204\351\233\250\343\201\214\351\231\215\343\202\212",
        "\341\200\231\341\200\224\341\200\272\341\200\270\341\200\200\341\200\272\341\200\231"
        "\341\200\255\341\200\257\341\200\270\341\200\236\341\200\212\341\200\272",
        "\340\264\225\340\265\212\340\264\232\340\265\215\340\264\232\340\264\277\340\264\257"
        "\340\265\206\340\264\262\340\265\206",
    };
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> any_id(0, v.storage.size() - 1);
    for (int i = 0; i < 3000; ++i) {
        std::string s;
        const int n_tokens = 1 + static_cast<int>(rng() % 12);
        for (int k = 0; k < n_tokens; ++k) {
            const std::string& t = v.storage[any_id(rng)];
            s += t.empty() ? std::string("x") : t;
        }
        out.push_back(s);
    }
    for (int i = 0; i < 500; ++i) {
        std::string s(1 + rng() % 200, '\0');
        for (char& c : s) {
            c = static_cast<char>(rng() % 8 == 0 ? rng() % 256 : 'a' + rng() % 3);
        }
        out.push_back(s);
    }
    return out;
}

void check_vocabulary(const std::vector<RankedToken>& tokens, std::uint32_t seed) {
    const Vocab v(tokens);
    const BacktrackEncoder enc(v.by_id);
    REQUIRE(enc.usable());

    // Reachability is exactly "the reference merge of the token's bytes gives the token".
    std::size_t unreachable = 0;
    for (Rank t = 0; t < v.storage.size(); ++t) {
        if (v.storage[t].empty()) {
            continue;
        }
        const bool reached = v.reference_merge(v.storage[t]) == std::vector<Rank>{t};
        REQUIRE(enc.reachable(t) == reached);
        unreachable += reached ? 0 : 1;
    }
    INFO("unreachable tokens: " << unreachable);

    // valid_pair agrees with the reference merge of the two tokens' bytes.
    std::mt19937 rng(seed);
    std::uniform_int_distribution<std::size_t> any_id(0, v.storage.size() - 1);
    std::size_t valid = 0;
    std::size_t checked = 0;
    while (checked < 20000) {
        const auto a = static_cast<Rank>(any_id(rng));
        // Half the second tokens are short, where most invalid pairs are.
        const auto b = static_cast<Rank>(checked % 2 == 0 ? any_id(rng) : rng() % 2000);
        if (!enc.reachable(a) || !enc.reachable(b)) {
            continue;
        }
        ++checked;
        const bool want = v.reference_merge(v.storage[a] + v.storage[b]) == std::vector<Rank>{a, b};
        INFO("pair " << a << ", " << b);
        REQUIRE(enc.valid_pair(a, b) == want);
        valid += want ? 1 : 0;
    }
    CHECK(valid > 1000);
    CHECK(valid < checked);

    for (const std::string& piece : stress_pieces(v, seed)) {
        INFO("piece of " << piece.size() << " bytes");
        REQUIRE(backtrack(enc, piece) == v.reference_merge(piece));
    }
}

}  // namespace

TEST_CASE("backtracking encoder equals the reference merge on cl100k_base", "[tokenizer]") {
    check_vocabulary(tt::cl100k_ranks(), 11);
}

TEST_CASE("backtracking encoder equals the reference merge on o200k_base", "[tokenizer]") {
    check_vocabulary(tt::load_ranks("o200k_base"), 12);
}

TEST_CASE("backtracking encoder on small vocabularies", "[tokenizer]") {
    SECTION("ties and overlapping merges") {
        const Vocab v(tt::byte_vocab({"aa", "aaa", "ab", "ba", "aab", "aaaa", "bab", "abab"}));
        const BacktrackEncoder enc(v.by_id);
        REQUIRE(enc.usable());
        std::mt19937 rng(3);
        for (int i = 0; i < 5000; ++i) {
            std::string s(1 + rng() % 40, 'a');
            for (char& c : s) {
                c = rng() % 3 == 0 ? 'b' : 'a';
            }
            INFO(s);
            REQUIRE(backtrack(enc, s) == v.reference_merge(s));
        }
    }
    SECTION("an unreachable token is never produced inside a longer piece") {
        // "abc" with neither "ab" nor "bc" a token: BPE never forms it from its bytes.
        const std::vector<RankedToken> tokens = tt::byte_vocab({"abc", "xy"});
        const Vocab v(tokens);
        const BacktrackEncoder enc(v.by_id);
        REQUIRE(enc.usable());
        CHECK_FALSE(enc.reachable(256));
        CHECK(enc.reachable(257));
        CHECK(backtrack(enc, "abc") == std::vector<Rank>{'a', 'b', 'c'});
        std::string run;
        for (int i = 0; i < 50; ++i) {
            run += "abcxy";
        }
        CHECK(backtrack(enc, run) == v.reference_merge(run));
        // The tokenizer maps a whole piece equal to the token to it, as tiktoken does.
        const BpeTokenizer tok(tokens, {}, PatternFamily::kCl100k);
        CHECK(tok.encode_ordinary("abc") == std::vector<Rank>{256});
        CHECK(tok.encode_ordinary(run) == v.reference_merge(run));
    }
    SECTION("ranks out of merge order disable it, and the tokenizer still merges exactly") {
        // "abc" (256) is built from "ab" (257), which ranks after it.
        const std::vector<RankedToken> tokens = tt::byte_vocab({"abc", "ab"});
        const Vocab v(tokens);
        const BacktrackEncoder enc(v.by_id);
        CHECK_FALSE(enc.usable());
        const BpeTokenizer tok(tokens, {}, PatternFamily::kCl100k);
        const std::string piece(300, 'a');
        const std::string mixed = "ab" + std::string(200, 'c') + "abcab";
        CHECK(tok.encode_ordinary(piece) == v.reference_merge(piece));
        CHECK(tok.encode_ordinary(mixed) == v.reference_merge(mixed));
    }
    SECTION("ids from 2^21 disable it (they do not pack into the pair table), not below") {
        // "ab", "abc" and a token whose id is the largest that packs, then one past it.
        for (const Rank big : {(Rank{1} << 21U) - 2, Rank{1} << 21U}) {
            std::vector<RankedToken> tokens = tt::byte_vocab({"ab", "abc"});
            tokens.emplace_back("abcab", big);
            const Vocab v(tokens);
            const BacktrackEncoder enc(v.by_id);
            CHECK(enc.usable() == (big < (Rank{1} << 21U) - 1));
            const BpeTokenizer tok(tokens, {}, PatternFamily::kCl100k);
            for (const std::string& piece :
                 {std::string("abcab"), std::string(300, 'a'), "ab" + std::string(40, 'c'),
                  std::string("abcababcabcab"), std::string("cabcabcabcaba")}) {
                CHECK(tok.encode_ordinary(piece) == v.reference_merge(piece));
            }
        }
    }
    SECTION("a vocabulary without every single byte disables it") {
        std::vector<RankedToken> tokens = tt::byte_vocab({"ab"});
        tokens.erase(tokens.begin() + 200);
        const Vocab v(tokens);
        CHECK_FALSE(BacktrackEncoder(v.by_id).usable());
    }
}

TEST_CASE("tokenizer's long pieces equal the reference merge", "[tokenizer]") {
    const Vocab v(tt::cl100k_ranks());
    std::mt19937 rng(5);
    for (int i = 0; i < 200; ++i) {
        // One long letter run: a single pre-tokenised piece far over the short-piece limit.
        std::string s(100 + rng() % 400, 'a');
        for (char& c : s) {
            c = static_cast<char>('a' + rng() % 26);
        }
        REQUIRE(tt::cl100k().encode_ordinary(s) == v.reference_merge(s));
    }
}

TEST_CASE("backtracking encoders on one thread never share token-pair answers", "[tokenizer]") {
    // The same pair of ids, ("ab", "c") = (257, 99), is valid in A ("ab" merges before "bc")
    // and not in B ("bc" first); encode() remembers pair answers per thread, per encoder.
    const Vocab a(tt::byte_vocab({"xy", "ab", "bc"}));
    const Vocab b(tt::byte_vocab({"bc", "ab"}));
    const BacktrackEncoder enc_a(a.by_id);
    const BacktrackEncoder enc_b(b.by_id);
    REQUIRE(enc_a.usable());
    REQUIRE(enc_b.usable());
    for (int round = 0; round < 3; ++round) {
        for (const auto* v : {&a, &b}) {
            std::vector<Rank> got;
            (v == &a ? enc_a : enc_b).encode("abc", got);
            REQUIRE(got == v->reference_merge("abc"));
        }
    }
    REQUIRE(a.reference_merge("abc") == std::vector<Rank>{257, 'c'});
    REQUIRE(b.reference_merge("abc") == std::vector<Rank>{'a', 256});
}
