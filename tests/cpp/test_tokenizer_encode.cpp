// Encodings checked against tiktoken 0.14.0, special tokens, decoding and the small API.
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "common/errors.hpp"
#include "test_tokenizer_util.hpp"
#include "tokenizer/bpe_tokenizer.hpp"
#include "tokenizer/pretokenizer.hpp"
#include "tokenizer/unicode_tables.hpp"

using relay::tokenizer::BpeTokenizer;
using relay::tokenizer::PatternFamily;
using relay::tokenizer::Piece;
using relay::tokenizer::Rank;
namespace tt = relay::tokenizer::testing;

namespace {

struct Case {
    std::string_view text;
    std::vector<Rank> ids;
};

// tiktoken 0.14.0 encode_ordinary() of cl100k_base.
const std::vector<Case> kCl100kCases = {
    {"hello world", {15339, 1917}},
    {"Hello, World!", {9906, 11, 4435, 0}},
    {"I'm here, they're there; we'll see, you've done, he'd go, it's mine.",
     {40,  2846, 1618, 11, 814, 2351, 1070, 26, 584, 3358, 1518,  11,
      499, 3077, 2884, 11, 568, 4265, 733,  11, 433, 596,  10705, 13}},
    {"DON'T SHOUT, WE'LL HEAR, THEY'RE LOUD",
     {85741, 17773, 6570, 3740, 11, 20255, 6, 4178, 11947, 946, 11, 63593, 95253, 5125, 4760}},
    {"x'\305\277 and 'LL and 'Ve", {87, 6, 129, 123, 323, 364, 4178, 323, 364, 43712}},
    {"   leading spaces before words", {256, 6522, 12908, 1603, 4339}},
    {"tabs\t\tand\nnewlines\n\n\nand \r\n crlf  \n  end",
     {32093, 197, 53577, 198, 943, 8128, 1432, 438, 2591, 1589, 11253, 2355, 220, 842}},
    {"trailing spaces   ", {376, 14612, 12908, 262}},
    {"digits 1234567 and 3.14159, 1,000,000",
     {61870, 220, 4513, 10961, 22, 323, 220, 18, 13, 9335, 2946, 11, 220, 16, 11, 931, 11, 931}},
    {"\344\270\255\346\226\207\345\210\206\350\257\215\346\265\213\350\257\225\357\274\214\346\227"
     "\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210\343"
     "\200\202\355\225\234\352\265\255\354\226\264",
     {16325, 17161, 17620, 6744,  235,   82805, 3922,  9080,  22656, 45918,
      252,   16144, 57933, 62903, 71634, 1811,  24486, 89059, 255,   32179}},
    {"emoji \360\237\230\200 family "
     "\360\237\221\250\342\200\215\360\237\221\251\342\200\215\360\237\221\247 flag "
     "\360\237\207\272\360\237\207\270 thumbs \360\237\221\215\360\237\217\275",
     {38623, 91416, 3070,  62904, 101, 378,  235, 9468, 239,   102,   378, 235,  9468, 239,
      100,   5292,  11410, 229,   118, 9468, 229, 116,  57949, 62904, 235, 9468, 237,  121}},
    {"e\314\201 combining \314\201\314\201 marks", {68, 54939, 35271, 220, 54939, 54939, 15785}},
    {"path/to/file.txt\n// comment\n", {2398, 33529, 24849, 3996, 198, 322, 4068, 198}},
    {"def f(x):\n    return x**2  # square\n",
     {755, 282, 2120, 997, 262, 471, 865, 334, 17, 220, 674, 9518, 198}},
    {"\302\240nbsp\343\200\200ideographic space\342\200\250line sep",
     {4194, 5792, 23249, 95107, 3634, 378, 101, 1074, 21693}},
};

// tiktoken 0.14.0 encode_ordinary() of o200k_base.
const std::vector<Case> kO200kCases = {
    {"hello world", {24912, 2375}},
    {"Hello, World!", {13225, 11, 5922, 0}},
    {"I'm here, they're there; we'll see, you've done, he'd go, it's mine.",
     {15390, 2105, 11, 18940, 1354, 26, 22782, 1921, 11, 19014, 4167, 11, 71619, 810, 11, 4275,
      13336, 13}},
    {"DON'T SHOUT, WE'LL HEAR, THEY'RE LOUD",
     {134882, 51532, 10902, 5858, 11, 26919, 6, 7454, 18638, 1312, 11, 95381, 6, 1099, 22601,
      7965}},
    {"x'\305\277 and 'LL and 'Ve", {87, 6, 70067, 326, 461, 7454, 326, 461, 27493}},
    {"   leading spaces before words", {256, 8117, 18608, 2254, 6391}},
    {"tabs\t\tand\nnewlines\n\n\nand \r\n crlf  \n  end",
     {68999, 197, 128995, 198, 1389, 10105, 2499, 427, 4568, 1769, 12632, 4066, 220, 1268}},
    {"trailing spaces   ", {371, 24408, 18608, 271}},
    {"digits 1234567 and 3.14159, 1,000,000",
     {135574, 220, 7633, 19354, 22, 326, 220, 18, 13, 16926, 4621, 11, 220, 16, 11, 1302, 11,
      1302}},
    {"\344\270\255\346\226\207\345\210\206\350\257\215\346\265\213\350\257\225\357\274\214\346\227"
     "\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210\343"
     "\200\202\355\225\234\352\265\255\354\226\264",
     {10667, 2957, 31892, 82843, 153477, 40909, 3385, 16056, 18368, 38236, 788, 114854, 5959}},
    {"emoji \360\237\230\200 family "
     "\360\237\221\250\342\200\215\360\237\221\251\342\200\215\360\237\221\247 flag "
     "\360\237\207\272\360\237\207\270 thumbs \360\237\221\215\360\237\217\275",
     {75339, 88038, 3502,   61138, 101,   2524, 28823, 102,    2524,  28823,
      100,   9641,  173468, 118,   55506, 116,  98827, 160433, 52622, 121}},
    {"e\314\201 combining \314\201\314\201 marks", {68, 13430, 48784, 220, 13430, 13430, 22891}},
    {"path/to/file.txt\n// comment\n", {4189, 72231, 51766, 7186, 198, 393, 5375, 198}},
    {"def f(x):\n    return x**2  # square\n",
     {1314, 285, 4061, 1883, 271, 622, 1215, 410, 17, 220, 1069, 13749, 198}},
    {"\302\240nbsp\343\200\200ideographic space\342\200\250line sep",
     {5310, 9431, 1397, 617, 19045, 4918, 51008, 1137, 31529}},
};

// tiktoken 0.14.0 encode_ordinary() of r50k_on_cl100k.
const std::vector<Case> kR50kCases = {
    {"hello world", {15339, 1917}},
    {"Hello, World!", {9906, 11, 4435, 0}},
    {"I'm here, they're there; we'll see, you've done, he'd go, it's mine.",
     {40,  2846, 1618, 11, 814, 2351, 1070, 26, 584, 3358, 1518,  11,
      499, 3077, 2884, 11, 568, 4265, 733,  11, 433, 596,  10705, 13}},
    {"DON'T SHOUT, WE'LL HEAR, THEY'RE LOUD",
     {85741, 6, 51, 6570, 3740, 11, 20255, 6, 4178, 11947, 946, 11, 63593, 6, 793, 5125, 4760}},
    {"x'\305\277 and 'LL and 'Ve", {87, 6, 129, 123, 323, 364, 4178, 323, 364, 43712}},
    {"   leading spaces before words", {256, 6522, 12908, 1603, 4339}},
    {"tabs\t\tand\nnewlines\n\n\nand \r\n crlf  \n  end",
     {32093, 197, 197, 438, 198, 943, 8128, 271, 198, 438, 2591, 1589, 11253, 2355, 220, 842}},
    {"trailing spaces   ", {376, 14612, 12908, 262}},
    {"digits 1234567 and 3.14159, 1,000,000",
     {61870, 220, 4513, 1774, 3080, 323, 220, 18, 13, 975, 11068, 11, 220, 16, 11, 931, 11, 931}},
    {"\344\270\255\346\226\207\345\210\206\350\257\215\346\265\213\350\257\225\357\274\214\346\227"
     "\245\346\234\254\350\252\236\343\201\256\343\203\206\343\202\255\343\202\271\343\203\210\343"
     "\200\202\355\225\234\352\265\255\354\226\264",
     {16325, 17161, 17620, 6744,  235,   82805, 3922,  9080,  22656, 45918,
      252,   16144, 57933, 62903, 71634, 1811,  24486, 89059, 255,   32179}},
    {"emoji \360\237\230\200 family "
     "\360\237\221\250\342\200\215\360\237\221\251\342\200\215\360\237\221\247 flag "
     "\360\237\207\272\360\237\207\270 thumbs \360\237\221\215\360\237\217\275",
     {38623, 91416, 3070,  62904, 101, 378,  235, 9468, 239,   102,   378, 235,  9468, 239,
      100,   5292,  11410, 229,   118, 9468, 229, 116,  57949, 62904, 235, 9468, 237,  121}},
    {"e\314\201 combining \314\201\314\201 marks", {68, 54939, 35271, 220, 54939, 54939, 15785}},
    {"path/to/file.txt\n// comment\n", {2398, 14, 998, 14, 1213, 13, 8754, 198, 322, 4068, 198}},
    {"def f(x):\n    return x**2  # square\n",
     {755, 282, 7, 87, 1680, 198, 262, 471, 865, 334, 17, 220, 674, 9518, 198}},
    {"\302\240nbsp\343\200\200ideographic space\342\200\250line sep",
     {4194, 5792, 23249, 95107, 3634, 378, 101, 1074, 21693}},
};
void check_cases(const BpeTokenizer& tok, const std::vector<Case>& cases) {
    for (const Case& c : cases) {
        INFO("text: " << c.text);
        CHECK(tok.encode_ordinary(c.text) == c.ids);
        CHECK(tok.count(c.text) == c.ids.size());
        CHECK(tok.decode_bytes(c.ids) == c.text);
    }
}

std::vector<std::string> pieces(PatternFamily family, std::string_view text) {
    std::vector<Piece> out;
    relay::tokenizer::pretokenize(family, text, out);
    std::vector<std::string> s;
    for (const Piece& p : out) {
        s.emplace_back(text.substr(p.begin, p.end - p.begin));
    }
    return s;
}

using Strings = std::vector<std::string>;

}  // namespace

