// Binding of relay::knapsack::select. Names, defaults, validation of Python types and docstrings
// belong to the Python facade (relay_context/core/knapsack.py); this file only exposes the calls.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/binding.hpp"
#include "knapsack/knapsack.hpp"

// After Python.h (included by binding.hpp): PyMemberDef and T_OBJECT_EX, to read Atom's slots.
#include <structmember.h>

namespace ks = relay::knapsack;
using relay::bind::without_gil;

namespace {

// Plain-data atoms (Atom instances, dicts, tuples) read straight into columns with the C API:
// Atom's slots by their offsets, dict items by interned keys, tuple items by position. Only the
// inputs the facade accepts without converting anything are read here; on anything else (a
// wrong type, a bad value, a duplicate id, an int subclass) the reader gives up and the facade's
// Python path answers, with its exact error. No Python code runs per atom.
struct AtomLayout {
    PyTypeObject* type = nullptr;  // the Atom class
    Py_ssize_t offsets[5] = {};    // slot offsets of id, tokens, value, pinned, group
};

struct Columns {
    std::vector<std::int64_t> tokens;
    std::vector<double> values;
    std::vector<std::uint8_t> pinned;
    std::vector<std::int64_t> groups;
    std::vector<py::object> ids;
};

struct DictKeys {
    py::object id = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("id"));
    py::object tokens = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("tokens"));
    py::object value = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("value"));
    py::object pinned = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("pinned"));
    py::object group = py::reinterpret_steal<py::object>(PyUnicode_InternFromString("group"));
};

Py_ssize_t slot_offset(py::handle descriptor) {
    if (Py_TYPE(descriptor.ptr()) != &PyMemberDescr_Type) {
        throw py::type_error("Atom fields must be slots");
    }
    const PyMemberDef* member = reinterpret_cast<PyMemberDescrObject*>(descriptor.ptr())->d_member;
    if (member->type != T_OBJECT_EX) {
        throw py::type_error("Atom fields must be object slots");
    }
    return member->offset;
}

PyObject* slot(PyObject* row, Py_ssize_t offset) {
    return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(row) + offset);
}

// The five fields of one row (borrowed), or false when the row is not plain data.
bool row_fields(PyObject* row, const AtomLayout& atom, const DictKeys& keys, PyObject* (&out)[5]) {
    if (Py_TYPE(row) == atom.type) {
        for (int k = 0; k < 5; ++k) {
            out[k] = slot(row, atom.offsets[k]);
            if (out[k] == nullptr) {
                return false;
            }
        }
        return true;
    }
    if (PyDict_CheckExact(row)) {
        const PyObject* names[5] = {keys.id.ptr(), keys.tokens.ptr(), keys.value.ptr(),
                                    keys.pinned.ptr(), keys.group.ptr()};
        Py_ssize_t found = 0;
        for (int k = 0; k < 5; ++k) {
            out[k] = PyDict_GetItemWithError(row, const_cast<PyObject*>(names[k]));
            if (out[k] != nullptr) {
                ++found;
            } else if (PyErr_Occurred() != nullptr) {
                PyErr_Clear();
                return false;
            }
        }
        if (found != PyDict_GET_SIZE(row) || out[0] == nullptr || out[1] == nullptr ||
            out[2] == nullptr) {
            return false;  // unknown or missing keys
        }
        if (out[3] == nullptr) {
            out[3] = Py_False;
        }
        if (out[4] == nullptr) {
            out[4] = Py_None;
        }
        return true;
    }
    if (PyTuple_Check(row)) {
        const Py_ssize_t size = PyTuple_GET_SIZE(row);
        if (size < 3 || size > 5) {
            return false;
        }
        for (Py_ssize_t k = 0; k < 5; ++k) {
            out[k] = k < size ? PyTuple_GET_ITEM(row, k) : nullptr;
        }
        if (out[3] == nullptr) {
            out[3] = Py_False;
        }
        if (out[4] == nullptr) {
            out[4] = Py_None;
        }
        return true;
    }
    return false;
}

bool plain_key(PyObject* key) { return PyUnicode_CheckExact(key) || PyLong_CheckExact(key); }

