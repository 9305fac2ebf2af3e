// The .npz reader and writer: round trips, the files NumPy writes (the seed
// corpus of the npz fuzz target), and every hostile input docs/npz.md lists:
// corrupt bytes, truncations, deflate bombs, strict .npy headers, dtypes and
// byte orders, escaped names, lying ZIP structures, the memory budget.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "memory_limit.h"
#include "runtime/budget.h"
#include "runtime/npz.h"

namespace nabla::runtime {
namespace {

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("nabla_npz_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

Array sample(DType t) {
  Array a = Array::zeros({2, 3}, t);
  for (size_t i = 0; i < 6; ++i) {
    if (t == DType::F32) a.f32[i] = 0.5f * static_cast<float>(i) - 1;
    else a.f64[i] = 0.1 * static_cast<double>(i) - 1e-300;
  }
  return a;
}

// The message of the NpzError or ResourceError `f` throws; "no error" when it
// returns.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const NpzError& e) {
    return std::string("NpzError: ") + e.what();
  } catch (const ResourceError& e) {
    return std::string("ResourceError: ") + e.what();
  }
  return "no error";
}

std::string read_error(const std::string& bytes, const std::string& name = "f.npz") {
  return error_of([&] { read_npz_bytes(bytes, name); });
}

std::string npy_error(const std::string& bytes) {
  return error_of([&] { parse_npy(bytes, "array 'x'"); });
}

// Arrays equal bit for bit (NaN payloads and -0.0 included).
bool same_arrays(const ArrayMap& a, const ArrayMap& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [name, x] : a) {
    auto it = b.find(name);
    if (it == b.end()) return false;
    const Array& y = it->second;
    if (x.shape != y.shape || x.dtype != y.dtype || x.f32.size() != y.f32.size() || x.f64.size() != y.f64.size())
      return false;
    if (!x.f32.empty() && std::memcmp(x.f32.data(), y.f32.data(), x.f32.size() * 4) != 0) return false;
    if (!x.f64.empty() && std::memcmp(x.f64.data(), y.f64.data(), x.f64.size() * 8) != 0) return false;
  }
  return true;
}

using test::MemoryLimit;

// ---------------------------------------------------------------------------
// Archives written by hand, so a test can make any field lie

void le16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>(v >> 8 & 0xFF);
}
void le32(std::string& s, uint32_t v) {
  le16(s, v & 0xFFFF);
  le16(s, v >> 16);
}

uint32_t crc_of(const std::string& s) {
  return static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(s.data()), s.size()));
}

// A .npy payload (format 1.0) with `dict` as its header, padded as NumPy pads.
std::string npy_of(const std::string& dict, const std::string& data) {
  std::string header = dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  le16(out, static_cast<uint32_t>(header.size()));
  return out + header + data;
}

std::string f64_dict(const std::string& shape) {
  return "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
}

// One ZIP member: its bytes as they lie in the archive and what the headers
// say about them (the same in the local header and the directory). With
// `local` set, the directory points there and the member is not written.
struct RawMember {
  std::string name, stored;
  uint32_t method = 0, flags = 0, crc = 0;
  uint64_t usize = 0;
  int64_t local = -1;
};

RawMember stored_member(const std::string& name, const std::string& payload) {
  return {name, payload, 0, 0, crc_of(payload), payload.size()};
}

RawMember deflated_member(const std::string& name, const std::string& payload) {
  return {name, deflate_bytes(payload), 8, 0, crc_of(payload), payload.size()};
}

// A ZIP archive (32-bit fields) of `members`.
std::string zip_of(const std::vector<RawMember>& members) {
  std::string body, dir;
  for (const RawMember& m : members) {
    auto common = [&](std::string& s) {
      le16(s, 20), le16(s, m.flags), le16(s, m.method), le16(s, 0), le16(s, 0x21);
      le32(s, m.crc), le32(s, static_cast<uint32_t>(m.stored.size())), le32(s, static_cast<uint32_t>(m.usize));
      le16(s, static_cast<uint32_t>(m.name.size())), le16(s, 0);
    };
    const uint32_t offset = static_cast<uint32_t>(m.local >= 0 ? m.local : static_cast<int64_t>(body.size()));
    if (m.local < 0) {
      body += "PK\x03\x04";
      common(body);
      body += m.name + m.stored;
    }
    dir += "PK\x01\x02";
    le16(dir, 20);
    common(dir);
    le16(dir, 0), le16(dir, 0), le16(dir, 0), le32(dir, 0), le32(dir, offset);
    dir += m.name;
  }
  std::string end = "PK\x05\x06";
  le16(end, 0), le16(end, 0), le16(end, static_cast<uint32_t>(members.size()));
  le16(end, static_cast<uint32_t>(members.size()));
  le32(end, static_cast<uint32_t>(dir.size())), le32(end, static_cast<uint32_t>(body.size())), le16(end, 0);
  return body + dir + end;
}

std::string two_arrays(bool compress) {
  Array s = Array::zeros({}, DType::F64);
  s.f64[0] = -0.5;
  return npz_bytes({{"x", sample(DType::F32)}, {"s", s}}, compress);
}

