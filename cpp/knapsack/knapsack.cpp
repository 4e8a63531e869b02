#include "knapsack/knapsack.hpp"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "common/errors.hpp"

namespace relay::knapsack {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
constexpr std::uint32_t kNoNode = std::numeric_limits<std::uint32_t>::max();
// Node ids are 32-bit: the state limits must stay below this.
constexpr std::int64_t kMaxStateLimit = 1'000'000'000;

void validate(const Atoms& atoms, std::int64_t budget) {
    const std::size_t n = atoms.tokens.size();
    if (atoms.values.size() != n || atoms.pinned.size() != n || atoms.groups.size() != n) {
        throw InvalidArgument("atom columns differ in length: tokens " + std::to_string(n) +
                              ", values " + std::to_string(atoms.values.size()) + ", pinned " +
                              std::to_string(atoms.pinned.size()) + ", groups " +
                              std::to_string(atoms.groups.size()));
    }
    if (budget < 0) {
        throw InvalidArgument("budget must be >= 0, got " + std::to_string(budget));
    }
    std::int64_t total = 0;
    double total_value = 0.0;
    for (std::size_t i = 0; i < n; ++i) {
        const std::int64_t t = atoms.tokens[i];
        if (t < 0) {
            throw InvalidArgument("atom at index " + std::to_string(i) +
                                  " has a negative token count (" + std::to_string(t) + ")");
        }
        if (__builtin_add_overflow(total, t, &total)) {
            throw InvalidArgument("the token counts of the atoms sum beyond 2^63 - 1");
        }
        const double v = atoms.values[i];
        if (!std::isfinite(v) || v < 0.0) {
            throw InvalidArgument("atom at index " + std::to_string(i) + " has an invalid value (" +
                                  format_number(v) + "): values must be finite and >= 0");
        }
        total_value += v;
        if (atoms.groups[i] < -1) {
            throw InvalidArgument("atom at index " + std::to_string(i) + " has group " +
                                  std::to_string(atoms.groups[i]) +
                                  ": groups are -1 (none) or >= 0");
        }
    }
    if (!std::isfinite(total_value)) {
        throw InvalidArgument(
            "the values of the atoms sum beyond the largest double; scale them down");
    }
}

void validate(const Options& options) {
    if (!std::isfinite(options.epsilon) || options.epsilon < 0.0 || options.epsilon >= 1.0) {
        throw InvalidArgument("epsilon must be in [0, 1), got " + format_number(options.epsilon));
    }
    if (options.exact_state_limit < 0 || options.exact_state_limit > kMaxStateLimit) {
        throw InvalidArgument("exact_state_limit must be in [0, 10^9], got " +
                              std::to_string(options.exact_state_limit));
    }
    if (options.approximate_state_limit < 0 || options.approximate_state_limit > kMaxStateLimit) {
        throw InvalidArgument("approximate_state_limit must be in [0, 10^9], got " +
                              std::to_string(options.approximate_state_limit));
    }
}

// The problem after merging groups into items, setting pinned items aside and sorting the free
// candidates by value density. Positions (0..m) index the sorted candidates.
struct Prepared {
    std::vector<std::size_t> atom_item;   // item of each atom
    std::vector<std::uint8_t> item_kept;  // decided so far: pinned and free (0-token) items
    std::int64_t capacity = 0;            // budget left for the candidates
    double fixed_value = 0.0;             // value of the items kept without choice
    // Candidates, sorted by density (descending), ties by item index (= first atom index).
    std::vector<std::size_t> item;
    std::vector<std::int64_t> w;
    std::vector<double> p;
    std::vector<double> r;
    std::int64_t total_w = 0;
    bool integral = true;  // every candidate value is an integer (enables floor on bounds)
};

Prepared prepare(const Atoms& atoms, std::int64_t budget) {
    validate(atoms, budget);
    const std::size_t n = atoms.tokens.size();
    Prepared pr;
    pr.atom_item.resize(n);

    // Items in order of their first atom, so the item index is the tie-breaker.
    std::vector<std::int64_t> item_tokens;
    std::vector<double> item_values;
    std::vector<std::uint8_t> item_pinned;
    absl::flat_hash_map<std::int64_t, std::size_t> group_item;
    for (std::size_t i = 0; i < n; ++i) {
        std::size_t it = item_tokens.size();
        if (atoms.groups[i] >= 0) {
            const auto [pos, inserted] = group_item.try_emplace(atoms.groups[i], it);
            it = pos->second;
            if (inserted) {
                item_tokens.push_back(0);
                item_values.push_back(0.0);
                item_pinned.push_back(0);
            }
        } else {
            item_tokens.push_back(0);
            item_values.push_back(0.0);
            item_pinned.push_back(0);
        }
        pr.atom_item[i] = it;
        item_tokens[it] += atoms.tokens[i];
        item_values[it] += atoms.values[i];
        item_pinned[it] = static_cast<std::uint8_t>(item_pinned[it] | (atoms.pinned[i] != 0));
    }

    const std::size_t items = item_tokens.size();
    pr.item_kept.assign(items, 0);
    std::int64_t pinned_tokens = 0;
    for (std::size_t it = 0; it < items; ++it) {
        if (item_pinned[it] != 0) {
            pinned_tokens += item_tokens[it];  // cannot overflow: the atoms' sum did not
            pr.item_kept[it] = 1;
            pr.fixed_value += item_values[it];
        }
    }
    if (pinned_tokens > budget) {
        throw InfeasibleBudget("the pinned atoms and their groups need " +
                               std::to_string(pinned_tokens) + " tokens, more than the budget of " +
                               std::to_string(budget));
    }
    pr.capacity = budget - pinned_tokens;

    std::vector<std::size_t> candidates;
    for (std::size_t it = 0; it < items; ++it) {
        if (pr.item_kept[it] != 0) {
            continue;
        }
        if (item_tokens[it] == 0) {  // free: keeping it never hurts
            pr.item_kept[it] = 1;
            pr.fixed_value += item_values[it];
        } else if (item_tokens[it] <= pr.capacity && item_values[it] > 0.0) {
            candidates.push_back(it);
        }
    }
    std::vector<double> density(items, 0.0);
    for (const std::size_t it : candidates) {
        density[it] = item_values[it] / static_cast<double>(item_tokens[it]);
    }
    std::sort(candidates.begin(), candidates.end(), [&](std::size_t a, std::size_t b) {
        if (density[a] != density[b]) {
            return density[a] > density[b];
        }
        return a < b;
    });
    const std::size_t m = candidates.size();
    pr.item = std::move(candidates);
    pr.w.resize(m);
    pr.p.resize(m);
    pr.r.resize(m);
    double total_p = 0.0;
    for (std::size_t k = 0; k < m; ++k) {
        const std::size_t it = pr.item[k];
        pr.w[k] = item_tokens[it];
        pr.p[k] = item_values[it];
        pr.r[k] = density[it];
        pr.total_w += pr.w[k];
        total_p += pr.p[k];
        if (std::floor(pr.p[k]) != pr.p[k]) {
            pr.integral = false;
        }
    }
    if (total_p >= 9007199254740992.0) {  // 2^53: integer sums would no longer be exact
        pr.integral = false;
    }
    return pr;
}

// Turns the per-item decisions into the answer: atom indices in order, totals recomputed in atom
// order (so equal inputs give bit-identical totals).
Selection assemble(const Atoms& atoms, const Prepared& pr, const std::vector<std::uint8_t>& kept) {
    Selection out;
    for (std::size_t i = 0; i < pr.atom_item.size(); ++i) {
        if (kept[pr.atom_item[i]] != 0) {
            out.chosen.push_back(i);
            out.total_tokens += atoms.tokens[i];
            out.total_value += atoms.values[i];
        }
    }
    return out;
}

// The expanding-core search over the sorted candidates (Pisinger's minknap without its
// reductions). States are (tokens, value) pairs of selections that agree with the greedy
// solution outside the core [s, t]; the core grows by one item on each side per round, every
// state branching on the new item. A state is dropped when another one is lighter and worth at
// least as much (plus `delta` in approximate mode), or when its LP bound cannot beat the
// incumbent (times `relax` in approximate mode).
class CoreSearch {
  public:
    struct Outcome {
        bool finished = false;              // the search ran to its end within the state limit
        std::int64_t work = 0;              // states visited
        double max_relaxed_ub = kNegInf;    // largest bound among states pruned only by `relax`
        double max_live_ub = kNegInf;       // largest bound among states left when stopped
        std::int64_t delta_drop_steps = 0;  // steps in which `delta` removed a state
    };

