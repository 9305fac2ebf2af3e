#include "driver/turns.h"

#include <pthread.h>

#include <new>
#include <set>

#include "driver/error.h"

namespace nabla::driver {
namespace {

// Every live Turns, for the child's fork handler; never destroyed (objects
// may outlive static destruction).
std::mutex& registry_mutex() {
  static auto* m = new std::mutex;
  return *m;
}

std::set<Turns*>& registry() {
  static auto* all = new std::set<Turns*>;
  return *all;
}

// The registry is locked across fork(), so the child's copy is whole.
void register_fork_handlers(void (*child)()) {
  static const bool once = [child] {
    pthread_atfork([] { registry_mutex().lock(); }, [] { registry_mutex().unlock(); }, child);
    return true;
  }();
  (void)once;
}

}  // namespace

Turns::Turns(std::string what) : what_(std::move(what)) {
  register_fork_handlers(&Turns::after_fork_in_child);  // before the registry's lock: pthread_atfork waits for a fork
  std::lock_guard guard(registry_mutex());
  registry().insert(this);
}

Turns::~Turns() {
  std::lock_guard guard(registry_mutex());
  registry().erase(this);
}

void Turns::after_fork_in_child() {
  for (Turns* t : registry()) {
    // Held by the thread that forked (a callback under the lock): it
    // carries on in the child and unlocks.
    if (t->owner_ == std::this_thread::get_id()) continue;
    if (t->mutex_.try_lock()) {
      t->mutex_.unlock();
      continue;
    }
    t->forked_busy_ = true;  // held by a thread of the parent
    new (&t->mutex_) std::mutex();
  }
  registry_mutex().unlock();
}

void Turns::lock() {
  relock();
  if (forked_busy_) {
    unlock();
    throw_forked_busy();
  }
}

void Turns::unlock() {
  owner_ = std::thread::id();
  mutex_.unlock();
}

void Turns::relock() {
  mutex_.lock();
  owner_ = std::this_thread::get_id();
}

void Turns::check_not_forked_busy() const {
  if (forked_busy_) throw_forked_busy();
}

void Turns::throw_forked_busy() const {
  throw Error(what_ + " was in use by another thread when the process forked (fork copies only the calling thread, "
              "so that call never ends here): make it again in the child");
}

}  // namespace nabla::driver
