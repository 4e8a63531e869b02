// Binding of relay::compress. Names, defaults, type checks and docstrings belong to the Python
// facade (relay_context/core/compression.py); this file only exposes the C++ calls.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/binding.hpp"
#include "common/errors.hpp"
#include "compress/compressor.hpp"

namespace cz = relay::compress;
using relay::bind::without_gil;
using relay::bind::without_gil_if_large;

namespace {
// The constructor of both compressor classes: they take the same options.
template <class T>
T* with_options(cz::Algorithm algorithm, int level, bool checksum,
                const std::shared_ptr<cz::Dictionary>& dictionary,
                const std::shared_ptr<cz::Counters>& counters) {
    return new T(cz::CompressorOptions{algorithm, level, checksum, dictionary, counters});
}
}  // namespace

void register_compress(py::module_& m) {
    py::enum_<cz::Algorithm>(m, "Algorithm")
        .value("ZSTD", cz::Algorithm::kZstd)
        .value("LZ4", cz::Algorithm::kLz4);
    py::enum_<cz::FrameFormat>(m, "FrameFormat")
        .value("ZSTD", cz::FrameFormat::kZstd)
        .value("LZ4", cz::FrameFormat::kLz4)
        .value("SKIPPABLE", cz::FrameFormat::kSkippable)
        .value("UNKNOWN", cz::FrameFormat::kUnknown);

    m.def("min_level", &cz::min_level, py::arg("algorithm"));
    m.def("max_level", &cz::max_level, py::arg("algorithm"));
    m.def(
        "detect_format", [](const py::bytes& data) { return cz::detect_format(data); },
        py::arg("data"));
    m.def(
        "parse_frame_header",
        [](const py::bytes& data) -> py::object {
            const auto header = cz::parse_frame_header(data);
            if (!header) {
                return py::none();
            }
            py::dict out;
            out["format"] = header->format;
            out["header_size"] = header->header_size;
            out["content_size"] =
                header->content_size ? py::object(py::int_(*header->content_size)) : py::none();
            out["dict_id"] = header->dict_id;
            out["window_size"] = header->window_size;
            return out;
        },
        py::arg("data"));

    py::class_<cz::Dictionary, std::shared_ptr<cz::Dictionary>>(m, "Dictionary")
        .def(py::init([](const py::bytes& data) {
                 return std::make_shared<cz::Dictionary>(std::string(data));
             }),
             py::arg("data"))
        .def_property_readonly("id", &cz::Dictionary::id)
        .def_property_readonly("is_raw_content", &cz::Dictionary::is_raw_content)
        .def_property_readonly("data",
                               [](const cz::Dictionary& self) { return py::bytes(self.bytes()); })
        .def("__len__", [](const cz::Dictionary& self) { return self.bytes().size(); });

    m.def(
        "train_dictionary",
        [](const std::vector<std::string>& samples, std::size_t capacity) {
            // Safe: the samples were copied into C++ strings by the argument caster.
            return std::const_pointer_cast<cz::Dictionary>(without_gil([&] {
                const std::vector<std::string_view> views(samples.begin(), samples.end());
                return cz::train_dictionary(views, capacity);
            }));
        },
        py::arg("samples"), py::arg("capacity"));

    py::class_<cz::Counters, std::shared_ptr<cz::Counters>>(m, "Counters")
        .def(py::init<>())
        .def("snapshot",
             [](const cz::Counters& self) {
                 return py::make_tuple(self.compress_calls.load(), self.decompress_calls.load(),
                                       self.compress_in.load(), self.compress_out.load(),
                                       self.decompress_in.load(), self.decompress_out.load());
             })
        .def("reset", &cz::Counters::reset);

    py::class_<cz::Compressor>(m, "Compressor")
        .def(py::init(&with_options<cz::Compressor>), py::arg("algorithm"), py::arg("level"),
             py::arg("checksum"), py::arg("dictionary").none(true), py::arg("counters").none(true))
        .def(
            "compress",
            [](const cz::Compressor& self, const py::bytes& data) {
                const std::string_view view = data;
                // Compress into a new bytes object of the bound size, then shrink it in place.
                const std::size_t bound = self.compress_bound(view.size());
                PyObject* out = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(bound));
                if (out == nullptr) {
                    throw py::error_already_set();
                }
                auto owned = py::reinterpret_steal<py::object>(out);
                const std::span<char> dst(PyBytes_AS_STRING(out), bound);
                // Safe: `view` and `dst` point into bytes objects held by this frame, and the
                // new one is seen by nobody else until it is returned. Small inputs keep the GIL.
                const std::size_t written = without_gil_if_large(
                    view.size(), [&] { return self.compress_into(view, dst); });
                out = owned.release().ptr();
                if (_PyBytes_Resize(&out, static_cast<Py_ssize_t>(written)) != 0) {
                    throw py::error_already_set();  // _PyBytes_Resize freed `out`
                }
                return py::reinterpret_steal<py::bytes>(out);
            },
            py::arg("data"));

    py::class_<cz::Decompressor>(m, "Decompressor")
        .def(py::init<std::shared_ptr<cz::Dictionary>, std::uint64_t,
                      std::shared_ptr<cz::Counters>>(),
             py::arg("dictionary").none(true), py::arg("max_output"),
             py::arg("counters").none(true))
        .def(
            "decompress",
            [](const cz::Decompressor& self, const py::bytes& data) {
                const std::string_view view = data;
                if (const auto size = self.single_frame_size(view)) {
                    // One frame of known size: decode straight into a new bytes object, which
                    // nothing else can see until it is returned.
                    py::bytes out(nullptr, *size);
                    const std::span<char> dst(PyBytes_AS_STRING(out.ptr()), *size);
                    // Safe: `view` and `dst` point into bytes objects held by this frame. Small
                    // outputs keep the GIL.
                    without_gil_if_large(*size, [&] { self.decompress_into(view, dst); });
                    return out;
                }
                // Safe: as Compressor.compress.
                return py::bytes(without_gil([&] { return self.decompress(view); }));
            },
            py::arg("data"))
        .def(
            "decompress_texts",
            [](const cz::Decompressor& self, const py::list& frames, const py::object& sizes) {
                // Held here so that the views stay valid whatever happens to `frames` while the
                // GIL is released.
                std::vector<py::bytes> held;
                std::vector<std::string_view> views;
                held.reserve(frames.size());
                views.reserve(frames.size());
                std::size_t total = 0;
                for (const py::handle item : frames) {
                    if (!PyBytes_CheckExact(item.ptr())) {
                        throw py::type_error("frames must be bytes, not " +
                                             std::string(Py_TYPE(item.ptr())->tp_name));
                    }
                    held.push_back(py::reinterpret_borrow<py::bytes>(item));
                    views.emplace_back(PyBytes_AS_STRING(item.ptr()),
                                       static_cast<std::size_t>(PyBytes_GET_SIZE(item.ptr())));
                    total += views.back().size();
                }
                std::vector<std::size_t> expected;
                if (!sizes.is_none()) {
                    expected = sizes.cast<std::vector<std::size_t>>();
                    if (expected.size() != views.size()) {
                        throw relay::InvalidArgument(std::to_string(expected.size()) +
                                                     " sizes for " + std::to_string(views.size()) +
                                                     " frames");
                    }
                }
                std::string out;
                std::vector<std::size_t> ends;
                // Safe: the views point into the bytes objects `held` keeps alive; only C++
                // buffers are written. A session's small frames keep the GIL.
                without_gil_if_large(total, [&] { self.decompress_all(views, out, ends); });
                PyObject* list = PyList_New(static_cast<Py_ssize_t>(ends.size()));
                if (list == nullptr) {
                    throw py::error_already_set();
                }
                auto result = py::reinterpret_steal<py::list>(list);
                std::size_t start = 0;
                for (std::size_t j = 0; j < ends.size(); ++j) {
                    const std::size_t size = ends[j] - start;
                    if (!expected.empty() && expected[j] != size) {
                        throw relay::CorruptFrame("frame " + std::to_string(j) + " restored " +
                                                  std::to_string(size) + " bytes where " +
                                                  std::to_string(expected[j]) + " were stored");
                    }
                    PyObject* text = PyUnicode_DecodeUTF8(out.data() + start,
                                                          static_cast<Py_ssize_t>(size), "strict");
                    if (text == nullptr) {
                        throw py::error_already_set();  // UnicodeDecodeError
                    }
                    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(j), text);  // steals it
                    start = ends[j];
                }
                return result;
            },
            py::arg("frames"), py::arg("sizes").none(true))
        .def_property_readonly("max_output", &cz::Decompressor::max_output);

    py::class_<cz::StreamCompressor>(m, "StreamCompressor")
        .def(py::init(&with_options<cz::StreamCompressor>), py::arg("algorithm"), py::arg("level"),
             py::arg("checksum"), py::arg("dictionary").none(true), py::arg("counters").none(true))
        .def(
            "compress",
            [](cz::StreamCompressor& self, const py::bytes& chunk) {
                const std::string_view view = chunk;
                // Safe: immutable bytes; the object serialises its own calls with a mutex.
                return py::bytes(without_gil([&] { return self.compress(view); }));
            },
            py::arg("chunk"))
        .def("flush",
             [](cz::StreamCompressor& self) {
                 // Safe: no Python object is touched; the object has its own mutex.
                 return py::bytes(without_gil([&] { return self.flush(); }));
             })
        .def("finish",
             [](cz::StreamCompressor& self) {
                 // Safe: as flush.
                 return py::bytes(without_gil([&] { return self.finish(); }));
             })
        .def_property_readonly("bytes_in", &cz::StreamCompressor::bytes_in)
        .def_property_readonly("bytes_out", &cz::StreamCompressor::bytes_out);

    py::class_<cz::StreamDecompressor>(m, "StreamDecompressor")
        .def(py::init<std::shared_ptr<cz::Dictionary>, std::uint64_t,
                      std::shared_ptr<cz::Counters>>(),
             py::arg("dictionary").none(true), py::arg("max_output"),
             py::arg("counters").none(true))
        .def(
            "decompress",
            [](cz::StreamDecompressor& self, const py::bytes& chunk) {
                const std::string_view view = chunk;
                // Safe: immutable bytes; the object serialises its own calls with a mutex.
                return py::bytes(without_gil([&] { return self.decompress(view); }));
            },
            py::arg("chunk"))
        .def("finish", &cz::StreamDecompressor::finish)
        .def_property_readonly("at_frame_boundary", &cz::StreamDecompressor::at_frame_boundary)
        .def_property_readonly("bytes_in", &cz::StreamDecompressor::bytes_in)
        .def_property_readonly("bytes_out", &cz::StreamDecompressor::bytes_out)
        .def_property_readonly("frames", &cz::StreamDecompressor::frames);
}