TEST_CASE("cl100k_base encodings match tiktoken", "[tokenizer]") {
    check_cases(tt::cl100k(), kCl100kCases);
}

TEST_CASE("o200k_base encodings match tiktoken", "[tokenizer]") {
    check_cases(tt::o200k(), kO200kCases);
}

TEST_CASE("r50k pattern encodings match tiktoken", "[tokenizer]") {
    check_cases(tt::r50k_on_cl100k(), kR50kCases);
}

TEST_CASE("empty text encodes to nothing", "[tokenizer]") {
    CHECK(tt::cl100k().encode_ordinary("").empty());
    CHECK(tt::o200k().encode("", {"<|endoftext|>"}, {}).empty());
    CHECK(tt::cl100k().count("") == 0);
    CHECK(tt::cl100k().decode_bytes({}).empty());
}

TEST_CASE("pre-tokenisation of whitespace runs and contractions", "[tokenizer]") {
    // \s*[\r\n] ends at the last newline; \s+(?!\S) gives back the space before a word.
    CHECK(pieces(PatternFamily::kCl100k, "  \n  x") == Strings{"  \n", " ", " x"});
    CHECK(pieces(PatternFamily::kCl100k, "a   ") == Strings{"a", "   "});
    CHECK(pieces(PatternFamily::kCl100k, "x'LL'Ve'\xC5\xBF") ==
          Strings{"x", "'LL", "'Ve", "'\xC5\xBF"});
    CHECK(pieces(PatternFamily::kR50k, "x'LL's") == Strings{"x", "'", "LL", "'s"});
    CHECK(pieces(PatternFamily::kR50k, "\t\ta") == Strings{"\t", "\t", "a"});
    CHECK(pieces(PatternFamily::kCl100k, "12345") == Strings{"123", "45"});
    CHECK(pieces(PatternFamily::kCl100k, "!!\n\nab") == Strings{"!!\n\n", "ab"});
    // o200k: case-split words, contraction suffixes, [\r\n/]* tail, newline runs at the end.
    CHECK(pieces(PatternFamily::kO200k, "HelloWORLDWide don'T") ==
          Strings{"Hello", "WORLDWide", " don'T"});
    CHECK(pieces(PatternFamily::kO200k, " !/\n/x") == Strings{" !/\n/", "x"});
    CHECK(pieces(PatternFamily::kO200k, "a\n  ") == Strings{"a", "\n", "  "});
    CHECK(pieces(PatternFamily::kO200k,
                 "\xCC\x81"
                 "AB.") == Strings{"\xCC\x81", "AB", "."});
}

