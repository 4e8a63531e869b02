// 0/1 knapsack selection of context atoms (messages, chunks) under a token budget.
//
// Atoms carry a token cost, a value, a pinned flag and an optional group. Atoms of one group are
// kept or dropped together; a group with a pinned member is pinned as a whole; pinned atoms are
// always kept. The solver is an expanding-core dynamic programme in the style of Pisinger's
// minknap: items sorted by value density, a Pareto list of (tokens, value) states grown outwards
// from the break item, states pruned by dominance and by the LP (Dantzig) bound. It is exact
// while the number of states stays under a limit, then falls back to the same search with
// epsilon-rounded dominance and relaxed bound pruning, which keeps a (1 - epsilon) guarantee.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace relay::knapsack {

// How the returned selection was obtained.
enum class Method : std::uint8_t {
    kTrivial,      // everything that may be kept fits (or nothing does): optimal without search
    kExact,        // the state search finished: optimal
    kApproximate,  // the exact search hit its state limit; total_value >= (1 - epsilon) * optimum
    kTruncated,    // every state limit was hit: best found so far, only upper_bound is certified
};

struct Options {
    // Approximation factor of the fallback: its answer is worth at least (1 - epsilon) times the
    // optimum. 0 disables the fallback (the exact search then stops at its limit, kTruncated).
    double epsilon = 0.01;
    // States the exact search may visit (summed over all its steps) before it gives up.
    std::int64_t exact_state_limit = 2'000'000;
    // States the approximate search may visit before it returns its best answer (kTruncated).
    std::int64_t approximate_state_limit = 20'000'000;
};

// Column view of the atoms. All spans have the same length. `groups[i]` is -1 for an atom in no
// group, else any non-negative group number (atoms with equal numbers form one group).
struct Atoms {
    std::span<const std::int64_t> tokens;
    std::span<const double> values;
    std::span<const std::uint8_t> pinned;
    std::span<const std::int64_t> groups;
};

struct Selection {
    std::vector<std::size_t> chosen;  // indices of the kept atoms, ascending
    std::int64_t total_tokens = 0;
    double total_value = 0.0;
    bool optimal = false;
    // An upper bound on the value of any feasible selection (== total_value when optimal).
    double upper_bound = 0.0;
    Method method = Method::kTrivial;
    std::int64_t states = 0;  // states visited by the search, for diagnostics
};

// Chooses the atoms to keep within `budget` tokens, maximising the total value.
// Throws relay::InvalidArgument on bad input (span lengths differ, negative tokens or budget,
// negative / NaN / infinite values, bad options) and relay::InfeasibleBudget when the pinned
// atoms and their groups alone exceed the budget. Deterministic: ties go to lower indices.
[[nodiscard]] Selection select(const Atoms& atoms, std::int64_t budget, const Options& options);

// The greedy answer by value density (the baseline the benchmark compares with): atoms sorted by
// value per token, each taken when it still fits. Same input rules and errors as select().
[[nodiscard]] Selection select_greedy(const Atoms& atoms, std::int64_t budget);

}  // namespace relay::knapsack