// ---------------------------------------------------------------------------
// Round trips and NumPy's files

TEST(Npz, WriteThenReadStoredAndCompressed) {
  for (bool compress : {false, true}) {
    const std::string path = temp_path(compress ? "c.npz" : "s.npz");
    ArrayMap in{{"W1", sample(DType::F64)}, {"b", sample(DType::F32)}, {"loss", Array::zeros({}, DType::F64)}};
    in["loss"].f64[0] = 3.25;
    write_npz(path, in, compress);
    const uint64_t whole = whole_inflated_members();
    const ArrayMap out = read_npz(path);
    // Deflated members from a file: copied into memory, inflated whole.
    EXPECT_EQ(whole_inflated_members(), whole + (compress ? 3 : 0));
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out.at("W1").shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(out.at("W1").f64, in["W1"].f64);
    EXPECT_EQ(out.at("b").dtype, DType::F32);
    EXPECT_EQ(out.at("b").f32, in["b"].f32);
    EXPECT_TRUE(out.at("loss").shape.empty());
    EXPECT_EQ(out.at("loss").f64[0], 3.25);
    std::filesystem::remove(path);
  }
}

// Every array the library makes keeps its values on a 64-byte boundary
// (runtime/aligned.h): made, converted, copied, read from a file, and
// large enough that malloc would map it 16 bytes past a page.
TEST(Npz, ArraysKeepTheirValuesOn64ByteBoundaries) {
  auto aligned = [](const Array& a) { return reinterpret_cast<uintptr_t>(a.bytes()) % 64 == 0; };
  for (DType t : {DType::F32, DType::F64})
    for (int64_t n : {1, 3, 17, 1 << 18}) {
      const Array z = Array::zeros({n}, t);
      EXPECT_TRUE(aligned(z)) << n;
      const Array other = z.as(t == DType::F32 ? DType::F64 : DType::F32);
      EXPECT_TRUE(aligned(other)) << n;
      const Array copy = z;  // NOLINT(performance-unnecessary-copy-initialization): the copy's storage
      EXPECT_TRUE(aligned(copy)) << n;
      const ArrayMap back = read_npz_bytes(npz_bytes({{"a", z}, {"b", other}}, false), "aligned.npz");
      EXPECT_TRUE(aligned(back.at("a")) && aligned(back.at("b"))) << n;
    }
}

// The process's virtual size (VmSize), in bytes.
uint64_t vm_size() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;
  return 0;
}

// Whether any mapping of /proc/self/maps overlaps [p, p + bytes).
[[maybe_unused]] bool any_mapped(const void* p, uint64_t bytes) {
  const uint64_t a = reinterpret_cast<uint64_t>(p), b = a + bytes;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    uint64_t from = 0, to = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &from, &to) == 2 && from < b && a < to) return true;
  }
  return false;
}

// Arrays of 512 KiB or more have pages of their own (runtime/aligned.h):
// a mapping on a 2 MiB boundary, in whole 2 MiB runs, and nothing more (the
// room used to align it is unmapped); releasing the array unmaps it all.
// Smaller ones come from the heap, 64-byte aligned. Every byte can be
// written and read back.
TEST(Npz, LargeArraysHaveHugePageAlignedMappingsOfTheirOwn) {
  for (size_t bytes : {size_t{64}, kMappedBytes - 64, kMappedBytes, kHugePageBytes, kHugePageBytes + 1,
                       (size_t{5} << 20) + 17}) {
    const uint64_t before = vm_size();
    auto* p = static_cast<unsigned char*>(allocate_values(bytes));
    const uint64_t grew = vm_size() - before;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kValueAlignment, 0u) << bytes;
    std::memset(p, 0xA5, bytes);
    EXPECT_EQ(p[0], 0xA5);
    EXPECT_EQ(p[bytes - 1], 0xA5);
    const uint64_t length = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    static_cast<void>(grew), static_cast<void>(length);  // sanitizer builds: on the heap
#ifndef NABLA_SANITIZE  // sanitizer builds keep every array on the heap
    if (bytes >= kMappedBytes) {
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % kHugePageBytes, 0u) << bytes;
      EXPECT_EQ(grew, length) << bytes;
    }
#endif
    release_values(p, bytes);
#ifndef NABLA_SANITIZE
    if (bytes >= kMappedBytes) {
      EXPECT_FALSE(any_mapped(p, length)) << bytes;
    }
#endif
  }
  // A vector that grows across the threshold keeps its values.
  AlignedVector<float> v(100, 1.5f);
  v.resize((kHugePageBytes / sizeof(float)) * 3, 2.5f);
  EXPECT_EQ(v[99], 1.5f);
  EXPECT_EQ(v[100], 2.5f);
  EXPECT_EQ(v.back(), 2.5f);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(v.data()) % kValueAlignment, 0u);
}

