// Stored message rows into message objects in one pass. A session's first window in a process
// reads all of its rows (a thousand or more), and in Python each row costs a dozen calls (role
// lookup, datetime arithmetic, a JSON parse or a dict copy, eleven slot setters): that loop was
// the largest single cost of the window. This file has no Python-free core, since its inputs
// and outputs are Python objects (rows as a driver returns them, the message class's slots).
//
// Only the common form of a row is made here; any other row (tool calls, metadata, an unknown
// role, a type a driver did not give as expected, a date out of range) goes to the Python
// function the decoder is given, which is the reference, so both paths make equal objects.
// clang-format off
#include "common/binding.hpp"  // first: datetime.h needs Python.h before it
#include <datetime.h>
// clang-format on

#include <array>
#include <cstdint>
#include <string>

namespace {

// Column order of a row (the store's SELECT list).
enum Column : Py_ssize_t {
    kSessionId,
    kSeq,
    kRole,
    kName,
    kToolCallId,
    kToolCalls,
    kMetadata,
    kTokenCounts,
    kCodec,
    kContentSize,
    kContent,
    kCreatedAtUs,
    kSignature,
    kColumns
};

// Slots of the message, in the order of the positional maker's arguments.
enum Slot : std::size_t {
    sSessionId,
    sSeq,
    sRole,
    sContent,
    sCreatedAt,
    sName,
    sToolCallId,
    sToolCalls,
    sMetadata,
    sTokenCounts,
    sSignature,
    kSlots
};

struct CivilTime {
    int year, month, day, hour, minute, second, micros;
};

// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
CivilTime civil_from_micros(std::int64_t us) {
    constexpr std::int64_t kDay = 86'400'000'000;
    std::int64_t days = us / kDay;
    std::int64_t rest = us % kDay;
    if (rest < 0) {
        rest += kDay;
        days -= 1;
    }
    const std::int64_t z = days + 719'468;
    const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
    const std::int64_t doe = z - era * 146'097;
    const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
    const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const std::int64_t mp = (5 * doy + 2) / 153;
    const std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
    const std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
    const std::int64_t y = yoe + era * 400 + (m <= 2 ? 1 : 0);
    const std::int64_t seconds = rest / 1'000'000;
    return CivilTime{static_cast<int>(y),
                     static_cast<int>(m),
                     static_cast<int>(d),
                     static_cast<int>(seconds / 3600),
                     static_cast<int>(seconds / 60 % 60),
                     static_cast<int>(seconds % 60),
                     static_cast<int>(rest % 1'000'000)};
}

bool is_str_or_none(PyObject* o) { return o == Py_None || PyUnicode_CheckExact(o); }

class MessageRowDecoder {
  public:
    MessageRowDecoder(py::type message_type, const py::sequence& slot_names, py::dict roles,
                      py::object loads, py::object tzinfo, py::object fallback)
        : type_(std::move(message_type)),
          roles_(std::move(roles)),
          loads_(std::move(loads)),
          tzinfo_(std::move(tzinfo)),
          fallback_(std::move(fallback)),
          empty_metadata_(py::str("{}")) {
        if (py::len(slot_names) != kSlots) {
            throw py::value_error("the message type needs " + std::to_string(kSlots) +
                                  " slot names");
        }
        const py::dict attributes = type_.attr("__dict__");
        for (std::size_t i = 0; i < kSlots; ++i) {
            const py::str name = slot_names[i];
            py::object descriptor = attributes[name];
            // A slot is a member descriptor; anything else (a property, a plain attribute) has
            // no setter that writes past a frozen class's __setattr__.
            if (std::string(Py_TYPE(descriptor.ptr())->tp_name) != "member_descriptor") {
                throw py::type_error("'" + std::string(name) + "' is not a slot of " +
                                     std::string(py::str(type_.attr("__qualname__"))));
            }
            slots_[i] = std::move(descriptor);
        }
    }

    py::list decode(const py::list& rows, const py::list& texts) {
        const Py_ssize_t n = PyList_GET_SIZE(rows.ptr());
        if (PyList_GET_SIZE(texts.ptr()) != n) {
            throw py::value_error(std::to_string(PyList_GET_SIZE(texts.ptr())) + " texts for " +
                                  std::to_string(n) + " rows");
        }
        py::list out(n);
        // Token counts repeat from row to row: each distinct text is parsed once (every message
        // still gets its own dict).
        py::dict parsed;
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject* row = PyList_GET_ITEM(rows.ptr(), i);
            PyObject* text = PyList_GET_ITEM(texts.ptr(), i);
            py::object message;
            if (PyTuple_CheckExact(row)) {
                message = common_form(row, text, parsed);
            } else {
                // asyncpg's Record: a sequence, not a tuple.
                const auto as_tuple = py::reinterpret_steal<py::object>(PySequence_Tuple(row));
                if (!as_tuple) {
                    throw py::error_already_set();
                }
                message = common_form(as_tuple.ptr(), text, parsed);
            }
            if (!message) {
                message = fallback_(py::handle(row), py::handle(text));
            }
            PyList_SET_ITEM(out.ptr(), i, message.release().ptr());
        }
        return out;
    }