    CoreSearch(const Prepared& pr, std::size_t break_pos, double delta, double relax,
               std::int64_t limit)
        : pr_(pr), b_(break_pos), delta_(delta), relax_(relax), limit_(limit) {}

    // Improves (z, flags) in place; flags are over sorted positions.
    Outcome run(double& z, std::vector<std::uint8_t>& flags) {
        z_ = z;
        const std::size_t m = pr_.w.size();
        std::int64_t w0 = 0;
        double p0 = 0.0;
        for (std::size_t k = 0; k < b_; ++k) {
            w0 += pr_.w[k];
            p0 += pr_.p[k];
        }
        nodes_.clear();
        nodes_.push_back({kNoNode, 0});
        states_.assign(1, {w0, p0, 0});
        incumbent_node_ = kNoNode;
        // Core [s_, t_end_): empty at first, just before the break item.
        s_ = b_;
        t_end_ = b_;
        Outcome out;
        while (!states_.empty()) {
            bool grew = false;
            if (t_end_ < m) {
                const std::size_t pos = t_end_++;
                step(pos, +1, out);
                grew = true;
            }
            if (!states_.empty() && s_ > 0) {
                const std::size_t pos = --s_;
                step(pos, -1, out);
                grew = true;
            }
            if (!grew) {
                break;  // the core holds every item: the states are complete selections
            }
            if (out.work > limit_) {
                for (const State& st : states_) {
                    out.max_live_ub = std::max(out.max_live_ub, bound(st.w, st.p));
                }
                finish(z, flags);
                return out;
            }
        }
        out.finished = true;
        finish(z, flags);
        return out;
    }

