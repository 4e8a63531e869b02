// Shared boilerplate of the binding files: one include, the register_<kernel> declarations that
// module.cpp calls, and small helpers so that each register_<kernel>.cpp stays a plain list of
// defs with no logic of its own.
#pragma once

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <type_traits>
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

// Calls `fn`, with the GIL released only when `work` (a rough count of inner-loop steps) is
// large: releasing and re-taking the GIL costs about as much as scoring two short strings.
template <class Fn>
decltype(auto) without_gil_if_long(std::size_t work, Fn&& fn) {
    constexpr std::size_t kReleaseAbove = 64 * 1024;
    if (work > kReleaseAbove) {
        return without_gil(std::forward<Fn>(fn));
    }
    return std::forward<Fn>(fn)();
}

// As without_gil_if_long, for codecs whose work grows with the bytes they read or write: a chat
// message (a few hundred bytes) is (de)compressed in little more than the time two GIL hand-overs
// take. Below the threshold other threads wait microseconds (about a millisecond at zstd's
// slowest levels).
template <class Fn>
decltype(auto) without_gil_if_large(std::size_t bytes, Fn&& fn) {
    constexpr std::size_t kReleaseAboveBytes = 4 * 1024;
    if (bytes > kReleaseAboveBytes) {
        return without_gil(std::forward<Fn>(fn));
    }
    return std::forward<Fn>(fn)();
}

// A Python list of ints from unsigned ids. pybind11's generic list caster goes through py::cast
// per element; token lists run to millions of entries, so this builds the list directly.
template <class UInt>
py::list to_int_list(const std::vector<UInt>& values) {
    static_assert(std::is_unsigned_v<UInt>);
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(values.size()));
    if (list == nullptr) {
        throw py::error_already_set();
    }
    auto result = py::reinterpret_steal<py::list>(list);
    for (std::size_t i = 0; i < values.size(); ++i) {
        PyObject* item = PyLong_FromUnsignedLongLong(values[i]);
        if (item == nullptr) {
            throw py::error_already_set();
        }
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), item);  // steals the reference
    }
    return result;
}

}  // namespace relay::bind

void register_tokenizer(py::module_& m);
void register_knapsack(py::module_& m);
void register_compress(py::module_& m);
void register_fuzzy(py::module_& m);
void register_ratelimit(py::module_& m);
void register_drift(py::module_& m);
void register_rows(py::module_& m);
