// Binding of relay::knapsack::select. Names, defaults, validation of Python types and docstrings
// belong to the Python facade (relay_context/core/knapsack.py); this file only exposes the calls.
#include <cstdint>
#include <vector>

#include "common/binding.hpp"
#include "knapsack/knapsack.hpp"

namespace ks = relay::knapsack;
using relay::bind::without_gil;

void register_knapsack(py::module_& m) {
    py::enum_<ks::Method>(m, "Method")
        .value("TRIVIAL", ks::Method::kTrivial)
        .value("EXACT", ks::Method::kExact)
        .value("APPROXIMATE", ks::Method::kApproximate)
        .value("TRUNCATED", ks::Method::kTruncated);

    py::class_<ks::Selection>(m, "Selection")
        .def_readonly("chosen", &ks::Selection::chosen)
        .def_readonly("total_tokens", &ks::Selection::total_tokens)
        .def_readonly("total_value", &ks::Selection::total_value)
        .def_readonly("optimal", &ks::Selection::optimal)
        .def_readonly("upper_bound", &ks::Selection::upper_bound)
        .def_readonly("method", &ks::Selection::method)
        .def_readonly("states", &ks::Selection::states);

    // The list arguments are converted once into C++ vectors by the casters.
    m.def(
        "select",
        [](const std::vector<std::int64_t>& tokens, const std::vector<double>& values,
           const std::vector<std::uint8_t>& pinned, const std::vector<std::int64_t>& groups,
           std::int64_t budget, double epsilon, std::int64_t exact_state_limit,
           std::int64_t approximate_state_limit) {
            const ks::Options options{epsilon, exact_state_limit, approximate_state_limit};
            // Safe: the search reads only the C++ vectors above.
            return without_gil([&] {
                return ks::select({tokens, values, pinned, groups}, budget, options);
            });
        },
        py::arg("tokens"), py::arg("values"), py::arg("pinned"), py::arg("groups"),
        py::arg("budget"), py::arg("epsilon"), py::arg("exact_state_limit"),
        py::arg("approximate_state_limit"));

    m.def(
        "select_greedy",
        [](const std::vector<std::int64_t>& tokens, const std::vector<double>& values,
           const std::vector<std::uint8_t>& pinned, const std::vector<std::int64_t>& groups,
           std::int64_t budget) {
            // Safe: the greedy pass reads only the C++ vectors above.
            return without_gil([&] {
                return ks::select_greedy({tokens, values, pinned, groups}, budget);
            });
        },
        py::arg("tokens"), py::arg("values"), py::arg("pinned"), py::arg("groups"),
        py::arg("budget"));
}
