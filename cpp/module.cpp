// relay_context._core: makes one submodule per kernel and lets each kernel's binding file fill it.
#include "common/binding.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "Relay's C++ kernels. Private: use the relay_context facade.";
    relay::bind::register_error_translator();

    auto tokenizer = m.def_submodule("tokenizer", "Byte-level BPE token counter (tiktoken-exact)");
    register_tokenizer(tokenizer);

    auto compress =
        m.def_submodule("compress", "zstd / LZ4 frames, dictionaries, streaming, size cap");
    register_compress(compress);

    auto drift = m.def_submodule("drift", "Topic drift and relevance by TF-IDF cosine");
    register_drift(drift);

    auto ratelimit = m.def_submodule("ratelimit", "Rate limiters: in-process and through Redis");
    register_ratelimit(ratelimit);

    auto knapsack = m.def_submodule("knapsack", "0/1 knapsack selection of context atoms");
    register_knapsack(knapsack);

    auto fuzzy = m.def_submodule("fuzzy", "Fuzzy string similarity and a near-duplicate index");
    register_fuzzy(fuzzy);

    auto rows = m.def_submodule("rows", "Stored message rows into message objects");
    register_rows(rows);
}