TEST(Npz, RoundTripsZeroDimensionalAndEmptyArrays) {
  ArrayMap in;
  const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {0, 3}, {2, 0, 3}, {1, 1, 1, 1}};
  for (size_t i = 0; i < shapes.size(); ++i)
    for (DType t : {DType::F32, DType::F64}) {
      Array a = Array::zeros(shapes[i], t);
      for (size_t k = 0; k < static_cast<size_t>(a.size()); ++k) {
        if (t == DType::F32) a.f32[k] = 0.25f * static_cast<float>(k + 1);
        else a.f64[k] = 0.25 * static_cast<double>(k + 1);
      }
      in["a" + std::to_string(i) + dtype_name(t)] = a;
    }
  for (bool compress : {false, true}) {
    const ArrayMap out = read_npz_bytes(npz_bytes(in, compress), "round.npz");
    EXPECT_TRUE(same_arrays(in, out)) << "compress " << compress;
  }
}

TEST(Npz, ReadsWhatNumpyWrites) {
  const std::string dir = NABLA_SOURCE_DIR "/../shared/acceptance/models";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no shared acceptance corpus";
  const ArrayMap p = read_npz(dir + "/mlp_relu_softmax.params.npz");
  EXPECT_EQ(p.at("W1").shape, (std::vector<int64_t>{10, 12}));
  EXPECT_EQ(p.at("W1").dtype, DType::F64);
  // numpy.savez_compressed, float32, a 0-d array, and numpy reading ours.
  const std::string theirs = temp_path("numpy.npz"), ours = temp_path("ours.npz");
  const std::string script =
      "/usr/bin/python3 -c \"import numpy as np; np.savez_compressed('" + theirs +
      "', a=np.arange(12, dtype=np.float32).reshape(3, 4), s=np.float64(2.5))\"";
  ASSERT_EQ(std::system(script.c_str()), 0);
  const ArrayMap t = read_npz(theirs);
  EXPECT_EQ(t.at("a").shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(t.at("a").f32[11], 11.0f);
  EXPECT_EQ(t.at("s").f64[0], 2.5);
  write_npz(ours, {{"a", t.at("a")}, {"s", t.at("s")}}, true);
  const std::string check = "/usr/bin/python3 -c \"import numpy as np; d = np.load('" + ours +
                            "'); assert d['a'].dtype == np.float32 and d['a'][2, 3] == 11 and "
                            "d['s'].shape == () and d['s'] == 2.5\"";
  EXPECT_EQ(std::system(check.c_str()), 0);
  std::filesystem::remove(theirs);
  std::filesystem::remove(ours);
}

const std::string kSeeds = NABLA_SOURCE_DIR "/tests/fuzz/seeds-npz/";

std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The array seeds-npz/generate.py calls grid(): 0, 1/8, 2/8, ... in `shape`.
void expect_grid(const Array& a, DType t, const std::vector<int64_t>& shape) {
  EXPECT_EQ(a.dtype, t);
  ASSERT_EQ(a.shape, shape);
  for (int64_t i = 0; i < a.size(); ++i) EXPECT_EQ(a.at(static_cast<size_t>(i)), static_cast<double>(i) / 8) << i;
}

TEST(Npz, ReadsTheSeedFilesNumpyWrote) {
  const ArrayMap mixed = read_npz(kSeeds + "numpy_compressed_mixed.npz");
  expect_grid(mixed.at("a"), DType::F32, {3, 4});
  expect_grid(mixed.at("d"), DType::F64, {2, 2, 2});
  EXPECT_EQ(mixed.at("s").shape, std::vector<int64_t>{});
  EXPECT_EQ(mixed.at("s").f64, runtime::AlignedVector<double>{2.5});
  EXPECT_EQ(mixed.at("e").shape, (std::vector<int64_t>{0, 3}));
  const ArrayMap big = read_npz(kSeeds + "numpy_bigendian.npz");
  expect_grid(big.at("b4"), DType::F32, {2, 3});
  expect_grid(big.at("b8"), DType::F64, {5});
  const ArrayMap versions = read_npz(kSeeds + "numpy_versions.npz");
  expect_grid(versions.at("v2"), DType::F32, {2, 2});
  expect_grid(versions.at("v3"), DType::F64, {3});
  const ArrayMap zip64 = read_npz(kSeeds + "zip64_directory.npz");
  expect_grid(zip64.at("p"), DType::F64, {2, 2});
  expect_grid(zip64.at("q"), DType::F32, {3});
  const ArrayMap many = read_npz(kSeeds + "numpy_many.npz");
  ASSERT_EQ(many.size(), 8u);
  for (int i = 0; i < 8; ++i) expect_grid(many.at("m" + std::to_string(i)), DType::F32, {i + 1});
  const ArrayMap empty = read_npz(kSeeds + "numpy_empty.npz");
  EXPECT_EQ(empty.at("w").shape, (std::vector<int64_t>{2, 0, 3}));
  EXPECT_TRUE(empty.at("w").f32.empty());
  // NaN and infinities are data, kept bit for bit.
  const AlignedVector<double> v = read_npz(kSeeds + "numpy_special.npz").at("v").f64;
  ASSERT_EQ(v.size(), 5u);
  EXPECT_TRUE(std::isnan(v[0]));
  EXPECT_EQ(v[1], HUGE_VAL);
  EXPECT_EQ(v[2], -HUGE_VAL);
  EXPECT_TRUE(std::signbit(v[3]) && v[3] == 0);
  EXPECT_EQ(std::bit_cast<uint64_t>(v[4]), 1u);
  expect_grid(parse_npy(file_bytes(kSeeds + "plain_bigendian.npy"), "plain"), DType::F64, {4});
}

TEST(Npz, RefusesWhatItCannotConvertNamingTheArray) {
  EXPECT_EQ(read_error(file_bytes(kSeeds + "numpy_int64.npz")),
            "NpzError: array 'n' in 'f.npz' has dtype '<i8' (integers); nabla reads float32 and float64 arrays "
            "('<f4', '<f8', or big-endian '>f4', '>f8'): convert it with .astype(numpy.float32)");
  EXPECT_EQ(read_error(file_bytes(kSeeds + "numpy_fortran.npz")),
            "NpzError: array 'f' in 'f.npz' is in Fortran order; write it in C order (numpy.ascontiguousarray)");
}

TEST(Npz, RefusesTheHostileSeeds) {
  const std::pair<std::string, std::string> seeds[] = {
      {"hostile_bomb.npz", "array 'x' in 'f.npz': trailing data: it inflates past the 144 bytes"},
      {"hostile_duplicate_key.npz", "array 'x' in 'f.npz': bad .npy header"},
      {"hostile_duplicate_member.npz", "'f.npz' holds two arrays named 'a'"},
      {"hostile_overlap.npz", "'f.npz': corrupt ZIP directory (two members overlap)"},
  };
  for (const auto& [seed, want] : seeds) {
    const std::string m = read_error(file_bytes(kSeeds + seed));
    EXPECT_EQ(m.rfind("NpzError: " + want, 0), 0u) << seed << ": " << m;
  }
}

TEST(Npz, ClearErrors) {
  EXPECT_EQ(error_of([] { read_npz("/nonexistent/x.npz"); }),
            "NpzError: cannot open '/nonexistent/x.npz': No such file or directory");
  const std::string dir = std::filesystem::temp_directory_path().string();
  EXPECT_EQ(error_of([&] { read_npz(dir); }), "NpzError: cannot open '" + dir + "': Is a directory");
  const std::string junk = temp_path("junk.npz");
  std::ofstream(junk) << "not a zip file at all";
  EXPECT_EQ(error_of([&] { read_npz(junk); }), "NpzError: '" + junk + "' is not a .npz file (no ZIP directory)");
  std::filesystem::remove(junk);
}

TEST(Npz, ReadsFromAPipe) {
  const std::string bytes = two_arrays(true);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));  // < a pipe's buffer
  ::close(fds[1]);
  const ArrayMap out = read_npz("/proc/self/fd/" + std::to_string(fds[0]));
  ::close(fds[0]);
  EXPECT_TRUE(same_arrays(out, read_npz_bytes(bytes, "same")));
}