TEST_CASE("pre-tokenisation of invalid two- and three-byte sequences", "[tokenizer]") {
    // The letter loops classify two-byte characters from a table of byte pairs; a lead byte
    // without its continuation (at the end, before ASCII or another lead) and the overlong
    // leads C0/C1 stay single bytes of class "other", as the general decoder makes them.
    for (const PatternFamily f : {PatternFamily::kCl100k, PatternFamily::kO200k}) {
        CHECK(pieces(f, "ab\xD0") == Strings{"ab", "\xD0"});
        CHECK(pieces(f, "\xD0\xB0\xD0") == Strings{"\xD0\xB0", "\xD0"});
        CHECK(pieces(f,
                     "\xD0"
                     "A") == Strings{"\xD0"
                                     "A"});  // "other" prefix of a word
        CHECK(pieces(f, "\xD0\xD0\xB0") == Strings{"\xD0\xD0\xB0"});
        CHECK(pieces(f, "\xC1\xBF\xC0\x80 a") == Strings{"\xC1\xBF\xC0\x80", " a"});
        CHECK(pieces(f, "\xD0\xB0\xC1\xBF\xD0\xB1") == Strings{"\xD0\xB0", "\xC1\xBF", "\xD0\xB1"});
    }
    // Three-byte sequences: overlong (E0 80 80), a surrogate (ED A0 80), truncated, a lead before
    // ASCII: each byte "other", as the general decoder makes them; valid CJK runs stay whole.
    for (const PatternFamily f : {PatternFamily::kCl100k, PatternFamily::kO200k}) {
        CHECK(pieces(f, "\xE4\xB8\xAD\xE6\x96\x87\xE0\x80\x80") ==
              Strings{"\xE4\xB8\xAD\xE6\x96\x87", "\xE0\x80\x80"});
        CHECK(pieces(f, "\xE4\xB8\xAD\xED\xA0\x80\xE4\xB8\xAD") ==
              Strings{"\xE4\xB8\xAD", "\xED\xA0\x80", "\xE4\xB8\xAD"});
        CHECK(pieces(f, "\xE4\xB8\xAD\xE4\xB8") == Strings{"\xE4\xB8\xAD", "\xE4\xB8"});
        CHECK(pieces(f,
                     "ab\xE4"
                     "cd") == Strings{"ab",
                                      "\xE4"
                                      "cd"});
    }
    // o200k's case split inside two-byte scripts: Cyrillic capitals, then small letters.
    CHECK(pieces(PatternFamily::kO200k, "\xD0\x9F\xD0\xA0\xD0\xB8\xD0\xB2") ==
          Strings{"\xD0\x9F\xD0\xA0\xD0\xB8\xD0\xB2"});
    CHECK(pieces(PatternFamily::kO200k, "\xD0\xB8\xD0\xB2\xD0\x9F\xD0\xB8") ==
          Strings{"\xD0\xB8\xD0\xB2", "\xD0\x9F\xD0\xB8"});
}

