// Memory that an off-thread kernel (pattern fill/verify, digest) is using right now.
//
// Kernels run on libuv worker threads with a raw pointer into a transfer region. Closing the
// agent or freeing the region unmaps that memory, and a kernel still running would fault
// (reproduced: close() right after digest() of a 512 MiB region → SIGSEGV). So a kernel marks
// its buffer busy for as long as it runs, and the agent waits (bounded) for the range to go idle
// before it unmaps. Thread-safe; N-API-free.
#pragma once

#include <chrono>
#include <cstdint>

namespace hpd {

/** Marks [base, base + size_bytes) busy; returns a token for release_busy_memory. */
uint64_t acquire_busy_memory(const void* base, uint64_t size_bytes);

/** Ends a busy mark (idempotent for token 0). */
void release_busy_memory(uint64_t token);

/** Waits until no busy mark overlaps [base, base + size_bytes); false when `timeout` passed first. */
bool wait_memory_idle(const void* base, uint64_t size_bytes, std::chrono::milliseconds timeout);

}  // namespace hpd