// ---------------------------------------------------------------------------
// Corrupt and truncated files

TEST(Npz, FlippedDataByteIsACrcErrorNamingTheMember) {
  const std::string good = zip_of({stored_member("x.npy", npy_of(f64_dict("(2,)"), std::string(16, '\x11')))});
  const size_t data_end = good.find("PK\x01\x02");
  std::string bad = good;
  bad[data_end - 1] ^= 0x01;  // the last data byte
  EXPECT_EQ(read_error(bad), "NpzError: array 'x' in 'f.npz': CRC-32 mismatch (the file is corrupt)");
  // A flipped header byte is reported as the corruption it is, not as a bad shape.
  bad = good;
  bad[good.find("(2,)") + 1] = '3';
  EXPECT_EQ(read_error(bad), "NpzError: array 'x' in 'f.npz': CRC-32 mismatch (the file is corrupt)");
  // A deflated member checked the same way, on its inflated bytes.
  RawMember deflated = deflated_member("y.npy", npy_of(f64_dict("(2,)"), std::string(16, '\x11')));
  EXPECT_EQ(read_error(zip_of({deflated})), "no error");
  deflated.crc ^= 0x100;
  EXPECT_EQ(read_error(zip_of({deflated})), "NpzError: array 'y' in 'f.npz': CRC-32 mismatch (the file is corrupt)");
}

