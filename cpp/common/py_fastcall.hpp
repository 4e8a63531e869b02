// Module functions with CPython's vectorcall convention (METH_FASTCALL), for the few calls so
// small that pybind11's dispatch (~100 ns) would cost more than the work: scoring two short
// strings takes about as long. Errors go through pybind11's registered translators, so C++
// exceptions become the same relay_context.errors classes as everywhere else.
#pragma once

#include <cstddef>

#include "common/binding.hpp"
#include "common/py_text.hpp"

namespace relay::bind {

// Adds `Fn` to `m` as `name` (positional arguments only).
template <PyObject* (*Fn)(PyObject*, PyObject* const*, Py_ssize_t)>
void def_fastcall(py::module_& m, const char* name, const char* doc) {
    // Static: CPython keeps a pointer to the method definition for the function's lifetime.
    static PyMethodDef definition{
        name, reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(Fn)), METH_FASTCALL, doc};
    const auto module_name = m.attr("__name__");
    auto function = py::reinterpret_steal<py::object>(
        PyCFunction_NewEx(&definition, nullptr, module_name.ptr()));
    if (!function) {
        throw py::error_already_set();
    }
    m.add_object(name, function);
}

// (s1: str, s2: str, score_cutoff: float) -> float for a scorer on code points.
template <double (*Score)(std::u32string_view, std::u32string_view, double)>
PyObject* fastcall_text_pair(PyObject* /*self*/, PyObject* const* args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "expected 3 arguments (s1, s2, score_cutoff), got %zd",
                     nargs);
        return nullptr;
    }
    try {
        const double score_cutoff = PyFloat_AsDouble(args[2]);
        if (score_cutoff == -1.0 && PyErr_Occurred() != nullptr) {
            return nullptr;
        }
        const CodePoints first(args[0], "s1");
        const CodePoints second(args[1], "s2");
        // Safe: both texts were copied into C++ buffers above.
        const double score = without_gil_if_long(first.size() * second.size(), [&] {
            return Score(first.view(), second.view(), score_cutoff);
        });
        return PyFloat_FromDouble(score);
    } catch (...) {
        py::detail::try_translate_exceptions();
        return nullptr;
    }
}

}  // namespace relay::bind