  private:
    struct State {
        std::int64_t w;
        double p;
        std::uint32_t node;
    };
    struct Node {
        std::uint32_t parent;
        std::uint32_t pos;  // the sorted position this state flipped against its parent
    };

    // LP bound of a state given the current core: fill (or empty) at the density of the next
    // item outside the core on the side that moves it towards the capacity.
    [[nodiscard]] double bound(std::int64_t w, double p) const {
        double ub = 0.0;
        if (w <= pr_.capacity) {
            ub = t_end_ < pr_.w.size() ? p + static_cast<double>(pr_.capacity - w) * pr_.r[t_end_]
                                       : p;
        } else {
            if (s_ == 0) {
                return kNegInf;  // overweight and nothing left to remove
            }
            ub = p - static_cast<double>(w - pr_.capacity) * pr_.r[s_ - 1];
        }
        if (pr_.integral) {
            // Any selection is worth an integer; the slack absorbs rounding of the product.
            ub = std::floor(ub + 1e-9 * std::max(1.0, std::fabs(ub)));
        }
        return ub;
    }

    void step(std::size_t pos, int dir, Outcome& out) {
        const std::int64_t dw = dir > 0 ? pr_.w[pos] : -pr_.w[pos];
        const double dp = dir > 0 ? pr_.p[pos] : -pr_.p[pos];
        next_.clear();
        next_.reserve(states_.size() * 2);
        out.work += static_cast<std::int64_t>(states_.size());
        const std::size_t n = states_.size();
        std::size_t i = 0;  // unchanged states
        std::size_t j = 0;  // shifted states
        double best_p = kNegInf;
        bool delta_dropped = false;
        // Both sequences are sorted by tokens; merge them, unchanged first on equal tokens.
        while (i < n || j < n) {
            bool take_shifted = false;
            if (i == n) {
                take_shifted = true;
            } else if (j < n) {
                take_shifted = states_[j].w + dw < states_[i].w;
            }
            std::int64_t w = 0;
            double p = 0.0;
            std::uint32_t parent = 0;
            if (take_shifted) {
                w = states_[j].w + dw;
                p = states_[j].p + dp;
                parent = states_[j].node;
                ++j;
            } else {
                w = states_[i].w;
                p = states_[i].p;
                parent = states_[i].node;
                ++i;
            }
            if (p <= best_p) {
                continue;  // dominated: a lighter (or equal) state is worth as much
            }
            if (p <= best_p + delta_) {
                delta_dropped = true;
                continue;
            }
            best_p = p;
            const bool feasible = w <= pr_.capacity;
            std::uint32_t node = parent;
            if (feasible && p > z_) {
                if (take_shifted) {
                    node = new_node(parent, pos);
                }
                z_ = p;
                incumbent_node_ = node;
            }
            const double ub = bound(w, p);
            if (ub <= z_) {
                continue;
            }
            if (ub * relax_ <= z_) {
                out.max_relaxed_ub = std::max(out.max_relaxed_ub, ub);
                continue;
            }
            if (take_shifted && node == parent) {
                node = new_node(parent, pos);
            }
            if (!next_.empty() && next_.back().w == w) {
                next_.back() = {w, p, node};  // same tokens, strictly more value
            } else {
                next_.push_back({w, p, node});
            }
        }
        if (delta_dropped) {
            ++out.delta_drop_steps;
        }
        states_.swap(next_);
    }

