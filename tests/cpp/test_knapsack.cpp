// relay::knapsack::select against references: brute force over all selections (small, with
// pinned atoms and groups) and a plain capacity DP (up to 2,000 atoms, integer values); the
// (1 - epsilon) guarantee and the upper bound on forced approximate and truncated paths; input
// errors; determinism.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "common/errors.hpp"
#include "knapsack/knapsack.hpp"

namespace ks = relay::knapsack;

namespace {

struct Instance {
    std::vector<std::int64_t> tokens;
    std::vector<double> values;
    std::vector<std::uint8_t> pinned;
    std::vector<std::int64_t> groups;

    [[nodiscard]] ks::Atoms atoms() const { return {tokens, values, pinned, groups}; }
    [[nodiscard]] std::size_t size() const { return tokens.size(); }
    void add(std::int64_t t, double v, bool pin = false, std::int64_t group = -1) {
        tokens.push_back(t);
        values.push_back(v);
        pinned.push_back(pin ? 1 : 0);
        groups.push_back(group);
    }
};

// Best value over every selection that keeps groups whole and pinned atoms; -1 if none fits.
double brute_force(const Instance& in, std::int64_t budget) {
    const std::size_t n = in.size();
    double best = -1.0;
    for (std::uint32_t mask = 0; mask < (1U << n); ++mask) {
        bool ok = true;
        std::int64_t w = 0;
        double p = 0.0;
        for (std::size_t i = 0; i < n && ok; ++i) {
            const bool in_sel = ((mask >> i) & 1U) != 0;
            if (in.pinned[i] != 0 && !in_sel) {
                ok = false;
            }
            for (std::size_t j = 0; j < i && ok; ++j) {
                if (in.groups[i] >= 0 && in.groups[j] == in.groups[i] &&
                    (((mask >> j) & 1U) != 0) != in_sel) {
                    ok = false;
                }
            }
            if (in_sel) {
                w += in.tokens[i];
                p += in.values[i];
            }
        }
        if (ok && w <= budget) {
            best = std::max(best, p);
        }
    }
    return best;
}

// Plain O(n * budget) DP for instances without groups or pinned atoms and integer values.
double dp_reference(const Instance& in, std::int64_t budget) {
    std::vector<double> best(static_cast<std::size_t>(budget) + 1, 0.0);
    for (std::size_t i = 0; i < in.size(); ++i) {
        const std::int64_t t = in.tokens[i];
        for (std::int64_t c = budget; c >= t; --c) {
            const auto cu = static_cast<std::size_t>(c);
            best[cu] = std::max(best[cu], best[static_cast<std::size_t>(c - t)] + in.values[i]);
        }
    }
    return best.back();
}

// Checks that a selection is feasible and consistent with its instance.
void check_consistent(const Instance& in, std::int64_t budget, const ks::Selection& sel) {
    std::vector<std::uint8_t> kept(in.size(), 0);
    std::int64_t w = 0;
    double p = 0.0;
    for (std::size_t k = 0; k < sel.chosen.size(); ++k) {
        if (k > 0) {
            REQUIRE(sel.chosen[k - 1] < sel.chosen[k]);
        }
        kept[sel.chosen[k]] = 1;
        w += in.tokens[sel.chosen[k]];
        p += in.values[sel.chosen[k]];
    }
    REQUIRE(w <= budget);
    REQUIRE(w == sel.total_tokens);
    REQUIRE(p == Approx(sel.total_value));
    REQUIRE(sel.upper_bound >= sel.total_value - 1e-9);
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in.pinned[i] != 0) {
            REQUIRE(kept[i] == 1);
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (in.groups[i] >= 0 && in.groups[i] == in.groups[j]) {
                REQUIRE(kept[i] == kept[j]);
            }
        }
    }
}

Instance random_small(std::mt19937_64& rng, std::size_t n, bool integral) {
    std::uniform_int_distribution<std::int64_t> tok(0, 60);
    std::uniform_real_distribution<double> val(0.0, 50.0);
    std::uniform_int_distribution<int> coin(0, 9);
    std::uniform_int_distribution<std::int64_t> grp(0, 3);
    Instance in;
    for (std::size_t i = 0; i < n; ++i) {
        const double v = integral ? std::floor(val(rng)) : val(rng);
        const int c = coin(rng);
        in.add(tok(rng), v, c == 0, c <= 3 ? grp(rng) : -1);
    }
    return in;
}

const ks::Options kDefaults{};

}  // namespace

