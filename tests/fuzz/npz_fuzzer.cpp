// libFuzzer target: any bytes as an .npz archive, as a lone .npy payload, and
// as the payload of the one member (stored, then deflated) of an archive made
// here with a valid CRC-32, so that mutations of the .npy header reach the
// member reader past the CRC check.
// The reader must return arrays or throw NpzError / ResourceError: no crash,
// hang, leak, sanitizer report or other exception, and no allocation past
// the memory budget (64 MB here, so libFuzzer's 2 GB limit is never near).
// What it returns must be consistent (as many values as the shape holds)
// and survive a round trip through the writer bit for bit.
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "runtime/budget.h"
#include "runtime/npz.h"

namespace {

using nabla::runtime::Array;
using nabla::runtime::ArrayMap;
using nabla::runtime::DType;

void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "npz_fuzzer: %s\n", what);
  std::abort();
}

void check_consistent(const Array& a) {
  const size_t values = a.dtype == DType::F32 ? a.f32.size() : a.f64.size();
  check((a.dtype == DType::F32 ? a.f64.empty() : a.f32.empty()), "values of the other type");
  for (const int64_t d : a.shape) check(d >= 0, "a negative dimension");
  check(static_cast<int64_t>(values) == a.size(), "values and shape disagree");
}

bool same_bits(const Array& a, const Array& b) {
  return a.shape == b.shape && a.dtype == b.dtype && a.f32.size() == b.f32.size() && a.f64.size() == b.f64.size() &&
         (a.f32.empty() || std::memcmp(a.f32.data(), b.f32.data(), a.f32.size() * 4) == 0) &&
         (a.f64.empty() || std::memcmp(a.f64.data(), b.f64.data(), a.f64.size() * 8) == 0);
}

// `same(written)` reads back what the writer wrote and compares it bit for
// bit with what was read first. The reader refusing what the writer wrote is
// a finding; the budget may refuse it (the writer's headers can be longer).
void check_round_trip(const std::string& written, const std::function<bool(const std::string&)>& same) {
  try {
    check(same(written), "a round trip changed the arrays");
  } catch (const nabla::runtime::NpzError& e) {
    std::fprintf(stderr, "npz_fuzzer: the reader refuses what the writer wrote: %s\n", e.what());
    std::abort();
  } catch (const nabla::runtime::ResourceError&) {
  }
}

void read_archive(std::string_view bytes) {
  const ArrayMap arrays = nabla::runtime::read_npz_bytes(bytes, "fuzz.npz");
  for (const auto& [name, a] : arrays) check_consistent(a);
  for (const bool compress : {false, true}) {
    const std::string written = nabla::runtime::npz_bytes(arrays, compress);
    check_round_trip(written, [&](const std::string& w) {
      const ArrayMap again = nabla::runtime::read_npz_bytes(w, "again");
      if (again.size() != arrays.size()) return false;
      for (const auto& [name, a] : arrays)
        if (!again.count(name) || !same_bits(a, again.at(name))) return false;
      return true;
    });
  }
}

void read_npy(std::string_view bytes) {
  const Array a = nabla::runtime::parse_npy(bytes, "fuzz.npy");
  check_consistent(a);
  check_round_trip(nabla::runtime::make_npy(a), [&](const std::string& w) {
    return same_bits(a, nabla::runtime::parse_npy(w, "again"));
  });
}

void le16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>(v >> 8 & 0xFF);
}
void le32(std::string& s, uint32_t v) {
  le16(s, v & 0xFFFF);
  le16(s, v >> 16);
}

// An archive of one member "x.npy" holding `payload` (deflated when
// `deflated`), whose ZIP entry declares the payload's size less `short_by`
// bytes, with the CRC-32 of the bytes it declares.
std::string one_member(std::string_view payload, bool deflated, size_t short_by) {
  const size_t declared = payload.size() - std::min(short_by, payload.size());
  const auto* p = reinterpret_cast<const Bytef*>(payload.data());
  const std::string body = deflated ? nabla::runtime::deflate_bytes(payload) : std::string(payload);
  auto fields = [&](std::string& s) {
    le16(s, 20), le16(s, 0), le16(s, deflated ? 8 : 0), le16(s, 0), le16(s, 0x21);
    le32(s, static_cast<uint32_t>(crc32_z(0, p, declared)));
    le32(s, static_cast<uint32_t>(body.size())), le32(s, static_cast<uint32_t>(deflated ? declared : body.size()));
    le16(s, 5), le16(s, 0);
  };
  std::string zip = "PK\x03\x04", dir = "PK\x01\x02";
  fields(zip);
  zip += "x.npy" + body;
  le16(dir, 20);
  fields(dir);
  le16(dir, 0), le16(dir, 0), le16(dir, 0), le32(dir, 0), le32(dir, 0);
  dir += "x.npy";
  const size_t dir_at = zip.size();
  zip += dir + "PK\x05\x06";
  le16(zip, 0), le16(zip, 0), le16(zip, 1), le16(zip, 1);
  le32(zip, static_cast<uint32_t>(dir.size())), le32(zip, static_cast<uint32_t>(dir_at)), le16(zip, 0);
  return zip;
}

void read_wrapped(std::string_view bytes) {
  const size_t short_by = bytes.empty() ? 0 : static_cast<unsigned char>(bytes.back()) % 4;
  for (const bool deflated : {false, true}) {
    try {
      read_archive(one_member(bytes, deflated, deflated ? short_by : 0));
    } catch (const nabla::runtime::NpzError&) {
    } catch (const nabla::runtime::ResourceError&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("NABLA_MEMORY_LIMIT", "64M", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  for (void (*reader)(std::string_view) : {read_archive, read_npy, read_wrapped}) {
    try {
      reader(bytes);
    } catch (const nabla::runtime::NpzError&) {
    } catch (const nabla::runtime::ResourceError&) {
    }
  }
  return 0;
}
