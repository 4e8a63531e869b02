// Typed errors of the C++ core. Each maps to one Python exception class in
// relay_context.errors; the mapping lives in one place (cpp/common/translate_errors.cpp).
#pragma once

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

namespace relay {

// A double as error messages show it: 15 significant digits (0.1 prints as 0.1, not
// 0.100000), and every NaN as "nan" whatever its sign bit.
inline std::string format_number(double value) {
    if (std::isnan(value)) {
        return "nan";
    }
    std::ostringstream out;
    out.precision(15);
    out << value;
    return out.str();
}

// Base of every error the core raises on purpose.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// A caller passed a value outside what the operation accepts (negative budget, bad id, ...).
class InvalidArgument : public Error {
  public:
    using Error::Error;
};

// --- tokenizer -------------------------------------------------------------------------------

// A `.tiktoken` rank file that does not parse (bad base64, missing rank, duplicate token, ...).
class RankFileError : public Error {
  public:
    using Error::Error;
};

// encode() met a special token the caller did not allow. `token()` is the offending text.
class DisallowedSpecialToken : public Error {
  public:
    explicit DisallowedSpecialToken(std::string token)
        : Error("text contains the special token '" + token +
                "', which is not allowed; pass it in allowed_special to encode it as a special "
                "token, or disallowed_special=() to encode it as plain text"),
          token_(std::move(token)) {}
    [[nodiscard]] const std::string& token() const noexcept { return token_; }

  private:
    std::string token_;
};

// decode() met a token id that is not in the vocabulary.
class UnknownTokenId : public Error {
  public:
    using Error::Error;
};

// --- knapsack --------------------------------------------------------------------------------

// The atoms that must be kept (pinned, and the groups they pull in) alone exceed the budget.
class InfeasibleBudget : public Error {
  public:
    using Error::Error;
};

// --- compress --------------------------------------------------------------------------------

// A compressed frame that is corrupt, truncated, of an unknown format, or needs a dictionary
// that was not given.
class CorruptFrame : public Error {
  public:
    using Error::Error;
};

// Decompressing would produce more bytes than the configured cap (a decompression bomb).
class SizeLimitExceeded : public Error {
  public:
    using Error::Error;
};

// --- ratelimit -------------------------------------------------------------------------------

// A backend (Redis) cannot be reached or answered with an error, and the policy says to fail.
class BackendUnavailable : public Error {
  public:
    using Error::Error;
};

}  // namespace relay
