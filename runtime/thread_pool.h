// A small persistent pool: run(parts, body) calls body(0) on the caller and
// body(1..parts-1) on workers that stay alive between calls (spawning threads
// per kernel call costs tens of microseconds, as much as a small batch's
// work). Workers spin briefly for the next job, then sleep.
//
// After fork() the child has the pool but none of its workers (fork copies
// only the calling thread): a pool made before the fork runs every part on
// the caller, one after another, and its destructor leaves the workers'
// handles alone (they name threads of the parent).
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace nabla::runtime {

class ThreadPool {
public:
  explicit ThreadPool(int workers);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  // body(0) here, body(1..parts-1) on workers; parts <= workers + 1.
  // Returns when every part has; an exception a part throws (the caller's
  // first) is thrown here then, the others dropped.
  void run(int parts, const std::function<void(int)>& body);
  // Its worker threads: run() takes at most workers() + 1 parts.
  int workers() const { return static_cast<int>(threads_.size()); }

private:
  void work(int id);

  bool forked() const;

  std::vector<std::thread> threads_;
  uint64_t forks_ = 0;  // the process's count of forks when the workers were made
  std::mutex mutex_;
  std::condition_variable wake_;
  const std::function<void(int)>* job_ = nullptr;
  int parts_ = 0;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::exception_ptr worker_error_;  // a worker's part's exception, under mutex_
  bool stop_ = false;
};

}  // namespace nabla::runtime