TEST_CASE("unicode tables are Unicode 16.0", "[tokenizer]") {
    namespace u = relay::tokenizer::unicode;
    CHECK((u::flags_of('A') & u::kL) != 0);
    CHECK((u::flags_of(0x0301) & u::kM) != 0);
    CHECK((u::flags_of(0x0661) & u::kN) != 0);
    for (std::uint32_t ws : {0x09U, 0x0DU, 0x20U, 0x85U, 0xA0U, 0x1680U, 0x2000U, 0x200AU, 0x2028U,
                             0x2029U, 0x202FU, 0x205FU, 0x3000U}) {
        CHECK((u::flags_of(ws) & u::kWS) != 0);
    }
    CHECK(u::flags_of(0x200B) == 0);  // ZERO WIDTH SPACE is not White_Space
    CHECK(u::flags_of(0x180E) == 0);  // MONGOLIAN VOWEL SEPARATOR left White_Space in 6.3
    CHECK(u::flags_of(0x1C89) == (u::kL | u::kU));           // new in 16.0 (Lu)
    CHECK(u::flags_of(0x16D40) == (u::kL | u::kU | u::kW));  // new in 16.0 (Lm)
    CHECK(u::flags_of(0x10FFFF) == 0);
    CHECK(u::ascii_fold(0x017F) == 's');
    CHECK(u::ascii_fold('S') == 's');
    CHECK(u::ascii_fold(0x212A) == 0);  // KELVIN SIGN folds to 'k', not a contraction letter
}

