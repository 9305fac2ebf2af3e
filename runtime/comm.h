// The processes of a data-parallel training job (docs/distributed.md): MPI's
// world when the program was started by mpirun with more than one process and
// MPI support is built in (NABLA_HAVE_MPI), else none. Training sums
// gradients across them with one allreduce per step (runtime/train.cpp).
//
// MPI is initialized on first use of world(), only under mpirun, and
// finalized when the process exits normally. MPI itself lives in a plugin,
// libnabla_mpi.so (comm_mpi.cpp), loaded then: a program that never runs
// under mpirun neither loads Open MPI's libraries nor needs them installed.
// A process that exits otherwise (an error, a signal) makes mpirun end the
// whole job, naming the rank: the processes never wait for a peer that is
// gone.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/npz.h"

namespace nabla::runtime {

enum class ReduceOp : uint8_t { Sum, Max };

class Comm {
public:
  virtual ~Comm() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Combines `count` elements of `t` in place across every process.
  virtual void allreduce(void* data, int64_t count, DType t, ReduceOp op) const = 0;
  // Rank `root`'s bytes to every process.
  virtual void broadcast(void* data, int64_t bytes, int root) const = 0;
  // Ends every process of the job with `code` (MPI_Abort).
  [[noreturn]] virtual void abort(int code) const = 0;
};

// Whether this build has MPI support (built the plugin).
bool mpi_built();

// The plugin world() would load: $NABLA_MPI_PLUGIN when set (only it),
// else libnabla_mpi.so beside the program or module holding this code,
// else the one the build made. Empty when none of them is a file.
std::string mpi_plugin_path();

// The plugin's entry point: `const Comm* nabla_mpi_world_v1(char* error,
// size_t error_size)` starts MPI, or returns nullptr with the reason. The
// version changes with Comm's layout, so a stale plugin is refused.
inline constexpr const char* kMpiEntry = "nabla_mpi_world_v1";

// The number of processes mpirun started (from its environment), 1 when the
// program was not started by mpirun.
int launched_processes();

// The job's processes when there are several and MPI support is built in;
// nullptr otherwise. Throws std::runtime_error when started by mpirun with
// several processes and MPI support is not built in, the plugin is missing
// or cannot load, or MPI cannot start.
const Comm* world();

// The job's processes if world() has started them, else nullptr (never
// starts MPI).
const Comm* started_world();

}  // namespace nabla::runtime
