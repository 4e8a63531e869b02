// Cold-cache profile of the C++ tokenizer alone: encodes each file once on a new thread (whose
// piece cache and pair-check memo start empty, as in bench_tokenizer.py --natural) and prints
// the median thread CPU time. Under callgrind, --toggle-collect=run_cold counts only the
// encoding, not the tokenizer's construction:
//
//   cmake -S . -B build/prof -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-g
//         -DRELAY_BUILD_PYTHON=OFF -DRELAY_KERNELS=tokenizer && cmake --build build/prof
//   g++ -std=c++20 -O3 -g -I cpp benchmarks/tokenizer_cold_profile.cpp
//       build/prof/cpp/librelay_core.a $(pkg-config --libs libxxhash) -labsl_hash
//       -labsl_raw_hash_set -labsl_city -labsl_low_level_hash -lpthread -o /tmp/tokprof
//   valgrind --tool=callgrind --cache-sim=yes --LL=1048576,16,64 --toggle-collect=run_cold
//       /tmp/tokprof o200k 1 russian.txt        # RELAY_SHARED_DIR: default ../shared
//
// (each command on one line).
// (texts: python benchmarks/natural_corpus.py builds them; write each script's string to a
// file). Estimated cycles, as docs/tokenizer.md reports them: Ir + 10 x (I1mr + D1mr + D1mw) +
// 40 x (ILmr + DLmr + DLmw).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tokenizer/bpe_tokenizer.hpp"

namespace {

using relay::tokenizer::BpeTokenizer;
using relay::tokenizer::PatternFamily;

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

double thread_cpu_seconds() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

// Not inlined, and with C linkage, so that callgrind can toggle on it by name.
extern "C" __attribute__((noinline)) std::size_t run_cold(const BpeTokenizer* tok,
                                                          const std::string* text) {
    return tok->encode_ordinary(*text).size();
}

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s cl100k|o200k REPS FILE...\n", argv[0]);
        return 2;
    }
    const std::string enc = argv[1];
    const int reps = std::max(1, std::atoi(argv[2]));
    // The official rank files beside the checkout, as the tests find them.
    const char* env = std::getenv("RELAY_SHARED_DIR");
    const std::string shared = env != nullptr ? env : "../shared";
    BpeTokenizer tok(relay::tokenizer::parse_tiktoken_ranks(
                         read_file(shared + "/data/bpe/" + enc + "_base.tiktoken")),
                     {}, enc == "o200k" ? PatternFamily::kO200k : PatternFamily::kCl100k, 0);
    // RELAY_PROF_EVICT=1: before each run, write and read 64 MB, as the Python benchmark's
    // tiktoken run before Relay's does, so the vocabulary structures start out of the caches.
    const char* evict_env = std::getenv("RELAY_PROF_EVICT");
    const bool evict = evict_env != nullptr && evict_env[0] == '1';
    std::vector<unsigned char> junk(evict ? std::size_t{64} << 20U : 0);
    volatile unsigned sink = 0;
    double total = 0;
    for (int i = 3; i < argc; ++i) {
        const std::string text = read_file(argv[i]);
        std::vector<double> times;
        std::size_t n = 0;
        for (int r = 0; r < reps; ++r) {
            if (evict) {
                unsigned acc = 0;
                for (std::size_t k = 0; k < junk.size(); k += 64) {
                    junk[k] = static_cast<unsigned char>(junk[k] + 1);
                    acc += junk[k];
                }
                sink = sink + acc;
            }
            double dt = 0;
            std::thread worker([&] {
                const double t0 = thread_cpu_seconds();
                n = run_cold(&tok, &text);
                dt = thread_cpu_seconds() - t0;
            });
            worker.join();
            times.push_back(dt);
        }
        std::sort(times.begin(), times.end());
        const double median = times[times.size() / 2];
        total += median;
        std::printf("%-40s %8zu tokens %8.3f ms\n", argv[i], n, median * 1e3);
    }
    std::printf("total %.3f ms\n", total * 1e3);
    return 0;
}