std::optional<Columns> read_rows(py::handle rows, const AtomLayout& atom) {
    static const DictKeys keys;
    if (!PyList_CheckExact(rows.ptr())) {
        return std::nullopt;
    }
    const Py_ssize_t n = PyList_GET_SIZE(rows.ptr());
    Columns c;
    c.tokens.reserve(static_cast<std::size_t>(n));
    c.values.reserve(static_cast<std::size_t>(n));
    c.pinned.reserve(static_cast<std::size_t>(n));
    c.groups.reserve(static_cast<std::size_t>(n));
    c.ids.reserve(static_cast<std::size_t>(n));
    const py::set seen_ids;
    const py::dict group_numbers;
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* fields[5];
        if (!row_fields(PyList_GET_ITEM(rows.ptr(), i), atom, keys, fields)) {
            return std::nullopt;
        }
        PyObject* const id = fields[0];
        if (!plain_key(id) || PySet_Add(seen_ids.ptr(), id) != 0) {
            PyErr_Clear();
            return std::nullopt;
        }
        if (!PyLong_CheckExact(fields[1])) {
            return std::nullopt;
        }
        int overflow = 0;
        const long long tokens = PyLong_AsLongLongAndOverflow(fields[1], &overflow);
        if (overflow != 0 || tokens < 0) {
            return std::nullopt;
        }
        double value = 0.0;
        if (PyFloat_CheckExact(fields[2])) {
            value = PyFloat_AS_DOUBLE(fields[2]);
        } else if (PyLong_CheckExact(fields[2])) {
            value = PyLong_AsDouble(fields[2]);
            if (value == -1.0 && PyErr_Occurred() != nullptr) {
                PyErr_Clear();
                return std::nullopt;
            }
        } else {
            return std::nullopt;
        }
        if (!std::isfinite(value) || value < 0.0) {
            return std::nullopt;
        }
        if (fields[3] != Py_True && fields[3] != Py_False) {
            return std::nullopt;
        }
        std::int64_t group = -1;
        if (fields[4] != Py_None) {
            if (!plain_key(fields[4])) {
                return std::nullopt;
            }
            PyObject* number = PyDict_GetItemWithError(group_numbers.ptr(), fields[4]);
            if (number == nullptr) {
                if (PyErr_Occurred() != nullptr) {
                    PyErr_Clear();
                    return std::nullopt;
                }
                group = static_cast<std::int64_t>(PyDict_GET_SIZE(group_numbers.ptr()));
                const py::int_ next(group);
                if (PyDict_SetItem(group_numbers.ptr(), fields[4], next.ptr()) != 0) {
                    PyErr_Clear();
                    return std::nullopt;
                }
            } else {
                group = PyLong_AsLongLong(number);
            }
        }
        c.tokens.push_back(tokens);
        c.values.push_back(value);
        c.pinned.push_back(fields[3] == Py_True ? 1 : 0);
        c.groups.push_back(group);
        c.ids.push_back(py::reinterpret_borrow<py::object>(id));
    }
    if (PySet_GET_SIZE(seen_ids.ptr()) != n) {
        return std::nullopt;  // duplicate ids: the facade names them
    }
    return c;
}

py::tuple ids_where(const std::vector<py::object>& ids, const std::vector<std::uint8_t>& kept,
                    bool want) {
    std::size_t count = 0;
    for (const std::uint8_t k : kept) {
        count += (k != 0) == want ? 1 : 0;
    }
    py::tuple out(count);
    std::size_t j = 0;
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if ((kept[i] != 0) == want) {
            out[j++] = ids[i];
        }
    }
    return out;
}

}  // namespace

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

    py::class_<AtomLayout>(m, "AtomLayout")
        .def(py::init([](py::type atom_type) {
                 AtomLayout layout;
                 layout.type = reinterpret_cast<PyTypeObject*>(atom_type.ptr());
                 const char* names[5] = {"id", "tokens", "value", "pinned", "group"};
                 for (int k = 0; k < 5; ++k) {
                     layout.offsets[k] = slot_offset(atom_type.attr(names[k]));
                 }
                 // The class outlives every layout (the facade keeps both at module level).
                 return layout;
             }),
             py::arg("atom_type"));

    // Rows of plain data in, (selection, kept ids, dropped ids) out; None when a row needs the
    // facade's Python path (see read_rows).
    m.def(
        "select_rows",
        [](py::handle rows, const AtomLayout& layout, std::int64_t budget, double epsilon,
           std::int64_t exact_state_limit, std::int64_t approximate_state_limit) -> py::object {
            std::optional<Columns> columns = read_rows(rows, layout);
            if (!columns) {
                return py::none();
            }
            const Columns& c = *columns;
            const ks::Options options{epsilon, exact_state_limit, approximate_state_limit};
            // Safe: the search reads only the C++ vectors of `c`.
            ks::Selection selection = without_gil([&] {
                return ks::select({c.tokens, c.values, c.pinned, c.groups}, budget, options);
            });
            std::vector<std::uint8_t> kept(c.ids.size(), 0);
            for (const std::size_t index : selection.chosen) {
                kept[index] = 1;
            }
            py::tuple chosen_ids = ids_where(c.ids, kept, true);
            py::tuple dropped_ids = ids_where(c.ids, kept, false);
            return py::make_tuple(std::move(selection), chosen_ids, dropped_ids);
        },
        py::arg("rows"), py::arg("layout"), py::arg("budget"), py::arg("epsilon"),
        py::arg("exact_state_limit"), py::arg("approximate_state_limit"));

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