TEST_CASE("special tokens: allowed, disallowed, ordinary", "[tokenizer]") {
    const BpeTokenizer& tok = tt::cl100k();
    const std::string text = "a<|endoftext|>b<|fim_prefix|>  <|endofprompt|>";
    const std::vector<std::string> all = {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>",
                                          "<|fim_suffix|>", "<|endofprompt|>"};
    CHECK(tok.encode(text, all, {}) == std::vector<Rank>{64, 100257, 65, 100258, 256, 100276});
    CHECK(tok.encode(text, {"<|endoftext|>"}, {}) ==
          std::vector<Rank>{64, 100257, 65, 27, 91, 69, 318, 14301, 91, 29, 220, 83739, 408, 1073,
                            41681, 91, 29});
    const std::vector<Rank> ordinary = {64,  27,    91,  8862, 728,   428,   91, 29,
                                        65,  27,    91,  69,   318,   14301, 91, 29,
                                        220, 83739, 408, 1073, 41681, 91,    29};
    CHECK(tok.encode_ordinary(text) == ordinary);
    CHECK(tok.encode(text, {}, {}) == ordinary);
    // Each segment between specials is its own haystack for `$`.
    CHECK(tok.encode("hello  <|endoftext|>  world", all, {}) ==
          std::vector<Rank>{15339, 256, 100257, 220, 1917});
    CHECK(tok.encode_ordinary("hello  <|endoftext|>  world") ==
          std::vector<Rank>{15339, 220, 83739, 8862, 728, 428, 91, 29, 220, 1917});
    CHECK(tt::o200k().encode("hello  <|endoftext|>  world", {"<|endoftext|>"}, {}) ==
          std::vector<Rank>{24912, 256, 199999, 220, 2375});
    // Strings that are not special tokens of the encoding are ignored in `allowed`.
    CHECK(tt::o200k().encode("x<|fim_prefix|>", {"<|fim_prefix|>"}, {}) ==
          tt::o200k().encode_ordinary("x<|fim_prefix|>"));
}

