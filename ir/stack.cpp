#include "ir/stack.h"

#include <pthread.h>

#include <exception>
#include <stdexcept>

namespace nabla {
namespace {

struct Job {
  const std::function<int()>* work;
  int result = 0;
  std::exception_ptr error;
};

void* trampoline(void* arg) {
  Job* job = static_cast<Job*>(arg);
  try {
    job->result = (*job->work)();
  } catch (...) {
    job->error = std::current_exception();
  }
  return nullptr;
}

}  // namespace

int run_on_large_stack(const std::function<int()>& work, std::size_t stack_bytes) {
  Job job{&work, 0, nullptr};
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  pthread_t thread;
  const int rc = pthread_create(&thread, &attr, trampoline, &job);
  pthread_attr_destroy(&attr);
  if (rc != 0) return work();  // no thread: run here, with the stack we have
  pthread_join(thread, nullptr);
  if (job.error) std::rethrow_exception(job.error);
  return job.result;
}

}  // namespace nabla
