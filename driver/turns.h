// The lock a model's calls (and a lambdified function's) take turns under,
// made to survive fork().
//
// fork() copies only the calling thread. A child made while another thread
// of the parent held an object's turn inherits the lock held by a thread
// that does not exist there, and the object in the middle of that call: a
// plain mutex made the child's calls on it wait forever. With Turns they
// throw an Error that says so instead (compile the object again in the
// child). An object free at the fork works in the child, and so does one
// whose turn the forking thread itself held (a callback under the lock): it
// carries on and unlocks there.
#pragma once

#include <mutex>
#include <string>
#include <thread>

namespace nabla::driver {

class Turns {
public:
  // `what` names the object in the error ("this model").
  explicit Turns(std::string what);
  ~Turns();
  Turns(const Turns&) = delete;
  Turns& operator=(const Turns&) = delete;

  // BasicLockable. lock() throws Error in a child where the lock was held
  // by another thread of the parent at the fork.
  void lock();
  void unlock();
  // The lock taken again after a callback ran unlocked; never throws (a
  // destructor calls it): check_not_forked_busy() after it.
  void relock();
  void check_not_forked_busy() const;

private:
  static void after_fork_in_child();
  [[noreturn]] void throw_forked_busy() const;

  std::mutex mutex_;
  std::thread::id owner_;  // the thread holding mutex_ (written under it)
  bool forked_busy_ = false;
  std::string what_;
};

}  // namespace nabla::driver
