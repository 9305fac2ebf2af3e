// The MPI plugin, libnabla_mpi.so (runtime/CMakeLists.txt): the job's
// processes over MPI, for comm.cpp, which loads this library only when the
// program was started by mpirun with several processes. Linked into the
// program, Open MPI's libraries cost every start about 3 ms (the loader's
// relocations and their constructors) and made every program and module of
// the library need them installed; loaded on demand, they cost only a job.
//
// One C entry point, kMpiEntry (comm.h), so that no exception and no C++
// name crosses the boundary; the Comm it returns lives until the process
// exits, and MPI is finalized then (atexit). The plugin is never unloaded.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <new>

#include "runtime/comm.h"

namespace {

using nabla::runtime::Comm;
using nabla::runtime::DType;
using nabla::runtime::ReduceOp;

MPI_Datatype mpi_type(DType t) { return t == DType::F32 ? MPI_FLOAT : MPI_DOUBLE; }

class MpiComm final : public Comm {
public:
  MpiComm(int rank, int size) : rank_(rank), size_(size) {}
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
  int rank_, size_;
};

}  // namespace

// Starts MPI and returns the world, or nullptr with the reason in `error`
// (at most `error_size` bytes, terminated). Called once (comm.cpp).
extern "C" __attribute__((visibility("default"))) const Comm* nabla_mpi_world_v1(char* error, size_t error_size) {
  int provided = 0;
  // SERIALIZED: the module may train from any Python thread, one at a time.
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
    std::snprintf(error, error_size, "MPI could not start");
    return nullptr;
  }
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  std::atexit([] {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  });
  auto* comm = new (std::nothrow) MpiComm(rank, size);
  if (!comm) std::snprintf(error, error_size, "out of memory starting MPI");
  return comm;
}
