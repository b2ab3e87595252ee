#include "hpd/thread_pool.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace hpd::kernels {
namespace {

// Leaked on purpose: workers are detached and live as long as the process, so no static
// destructor has to join a thread at exit (which would hang or terminate).
class Pool {
 public:
  explicit Pool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i) std::thread([this, i] { worker(i); }).detach();
  }
  int threads() const { return threads_; }

  void run(const std::function<void(int, int)>& fn) {
    if (threads_ == 1) {
      fn(0, 1);
      return;
    }
    std::lock_guard<std::mutex> call_lock(call_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &fn;
      pending_ = threads_ - 1;
      ++generation_;
    }
    wake_.notify_all();
    fn(0, threads_);
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void worker(int ith) {
    uint64_t seen = 0;
    for (;;) {
      const std::function<void(int, int)>* job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return generation_ != seen; });
        seen = generation_;
        job = job_;
      }
      (*job)(ith, threads_);
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (--pending_ == 0) done_.notify_one();
      }
    }
  }

  const int threads_;
  std::mutex call_mutex_;
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int, int)>* job_ = nullptr;
  int pending_ = 0;
  uint64_t generation_ = 0;
};

Pool& pool() {
  static Pool* instance = new Pool(std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, 8));
  return *instance;
}

}  // namespace

int pool_threads() { return pool().threads(); }

void parallel_for(const std::function<void(int, int)>& fn) { pool().run(fn); }

}  // namespace hpd::kernels
