#include "runtime/comm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>

#ifdef NABLA_HAVE_MPI
#include <mpi.h>
#endif

namespace nabla::runtime {

int launched_processes() {
  // Open MPI's, then the PMI variables other launchers set.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"}) {
    const char* v = std::getenv(name);
    if (!v || !*v) continue;
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end == '\0' && n >= 1 && n <= std::numeric_limits<int>::max()) return static_cast<int>(n);
  }
  return 1;
}

#ifdef NABLA_HAVE_MPI

namespace {

MPI_Datatype mpi_type(DType t) { return t == DType::F32 ? MPI_FLOAT : MPI_DOUBLE; }

class MpiComm final : public Comm {
public:
  MpiComm() {
    int provided = 0;
    // SERIALIZED: the module may train from any Python thread, one at a time.
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
      throw std::runtime_error("MPI could not start");
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    std::atexit([] {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) MPI_Finalize();
    });
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  void allreduce(void* data, int64_t count, DType t, ReduceOp op) const override {
    // MPI counts are ints: a larger buffer goes in pieces.
    const int64_t chunk = std::numeric_limits<int>::max() / 2;
    const int eb = t == DType::F32 ? 4 : 8;
    for (int64_t at = 0; at < count; at += chunk) {
      const int n = static_cast<int>(std::min(chunk, count - at));
      MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(data) + at * eb, n, mpi_type(t),
                    op == ReduceOp::Sum ? MPI_SUM : MPI_MAX, MPI_COMM_WORLD);
    }
  }
  void broadcast(void* data, int64_t bytes, int root) const override {
    const int64_t chunk = std::numeric_limits<int>::max() / 2;
    for (int64_t at = 0; at < bytes; at += chunk)
      MPI_Bcast(static_cast<char*>(data) + at, static_cast<int>(std::min(chunk, bytes - at)), MPI_BYTE, root,
                MPI_COMM_WORLD);
  }
  [[noreturn]] void abort(int code) const override {
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

private:
  int rank_ = 0, size_ = 1;
};

}  // namespace

bool mpi_built() { return true; }

namespace {
std::once_flag started;
std::atomic<MpiComm*> the_world{nullptr};  // lives until exit (finalized by atexit)
}  // namespace

const Comm* world() {
  if (launched_processes() <= 1) return nullptr;
  std::call_once(started, [] { the_world.store(new MpiComm); });
  const MpiComm* comm = the_world.load();
  return comm->size() > 1 ? comm : nullptr;
}

const Comm* started_world() {
  const MpiComm* comm = the_world.load();
  return comm && comm->size() > 1 ? comm : nullptr;
}

#else

bool mpi_built() { return false; }

const Comm* world() {
  if (const int n = launched_processes(); n > 1)
    throw std::runtime_error("started by mpirun with " + std::to_string(n) +
                             " processes, but this nabla was built without MPI support: every process would "
                             "train alone. Install libopenmpi-dev (scripts/setup.sh) and rebuild");
  return nullptr;
}

const Comm* started_world() { return nullptr; }

#endif

}  // namespace nabla::runtime
