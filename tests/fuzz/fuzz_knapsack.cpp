// Knapsack input validation and answers on any input: bad spans, negative or non-finite values
// and infeasible pins are refused with typed errors; every answer keeps the pinned atoms and
// whole groups within the budget, and an answer marked optimal equals brute force (n <= 14).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "common/errors.hpp"
#include "fuzz_support.hpp"
#include "knapsack/knapsack.hpp"

using relay::fuzzing::check;
namespace rk = relay::knapsack;

namespace {

struct Reader {
    const std::uint8_t* data;
    std::size_t size;
    std::size_t at = 0;
    std::uint8_t byte() { return at < size ? data[at++] : 0; }
    double number() {
        std::uint64_t bits = 0;
        for (int i = 0; i < 8; ++i) {
            bits = bits << 8U | byte();
        }
        double value = 0;
        std::memcpy(&value, &bits, sizeof value);
        return value;
    }
};

// The best value of any selection that keeps every pinned atom and whole groups, by brute force.
double brute_force(const std::vector<std::int64_t>& tokens, const std::vector<double>& values,
                   const std::vector<std::uint8_t>& pinned, const std::vector<std::int64_t>& groups,
                   std::int64_t budget) {
    const std::size_t n = tokens.size();
    double best = -1;
    for (std::uint32_t mask = 0; mask < (1U << n); ++mask) {
        std::int64_t used = 0;
        double value = 0;
        bool ok = true;
        std::map<std::int64_t, int> group_state;  // 1 all in, 2 all out, 3 mixed
        for (std::size_t i = 0; i < n && ok; ++i) {
            const bool in = ((mask >> i) & 1U) != 0;
            if (pinned[i] != 0 && !in) {
                ok = false;
            }
            if (groups[i] >= 0) {
                group_state[groups[i]] |= in ? 1 : 2;
            }
            if (in) {
                used += tokens[i];
                value += values[i];
            }
        }
        for (const auto& [group, state] : group_state) {
            ok = ok && state != 3;
        }
        if (ok && used <= budget && value > best) {
            best = value;
        }
    }
    return best;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Reader in{data, size};
    const std::uint8_t shape = in.byte();
    const std::size_t n = shape % 15U;
    const bool wild = (shape & 0x80U) != 0;  // raw doubles (NaN, inf, negatives) vs sane ones
    std::vector<std::int64_t> tokens(n);
    std::vector<double> values(n);
    std::vector<std::uint8_t> pinned(n);
    std::vector<std::int64_t> groups(n);
    for (std::size_t i = 0; i < n; ++i) {
        const std::uint8_t t = in.byte();
        tokens[i] = (t & 0x80U) != 0 && wild ? -static_cast<std::int64_t>(t) : t;
        values[i] = wild ? in.number() : static_cast<double>(in.byte());
        const std::uint8_t flags = in.byte();
        pinned[i] = (flags & 0x0FU) == 0 ? 1 : 0;
        groups[i] = (flags >> 4U) < 4 ? (flags >> 4U) : -1;
    }
    const std::int64_t budget = static_cast<std::int64_t>(in.byte()) * 4 - (wild ? 8 : 0);
    // A span of another length now and then: must be refused, never read past.
    const std::size_t value_count = (shape & 0x40U) != 0 && n > 0 ? n - 1 : n;
    rk::Atoms atoms{tokens, std::span<const double>(values.data(), value_count), pinned, groups};
    rk::Options options;
    options.exact_state_limit = 20'000;
    rk::Selection selection;
    try {
        selection = rk::select(atoms, budget, options);
    } catch (const relay::InvalidArgument&) {
        return 0;
    } catch (const relay::InfeasibleBudget&) {
        check(brute_force(tokens, values, pinned, groups, budget) < 0,
              "InfeasibleBudget only when no selection keeps the pins within the budget");
        return 0;
    }
    check(value_count == n, "spans of different lengths are refused");
    std::int64_t used = 0;
    std::vector<std::uint8_t> kept(n, 0);
    for (const std::size_t i : selection.chosen) {
        check(i < n, "chosen index in range");
        kept[i] = 1;
        used += tokens[i];
    }
    check(used == selection.total_tokens, "total_tokens is the chosen atoms' sum");
    check(used <= budget, "within the budget");
    for (std::size_t i = 0; i < n; ++i) {
        check(pinned[i] == 0 || kept[i] != 0, "pinned atoms are kept");
        for (std::size_t j = 0; j < n; ++j) {
            check(groups[i] < 0 || groups[i] != groups[j] || kept[i] == kept[j],
                  "a group is kept whole or not at all");
        }
    }
    const double best = selection.optimal ? brute_force(tokens, values, pinned, groups, budget) : 0;
    if (selection.optimal && std::isfinite(best)) {  // sums of huge values overflow in both
        check(std::fabs(best - selection.total_value) <= 1e-9 * (1 + std::fabs(best)),
              "an optimal answer has brute force's value");
    }
    return 0;
}
