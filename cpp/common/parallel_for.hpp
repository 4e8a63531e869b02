// Static-chunked parallel loop for the kernels' batch calls.
#pragma once

#include <algorithm>
#include <cstddef>
#include <thread>
#include <vector>

namespace relay {

// Runs fn(i) for every i in [0, n) on up to `threads` threads (the calling one included), each
// thread taking one contiguous chunk. Fewer threads are used when a chunk would hold fewer than
// `min_per_thread` items: below that, starting a thread costs more than it saves. `fn` must not
// throw (a throw on a worker thread terminates).
template <class Fn>
void parallel_for(std::size_t n, unsigned threads, std::size_t min_per_thread, Fn&& fn) {
    const std::size_t workers = std::min<std::size_t>(
        std::max(1U, threads),
        std::max<std::size_t>(n / std::max<std::size_t>(min_per_thread, 1), 1));
    if (workers <= 1) {
        for (std::size_t i = 0; i < n; ++i) {
            fn(i);
        }
        return;
    }
    std::vector<std::jthread> pool;
    pool.reserve(workers - 1);
    const std::size_t chunk = (n + workers - 1) / workers;
    for (std::size_t t = 1; t < workers; ++t) {
        pool.emplace_back([&fn, t, chunk, n] {
            for (std::size_t i = t * chunk; i < std::min(n, (t + 1) * chunk); ++i) {
                fn(i);
            }
        });
    }
    for (std::size_t i = 0; i < std::min(n, chunk); ++i) {
        fn(i);
    }
}

}  // namespace relay
