#include "hpd/busy_memory.h"

#include <condition_variable>
#include <map>
#include <mutex>

namespace hpd {
namespace {

struct Range {
  uintptr_t begin;
  uintptr_t end;
};

std::mutex& busy_mutex() {
  static std::mutex mu;
  return mu;
}

std::condition_variable& busy_changed() {
  static std::condition_variable cv;
  return cv;
}

std::map<uint64_t, Range>& busy_ranges() {
  static std::map<uint64_t, Range> ranges;
  return ranges;
}

bool overlaps_busy(uintptr_t begin, uintptr_t end) {
  for (const auto& [token, r] : busy_ranges()) {
    if (r.begin < end && begin < r.end) return true;
  }
  return false;
}

}  // namespace

uint64_t acquire_busy_memory(const void* base, uint64_t size_bytes) {
  static uint64_t next_token = 0;
  std::lock_guard<std::mutex> lk(busy_mutex());
  const uintptr_t begin = reinterpret_cast<uintptr_t>(base);
  busy_ranges()[++next_token] = Range{begin, begin + size_bytes};
  return next_token;
}

void release_busy_memory(uint64_t token) {
  if (token == 0) return;
  {
    std::lock_guard<std::mutex> lk(busy_mutex());
    busy_ranges().erase(token);
  }
  busy_changed().notify_all();
}

bool wait_memory_idle(const void* base, uint64_t size_bytes, std::chrono::milliseconds timeout) {
  const uintptr_t begin = reinterpret_cast<uintptr_t>(base);
  const uintptr_t end = begin + size_bytes;
  std::unique_lock<std::mutex> lk(busy_mutex());
  return busy_changed().wait_for(lk, timeout, [&] { return !overlaps_busy(begin, end); });
}

}  // namespace hpd