    std::uint32_t new_node(std::uint32_t parent, std::size_t pos) {
        nodes_.push_back({parent, static_cast<std::uint32_t>(pos)});
        return static_cast<std::uint32_t>(nodes_.size() - 1);
    }

    // Writes the best state found into (z, flags), if it beat the starting incumbent.
    void finish(double& z, std::vector<std::uint8_t>& flags) const {
        if (incumbent_node_ == kNoNode) {
            return;
        }
        z = z_;
        std::fill(flags.begin(), flags.end(), 0);
        std::fill(flags.begin(), flags.begin() + static_cast<std::ptrdiff_t>(b_), 1);
        for (std::uint32_t nd = incumbent_node_; nd != 0; nd = nodes_[nd].parent) {
            flags[nodes_[nd].pos] ^= 1;
        }
    }

    const Prepared& pr_;
    std::size_t b_;
    double delta_;
    double relax_;
    std::int64_t limit_;
    double z_ = 0.0;
    std::size_t s_ = 0;
    std::size_t t_end_ = 0;
    std::uint32_t incumbent_node_ = kNoNode;
    std::vector<Node> nodes_;
    std::vector<State> states_;
    std::vector<State> next_;
};

std::vector<std::uint8_t> kept_items(const Prepared& pr, const std::vector<std::uint8_t>& flags) {
    std::vector<std::uint8_t> kept = pr.item_kept;
    for (std::size_t k = 0; k < flags.size(); ++k) {
        if (flags[k] != 0) {
            kept[pr.item[k]] = 1;
        }
    }
    return kept;
}

// Greedy by density over the sorted candidates: the break item's prefix, then anything that
// still fits. Returns its value.
double greedy_fill(const Prepared& pr, std::vector<std::uint8_t>& flags) {
    std::int64_t room = pr.capacity;
    double value = 0.0;
    for (std::size_t k = 0; k < pr.w.size(); ++k) {
        if (pr.w[k] <= room) {
            room -= pr.w[k];
            value += pr.p[k];
            flags[k] = 1;
        }
    }
    return value;
}

}  // namespace