// Deflated members inflate whole, straight into the array (libdeflate),
// whatever the length of what comes before the data: the values are exact,
// big-endian ones swapped, and a wrong CRC-32 is still caught.
TEST(Npz, DeflatedMembersInflatedWholeKeepEveryValue) {
  const int64_t n = 300001;  // 1.2 MB of f32, 2.4 MB of f64: above the huge-page threshold
  for (const std::string descr : {"<f4", ">f4", "<f8", ">f8"})
    for (size_t pad = 0; pad < 8; ++pad) {  // 10 + header bytes before the data: every remainder mod 8
      const bool f32 = descr[2] == '4', big = descr[0] == '>';
      const size_t elem = f32 ? 4 : 8;
      std::string data(static_cast<size_t>(n) * elem, '\0');
      for (int64_t i = 0; i < n; ++i) {
        char bytes[8];
        if (f32) {
          const float v = static_cast<float>(i) * 0.25f - 7.0f;
          std::memcpy(bytes, &v, 4);
        } else {
          const double v = static_cast<double>(i) * 0.125 - 3.0;
          std::memcpy(bytes, &v, 8);
        }
        if (big) std::reverse(bytes, bytes + elem);
        std::memcpy(&data[static_cast<size_t>(i) * elem], bytes, elem);
      }
      std::string header = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (" + std::to_string(n) +
                           ",), }" + std::string(pad, ' ') + "\n";
      std::string npy = "\x93NUMPY";
      npy += '\x01';
      npy += '\x00';
      le16(npy, static_cast<uint32_t>(header.size()));
      npy += header + data;
      RawMember m = deflated_member("a.npy", npy);
      const uint64_t whole = whole_inflated_members();
      const ArrayMap got = read_npz_bytes(zip_of({m}), "f.npz");
      EXPECT_EQ(whole_inflated_members(), whole + 1) << "inflated whole";
      const Array& a = got.at("a");
      ASSERT_EQ(a.shape, std::vector<int64_t>{n}) << descr << " pad " << pad;
      bool exact = true;
      for (int64_t i = 0; i < n && exact; ++i)
        exact = f32 ? a.f32[static_cast<size_t>(i)] == static_cast<float>(i) * 0.25f - 7.0f
                    : a.f64[static_cast<size_t>(i)] == static_cast<double>(i) * 0.125 - 3.0;
      EXPECT_TRUE(exact) << descr << " pad " << pad;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(f32 ? static_cast<const void*>(a.f32.data()) : a.f64.data()) %
                    kValueAlignment, 0u);
      m.crc ^= 1;
      EXPECT_EQ(read_error(zip_of({m})), "NpzError: array 'a' in 'f.npz': CRC-32 mismatch (the file is corrupt)");
    }
}

// Deflates in[0, n) with `z`, flushing as `flush` says, onto `out`.
void deflate_into(z_stream& z, const char* in, size_t n, int flush, std::string& out) {
  char buf[1 << 16];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in));
  z.avail_in = static_cast<uInt>(n);
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    deflate(&z, flush);
    out.append(buf, sizeof buf - z.avail_out);
  } while (z.avail_out == 0);
}

// A deflate stream far longer than what it inflates to (a flush after
// every byte) is not read into memory whole: zlib's stream inflates it,
// with the same values.
TEST(Npz, DeflateDataLongerThanItsOutputIsInflatedAsAStream) {
  std::string data(65536, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7 + i / 13);
  const std::string npy = npy_of("{'descr': '<f4', 'fortran_order': False, 'shape': (16384,), }", data);
  z_stream z{};
  deflateInit2(&z, 1, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string flushed;
  for (size_t i = 0; i < npy.size(); ++i)
    deflate_into(z, npy.data() + i, 1, i + 1 == npy.size() ? Z_FINISH : Z_FULL_FLUSH, flushed);
  deflateEnd(&z);
  ASSERT_GT(flushed.size(), npy.size() + npy.size() / 8 + (64 << 10));
  const RawMember m{"a.npy", flushed, 8, 0, crc_of(npy), npy.size()};
  const uint64_t whole = whole_inflated_members();
  const ArrayMap got = read_npz_bytes(zip_of({m}), "f.npz");
  EXPECT_EQ(whole_inflated_members(), whole) << "inflated as a stream";
  ASSERT_EQ(got.at("a").f32.size(), 16384u);
  EXPECT_EQ(std::memcmp(got.at("a").f32.data(), data.data(), data.size()), 0);
}

TEST(Npz, EveryFlippedByteIsCaughtOrChangesNoValue) {
  for (bool compress : {false, true}) {
    const std::string good = two_arrays(compress);
    const ArrayMap want = read_npz_bytes(good, "good");
    for (size_t i = 0; i < good.size(); ++i)
      for (const unsigned char mask : {0x01, 0x80, 0xFF}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ mask);
        try {
          EXPECT_TRUE(same_arrays(read_npz_bytes(bad, "bad"), want)) << "byte " << i << " ^ " << int(mask);
        } catch (const NpzError&) {
        } catch (const ResourceError&) {
        }
      }
  }
}

TEST(Npz, TruncatedAtEveryLengthIsAnError) {
  for (bool compress : {false, true}) {
    const std::string good = two_arrays(compress);
    for (size_t n = 0; n < good.size(); ++n)
      EXPECT_NE(read_error(good.substr(0, n)).rfind("NpzError: ", 0), std::string::npos) << n << " bytes";
  }
  const std::string npy = npy_of(f64_dict("(2,)"), std::string(16, '\0'));
  for (size_t n = 0; n < npy.size(); ++n)
    EXPECT_NE(npy_error(npy.substr(0, n)).rfind("NpzError: ", 0), std::string::npos) << n << " bytes";
}

