// Binding helpers for kernels that work on Unicode code points: a Python str is copied once into
// char32_t straight from CPython's own storage (1, 2 or 4 bytes per code point, no codec, lone
// surrogates kept as they are), so the C++ side sees exactly Python's code points.
// A non-str argument raises relay_context.errors.InputTypeError naming the argument.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "common/binding.hpp"

namespace relay::bind {

[[noreturn]] inline void raise_input_type_error(py::handle value, const char* what,
                                                const char* expected = "a str") {
    const py::object cls = py::module_::import("relay_context.errors").attr("InputTypeError");
    const std::string message = std::string(what) + " must be " + expected + ", not " +
                                std::string(py::str(py::type::handle_of(value).attr("__name__")));
    PyErr_SetString(cls.ptr(), message.c_str());
    throw py::error_already_set();
}

// Number of code points of `text`, after checking that it is a str.
inline std::size_t str_length(py::handle text, const char* what) {
    PyObject* obj = text.ptr();
    if (!PyUnicode_Check(obj)) {
        raise_input_type_error(text, what);
    }
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(obj) != 0) {
        throw py::error_already_set();
    }
#endif
    return static_cast<std::size_t>(PyUnicode_GET_LENGTH(obj));
}

// Copies the code points of a str whose length str_length() returned into `out`.
inline void copy_code_points(py::handle text, char32_t* out) {
    PyObject* obj = text.ptr();
    const auto length = static_cast<std::size_t>(PyUnicode_GET_LENGTH(obj));
    const void* data = PyUnicode_DATA(obj);
    switch (PyUnicode_KIND(obj)) {
        case PyUnicode_1BYTE_KIND: {
            const auto* chars = static_cast<const Py_UCS1*>(data);
            for (std::size_t i = 0; i < length; ++i) {
                out[i] = chars[i];
            }
            break;
        }
        case PyUnicode_2BYTE_KIND: {
            const auto* chars = static_cast<const Py_UCS2*>(data);
            for (std::size_t i = 0; i < length; ++i) {
                out[i] = chars[i];
            }
            break;
        }
        default: {
            const auto* chars = static_cast<const Py_UCS4*>(data);
            for (std::size_t i = 0; i < length; ++i) {
                out[i] = static_cast<char32_t>(chars[i]);
            }
            break;
        }
    }
}

// One str argument as code points: short texts stay in an inline buffer (no allocation).
class CodePoints {
  public:
    CodePoints(py::handle text, const char* what) : size_(str_length(text, what)) {
        char32_t* out = inline_.data();
        if (size_ > inline_.size()) {
            heap_.resize(size_);
            out = heap_.data();
        }
        copy_code_points(text, out);
    }
    CodePoints(const CodePoints&) = delete;
    CodePoints& operator=(const CodePoints&) = delete;

    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::u32string_view view() const noexcept {
        return {size_ > inline_.size() ? heap_.data() : inline_.data(), size_};
    }

  private:
    std::size_t size_;
    // 2 KiB, not zeroed (always written before it is read): sentences and short paragraphs stay
    // off the heap, whose allocation and release cost about a tenth of scoring them.
    std::array<char32_t, 512> inline_;
    std::u32string heap_;
};

// Copies a sequence of str into `Batch` (a container with reserve(texts, code points) and
// append_uninitialized(length) -> char32_t*).
template <class Batch>
Batch to_text_batch(py::handle texts, const char* what, const char* item_what) {
    PyObject* fast_ptr = PySequence_Fast(texts.ptr(), "");
    if (fast_ptr == nullptr) {
        PyErr_Clear();
        raise_input_type_error(texts, what, "a sequence of str");
    }
    const auto fast = py::reinterpret_steal<py::object>(fast_ptr);
    const auto count = static_cast<std::size_t>(PySequence_Fast_GET_SIZE(fast_ptr));
    PyObject** items = PySequence_Fast_ITEMS(fast_ptr);
    std::size_t total = 0;
    for (std::size_t i = 0; i < count; ++i) {
        total += str_length(items[i], item_what);
    }
    Batch batch;
    batch.reserve(count, total);
    for (std::size_t i = 0; i < count; ++i) {
        copy_code_points(items[i], batch.append_uninitialized(str_length(items[i], item_what)));
    }
    return batch;
}

}  // namespace relay::bind
