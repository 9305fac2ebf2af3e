#include "runtime/output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace nabla::runtime {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) {
  throw OutputError("cannot write '" + path + "': " + why);
}

// The folder part of `path` ("." when there is none).
std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Writes all of `bytes` to `fd`; false (errno set) on a failure.
bool write_all(int fd, std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

// A non-regular file (device, FIFO) written in place.
void write_in_place(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) fail(path, std::strerror(errno));
  const bool ok = write_all(fd, bytes);
  const int write_errno = errno;
  if (::close(fd) != 0 && ok) fail(path, std::strerror(errno));
  if (!ok) fail(path, std::strerror(write_errno));
}

// A regular file: a temporary beside it, fsync, rename over it.
void write_atomically(const std::string& path, std::string_view bytes, mode_t mode) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) fail(path, std::strerror(errno));
  bool ok = write_all(fd, bytes) && ::fsync(fd) == 0;
  int saved = errno;
  if (::close(fd) != 0 && ok) ok = false, saved = errno;
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) ok = false, saved = errno;
  if (!ok) {
    ::unlink(tmp.c_str());
    fail(path, std::strerror(saved));
  }
}

}  // namespace

void check_output(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty()) fail(path, "the name is empty");
  struct stat out {};
  if (::stat(path.c_str(), &out) != 0) {
    if (errno != ENOENT) fail(path, std::strerror(errno));
    // A new file: its folder must exist (a dangling link's target folder too).
    struct stat dir {};
    const std::string folder = folder_of(path);
    if (::stat(folder.c_str(), &dir) != 0) fail(path, "folder '" + folder + "': " + std::strerror(errno));
    if (!S_ISDIR(dir.st_mode)) fail(path, "'" + folder + "' is not a folder");
    return;
  }
  if (S_ISDIR(out.st_mode)) fail(path, "it is a folder");
  for (const std::string& input : inputs) {
    struct stat in {};
    if (input.empty() || ::stat(input.c_str(), &in) != 0) continue;
    if (in.st_dev == out.st_dev && in.st_ino == out.st_ino)
      fail(path, "it is the input '" + input + "' (an output never overwrites what the command reads)");
  }
}

void write_output(const std::string& path, std::string_view bytes, const std::vector<std::string>& inputs) {
  check_output(path, inputs);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    write_in_place(path, bytes);
    return;
  }
  // Follow a symbolic link: replace the file it names, keep the link.
  std::string target = path;
  struct stat link {};
  if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode)) {
    if (char* real = ::realpath(path.c_str(), nullptr)) {
      target = real;
      std::free(real);
    }
  }
  const bool exists = ::stat(target.c_str(), &st) == 0;
  write_atomically(target, bytes, exists ? (st.st_mode & 07777) : 0666);
}

}  // namespace nabla::runtime