  private:
    // The message of a row in the common form, or a null object when the row is not.
    py::object common_form(PyObject* row, PyObject* text, py::dict& parsed) {
        if (PyTuple_GET_SIZE(row) != kColumns || !PyUnicode_CheckExact(text)) {
            return {};
        }
        auto col = [row](Column c) { return PyTuple_GET_ITEM(row, c); };
        PyObject* session_id = col(kSessionId);
        PyObject* seq = col(kSeq);
        PyObject* counts_text = col(kTokenCounts);
        PyObject* created = col(kCreatedAtUs);
        PyObject* signature = col(kSignature);
        if (!PyUnicode_CheckExact(session_id) || !PyLong_CheckExact(seq) ||
            !is_str_or_none(col(kName)) || !is_str_or_none(col(kToolCallId)) ||
            col(kToolCalls) != Py_None || !PyUnicode_CheckExact(col(kMetadata)) ||
            !PyUnicode_CheckExact(counts_text) || !PyLong_CheckExact(created) ||
            (signature != Py_None && !PyBytes_CheckExact(signature))) {
            return {};
        }
        const int empty = PyUnicode_Compare(col(kMetadata), empty_metadata_.ptr());
        if (empty != 0) {
            if (PyErr_Occurred() != nullptr) {
                throw py::error_already_set();
            }
            return {};
        }
        PyObject* role = PyDict_GetItemWithError(roles_.ptr(), col(kRole));
        if (role == nullptr) {
            if (PyErr_Occurred() != nullptr) {
                throw py::error_already_set();
            }
            return {};
        }
        int overflow = 0;
        const long long micros = PyLong_AsLongLongAndOverflow(created, &overflow);
        if (overflow != 0 || (micros == -1 && PyErr_Occurred() != nullptr)) {
            PyErr_Clear();
            return {};
        }
        const CivilTime t = civil_from_micros(micros);
        if (t.year < 1 || t.year > 9999) {
            return {};  // Python raises OverflowError; the fallback says so
        }
        PyObject* counts = PyDict_GetItemWithError(parsed.ptr(), counts_text);
        if (counts == nullptr) {
            if (PyErr_Occurred() != nullptr) {
                throw py::error_already_set();
            }
            py::object value = loads_(py::handle(counts_text));
            if (!PyDict_CheckExact(value.ptr())) {
                return {};
            }
            parsed[py::handle(counts_text)] = value;
            counts = value.ptr();
        }
        const auto own_counts = py::reinterpret_steal<py::object>(PyDict_Copy(counts));
        const auto at = py::reinterpret_steal<py::object>(PyDateTimeAPI->DateTime_FromDateAndTime(
            t.year, t.month, t.day, t.hour, t.minute, t.second, t.micros, tzinfo_.ptr(),
            PyDateTimeAPI->DateTimeType));
        const auto metadata = py::reinterpret_steal<py::object>(PyDict_New());
        if (!own_counts || !at || !metadata) {
            throw py::error_already_set();
        }
        auto* type = reinterpret_cast<PyTypeObject*>(type_.ptr());
        // object.__new__(type): no __init__ (a stored row was validated when it was written).
        auto message = py::reinterpret_steal<py::object>(type->tp_alloc(type, 0));
        if (!message) {
            throw py::error_already_set();
        }
        const std::array<PyObject*, kSlots> values{session_id,
                                                   seq,
                                                   role,
                                                   text,
                                                   at.ptr(),
                                                   col(kName),
                                                   col(kToolCallId),
                                                   empty_tuple(),
                                                   metadata.ptr(),
                                                   own_counts.ptr(),
                                                   signature};
        for (std::size_t s = 0; s < kSlots; ++s) {
            PyObject* descriptor = slots_[s].ptr();
            if (Py_TYPE(descriptor)->tp_descr_set(descriptor, message.ptr(), values[s]) != 0) {
                throw py::error_already_set();
            }
        }
        return message;
    }

    static PyObject* empty_tuple() {
        static PyObject* const empty = PyTuple_New(0);  // immortal in practice: never freed
        return empty;
    }

    py::type type_;
    std::array<py::object, kSlots> slots_;
    py::dict roles_;
    py::object loads_;
    py::object tzinfo_;
    py::object fallback_;
    py::str empty_metadata_;
};

}  // namespace

void register_rows(py::module_& m) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == nullptr) {
        throw py::error_already_set();
    }
    py::class_<MessageRowDecoder>(m, "MessageRowDecoder")
        .def(
            py::init<py::type, const py::sequence&, py::dict, py::object, py::object, py::object>(),
            py::arg("message_type"), py::arg("slot_names"), py::arg("roles"), py::arg("loads"),
            py::arg("tzinfo"), py::arg("fallback"))
        .def("decode", &MessageRowDecoder::decode, py::arg("rows"), py::arg("texts"));
}
