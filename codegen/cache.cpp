#include "codegen/cache.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

namespace nabla::codegen {
namespace {

constexpr const char* kMagic = "nabla-kernel-cache 1";

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
  if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/nabla";
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

std::optional<std::string> cache_read(const std::string& dir, const std::string& key) {
  if (dir.empty()) return std::nullopt;
  std::ifstream in(entry_path(dir, key), std::ios::binary);
  if (!in) return std::nullopt;
  std::string magic, stored_key, checksum;
  size_t size = 0;
  if (!std::getline(in, magic) || magic != kMagic) return std::nullopt;
  if (!std::getline(in, stored_key) || stored_key != key) return std::nullopt;
  if (!(in >> size >> checksum) || in.get() != '\n') return std::nullopt;
  if (size > (size_t{1} << 31)) return std::nullopt;
  std::string bytes(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) return std::nullopt;
  if (in.peek() != std::char_traits<char>::eof()) return std::nullopt;
  if (cache_key(bytes) != checksum) return std::nullopt;
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