// The raw deflate stream of `head` then `zeros` zero bytes, made in chunks;
// *crc_all is the CRC-32 of all of it.
std::string deflate_with_zeros(const std::string& head, uint64_t zeros, uint32_t* crc_all) {
  z_stream z{};
  deflateInit2(&z, 1, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out, chunk(1 << 20, '\0');
  auto feed = [&](const std::string& in, size_t n, int flush) {
    *crc_all = static_cast<uint32_t>(crc32_z(*crc_all, reinterpret_cast<const Bytef*>(in.data()), n));
    deflate_into(z, in.data(), n, flush, out);
  };
  *crc_all = 0;
  feed(head, head.size(), Z_NO_FLUSH);
  for (uint64_t left = zeros; left > 0; left -= std::min<uint64_t>(left, chunk.size()))
    feed(chunk, static_cast<size_t>(std::min<uint64_t>(left, chunk.size())), Z_NO_FLUSH);
  feed(chunk, 0, Z_FINISH);
  deflateEnd(&z);
  return out;
}

long peak_rss_kb() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// A member whose header declares shape (2,) of float64 but which inflates to
// 100 MB: never inflated wholesale, whatever its ZIP entry says.
TEST(Npz, DeflateBombIsNotInflatedPastItsDeclaredSize) {
  constexpr uint64_t kZeros = 100'000'000;
  const std::string header = npy_of(f64_dict("(2,)"), "");
  uint32_t crc_all = 0;
  const std::string bomb = deflate_with_zeros(header, kZeros, &crc_all);
  const long rss_before = peak_rss_kb();
  {
    // The directory says what the header says: the member's end is checked.
    MemoryLimit limit("1M");
    const RawMember m{"x.npy", bomb, 8, 0, crc_of(header + std::string(16, '\0')), header.size() + 16};
    EXPECT_EQ(read_error(zip_of({m})), "NpzError: array 'x' in 'f.npz': trailing data: it inflates past the " +
                                           std::to_string(header.size() + 16) +
                                           " bytes its ZIP entry and .npy header declare");
  }
  const RawMember honest{"x.npy", bomb, 8, 0, crc_all, header.size() + kZeros};
  {
    // The directory tells the truth: 100 MB is over the budget before anything is inflated.
    MemoryLimit limit("10M");
    EXPECT_EQ(read_error(zip_of({honest})).rfind("ResourceError: reading the arrays of 'f.npz' needs 100 MB", 0), 0u);
  }
  {
    // Within the budget, the sizes disagree with the header before any data is read.
    MemoryLimit limit("1G");
    EXPECT_EQ(read_error(zip_of({honest})),
              "NpzError: array 'x' in 'f.npz': 100000000 bytes of data for shape [2] of float64 (16 expected; "
              "trailing data)");
  }
  {
    // A wrong CRC-32 is not looked for past 64 MiB of declared bytes: the
    // 100 MB are not inflated only to check it, and the size error stands.
    MemoryLimit limit("1G");
    RawMember bad_crc = honest;
    bad_crc.crc ^= 1;
    EXPECT_EQ(read_error(zip_of({bad_crc})),
              "NpzError: array 'x' in 'f.npz': 100000000 bytes of data for shape [2] of float64 (16 expected; "
              "trailing data)");
  }
  EXPECT_LT(peak_rss_kb() - rss_before, 50'000) << "the member was inflated wholesale";
}

TEST(Npz, DeclaredSizesAreCheckedAgainstTheBudgetBeforeAllocating) {
  const std::string big = npz_bytes({{"W", Array::zeros({1000, 2000}, DType::F32)}}, false);  // 8 MB
  MemoryLimit limit("1M");
  EXPECT_EQ(read_error(big).rfind("ResourceError: reading the arrays of 'f.npz' needs 8 MB", 0), 0u) << read_error(big);
  // A lone .npy is checked by its shape.
  const std::string npy = make_npy(Array::zeros({300000}, DType::F64));
  EXPECT_EQ(npy_error(npy).rfind("ResourceError: array 'x' needs 2.4 MB", 0), 0u) << npy_error(npy);
}

// ---------------------------------------------------------------------------
// The .npy header

TEST(Npz, HeaderIsParsedStrictly) {
  const std::string data(16, '\0');
  const std::pair<std::string, std::string> bad[] = {
      {"{'descr': '<f8', 'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", "the key 'descr' appears twice"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'shape': (4,), }", "the key 'shape' appears twice"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), 'x': 1, }", "unknown key 'x'"},
      {"{'descr': '<f8', 'fortran_order': False, }", "no key 'shape'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2), }", "the shape is not a tuple"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (-2,), }", "not a non-negative integer"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2.0,), }", "expected ')'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }", "too large for 64 bits"},
      {"{'descr': '<f8', 'fortran_order': 0, 'shape': (2,), }", "not True or False"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), } x", "text after the closing '}'"},
      {"{'descr': '<f\\x38', 'fortran_order': False, 'shape': (2,), }", "an escape"},
      {"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (2,), }", "a structured dtype"},
      {"{'descr': '<f8' 'fortran_order': False, 'shape': (2,), }", "expected '}'"},
      {"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), ", "expected a key"},
      {"__import__('os').system('true')", "expected '{'"},
  };
  for (const auto& [dict, why] : bad) {
    const std::string m = npy_error(npy_of(dict, data));
    EXPECT_EQ(m.rfind("NpzError: array 'x': bad .npy header '", 0), 0u) << dict << "\n" << m;
    EXPECT_NE(m.find(why), std::string::npos) << dict << "\n" << m;
  }
  // What NumPy and other writers produce, and Python 2's long dimensions.
  const std::string good[] = {
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
      "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2,)}",
      "{'shape': (2L,), 'fortran_order': True, 'descr': '<f8'}",
      "{'descr':'<f8','fortran_order':False,'shape':(1,2,)}",
      "{\t'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }",
  };
  for (const std::string& dict : good) {
    const Array a = parse_npy(npy_of(dict, data), "x");
    EXPECT_EQ(a.size(), 2) << dict;
  }
}

