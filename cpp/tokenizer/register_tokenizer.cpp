// Binding of relay::tokenizer::BpeTokenizer. Names, defaults and docstrings belong to the Python
// facade (relay_context/core/tokenizer.py); this file only exposes the C++ calls.
#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/binding.hpp"
#include "tokenizer/bpe_tokenizer.hpp"

namespace tk = relay::tokenizer;
using relay::bind::without_gil;

namespace {

// A list of token ids. Ids above 256 are not among CPython's cached small ints, so creating an
// int per id costs more than encoding it; the ints of ids seen so far are made once and shared
// (ints are immutable), which makes building the list a reference-count increment per token.
// Called with the GIL held, which guards the table; its ints live as long as the process.
py::list id_list(const std::vector<tk::Rank>& ids) {
    static std::vector<PyObject*> ints;
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(ids.size()));
    if (list == nullptr) {
        throw py::error_already_set();
    }
    auto result = py::reinterpret_steal<py::list>(list);
    for (std::size_t i = 0; i < ids.size(); ++i) {
        const tk::Rank id = ids[i];
        if (id >= ints.size()) {
            ints.resize(std::size_t{id} + 1, nullptr);
        }
        PyObject*& cached = ints[id];
        if (cached == nullptr) {
            cached = PyLong_FromUnsignedLong(id);
            if (cached == nullptr) {
                throw py::error_already_set();
            }
        }
        Py_INCREF(cached);
        PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), cached);  // steals the reference
    }
    return result;
}

}  // namespace

void register_tokenizer(py::module_& m) {
    py::enum_<tk::PatternFamily>(m, "PatternFamily")
        .value("R50K", tk::PatternFamily::kR50k)
        .value("CL100K", tk::PatternFamily::kCl100k)
        .value("O200K", tk::PatternFamily::kO200k);

    m.def("parse_tiktoken_ranks", [](const py::bytes& contents) {
        const std::string_view view = contents;
        // Safe: `view` points into an immutable bytes object the caller keeps alive.
        auto ranks = without_gil([&] { return tk::parse_tiktoken_ranks(view); });
        py::dict out;
        for (const auto& [token, rank] : ranks) {
            out[py::bytes(token)] = rank;
        }
        return out;
    });

    py::class_<tk::BpeTokenizer>(m, "BpeTokenizer")
        .def(py::init([](const py::bytes& rank_file, const std::vector<tk::RankedToken>& special,
                         tk::PatternFamily family, std::size_t memo_capacity) {
                 const std::string_view view = rank_file;
                 // Safe: parsing and table building touch only C++ data and the immutable bytes.
                 return without_gil([&] {
                     return new tk::BpeTokenizer(tk::parse_tiktoken_ranks(view), special, family,
                                                 memo_capacity);
                 });
             }),
             py::arg("rank_file"), py::arg("special_tokens"), py::arg("family"),
             py::arg("memo_capacity"))
        .def(
            "encode_ordinary",
            [](const tk::BpeTokenizer& self, std::string_view text) {
                // Safe: `text` is UTF-8 owned by the argument caster for the whole call.
                return id_list(without_gil([&] { return self.encode_ordinary(text); }));
            },
            py::arg("text"))
        .def(
            "encode",
            [](const tk::BpeTokenizer& self, std::string_view text,
               const std::vector<std::string>& allowed,
               const std::vector<std::string>& disallowed) {
                // Safe: only C++ copies and caster-owned UTF-8 are read.
                return id_list(without_gil([&] { return self.encode(text, allowed, disallowed); }));
            },
            py::arg("text"), py::arg("allowed"), py::arg("disallowed"))
        .def(
            "count",
            [](const tk::BpeTokenizer& self, std::string_view text) {
                // Safe: as encode_ordinary; the memo has its own lock.
                return without_gil([&] { return self.count(text); });
            },
            py::arg("text"))
        .def(
            "count_batch",
            [](const tk::BpeTokenizer& self, const std::vector<std::string_view>& texts,
               unsigned threads) {
                // Safe: the views point into UTF-8 buffers the casters keep alive until return.
                return without_gil([&] {
                    return self.count_batch(std::span<const std::string_view>(texts), threads);
                });
            },
            py::arg("texts"), py::arg("threads"))
        .def(
            "decode_bytes",
            [](const tk::BpeTokenizer& self, const std::vector<tk::Rank>& ids) {
                // Safe: `ids` is a C++ copy.
                auto bytes = without_gil([&] { return self.decode_bytes(ids); });
                return py::bytes(bytes);
            },
            py::arg("ids"))
        .def(
            "token_bytes",
            [](const tk::BpeTokenizer& self, tk::Rank id) {
                return py::bytes(self.token_bytes(id));
            },
            py::arg("id"))
        .def(
            "truncate_point",
            [](const tk::BpeTokenizer& self, std::string_view text, std::size_t max_tokens) {
                // Safe: as encode_ordinary.
                return without_gil([&] { return self.truncate_point(text, max_tokens); });
            },
            py::arg("text"), py::arg("max_tokens"))
        .def_property_readonly("n_vocab", &tk::BpeTokenizer::n_vocab)
        .def_property_readonly("family", &tk::BpeTokenizer::family)
        .def("memo_stats",
             [](const tk::BpeTokenizer& self) {
                 const auto s = self.memo_stats();
                 py::dict out;
                 out["hits"] = s.hits;
                 out["misses"] = s.misses;
                 out["size"] = s.size;
                 out["capacity"] = s.capacity;
                 return out;
             })
        .def("clear_memo", &tk::BpeTokenizer::clear_memo);
}
