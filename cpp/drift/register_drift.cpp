// Binding of relay::drift. Names, defaults and docstrings belong to the Python facade
// (relay_context/core/drift.py); this file only exposes the C++ calls.
#include <span>
#include <string_view>
#include <vector>

#include "common/binding.hpp"
#include "drift/topic_drift.hpp"

namespace dr = relay::drift;
using relay::bind::without_gil;

void register_drift(py::module_& m) {
    m.def(
        "topic_drift",
        [](const std::vector<std::string_view>& earlier,
           const std::vector<std::string_view>& recent) {
            // Safe: the views point into UTF-8 buffers the casters keep alive until return.
            return without_gil([&] {
                return dr::topic_drift(std::span<const std::string_view>(earlier),
                                       std::span<const std::string_view>(recent));
            });
        },
        py::arg("earlier"), py::arg("recent"));
    m.def(
        "relevance",
        [](std::string_view query, const std::vector<std::string_view>& documents) {
            // Safe: as topic_drift.
            return without_gil(
                [&] { return dr::relevance(query, std::span<const std::string_view>(documents)); });
        },
        py::arg("query"), py::arg("documents"));
    m.def("word_hashes", &dr::word_hashes, py::arg("text"));
}