TEST_CASE("disallowed special tokens throw, naming the earliest", "[tokenizer]") {
    const BpeTokenizer& tok = tt::cl100k();
    const std::vector<std::string> bad = {"<|endoftext|>", "<|fim_prefix|>"};
    try {
        (void)tok.encode("x <|fim_prefix|> <|endoftext|>", {}, bad);
        FAIL("expected DisallowedSpecialToken");
    } catch (const relay::DisallowedSpecialToken& e) {
        CHECK(e.token() == "<|fim_prefix|>");
        CHECK(std::string(e.what()).find("<|fim_prefix|>") != std::string::npos);
    }
    CHECK_THROWS_AS(tok.encode("<|endoftext|>", {"<|endoftext|>"}, {"<|endoftext|>"}),
                    relay::DisallowedSpecialToken);
    CHECK_NOTHROW(tok.encode("<|endoftext|", {}, bad));
    CHECK(tok.encode("a<|endoftext|>", {"<|endoftext|>"}, {"<|fim_prefix|>"}) ==
          std::vector<Rank>{64, 100257});
}

TEST_CASE("decoding and token bytes", "[tokenizer]") {
    const BpeTokenizer& tok = tt::cl100k();
    CHECK(tok.token_bytes(15339) == "hello");
    CHECK(tok.token_bytes(100257) == "<|endoftext|>");
    CHECK(tok.decode_bytes(std::vector<Rank>{15339, 100257, 1917}) == "hello<|endoftext|> world");
    CHECK_THROWS_AS(tok.token_bytes(100261), relay::UnknownTokenId);  // gap before 100276
    CHECK_THROWS_AS(tok.token_bytes(5000000), relay::UnknownTokenId);
    try {
        (void)tok.decode_bytes(std::vector<Rank>{1, 123456789});
        FAIL("expected UnknownTokenId");
    } catch (const relay::UnknownTokenId& e) {
        CHECK(std::string(e.what()).find("123456789") != std::string::npos);
    }
    // A token may end inside a UTF-8 character; decode_bytes returns raw bytes.
    CHECK(tok.decode_bytes(std::vector<Rank>{9468}) == "\xF0\x9F");
}

TEST_CASE("vocabulary metadata", "[tokenizer]") {
    CHECK(tt::cl100k().n_vocab() == 100277);
    CHECK(tt::o200k().n_vocab() == 200019);
    CHECK(tt::cl100k().family() == PatternFamily::kCl100k);
    CHECK(tt::o200k().family() == PatternFamily::kO200k);
    CHECK(tt::cl100k().special_tokens() == tt::cl100k_specials());
}

TEST_CASE("round trip over varied text", "[tokenizer]") {
    const std::vector<std::string> texts = {
        "Mixed\u00A0spaces\u3000and\u2028separators\r\n\r\n\t\t",
        "\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x92\xBB code: for (int i = 0; i < n; ++i) {}",
        "'''''sss'S'\xC5\xBF'll'LL   \n\n\n   ",
        std::string(1000, ' ') + "x" + std::string(1000, '\n'),
        "\xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8\xA9 "
        "\xE0\xA4\xB9\xE0\xA4\xBF\xE0\xA4\x82"
        "\xE0\xA4\xA6\xE0\xA5\x80 "
        "\xCE\x95\xCE\xBB\xCE\xBB\xCE\xB7\xCE\xBD\xCE\xB9\xCE\xBA\xCE\xAC"};
    for (const BpeTokenizer* tok : {&tt::cl100k(), &tt::o200k(), &tt::r50k_on_cl100k()}) {
        for (const std::string& t : texts) {
            INFO("text: " << t);
            CHECK(tok->decode_bytes(tok->encode_ordinary(t)) == t);
        }
    }
}
