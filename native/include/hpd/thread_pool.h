// A tiny persistent thread pool for the kernels (ggml style): parallel_for(fn) runs fn(ith, nth)
// on nth threads, the caller being ith 0, and returns when all are done. Workers sleep on a
// condition variable between calls (no busy waiting: two cores are shared with OpenBLAS and
// other processes). Calls are serialized by a mutex: the callers are the JS main thread and the
// libuv thread that runs a recorded kernel program (napi/kernels.cc), one call at a time.
#pragma once

#include <functional>

namespace hpd::kernels {

/** Number of threads parallel_for uses (hardware concurrency, at most 8, at least 1). */
int pool_threads();

/** Runs fn(ith, nth) for ith in [0, nth) on the pool and waits for all of them. */
void parallel_for(const std::function<void(int, int)>& fn);

}  // namespace hpd::kernels
