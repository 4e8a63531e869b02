// Binding of relay::drift. Names, defaults and docstrings belong to the Python facade
// (relay_context/core/drift.py); this file only exposes the C++ calls.
#include <cstdint>
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
    py::class_<dr::RelevanceIndex>(m, "RelevanceIndex")
        .def(py::init<>())
        .def(
            "add",
            [](dr::RelevanceIndex& self, const std::vector<std::string_view>& documents) {
                // Safe: the views point into buffers the caster keeps alive until return.
                without_gil([&] { self.add(std::span<const std::string_view>(documents)); });
            },
            py::arg("documents"))
        .def("__len__", &dr::RelevanceIndex::size)
        .def(
            "relevance",
            [](dr::RelevanceIndex& self, std::string_view query, const py::bytes& included) {
                const std::span<const std::uint8_t> mask(
                    reinterpret_cast<const std::uint8_t*>(PyBytes_AS_STRING(included.ptr())),
                    static_cast<std::size_t>(PyBytes_GET_SIZE(included.ptr())));
                // Safe: `query` and `included` are immutable objects the caller holds.
                return without_gil([&] { return self.relevance(query, mask); });
            },
            py::arg("query"), py::arg("included"));
}