TEST_CASE("knapsack: optimal on small random instances (brute force, groups, pinned)",
          "[knapsack]") {
    std::mt19937_64 rng(12345);
    int solved = 0;
    int infeasible = 0;
    for (int round = 0; round < 600; ++round) {
        const std::size_t n = 1 + static_cast<std::size_t>(round % 14);
        const Instance in = random_small(rng, n, round % 2 == 0);
        const std::int64_t budget = std::uniform_int_distribution<std::int64_t>(0, 300)(rng);
        const double expected = brute_force(in, budget);
        if (expected < 0.0) {
            REQUIRE_THROWS_AS(ks::select(in.atoms(), budget, kDefaults), relay::InfeasibleBudget);
            ++infeasible;
            continue;
        }
        const ks::Selection sel = ks::select(in.atoms(), budget, kDefaults);
        check_consistent(in, budget, sel);
        REQUIRE(sel.optimal);
        REQUIRE(sel.total_value == Approx(expected).epsilon(1e-12));
        ++solved;
    }
    REQUIRE(solved > 300);
    REQUIRE(infeasible > 10);
}

TEST_CASE("knapsack: optimal up to 2,000 atoms (capacity DP reference)", "[knapsack]") {
    std::mt19937_64 rng(777);
    for (const std::size_t n :
         {std::size_t{50}, std::size_t{300}, std::size_t{1000}, std::size_t{2000}}) {
        for (int kind = 0; kind < 3; ++kind) {
            Instance in;
            std::uniform_int_distribution<std::int64_t> tok(1, 100);
            std::uniform_int_distribution<std::int64_t> noise(0, 10);
            for (std::size_t i = 0; i < n; ++i) {
                const std::int64_t t = tok(rng);
                // uncorrelated, weakly correlated, strongly correlated values
                const double v = kind == 0   ? static_cast<double>(tok(rng))
                                 : kind == 1 ? static_cast<double>(t + noise(rng))
                                             : static_cast<double>(t + 10);
                in.add(t, v);
            }
            const auto budget = static_cast<std::int64_t>(n) * 50 / 4;
            const ks::Selection sel = ks::select(in.atoms(), budget, kDefaults);
            check_consistent(in, budget, sel);
            INFO("n=" << n << " kind=" << kind << " states=" << sel.states);
            REQUIRE(sel.optimal);
            REQUIRE(sel.total_value == dp_reference(in, budget));
        }
    }
}

TEST_CASE("knapsack: pinned atoms and groups", "[knapsack]") {
    Instance in;
    in.add(50, 1.0, true);        // 0 pinned
    in.add(30, 100.0, false, 7);  // 1 call ...
    in.add(30, 0.0, false, 7);    // 2 ... and its result: together 60 tokens
    in.add(40, 60.0);             // 3
    in.add(10, 5.0, false, 9);    // 4 group 9 has a pinned member: pinned as a whole
    in.add(5, 0.0, true, 9);      // 5
    SECTION("group kept whole") {
        const auto sel = ks::select(in.atoms(), 125, kDefaults);
        REQUIRE(sel.chosen == std::vector<std::size_t>{0, 1, 2, 4, 5});
        REQUIRE(sel.total_tokens == 125);
        REQUIRE(sel.total_value == 106.0);
        REQUIRE(sel.optimal);
    }
    SECTION("group dropped whole when the single atom is better") {
        const auto sel = ks::select(in.atoms(), 110, kDefaults);
        REQUIRE(sel.chosen == std::vector<std::size_t>{0, 3, 4, 5});
        REQUIRE(sel.total_value == 66.0);
    }
    SECTION("pinned exactly at the budget") {
        const auto sel = ks::select(in.atoms(), 65, kDefaults);
        REQUIRE(sel.chosen == std::vector<std::size_t>{0, 4, 5});
    }
    SECTION("pinned over the budget") {
        REQUIRE_THROWS_AS(ks::select(in.atoms(), 64, kDefaults), relay::InfeasibleBudget);
        REQUIRE_THROWS_WITH(ks::select(in.atoms(), 64, kDefaults),
                            Catch::Contains("65 tokens") && Catch::Contains("budget of 64"));
    }
    SECTION("zero-token atoms are free, zero-value atoms are not kept") {
        Instance z;
        z.add(0, 0.0);
        z.add(10, 0.0);
        z.add(10, 3.0);
        const auto sel = ks::select(z.atoms(), 100, kDefaults);
        REQUIRE(sel.chosen == std::vector<std::size_t>{0, 2});
    }
}