TEST(Npz, HeaderAndShapeSizesAreBounded) {
  // A shape whose size overflows 64 bits, even with a zero dimension in it.
  EXPECT_NE(npy_error(npy_of(f64_dict("(4611686018427387904, 4)"), "")).find("too large for 64-bit sizes"),
            std::string::npos);
  EXPECT_NE(npy_error(npy_of(f64_dict("(0, 4611686018427387904, 4)"), "")).find("too large for 64-bit sizes"),
            std::string::npos);
  std::string dims;
  for (int i = 0; i < 65; ++i) dims += "1,";
  EXPECT_NE(npy_error(npy_of(f64_dict("(" + dims + ")"), std::string(8, '\0'))).find("more than 64 dimensions"),
            std::string::npos);
  // Format 2.0 with a 1 MB header length.
  std::string v2 = "\x93NUMPY";
  v2 += '\x02';
  v2 += '\x00';
  le32(v2, 1 << 20);
  v2 += std::string(1 << 20, ' ');
  EXPECT_EQ(npy_error(v2), "NpzError: array 'x': a .npy header of 1048576 bytes (nabla reads up to 65536)");
  // Data longer or shorter than the shape.
  EXPECT_EQ(npy_error(npy_of(f64_dict("(2,)"), std::string(24, '\0'))),
            "NpzError: array 'x': 24 bytes of data for shape [2] of float64 (16 expected; trailing data)");
  EXPECT_EQ(npy_error(npy_of(f64_dict("(2,)"), std::string(8, '\0'))),
            "NpzError: array 'x': 8 bytes of data for shape [2] of float64 (16 expected; the array is truncated)");
}

// ---------------------------------------------------------------------------
// Element types and byte orders

template <typename T>
std::string big_endian_bytes(const std::vector<T>& values) {
  std::string out;
  for (T v : values) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof b);
    for (size_t i = sizeof b; i-- > 0;) out += b[i];
  }
  return out;
}

TEST(Npz, BigEndianIsConvertedExactly) {
  // Quiet and signaling NaNs with payloads, -0, subnormals, infinities.
  const std::vector<double> d = {1.5, -0.0, 5e-324, HUGE_VAL, std::bit_cast<double>(0x7FF8000000000123ull),
                                 std::bit_cast<double>(0x7FF0000000000001ull)};
  const std::vector<float> f = {1.5f, -0.0f, 1e-45f, -HUGE_VALF, std::bit_cast<float>(0x7FC00123u),
                                std::bit_cast<float>(0x7F800001u)};
  const std::string big8 = "{'descr': '>f8', 'fortran_order': False, 'shape': (6,), }";
  const std::string big4 = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }";
  const Array a = parse_npy(npy_of(big8, big_endian_bytes(d)), "x");
  const Array b = parse_npy(npy_of(big4, big_endian_bytes(f)), "x");
  ASSERT_EQ(a.dtype, DType::F64);
  ASSERT_EQ(b.dtype, DType::F32);
  ASSERT_EQ(a.f64.size(), d.size());
  ASSERT_EQ(b.f32.size(), f.size());
  EXPECT_EQ(std::memcmp(a.f64.data(), d.data(), d.size() * 8), 0);
  EXPECT_EQ(std::memcmp(b.f32.data(), f.data(), f.size() * 4), 0);
  // Native order, with or without '='.
  for (const char* descr : {"=f8", "f8", "<f8"}) {
    const std::string dict = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': (6,), }";
    const std::string bytes(reinterpret_cast<const char*>(d.data()), d.size() * 8);
    EXPECT_EQ(std::memcmp(parse_npy(npy_of(dict, bytes), "x").f64.data(), d.data(), d.size() * 8), 0) << descr;
  }
}

TEST(Npz, OtherDtypesAreRefusedWithTheirName) {
  const std::pair<std::string, std::string> refused[] = {
      {"<i8", "'<i8' (integers)"},        {"|u1", "'|u1' (unsigned integers)"},
      {"|b1", "'|b1' (booleans)"},        {"<f2", "'<f2' (float16)"},
      {"<c16", "'<c16' (complex numbers)"}, {"|O", "'|O' (Python objects)"},
      {"<U3", "'<U3' (strings)"},         {"|f4", "'|f4' (no byte order)"},
      {"<f16", "'<f16' (floats of another size)"}, {"<\x07i\xff", "'<\\x07i\\xff'"},
  };
  for (const auto& [descr, shown] : refused) {
    const std::string dict = "{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2,), }";
    const std::string m = read_error(zip_of({stored_member("n.npy", npy_of(dict, std::string(16, '\0')))}));
    EXPECT_EQ(m.rfind("NpzError: array 'n' in 'f.npz' has dtype " + shown + "; nabla reads float32 and float64", 0), 0u)
        << m;
  }
}

