// Binding of relay::fuzzy (similarity scores, batch scorers, near-duplicate index). Names,
// defaults and docstrings belong to the Python facade (relay_context/fuzzy.py).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/binding.hpp"
#include "common/errors.hpp"
#include "common/py_fastcall.hpp"
#include "common/py_text.hpp"
#include "fuzzy/near_duplicate_index.hpp"
#include "fuzzy/similarity.hpp"

namespace fz = relay::fuzzy;
using relay::bind::CodePoints;
using relay::bind::def_fastcall;
using relay::bind::fastcall_text_pair;
using relay::bind::to_text_batch;
using relay::bind::without_gil;

namespace {

// A signature as stored: its band keys, 4 bytes each, little-endian.
py::bytes signature_bytes(const fz::NearDuplicateIndex::Signature& signature) {
    std::string out(signature.band_keys.size() * 4, '\0');
    for (std::size_t i = 0; i < signature.band_keys.size(); ++i) {
        const std::uint32_t key = signature.band_keys[i];
        for (std::size_t b = 0; b < 4; ++b) {
            out[i * 4 + b] = static_cast<char>((key >> (8U * b)) & 0xFFU);
        }
    }
    return py::bytes(out);
}

fz::NearDuplicateIndex::Signature signature_from_bytes(py::handle item) {
    if (!PyBytes_Check(item.ptr())) {
        throw relay::InvalidArgument("a signature must be bytes or None");
    }
    const std::string_view raw(PyBytes_AS_STRING(item.ptr()),
                               static_cast<std::size_t>(PyBytes_GET_SIZE(item.ptr())));
    if (raw.empty() || raw.size() % 4 != 0) {
        throw relay::InvalidArgument("a signature is 4 bytes per band key, got " +
                                     std::to_string(raw.size()) + " bytes");
    }
    fz::NearDuplicateIndex::Signature signature;
    signature.band_keys.resize(raw.size() / 4);
    for (std::size_t i = 0; i < signature.band_keys.size(); ++i) {
        std::uint32_t key = 0;
        for (std::size_t b = 0; b < 4; ++b) {
            key |= static_cast<std::uint32_t>(static_cast<unsigned char>(raw[i * 4 + b]))
                   << (8U * b);
        }
        signature.band_keys[i] = key;
    }
    return signature;
}

}  // namespace

