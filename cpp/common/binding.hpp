// Shared boilerplate of the binding files: one include, the register_<kernel> declarations that
// module.cpp calls, and small helpers so that each register_<kernel>.cpp stays a plain list of
// defs with no logic of its own.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace relay::bind {

// Maps every relay::Error subclass to its class in relay_context.errors (translate_errors.cpp).
void register_error_translator();

// Calls `fn` with the GIL released. Use only around pure C++ work on data already copied out of
// Python objects (std::string, std::vector), never on py:: handles.
template <class Fn>
decltype(auto) without_gil(Fn&& fn) {
    py::gil_scoped_release release;
    return std::forward<Fn>(fn)();
}

}  // namespace relay::bind

void register_tokenizer(py::module_& m);
void register_knapsack(py::module_& m);
void register_compress(py::module_& m);
void register_fuzzy(py::module_& m);
void register_ratelimit(py::module_& m);