Selection select_greedy(const Atoms& atoms, std::int64_t budget) {
    const Prepared pr = prepare(atoms, budget);
    std::vector<std::uint8_t> flags(pr.w.size(), 0);
    greedy_fill(pr, flags);
    Selection out = assemble(atoms, pr, kept_items(pr, flags));
    out.optimal = pr.total_w <= pr.capacity;
    out.method = Method::kTrivial;
    // The LP bound: the density prefix plus the fitting fraction of the break item.
    double ub = pr.fixed_value;
    std::int64_t room = pr.capacity;
    for (std::size_t k = 0; k < pr.w.size(); ++k) {
        if (pr.w[k] > room) {
            ub += static_cast<double>(room) * pr.r[k];
            break;
        }
        room -= pr.w[k];
        ub += pr.p[k];
    }
    out.upper_bound = out.optimal ? out.total_value : std::max(ub, out.total_value);
    return out;
}

Selection select(const Atoms& atoms, std::int64_t budget, const Options& options) {
    validate(options);
    const Prepared pr = prepare(atoms, budget);
    const std::size_t m = pr.w.size();

    std::vector<std::uint8_t> flags(m, 0);
    if (pr.total_w <= pr.capacity) {  // everything worth keeping fits
        std::fill(flags.begin(), flags.end(), 1);
        Selection out = assemble(atoms, pr, kept_items(pr, flags));
        out.optimal = true;
        out.upper_bound = out.total_value;
        out.method = Method::kTrivial;
        return out;
    }

    // Break item: the first (by density) that no longer fits after all denser ones.
    std::size_t b = 0;
    std::int64_t wb = 0;
    double pb = 0.0;
    while (wb + pr.w[b] <= pr.capacity) {
        wb += pr.w[b];
        pb += pr.p[b];
        ++b;
    }
    double lp_bound = pb + static_cast<double>(pr.capacity - wb) * pr.r[b];
    if (pr.integral) {
        lp_bound = std::floor(lp_bound + 1e-9 * std::max(1.0, lp_bound));
    }

    // Incumbent: greedy fill, or the most valuable single item if that is better (then the
    // incumbent is worth at least half the LP bound, which the approximate mode relies on).
    double z = greedy_fill(pr, flags);
    std::size_t best_single = 0;
    for (std::size_t k = 1; k < m; ++k) {
        if (pr.p[k] > pr.p[best_single]) {
            best_single = k;
        }
    }
    if (pr.p[best_single] > z) {
        std::fill(flags.begin(), flags.end(), 0);
        flags[best_single] = 1;
        z = pr.p[best_single];
    }

    Method method = Method::kExact;
    double ub_free = z;
    std::int64_t states = 0;
    CoreSearch exact(pr, b, 0.0, 1.0, options.exact_state_limit);
    const CoreSearch::Outcome ex = exact.run(z, flags);
    states += ex.work;
    if (ex.finished) {
        ub_free = z;
    } else if (options.epsilon == 0.0) {
        method = Method::kTruncated;
        ub_free = std::min(lp_bound, std::max(z, ex.max_live_ub));
    } else {
        // Dominance within delta loses at most delta per step and there are at most m steps;
        // with relaxed pruning the answer is >= (1 - eps/2)^2 * optimum >= (1 - eps) * optimum.
        const double half = options.epsilon / 2.0;
        const double delta = half * z / static_cast<double>(m);
        CoreSearch approx(pr, b, delta, 1.0 - half, options.approximate_state_limit);
        const CoreSearch::Outcome ap = approx.run(z, flags);
        states += ap.work;
        method = ap.finished ? Method::kApproximate : Method::kTruncated;
        const double reach = std::max({z, ap.max_relaxed_ub, ap.max_live_ub});
        ub_free = std::min(lp_bound, reach + static_cast<double>(ap.delta_drop_steps) * delta);
        if (ap.finished && ap.max_relaxed_ub == kNegInf && ap.delta_drop_steps == 0) {
            ub_free = z;  // nothing was cut by the approximation: the answer is optimal
        }
    }

    Selection out = assemble(atoms, pr, kept_items(pr, flags));
    out.method = method;
    out.states = states;
    out.optimal = ub_free <= z;
    out.upper_bound =
        out.optimal ? out.total_value : std::max(out.total_value, pr.fixed_value + ub_free);
    return out;
}

}  // namespace relay::knapsack