TEST_CASE("knapsack: invalid input", "[knapsack]") {
    Instance in;
    in.add(5, 1.0);
    REQUIRE_THROWS_AS(ks::select(in.atoms(), -1, kDefaults), relay::InvalidArgument);
    Instance neg = in;
    neg.tokens[0] = -3;
    REQUIRE_THROWS_WITH(ks::select(neg.atoms(), 10, kDefaults),
                        Catch::Contains("negative token count (-3)"));
    for (const double bad : {-1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
        Instance v = in;
        v.values[0] = bad;
        REQUIRE_THROWS_AS(ks::select(v.atoms(), 10, kDefaults), relay::InvalidArgument);
    }
    Instance g = in;
    g.groups[0] = -2;
    REQUIRE_THROWS_AS(ks::select(g.atoms(), 10, kDefaults), relay::InvalidArgument);
    Instance ragged = in;
    ragged.values.push_back(1.0);
    REQUIRE_THROWS_WITH(ks::select(ragged.atoms(), 10, kDefaults), Catch::Contains("length"));
    ks::Options bad_eps;
    bad_eps.epsilon = 1.0;
    REQUIRE_THROWS_AS(ks::select(in.atoms(), 10, bad_eps), relay::InvalidArgument);
    Instance big_values;
    big_values.add(1, 1e308);
    big_values.add(1, 1e308);
    REQUIRE_THROWS_WITH(ks::select(big_values.atoms(), 10, kDefaults),
                        Catch::Contains("scale them down"));
    Instance huge;
    huge.add(INT64_MAX, 1.0);
    huge.add(1, 1.0);
    REQUIRE_THROWS_AS(ks::select(huge.atoms(), 10, kDefaults), relay::InvalidArgument);
}

TEST_CASE("knapsack: deterministic, ties to the lower index", "[knapsack]") {
    Instance in;
    for (int i = 0; i < 10; ++i) {
        in.add(10, 10.0);  // all equal: the first five win
    }
    const auto sel = ks::select(in.atoms(), 50, kDefaults);
    REQUIRE(sel.chosen == std::vector<std::size_t>{0, 1, 2, 3, 4});
    std::mt19937_64 rng(9);
    Instance big = random_small(rng, 2000, false);
    std::fill(big.pinned.begin(), big.pinned.end(), std::uint8_t{0});
    for (std::size_t i = 0; i < big.size(); ++i) {
        big.groups[i] = big.groups[i] < 0 ? -1 : static_cast<std::int64_t>(i / 3);
    }
    const auto a = ks::select(big.atoms(), 5000, kDefaults);
    const auto b = ks::select(big.atoms(), 5000, kDefaults);
    REQUIRE(a.chosen == b.chosen);
    REQUIRE(a.total_value == b.total_value);
    REQUIRE(a.upper_bound == b.upper_bound);
}

TEST_CASE("knapsack: (1 - epsilon) on the forced approximate path", "[knapsack]") {
    std::mt19937_64 rng(4242);
    int inexact = 0;
    for (const double eps : {0.2, 0.05, 0.01}) {
        for (int round = 0; round < 8; ++round) {
            Instance in;
            std::uniform_int_distribution<std::int64_t> tok(1, 200);
            for (int i = 0; i < 400; ++i) {
                const std::int64_t t = tok(rng);
                in.add(t, static_cast<double>(t + 20));  // strongly correlated: hard
            }
            const std::int64_t budget = 400 * 100 / 3 + round;
            const double opt = dp_reference(in, budget);
            ks::Options opts;
            opts.epsilon = eps;
            opts.exact_state_limit = 0;  // force the approximation
            const auto sel = ks::select(in.atoms(), budget, opts);
            check_consistent(in, budget, sel);
            REQUIRE(sel.method == ks::Method::kApproximate);
            REQUIRE(sel.total_value >= (1.0 - eps) * opt);
            REQUIRE(sel.upper_bound >= opt - 1e-9);
            if (!sel.optimal) {
                ++inexact;
            } else {
                REQUIRE(sel.total_value == opt);
            }
        }
    }
    REQUIRE(inexact > 0);  // the path really approximated something
}

TEST_CASE("knapsack: truncated search still certifies an upper bound", "[knapsack]") {
    std::mt19937_64 rng(99);
    Instance in;
    std::uniform_int_distribution<std::int64_t> tok(1, 300);
    for (int i = 0; i < 600; ++i) {
        const std::int64_t t = tok(rng);
        in.add(t, static_cast<double>(t + 30));
    }
    const std::int64_t budget = 600 * 150 / 2 + 1;
    const double opt = dp_reference(in, budget);
    ks::Options opts;
    opts.epsilon = 0.0;
    opts.exact_state_limit = 0;
    const auto sel = ks::select(in.atoms(), budget, opts);
    check_consistent(in, budget, sel);
    REQUIRE(sel.method == ks::Method::kTruncated);
    REQUIRE(sel.upper_bound >= opt);
    REQUIRE(sel.total_value <= opt);
}

TEST_CASE("knapsack: greedy baseline", "[knapsack]") {
    Instance in;
    in.add(60, 61.0);  // densest but blocks the better pair
    in.add(50, 50.0);
    in.add(50, 50.0);
    const auto g = ks::select_greedy(in.atoms(), 100);
    REQUIRE(g.chosen == std::vector<std::size_t>{0});
    REQUIRE_FALSE(g.optimal);
    const auto e = ks::select(in.atoms(), 100, kDefaults);
    REQUIRE(e.chosen == std::vector<std::size_t>{1, 2});
    REQUIRE(g.upper_bound >= e.total_value);
}
