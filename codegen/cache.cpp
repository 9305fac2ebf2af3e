#include "codegen/cache.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string_view>

namespace nabla::codegen {
namespace {

constexpr std::string_view kMagic = "nabla-kernel-cache 1";
// The largest entry read (an object file of a model's kernels is megabytes).
constexpr uint64_t kMaxEntryBytes = uint64_t{1} << 31;

uint64_t mix(uint64_t h) {  // the MurmurHash3 finalizer
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// Two independent 64-bit FNV-1a style streams, each finalized.
void hash128(const std::string& s, uint64_t* a, uint64_t* b) {
  uint64_t h1 = 0xcbf29ce484222325ULL, h2 = 0x84222325cbf29ce4ULL ^ s.size();
  for (unsigned char ch : s) {
    h1 = (h1 ^ ch) * 0x100000001b3ULL;
    h2 = (h2 + ch) * 0x9e3779b97f4a7c15ULL;
    h2 ^= h2 >> 29;
  }
  *a = mix(h1 ^ s.size());
  *b = mix(h2 + h1);
}

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string entry_path(const std::string& dir, const std::string& key) { return dir + "/" + key + ".o"; }

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("NABLA_CACHE_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/nabla";
  // A home that is not there ("/nonexistent", a system user's) means no
  // cache, not a tree made from the root.
  std::error_code ec;
  if (const char* h = std::getenv("HOME"); h && *h && std::filesystem::is_directory(h, ec))
    return std::string(h) + "/.cache/nabla";
  return "";
}

std::string shipped_support_dir() {
  if (const char* d = std::getenv("NABLA_SUPPORT_DIR"); d && *d) return d;
#ifdef NABLA_SUPPORT_DIR_DEFAULT
  return NABLA_SUPPORT_DIR_DEFAULT;
#else
  return "";
#endif
}

std::string cache_key(const std::string& material) {
  uint64_t a = 0, b = 0;
  hash128(material, &a, &b);
  return hex(a) + hex(b);
}

// An entry is a regular file the cache wrote: anything else under its name
// (a FIFO, which would block the read, a device such as /dev/zero, which
// never ends, a symbolic link) is a miss, and so is a header whose size is
// not the file's. The file is read whole by its size on disk, at most
// kMaxEntryBytes.
std::optional<std::string> cache_read(const std::string& dir, const std::string& key) {
  if (dir.empty()) return std::nullopt;
  const int fd = ::open(entry_path(dir, key).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) return std::nullopt;
  std::string file;
  struct stat st {};
  bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
            static_cast<uint64_t>(st.st_size) <= kMaxEntryBytes;
  if (ok) {
    file.resize(static_cast<size_t>(st.st_size));
    size_t got = 0;
    while (ok && got < file.size()) {
      const ssize_t r = ::read(fd, file.data() + got, file.size() - got);
      if (r < 0 && errno == EINTR) continue;
      ok = r > 0;
      if (ok) got += static_cast<size_t>(r);
    }
  }
  ::close(fd);
  if (!ok) return std::nullopt;
  // "magic\nkey\nSIZE CHECKSUM\n" then SIZE bytes.
  std::string_view rest(file);
  auto line = [&rest]() -> std::optional<std::string_view> {
    const size_t nl = rest.find('\n');
    if (nl == std::string_view::npos || nl > 256) return std::nullopt;
    std::string_view l = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return l;
  };
  const auto magic = line();
  if (!magic || *magic != kMagic) return std::nullopt;
  const auto stored_key = line();
  if (!stored_key || *stored_key != key) return std::nullopt;
  const auto sizes = line();
  if (!sizes) return std::nullopt;
  const size_t space = sizes->find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  uint64_t size = 0;
  const std::string_view size_text = sizes->substr(0, space);
  const auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size);
  if (ec != std::errc() || end != size_text.data() + size_text.size() || size != rest.size()) return std::nullopt;
  std::string bytes(rest);
  if (cache_key(bytes) != sizes->substr(space + 1)) return std::nullopt;
  return bytes;
}

bool cache_write(const std::string& dir, const std::string& key, const std::string& bytes) {
  if (dir.empty()) return false;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return false;
  std::random_device rd;
  const std::string tmp = dir + "/." + key + "." + std::to_string(::getpid()) + "." + hex(rd()) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    if (!out) return false;
    out << kMagic << "\n" << key << "\n" << bytes.size() << " " << cache_key(bytes) << "\n";
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) {
      out.close();
      std::filesystem::remove(tmp, ec);
      return false;
    }
  }
  std::filesystem::rename(tmp, entry_path(dir, key), ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return false;
  }
  return true;
}

}  // namespace nabla::codegen