// ---------------------------------------------------------------------------
// Names in messages and hostile ZIP structures

TEST(Npz, NamesFromTheFileAreEscaped) {
  EXPECT_EQ(escaped("plain W1_b"), "plain W1_b");
  EXPECT_EQ(escaped("caf\xc3\xa9 \xe2\x88\x87"), "caf\xc3\xa9 \xe2\x88\x87");  // valid UTF-8 kept
  EXPECT_EQ(escaped(std::string("a\0b\n\x7f", 5)), "a\\x00b\\x0a\\x7f");
  EXPECT_EQ(escaped("\xff\xc0\x80"), "\\xff\\xc0\\x80");              // invalid, overlong
  EXPECT_EQ(escaped("\xed\xa0\x80"), "\\xed\\xa0\\x80");              // a surrogate
  EXPECT_EQ(escaped("x\xe2\x80\xaey"), "x\\xe2\\x80\\xaey");          // right-to-left override
  EXPECT_EQ(escaped("\xc2\x85"), "\\xc2\\x85");                        // a C1 control
  const std::string name = std::string("b\x01\x1b[2J\xff", 7) + ".npy";
  const std::string dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }";
  const std::string m = read_error(zip_of({stored_member(name, npy_of(dict, std::string(16, '\0')))}), "d\x02.npz");
  EXPECT_EQ(m.rfind("NpzError: array 'b\\x01\\x1b[2J\\xff' in 'd\\x02.npz' has dtype '<i8'", 0), 0u) << m;
  for (char c : m) EXPECT_TRUE(static_cast<unsigned char>(c) >= 0x20 && c != 0x7F) << m;
}

TEST(Npz, HostileZipStructuresAreRefused) {
  const std::string npy = npy_of(f64_dict("(2,)"), std::string(16, '\0'));
  RawMember encrypted = stored_member("e.npy", npy), bzip2 = stored_member("z.npy", npy);
  encrypted.flags = 1;
  bzip2.method = 12;
  const std::pair<std::string, std::string> cases[] = {
      {zip_of({stored_member("a.npy", npy), stored_member("a.npy", npy)}), "'f.npz' holds two arrays named 'a'"},
      {zip_of({stored_member("readme.txt", npy)}), "'f.npz' holds 'readme.txt', which is not an array"},
      {zip_of({stored_member(".npy", npy)}), "'f.npz' holds '.npy', which is not an array"},
      {zip_of({encrypted}), "array 'e' in 'f.npz' is encrypted"},
      {zip_of({bzip2}), "array 'z' in 'f.npz' uses ZIP compression method 12"},
  };
  for (const auto& [bytes, want] : cases) {
    const std::string m = read_error(bytes);
    EXPECT_NE(m.find(want), std::string::npos) << m;
  }
  const std::string good = zip_of({stored_member("a.npy", npy)});
  const size_t dir = good.find("PK\x01\x02"), end = good.find("PK\x05\x06");
  // The local header names another member.
  std::string renamed = good;
  renamed[30] = 'b';
  EXPECT_NE(read_error(renamed).find("its local header disagrees with the ZIP directory"), std::string::npos);
  // 65,535 entries in a file of a few hundred bytes: refused before any loop.
  std::string many = good;
  many[end + 8] = many[end + 9] = many[end + 10] = many[end + 11] = '\xff';
  EXPECT_NE(read_error(many).find("65535 entries cannot fit in 51 bytes"), std::string::npos) << read_error(many);
  // A directory offset past the end of the file.
  std::string far = good;
  far[end + 19] = '\x7f';
  EXPECT_NE(read_error(far).find("corrupt ZIP directory (it does not lie within the file)"), std::string::npos);
  // A member offset past the directory.
  std::string offset = good;
  offset[dir + 45] = '\x7f';
  EXPECT_NE(read_error(offset).find("array 'a' in 'f.npz': corrupt ZIP entry (bad offset)"), std::string::npos);
  // A member inside another one's data (each read alone would pass).
  const std::string inner = zip_of({stored_member("b.npy", npy)}).substr(0, dir);
  const std::string outer = npy_of(f64_dict("(" + std::to_string(inner.size() / 8 + 1) + ",)"),
                                   inner + std::string(8 - inner.size() % 8, '\0'));
  RawMember hidden = stored_member("b.npy", npy);
  hidden.local = static_cast<int64_t>(30 + 5 + outer.size() - inner.size() - (8 - inner.size() % 8));
  const std::string nested = zip_of({stored_member("a.npy", outer), hidden});
  EXPECT_EQ(read_error(nested), "NpzError: 'f.npz': corrupt ZIP directory (two members overlap)");
  // A stored member whose sizes disagree.
  std::string sizes = good;
  sizes[dir + 20] ^= 1;
  EXPECT_NE(read_error(sizes).find("a stored entry whose sizes differ"), std::string::npos) << read_error(sizes);
}

}  // namespace
}  // namespace nabla::runtime
