#include "runtime/output.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

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

// `path` with its symbolic links followed to the file they name, which need
// not exist (a dangling link names the file to create). At most 40 links,
// as the kernel follows; a relative link is relative to its own folder.
std::string resolve_links(const std::string& path) {
  std::string at = path;
  for (int hop = 0; hop < 40; ++hop) {
    struct stat st {};
    if (::lstat(at.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return at;
    std::string target(static_cast<size_t>(PATH_MAX), '\0');
    const ssize_t n = ::readlink(at.c_str(), target.data(), target.size());
    if (n <= 0) return at;
    target.resize(static_cast<size_t>(n));
    at = target.front() == '/' ? target : folder_of(at) + "/" + target;
  }
  fail(path, "too many levels of symbolic links");
}

// The name of the temporary a write of `path` goes through, less its PID:
// `NAME.tmp.` beside it. A NAME too long for the whole to stay within the
// 255 bytes a file name may have (a 251-byte NAME is a valid output) is cut
// at a character's boundary and ends with a hash of the whole NAME, so two
// long names alike in their first bytes get temporaries of their own.
std::string temporary_base(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = path.substr(slash == std::string::npos ? 0 : slash + 1);
  constexpr size_t kRoom = 255 - 5 - 10;  // ".tmp." and a PID's digits
  if (base.size() > kRoom) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : base) h = (h ^ c) * 1099511628211ull;
    char tag[18];
    std::snprintf(tag, sizeof tag, "~%016llx", static_cast<unsigned long long>(h));
    size_t keep = kRoom - 17;
    while (keep > 0 && (static_cast<unsigned char>(base[keep]) & 0xC0) == 0x80) --keep;  // not inside a UTF-8 character
    base = base.substr(0, keep) + tag;
  }
  return base + ".tmp.";
}

std::string temporary_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  return (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + temporary_base(path) +
         std::to_string(::getpid());
}

// The temporaries that killed writers left (a process that no longer
// exists): removed before a new one is made, so they do not pile up beside
// the output.
void remove_stale_temporaries(const std::string& path) {
  const std::string folder = folder_of(path);
  const std::string prefix = temporary_base(path);
  DIR* dir = ::opendir(folder.c_str());
  if (!dir) return;
  while (const dirent* e = ::readdir(dir)) {
    const std::string name = e->d_name;
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string digits = name.substr(prefix.size());
    if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(digits));
    if (pid <= 0 || pid == ::getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;
    ::unlink((folder + "/" + name).c_str());
  }
  ::closedir(dir);
}

// A regular file: a temporary beside it, fsync, rename over it.
void write_atomically(const std::string& path, std::string_view bytes, mode_t mode) {
  remove_stale_temporaries(path);
  const std::string tmp = temporary_of(path);
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

// Makes a file where a write of `path` (a regular file, or a new one) would
// make its temporary, so that a folder that takes no new file (a read-only
// file system, /proc, /sys) is refused before any work is spent, not after
// an epoch of training: an unnamed file (O_TMPFILE) where the file system
// makes them (nothing to collide with another writer's temporary, nothing
// left by a kill), else the named temporary, made and removed.
void probe_temporary(const std::string& path) {
  const std::string target = resolve_links(path);
  int fd = ::open(folder_of(target).c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) fail(path, std::strerror(errno));
  const std::string tmp = temporary_of(target);
  fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return;  // this process's own, being written
    fail(path, std::strerror(errno));
  }
  ::close(fd);
  ::unlink(tmp.c_str());
}

}  // namespace

void check_output(const std::string& path, const std::vector<std::string>& inputs) {
  if (path.empty()) fail(path, "the name is empty");
  struct stat out {};
  if (::stat(path.c_str(), &out) != 0) {
    if (errno != ENOENT) fail(path, std::strerror(errno));
    // A new file: its folder must exist (a dangling link's target folder).
    struct stat dir {};
    const std::string folder = folder_of(resolve_links(path));
    if (::stat(folder.c_str(), &dir) != 0) fail(path, "folder '" + folder + "': " + std::strerror(errno));
    if (!S_ISDIR(dir.st_mode)) fail(path, "'" + folder + "' is not a folder");
    probe_temporary(path);
    return;
  }
  if (S_ISDIR(out.st_mode)) fail(path, "it is a folder");
  // A file the user may not write (read-only, another user's) is not
  // replaced, though its folder would allow the rename: as `>` in a shell.
  if (::access(path.c_str(), W_OK) != 0) fail(path, std::strerror(errno));
  for (const std::string& input : inputs) {
    struct stat in {};
    if (input.empty() || ::stat(input.c_str(), &in) != 0) continue;
    if (in.st_dev == out.st_dev && in.st_ino == out.st_ino)
      fail(path, "it is the input '" + input + "' (an output never overwrites what the command reads)");
  }
  if (S_ISREG(out.st_mode)) probe_temporary(path);
}

void write_output(const std::string& path, std::string_view bytes, const std::vector<std::string>& inputs) {
  check_output(path, inputs);
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    write_in_place(path, bytes);
    return;
  }
  // Follow symbolic links: replace (or create) the file they name, keep them.
  const std::string target = resolve_links(path);
  const bool exists = ::stat(target.c_str(), &st) == 0;
  write_atomically(target, bytes, exists ? (st.st_mode & 07777) : 0666);
}

}  // namespace nabla::runtime