void register_fuzzy(py::module_& m) {
    py::enum_<fz::Scorer>(m, "Scorer")
        .value("RATIO", fz::Scorer::kRatio)
        .value("TOKEN_SET_RATIO", fz::Scorer::kTokenSetRatio)
        .value("LEVENSHTEIN_NORMALIZED", fz::Scorer::kLevenshteinNormalized)
        .value("INDEL_NORMALIZED", fz::Scorer::kIndelNormalized)
        .value("PARTIAL_RATIO", fz::Scorer::kPartialRatio)
        .value("TOKEN_SORT_RATIO", fz::Scorer::kTokenSortRatio)
        .value("WRATIO", fz::Scorer::kWRatio)
        .value("QRATIO", fz::Scorer::kQRatio);

    // The pairwise scorers skip pybind11's dispatch: see common/py_fastcall.hpp.
    def_fastcall<fastcall_text_pair<fz::ratio>>(m, "ratio", "ratio(s1, s2, score_cutoff)");
    def_fastcall<fastcall_text_pair<fz::token_set_ratio>>(m, "token_set_ratio",
                                                          "token_set_ratio(s1, s2, score_cutoff)");
    def_fastcall<fastcall_text_pair<fz::partial_ratio>>(m, "partial_ratio",
                                                        "partial_ratio(s1, s2, score_cutoff)");
    def_fastcall<fastcall_text_pair<fz::token_sort_ratio>>(
        m, "token_sort_ratio", "token_sort_ratio(s1, s2, score_cutoff)");
    def_fastcall<fastcall_text_pair<fz::wratio>>(m, "WRatio", "WRatio(s1, s2, score_cutoff)");
    def_fastcall<fastcall_text_pair<fz::qratio>>(m, "QRatio", "QRatio(s1, s2, score_cutoff)");
    def_fastcall<fastcall_text_pair<fz::levenshtein_normalized_similarity>>(
        m, "levenshtein_normalized_similarity",
        "levenshtein_normalized_similarity(s1, s2, score_cutoff)");
    def_fastcall<fastcall_text_pair<fz::indel_normalized_similarity>>(
        m, "indel_normalized_similarity", "indel_normalized_similarity(s1, s2, score_cutoff)");

    m.def(
        "score_many",
        [](fz::Scorer scorer, py::handle query, py::handle choices, double score_cutoff,
           unsigned threads) {
            const CodePoints text(query, "query");
            const auto batch = to_text_batch<fz::TextBatch>(choices, "choices", "every choice");
            // Safe: the query and the choices were copied into C++ buffers above.
            const std::vector<double> scores = without_gil(
                [&] { return fz::score_many(scorer, text.view(), batch, score_cutoff, threads); });
            // Native doubles (the facade wraps them in an array('d')): no float object per choice.
            return py::bytes(reinterpret_cast<const char*>(scores.data()),
                             scores.size() * sizeof(double));
        },
        py::arg("scorer"), py::arg("query"), py::arg("choices"), py::arg("score_cutoff"),
        py::arg("threads"));

    py::class_<fz::TokenSetChoices>(m, "TokenSetChoices")
        .def(py::init([](py::handle choices) {
                 auto batch = to_text_batch<fz::TextBatch>(choices, "choices", "every choice");
                 // Safe: the batch is a C++ copy of the texts.
                 return without_gil([&] { return new fz::TokenSetChoices(std::move(batch)); });
             }),
             py::arg("choices"))
        .def(
            "scores",
            [](const fz::TokenSetChoices& self, py::handle query, double score_cutoff,
               unsigned threads) {
                const CodePoints text(query, "query");
                // Safe: the query is a C++ copy; the choices are the object's own.
                const std::vector<double> scores =
                    without_gil([&] { return self.scores(text.view(), score_cutoff, threads); });
                return py::bytes(reinterpret_cast<const char*>(scores.data()),
                                 scores.size() * sizeof(double));
            },
            py::arg("query"), py::arg("score_cutoff"), py::arg("threads"))
        .def("__len__", &fz::TokenSetChoices::size);

    py::class_<fz::ScoredIndex>(m, "ScoredIndex")
        .def_readonly("index", &fz::ScoredIndex::index)
        .def_readonly("score", &fz::ScoredIndex::score);

    m.def(
        "extract",
        [](fz::Scorer scorer, py::handle query, py::handle choices, double score_cutoff,
           std::size_t limit, unsigned threads) {
            const CodePoints text(query, "query");
            const auto batch = to_text_batch<fz::TextBatch>(choices, "choices", "every choice");
            // Safe: as score_many.
            return without_gil([&] {
                return fz::extract(scorer, text.view(), batch, score_cutoff, limit, threads);
            });
        },
        py::arg("scorer"), py::arg("query"), py::arg("choices"), py::arg("score_cutoff"),
        py::arg("limit"), py::arg("threads"));

    m.def(
        "shingle_jaccard",
        [](py::handle a, py::handle b, std::size_t shingle_size) {
            const CodePoints first(a, "s1");
            const CodePoints second(b, "s2");
            return fz::shingle_jaccard(first.view(), second.view(), shingle_size);
        },
        py::arg("s1"), py::arg("s2"), py::arg("shingle_size"));
    m.def("candidate_probability", &fz::candidate_probability, py::arg("similarity"),
          py::arg("bands"), py::arg("rows"));

    py::class_<fz::NearDuplicate>(m, "NearDuplicate")
        .def_readonly("key", &fz::NearDuplicate::key)
        .def_readonly("score", &fz::NearDuplicate::score);

    py::class_<fz::NearDuplicateIndex::EarlierBatch>(m, "EarlierBatch")
        .def_property_readonly(
            "similar",
            [](const fz::NearDuplicateIndex::EarlierBatch& self) { return self.similar; })
        .def_property_readonly("into",
                               [](const fz::NearDuplicateIndex::EarlierBatch& self) {
                                   // -1 for a text that did not collapse.
                                   std::vector<std::int64_t> out(self.into.size());
                                   for (std::size_t i = 0; i < out.size(); ++i) {
                                       const std::uint32_t to = self.into[i];
                                       out[i] = to == fz::NearDuplicateIndex::kNotCollapsed
                                                    ? -1
                                                    : static_cast<std::int64_t>(to);
                                   }
                                   return out;
                               })
        .def(
            "signature",
            [](const fz::NearDuplicateIndex::EarlierBatch& self, std::size_t i) {
                if (i >= self.signatures.size()) {
                    throw relay::InvalidArgument("position " + std::to_string(i) +
                                                 " is not in the batch of " +
                                                 std::to_string(self.signatures.size()));
                }
                return signature_bytes(self.signatures[i]);
            },
            py::arg("position"))
        .def("__len__",
             [](const fz::NearDuplicateIndex::EarlierBatch& self) { return self.texts.size(); });

    py::class_<fz::NearDuplicateIndex>(m, "NearDuplicateIndex")
        .def(py::init([](std::size_t shingle_size, std::size_t num_perm, std::size_t bands,
                         std::uint64_t seed) {
                 return new fz::NearDuplicateIndex(
                     fz::NearDuplicateOptions{.shingle_size = shingle_size,
                                              .num_perm = num_perm,
                                              .bands = bands,
                                              .seed = seed});
             }),
             py::arg("shingle_size"), py::arg("num_perm"), py::arg("bands"), py::arg("seed"))
        .def(
            "add",
            [](fz::NearDuplicateIndex& self, std::string key, py::handle text) {
                const CodePoints code_points(text, "text");
                // Safe: key and text are C++ copies; the index has its own lock.
                without_gil([&] { self.add(std::move(key), code_points.view()); });
            },
            py::arg("key"), py::arg("text"))
        .def(
            "add_many",
            [](fz::NearDuplicateIndex& self, const std::vector<std::string>& keys, py::handle texts,
               unsigned threads) {
                const auto batch = to_text_batch<fz::TextBatch>(texts, "texts", "every text");
                // Safe: keys and texts are C++ copies; the index has its own lock.
                without_gil([&] { self.add_many(keys, batch, threads); });
            },
            py::arg("keys"), py::arg("texts"), py::arg("threads"))
        .def(
            "similar_earlier",
            [](const fz::NearDuplicateIndex& self, py::handle texts, double threshold) {
                const auto batch = to_text_batch<fz::TextBatch>(texts, "texts", "every text");
                // Safe: the texts are C++ copies; the index is not touched.
                return without_gil([&] { return self.similar_earlier(batch, threshold); });
            },
            py::arg("texts"), py::arg("threshold"))
        .def(
            "similar_earlier_kept",
            [](const fz::NearDuplicateIndex& self, py::handle texts, double threshold) {
                auto batch = to_text_batch<fz::TextBatch>(texts, "texts", "every text");
                // Safe: the texts are C++ copies; the index is not touched.
                return without_gil(
                    [&] { return self.similar_earlier_kept(std::move(batch), threshold); });
            },
            py::arg("texts"), py::arg("threshold"))
        .def(
            "signature",
            [](const fz::NearDuplicateIndex& self, py::handle text) {
                const CodePoints code_points(text, "text");
                // Safe: the text is a C++ copy; signing reads only the options.
                return signature_bytes(
                    without_gil([&] { return self.signature(code_points.view()); }));
            },
            py::arg("text"))
        .def(
            "collapse_earlier",
            [](const fz::NearDuplicateIndex& self, py::handle texts, const py::list& signatures,
               const py::bytes& pinned, double threshold, double ratio_cutoff) {
                auto batch = to_text_batch<fz::TextBatch>(texts, "texts", "every text");
                std::vector<fz::NearDuplicateIndex::Signature> known(signatures.size());
                for (std::size_t i = 0; i < known.size(); ++i) {
                    const py::handle item = signatures[i];
                    if (!item.is_none()) {
                        known[i] = signature_from_bytes(item);
                    }
                }
                const std::string flags = pinned;
                const auto* begin = reinterpret_cast<const std::uint8_t*>(flags.data());
                // Safe: texts, signatures and flags are C++ copies; the index is not touched.
                return without_gil([&] {
                    return self.collapse_earlier(std::move(batch), std::move(known),
                                                 {begin, flags.size()}, threshold, ratio_cutoff);
                });
            },
            py::arg("texts"), py::arg("signatures"), py::arg("pinned"), py::arg("threshold"),
            py::arg("ratio_cutoff"))
        .def(
            "add_from",
            [](fz::NearDuplicateIndex& self, const fz::NearDuplicateIndex::EarlierBatch& batch,
               const std::vector<std::uint32_t>& positions, const std::vector<std::string>& keys) {
                // Safe: positions and keys are C++ copies, the batch is immutable while Python
                // holds it (no method changes it); the index has its own lock.
                without_gil([&] { self.add_from(batch, positions, keys); });
            },
            py::arg("batch"), py::arg("positions"), py::arg("keys"))
        .def(
            "remove",
            [](fz::NearDuplicateIndex& self, const std::string& key) {
                // Safe: `key` is a C++ copy; the index has its own lock.
                return without_gil([&] { return self.remove(key); });
            },
            py::arg("key"))
        .def(
            "query",
            [](const fz::NearDuplicateIndex& self, py::handle text, double threshold) {
                const CodePoints code_points(text, "text");
                // Safe: the text is a C++ copy; queries share the index's lock.
                return without_gil([&] { return self.query(code_points.view(), threshold); });
            },
            py::arg("text"), py::arg("threshold"))
        .def(
            "contains",
            [](const fz::NearDuplicateIndex& self, const std::string& key) {
                // Safe: as remove.
                return without_gil([&] { return self.contains(key); });
            },
            py::arg("key"))
        .def("clear",
             [](fz::NearDuplicateIndex& self) {
                 // Safe: touches only the index, under its own lock.
                 without_gil([&] { self.clear(); });
             })
        .def("__len__", &fz::NearDuplicateIndex::size)
        .def_property_readonly("rows", &fz::NearDuplicateIndex::rows);
}
