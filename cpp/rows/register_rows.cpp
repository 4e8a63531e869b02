// Stored message rows into message objects in one pass. A session's first window in a process
// reads all of its rows (a thousand or more), and in Python each row costs a dozen calls (role
// lookup, datetime arithmetic, a JSON parse or a dict copy, eleven slot setters): that loop was
// the largest single cost of the window. This file has no Python-free core, since its inputs
// and outputs are Python objects (rows as a driver returns them, the message class's slots).
//
// Contents stored raw or with the store's own codec (a CompressionEngine's frames) are restored
// here too, all frames in one pass. Only the common form of a row is made here; any other row
// (tool calls, metadata, an unknown role, another codec, a damaged frame, a type a driver did not
// give as expected, a date out of range) goes to the Python function the decoder is given, which
// is the reference, so both paths make equal objects.
// clang-format off
#include "common/binding.hpp"  // first: datetime.h needs Python.h before it
#include <datetime.h>
// clang-format on

#include <array>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compress/compressor.hpp"

namespace {

namespace cz = relay::compress;

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

// The slots of a class, found once, and objects of it made through them: object.__new__(type),
// then each slot written past __init__ and a frozen class's __setattr__.
class SlotWriter {
  public:
    SlotWriter(py::type type, const py::sequence& slot_names) : type_(std::move(type)) {
        const py::dict attributes = type_.attr("__dict__");
        for (const py::handle item : slot_names) {
            const py::str name = py::reinterpret_borrow<py::str>(item);
            py::object descriptor = attributes[name];
            // A slot is a member descriptor; anything else (a property, a plain attribute) has
            // no setter that writes past a frozen class's __setattr__.
            if (std::string(Py_TYPE(descriptor.ptr())->tp_name) != "member_descriptor") {
                throw py::type_error("'" + std::string(name) + "' is not a slot of " +
                                     std::string(py::str(type_.attr("__qualname__"))));
            }
            slots_.push_back(std::move(descriptor));
        }
    }

    [[nodiscard]] std::size_t size() const noexcept { return slots_.size(); }

    // An object whose slot s is value(s), for each slot in order.
    template <class Value>
    [[nodiscard]] py::object make(Value&& value) const {
        auto* type = reinterpret_cast<PyTypeObject*>(type_.ptr());
        auto object = py::reinterpret_steal<py::object>(type->tp_alloc(type, 0));
        if (!object) {
            throw py::error_already_set();
        }
        for (std::size_t s = 0; s < slots_.size(); ++s) {
            PyObject* descriptor = slots_[s].ptr();
            if (Py_TYPE(descriptor)->tp_descr_set(descriptor, object.ptr(), value(s)) != 0) {
                throw py::error_already_set();
            }
        }
        return object;
    }

  private:
    py::type type_;
    std::vector<py::object> slots_;
};

class MessageRowDecoder {
  public:
    MessageRowDecoder(py::type message_type, const py::sequence& slot_names, py::dict roles,
                      py::object loads, py::object tzinfo, py::object fallback, std::string raw_tag,
                      std::string native_tag, py::object native)
        : slots_(std::move(message_type), slot_names),
          roles_(std::move(roles)),
          loads_(std::move(loads)),
          tzinfo_(std::move(tzinfo)),
          fallback_(std::move(fallback)),
          empty_metadata_(py::str("{}")),
          raw_tag_(std::move(raw_tag)),
          native_tag_(std::move(native_tag)),
          native_(std::move(native)) {
        if (slots_.size() != kSlots) {
            throw py::value_error("the message type needs " + std::to_string(kSlots) +
                                  " slot names");
        }
        if (!native_.is_none()) {
            decompressor_ = &native_.cast<const cz::Decompressor&>();
        }
    }

