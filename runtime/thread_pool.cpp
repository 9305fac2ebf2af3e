#include "runtime/thread_pool.h"

#include <pthread.h>

#include <chrono>

namespace nabla::runtime {

namespace {

// Forks this process has gone through, as seen by the child (an atfork
// handler counts them): reading it costs nothing, unlike getpid(), a system
// call on every kernel call.
std::atomic<uint64_t> fork_count{0};

uint64_t forks_so_far() {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, [] { fork_count.fetch_add(1, std::memory_order_relaxed); });
    return true;
  }();
  (void)registered;
  return fork_count.load(std::memory_order_relaxed);
}

}  // namespace

bool ThreadPool::forked() const { return forks_so_far() != forks_; }

ThreadPool::ThreadPool(int workers) : forks_(forks_so_far()) {
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this, i] { work(i + 1); });
}

ThreadPool::~ThreadPool() {
  if (forked()) {
    // The handles name the parent's threads: joining them would wait
    // forever, and destroying a joinable handle terminates. They are kept.
    new std::vector<std::thread>(std::move(threads_));
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run(int parts, const std::function<void(int)>& body) {
  if (parts <= 1 || threads_.empty()) {
    body(0);
    return;
  }
  if (forked()) {
    for (int i = 0; i < parts; ++i) body(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = &body;
    parts_ = parts;
    pending_.store(parts - 1);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  // The workers use `body` until they are done: wait for them even when
  // the caller's part throws.
  std::exception_ptr error;
  try {
    body(0);
  } catch (...) {
    error = std::current_exception();
  }
  while (pending_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!error) error = worker_error_;
    worker_error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

void ThreadPool::work(int id) {
  uint64_t seen = 0;
  for (;;) {
    // Spin a little for the next job (kernel calls come back to back), then sleep.
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < until) {
    }
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [&] { return generation_.load() != seen; });
    seen = generation_.load();
    if (stop_) return;
    const std::function<void(int)>* job = job_;
    const bool mine = id < parts_;
    lock.unlock();
    if (mine) {
      try {
        (*job)(id);
      } catch (...) {
        std::lock_guard<std::mutex> guard(mutex_);
        if (!worker_error_) worker_error_ = std::current_exception();
      }
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace nabla::runtime
