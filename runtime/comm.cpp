#include "runtime/comm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <stdexcept>

#ifdef NABLA_HAVE_MPI
#include <dlfcn.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <vector>
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

constexpr const char* kPluginFile = "libnabla_mpi.so";

bool is_file(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// `path` made absolute, links resolved; empty when it names nothing.
std::string resolved(const char* path) {
  char* r = ::realpath(path, nullptr);
  if (!r) return "";
  std::string out = r;
  std::free(r);
  return out;
}

// The file of the program or library holding this code. dladdr names the
// main program by its argv[0] (a bare "nabla" when found on PATH), so the
// program's file is the kernel's word for it, /proc/self/exe.
std::string own_file() {
  Dl_info info{};
  if (!::dladdr(reinterpret_cast<void*>(&launched_processes), &info) || !info.dli_fname) return "";
  const bool main_program = std::strcmp(info.dli_fname, program_invocation_name) == 0 || !std::strchr(info.dli_fname, '/');
  return resolved(main_program ? "/proc/self/exe" : info.dli_fname);
}

// Where world() looks for the plugin, in order (mpi_plugin_path()): every
// candidate absolute, so the file checked is the file loaded (dlopen would
// search the library path for a name without a slash).
std::vector<std::string> plugin_candidates() {
  if (const char* p = std::getenv("NABLA_MPI_PLUGIN"); p && *p) {
    const std::string r = resolved(p);
    return {r.empty() ? std::string(p) : r};
  }
  std::vector<std::string> paths;
  if (const std::string self = own_file(); !self.empty())
    paths.push_back(self.substr(0, self.rfind('/') + 1) + kPluginFile);
  paths.push_back(NABLA_MPI_PLUGIN_DEFAULT);
  return paths;
}

// The first of `paths` that is a file, or "".
std::string first_file(const std::vector<std::string>& paths) {
  for (const std::string& p : paths)
    if (is_file(p)) return p;
  return "";
}

// Loads the plugin and starts MPI; throws with what went wrong.
const Comm* start_world(int processes) {
  const std::vector<std::string> paths = plugin_candidates();
  const std::string path = first_file(paths);
  const std::string context = "started by mpirun with " + std::to_string(processes) + " processes, but ";
  if (path.empty()) {
    std::string looked;
    for (const std::string& p : paths) looked += (looked.empty() ? "" : ", ") + escaped(p);
    throw std::runtime_error(context + "its MPI plugin is missing (no file at " + looked +
                             "): set NABLA_MPI_PLUGIN to the " + kPluginFile + " this nabla was built with");
  }
  // GLOBAL: Open MPI opens its own components, which look for its symbols
  // in the global scope. NODELETE: MPI is finalized at exit, by the plugin.
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE);
  if (!handle) {
    const char* why = ::dlerror();
    throw std::runtime_error(context + "the MPI plugin " + escaped(path) + " cannot be loaded: " +
                             escaped(why ? why : "unknown error"));
  }
  using Entry = const Comm* (*)(char*, size_t);
  auto entry = reinterpret_cast<Entry>(::dlsym(handle, kMpiEntry));
  if (!entry)
    throw std::runtime_error(context + escaped(path) + " is not an MPI plugin of this nabla (it has no " +
                             kMpiEntry + ")");
  char error[256] = "";
  const Comm* comm = entry(error, sizeof error);
  if (!comm) throw std::runtime_error(context + (error[0] ? error : "MPI could not start"));
  return comm;
}

std::once_flag started;
std::atomic<const Comm*> the_world{nullptr};  // lives until exit (finalized by the plugin, atexit)
std::string start_error;  // why the one start failed: MPI may not be started twice

}  // namespace

bool mpi_built() { return true; }

std::string mpi_plugin_path() { return first_file(plugin_candidates()); }

const Comm* world() {
  const int processes = launched_processes();
  if (processes <= 1) return nullptr;
  std::call_once(started, [&] {
    try {
      the_world.store(start_world(processes));
    } catch (const std::exception& e) {
      start_error = e.what();
    }
  });
  const Comm* comm = the_world.load();
  if (!comm) throw std::runtime_error(start_error);
  return comm->size() > 1 ? comm : nullptr;
}

const Comm* started_world() {
  const Comm* comm = the_world.load();
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

std::string mpi_plugin_path() { return ""; }

#endif

}  // namespace nabla::runtime