    py::list decode(const py::list& rows) {
        const Py_ssize_t n = PyList_GET_SIZE(rows.ptr());
        // 1. Rows as tuples (a driver's record types are sequences), and where each content is:
        // raw bytes read in place, or a frame of the native codec decoded into `out`.
        std::vector<py::object> tuples(static_cast<std::size_t>(n));
        std::vector<Content> contents(static_cast<std::size_t>(n));
        std::vector<std::size_t> frame_rows;
        std::size_t total = 0;
        for (Py_ssize_t i = 0; i < n; ++i) {
            PyObject* row = PyList_GET_ITEM(rows.ptr(), i);
            auto& tuple = tuples[static_cast<std::size_t>(i)];
            if (PyTuple_CheckExact(row)) {
                tuple = py::reinterpret_borrow<py::object>(row);
            } else {
                tuple = py::reinterpret_steal<py::object>(PySequence_Tuple(row));
                if (!tuple) {
                    throw py::error_already_set();
                }
            }
            auto& content = contents[static_cast<std::size_t>(i)];
            content = locate(tuple.ptr());
            if (content.kind == Content::kFrame) {
                content.offset = total;
                total += content.size;
                frame_rows.push_back(static_cast<std::size_t>(i));
            }
        }
        // 2. The frames, one after the other (a failed one goes to the fallback, which says
        // what is wrong with it). Safe without the GIL: only C++ buffers are written, and the
        // bytes read are kept alive by `tuples`; a session's small frames keep it.
        std::string out(total, '\0');
        relay::bind::without_gil_if_large(total, [&] {
            for (const std::size_t row : frame_rows) {
                auto& content = contents[row];
                try {
                    decompressor_->decompress_into(
                        content.bytes, std::span<char>(out.data() + content.offset, content.size));
                } catch (const std::exception&) {
                    content.kind = Content::kOther;
                }
            }
        });
        // 3. The messages.
        py::list messages(n);
        // Token counts repeat from row to row: each distinct text is parsed once (every message
        // still gets its own dict).
        py::dict parsed;
        for (Py_ssize_t i = 0; i < n; ++i) {
            const auto& content = contents[static_cast<std::size_t>(i)];
            py::object message;
            if (content.kind != Content::kOther) {
                const char* data = content.kind == Content::kRaw ? content.bytes.data()
                                                                 : out.data() + content.offset;
                auto text = py::reinterpret_steal<py::object>(
                    PyUnicode_DecodeUTF8(data, static_cast<Py_ssize_t>(content.size), "strict"));
                if (text) {
                    message =
                        common_form(tuples[static_cast<std::size_t>(i)].ptr(), text.ptr(), parsed);
                    if (!message) {
                        message = fallback_(py::handle(PyList_GET_ITEM(rows.ptr(), i)), text);
                    }
                } else {
                    PyErr_Clear();  // not UTF-8: the fallback names the row
                }
            }
            if (!message) {
                message = fallback_(py::handle(PyList_GET_ITEM(rows.ptr(), i)), py::none());
            }
            PyList_SET_ITEM(messages.ptr(), i, message.release().ptr());
        }
        return messages;
    }

  private:
    struct Content {
        enum Kind { kRaw, kFrame, kOther } kind = kOther;
        std::string_view bytes;  // the stored blob
        std::size_t size = 0;    // of the text
        std::size_t offset = 0;  // of a frame's text in the decoded buffer
    };

    // Where the text of `row` is, when the row's codec is raw or the native one and its blob
    // is bytes of the size stored; kOther for anything else.
    [[nodiscard]] Content locate(PyObject* row) const {
        Content content;
        if (PyTuple_GET_SIZE(row) != kColumns) {
            return content;
        }
        PyObject* codec = PyTuple_GET_ITEM(row, kCodec);
        PyObject* size = PyTuple_GET_ITEM(row, kContentSize);
        PyObject* blob = PyTuple_GET_ITEM(row, kContent);
        if (!PyUnicode_CheckExact(codec) || !PyLong_CheckExact(size) || !PyBytes_CheckExact(blob)) {
            return content;
        }
        const long long declared = PyLong_AsLongLong(size);
        if (declared < 0) {
            PyErr_Clear();
            return content;
        }
        Py_ssize_t tag_size = 0;
        const char* tag = PyUnicode_AsUTF8AndSize(codec, &tag_size);
        if (tag == nullptr) {
            PyErr_Clear();
            return content;
        }
        const std::string_view codec_tag(tag, static_cast<std::size_t>(tag_size));
        content.bytes = std::string_view(PyBytes_AS_STRING(blob),
                                         static_cast<std::size_t>(PyBytes_GET_SIZE(blob)));
        content.size = static_cast<std::size_t>(declared);
        if (codec_tag == raw_tag_) {
            if (content.bytes.size() == content.size) {
                content.kind = Content::kRaw;
            }
        } else if (decompressor_ != nullptr && codec_tag == native_tag_) {
            const auto frame_size = decompressor_->single_frame_size(content.bytes);
            if (frame_size && *frame_size == content.size) {
                content.kind = Content::kFrame;
            }
        }
        return content;
    }

    // The message of a row in the common form, or a null object when the row is not.
    py::object common_form(PyObject* row, PyObject* text, py::dict& parsed) {
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
        // No __init__: a stored row was validated when it was written.
        py::object message = slots_.make([&](std::size_t s) { return values[s]; });
        // Not tracked by the cycle collector (as msgspec's gc=False structs): a message of the
        // common form holds strings, ints, its role, a date, the empty tuple and two dicts of
        // strings and numbers, none of which can refer back to it. A session's messages live
        // as long as the engine keeps the session, so tracking them made every collection of
        // the older generations walk all kept messages of all sessions.
        PyObject_GC_UnTrack(message.ptr());
        return message;
    }

    static PyObject* empty_tuple() {
        static PyObject* const empty = PyTuple_New(0);  // immortal in practice: never freed
        return empty;
    }

    SlotWriter slots_;
    py::dict roles_;
    py::object loads_;
    py::object tzinfo_;
    py::object fallback_;
    py::str empty_metadata_;
    std::string raw_tag_;
    std::string native_tag_;
    py::object native_;  // keeps decompressor_ alive
    const cz::Decompressor* decompressor_ = nullptr;
};

// Objects of a slotted class made from columns, one per row: what the positional makers of a
// session's many objects (candidates of a plan) do one call at a time in Python.
class SlottedMaker {
  public:
    SlottedMaker(py::type type, const py::sequence& slot_names)
        : slots_(std::move(type), slot_names) {}

    [[nodiscard]] py::list make(const py::sequence& columns) const {
        if (py::len(columns) != slots_.size()) {
            throw py::value_error(std::to_string(py::len(columns)) + " columns for " +
                                  std::to_string(slots_.size()) + " slots");
        }
        std::vector<py::list> lists;
        lists.reserve(slots_.size());
        for (const py::handle column : columns) {
            if (!PyList_CheckExact(column.ptr())) {
                throw py::type_error("columns must be lists, not " +
                                     std::string(Py_TYPE(column.ptr())->tp_name));
            }
            lists.push_back(py::reinterpret_borrow<py::list>(column));
        }
        const Py_ssize_t n = lists.empty() ? 0 : PyList_GET_SIZE(lists.front().ptr());
        for (const py::list& column : lists) {
            if (PyList_GET_SIZE(column.ptr()) != n) {
                throw py::value_error("columns differ in length");
            }
        }
        py::list out(n);
        for (Py_ssize_t i = 0; i < n; ++i) {
            py::object object =
                slots_.make([&](std::size_t s) { return PyList_GET_ITEM(lists[s].ptr(), i); });
            PyList_SET_ITEM(out.ptr(), i, object.release().ptr());
        }
        return out;
    }

  private:
    SlotWriter slots_;
};

}  // namespace

void register_rows(py::module_& m) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == nullptr) {
        throw py::error_already_set();
    }
    py::class_<MessageRowDecoder>(m, "MessageRowDecoder")
        .def(py::init<py::type, const py::sequence&, py::dict, py::object, py::object, py::object,
                      std::string, std::string, py::object>(),
             py::arg("message_type"), py::arg("slot_names"), py::arg("roles"), py::arg("loads"),
             py::arg("tzinfo"), py::arg("fallback"), py::arg("raw_tag"), py::arg("native_tag"),
             py::arg("native").none(true))
        .def("decode", &MessageRowDecoder::decode, py::arg("rows"));
    py::class_<SlottedMaker>(m, "SlottedMaker")
        .def(py::init<py::type, const py::sequence&>(), py::arg("type"), py::arg("slot_names"))
        .def("make", &SlottedMaker::make, py::arg("columns"));
}
