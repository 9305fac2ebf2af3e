#include "runtime/npz.h"

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

namespace nabla::runtime {
namespace {

// ---------------------------------------------------------------------------
// Little-endian fields

uint32_t u16(const std::string& s, size_t at) {
  return static_cast<uint32_t>(static_cast<unsigned char>(s[at])) |
         static_cast<uint32_t>(static_cast<unsigned char>(s[at + 1])) << 8;
}
uint32_t u32(const std::string& s, size_t at) { return u16(s, at) | u16(s, at + 2) << 16; }
uint64_t u64(const std::string& s, size_t at) {
  return static_cast<uint64_t>(u32(s, at)) | static_cast<uint64_t>(u32(s, at + 4)) << 32;
}
void put16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xFF);
  s += static_cast<char>((v >> 8) & 0xFF);
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16);
}

// ---------------------------------------------------------------------------
// .npy header: {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }

std::string header_value(const std::string& header, const std::string& key) {
  const size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t v = header.find(':', k);
  if (v == std::string::npos) return "";
  ++v;
  while (v < header.size() && header[v] == ' ') ++v;
  size_t end = v;
  if (header[v] == '(') {
    end = header.find(')', v);
    return end == std::string::npos ? "" : header.substr(v, end - v + 1);
  }
  if (header[v] == '\'') {
    end = header.find('\'', v + 1);
    return end == std::string::npos ? "" : header.substr(v + 1, end - v - 1);
  }
  while (end < header.size() && header[end] != ',' && header[end] != '}') ++end;
  return header.substr(v, end - v);
}

size_t element_size(DType t) { return t == DType::F32 ? 4 : 8; }

}  // namespace

const char* dtype_name(DType t) { return t == DType::F32 ? "float32" : "float64"; }

int64_t Array::size() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Array Array::zeros(std::vector<int64_t> shape, DType t) {
  Array a;
  a.shape = std::move(shape);
  a.dtype = t;
  if (t == DType::F32) a.f32.assign(static_cast<size_t>(a.size()), 0.0f);
  else a.f64.assign(static_cast<size_t>(a.size()), 0.0);
  return a;
}

Array Array::as(DType t) const {
  if (t == dtype) return *this;
  Array out = zeros(shape, t);
  for (size_t i = 0; i < static_cast<size_t>(size()); ++i) {
    if (t == DType::F32) out.f32[i] = static_cast<float>(f64[i]);
    else out.f64[i] = f32[i];
  }
  return out;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

Array parse_npy(const std::string& b, const std::string& what) {
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0)
    throw NpzError(what + " is not a .npy array (bad magic)");
  const int major = static_cast<unsigned char>(b[6]);
  size_t header_len, header_at;
  if (major == 1) {
    header_len = u16(b, 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (b.size() < 12) throw NpzError(what + ": truncated .npy header");
    header_len = u32(b, 8);
    header_at = 12;
  } else {
    throw NpzError(what + ": unsupported .npy format version " + std::to_string(major));
  }
  if (header_at + header_len > b.size()) throw NpzError(what + ": truncated .npy header");
  const std::string header = b.substr(header_at, header_len);
  const std::string descr = header_value(header, "descr");
  Array a;
  if (descr == "<f4" || descr == "=f4" || descr == "f4") a.dtype = DType::F32;
  else if (descr == "<f8" || descr == "=f8" || descr == "f8") a.dtype = DType::F64;
  else
    throw NpzError(what + " has dtype '" + descr +
                   "'; nabla reads float32 and float64 arrays (little-endian)");
  if (header_value(header, "fortran_order") != "False")
    throw NpzError(what + " is in Fortran order; write it in C order (numpy.ascontiguousarray)");
  const std::string shape = header_value(header, "shape");
  if (shape.empty() || shape.front() != '(') throw NpzError(what + ": .npy header has no shape");
  std::stringstream ss(shape.substr(1, shape.size() - 2));
  std::string dim;
  while (std::getline(ss, dim, ',')) {
    const size_t first = dim.find_first_not_of(' ');
    if (first == std::string::npos) continue;
    char* end = nullptr;
    const long long d = std::strtoll(dim.c_str() + first, &end, 10);
    if (d < 0 || end == dim.c_str() + first) throw NpzError(what + ": bad shape " + shape);
    a.shape.push_back(d);
  }
  const size_t data_at = header_at + header_len;
  const size_t bytes = static_cast<size_t>(a.size()) * element_size(a.dtype);
  if (b.size() - data_at < bytes)
    throw NpzError(what + ": " + std::to_string(b.size() - data_at) + " bytes of data for shape " +
                   shape_str(a.shape) + " (" + std::to_string(bytes) + " expected)");
  if (a.dtype == DType::F32) {
    a.f32.resize(static_cast<size_t>(a.size()));
    std::memcpy(a.f32.data(), b.data() + data_at, bytes);
  } else {
    a.f64.resize(static_cast<size_t>(a.size()));
    std::memcpy(a.f64.data(), b.data() + data_at, bytes);
  }
  return a;
}

std::string make_npy(const Array& a) {
  std::string shape = "(";
  for (size_t i = 0; i < a.shape.size(); ++i) shape += std::to_string(a.shape[i]) + (a.shape.size() == 1 || i + 1 < a.shape.size() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + (a.dtype == DType::F32 ? "<f4" : "<f8") +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces and end with '\n' so the data starts at a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  put16(out, static_cast<uint32_t>(header.size()));
  out += header;
  if (a.dtype == DType::F32)
    out.append(reinterpret_cast<const char*>(a.f32.data()), a.f32.size() * 4);
  else
    out.append(reinterpret_cast<const char*>(a.f64.data()), a.f64.size() * 8);
  return out;
}

// ---------------------------------------------------------------------------
// ZIP

namespace {

std::string inflate_raw(const std::string& in, size_t out_size, const std::string& what) {
  std::string out(out_size, '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) throw NpzError(what + ": cannot start inflate");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&z, Z_FINISH);
  const size_t produced = out.size() - z.avail_out;
  inflateEnd(&z);
  if (rc != Z_STREAM_END || produced != out_size)
    throw NpzError(what + ": corrupt deflate data");
  return out;
}

std::string deflate_raw(const std::string& in) {
  z_stream z{};
  deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, static_cast<uLong>(in.size())), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(out.size() - z.avail_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

ArrayMap read_npz(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw NpzError("cannot open '" + path + "': " + std::strerror(errno));
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string f = buf.str();
  const std::string what = "'" + path + "'";
  // End of central directory: the last "PK\5\6" within the final 64 KiB + 22 bytes.
  size_t eocd = std::string::npos;
  for (size_t i = f.size() >= 22 ? f.size() - 22 : std::string::npos;
       i != std::string::npos && f.size() - i <= 65557; --i) {
    if (f.compare(i, 4, "PK\x05\x06") == 0) {
      eocd = i;
      break;
    }
    if (i == 0) break;
  }
  if (eocd == std::string::npos) throw NpzError(what + " is not a .npz file (no ZIP directory)");
  uint64_t entries = u16(f, eocd + 10);
  uint64_t dir_at = u32(f, eocd + 16);
  if ((entries == 0xFFFF || dir_at == 0xFFFFFFFF) && eocd >= 20 && f.compare(eocd - 20, 4, "PK\x06\x07") == 0) {
    const uint64_t z64 = u64(f, eocd - 20 + 8);  // ZIP64 end record
    if (z64 + 56 > f.size() || f.compare(z64, 4, "PK\x06\x06") != 0) throw NpzError(what + ": corrupt ZIP64 record");
    entries = u64(f, z64 + 32);
    dir_at = u64(f, z64 + 48);
  }
  ArrayMap out;
  size_t p = dir_at;
  for (uint64_t e = 0; e < entries; ++e) {
    if (p + 46 > f.size() || f.compare(p, 4, "PK\x01\x02") != 0)
      throw NpzError(what + ": corrupt ZIP directory");
    const uint32_t method = u16(f, p + 10);
    uint64_t csize = u32(f, p + 20), usize = u32(f, p + 24);
    const uint32_t name_len = u16(f, p + 28), extra_len = u16(f, p + 30), comment_len = u16(f, p + 32);
    uint64_t local = u32(f, p + 42);
    if (p + 46 + name_len + extra_len > f.size()) throw NpzError(what + ": corrupt ZIP directory");
    const std::string name = f.substr(p + 46, name_len);
    // ZIP64 sizes and offset, in that order, for the fields that are full.
    for (size_t x = p + 46 + name_len; x + 4 <= p + 46 + name_len + extra_len;) {
      const uint32_t id = u16(f, x), len = u16(f, x + 2);
      if (id == 0x0001) {
        size_t q = x + 4;
        if (usize == 0xFFFFFFFF) usize = u64(f, q), q += 8;
        if (csize == 0xFFFFFFFF) csize = u64(f, q), q += 8;
        if (local == 0xFFFFFFFF) local = u64(f, q);
      }
      x += 4 + len;
    }
    p += 46 + name_len + extra_len + comment_len;
    if (local + 30 > f.size() || f.compare(local, 4, "PK\x03\x04") != 0)
      throw NpzError(what + ": corrupt ZIP entry '" + name + "'");
    const size_t data = local + 30 + u16(f, local + 26) + u16(f, local + 28);
    if (data + csize > f.size()) throw NpzError(what + ": truncated ZIP entry '" + name + "'");
    std::string array_name = name;
    if (array_name.size() > 4 && array_name.ends_with(".npy")) array_name.resize(array_name.size() - 4);
    const std::string array_what = "array '" + array_name + "' in " + what;
    std::string bytes = f.substr(data, csize);
    if (method == 8) bytes = inflate_raw(bytes, usize, array_what);
    else if (method != 0)
      throw NpzError(array_what + " uses ZIP compression method " + std::to_string(method) +
                     "; nabla reads stored and deflate entries (numpy.savez, numpy.savez_compressed)");
    out[array_name] = parse_npy(bytes, array_what);
  }
  return out;
}

void write_npz(const std::string& path, const ArrayMap& arrays, bool compress) {
  std::string zip, dir;
  uint32_t count = 0;
  for (const auto& [name, array] : arrays) {
    const std::string npy = make_npy(array);
    const std::string body = compress ? deflate_raw(npy) : npy;
    const std::string file = name + ".npy";
    const uint32_t crc = static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(npy.data()),
                                                     static_cast<uInt>(npy.size())));
    if (zip.size() > 0xFFFFFFF0u || npy.size() > 0xFFFFFFF0u)
      throw NpzError("'" + path + "': arrays over 4 GiB are not supported");
    const uint32_t offset = static_cast<uint32_t>(zip.size());
    auto common = [&](std::string& s) {
      put16(s, 20);                   // version needed
      put16(s, 0);                    // flags
      put16(s, compress ? 8 : 0);     // method
      put16(s, 0);                    // time
      put16(s, 0x21);                 // date (1980-01-01)
      put32(s, crc);
      put32(s, static_cast<uint32_t>(body.size()));
      put32(s, static_cast<uint32_t>(npy.size()));
      put16(s, static_cast<uint32_t>(file.size()));
      put16(s, 0);                    // extra
    };
    zip += "PK\x03\x04";
    common(zip);
    zip += file + body;
    dir += "PK\x01\x02";
    put16(dir, 20);  // version made by
    common(dir);
    put16(dir, 0);   // comment
    put16(dir, 0);   // disk
    put16(dir, 0);   // internal attributes
    put32(dir, 0);   // external attributes
    put32(dir, offset);
    dir += file;
    ++count;
  }
  const uint32_t dir_at = static_cast<uint32_t>(zip.size());
  zip += dir;
  zip += "PK\x05\x06";
  put16(zip, 0);
  put16(zip, 0);
  put16(zip, count);
  put16(zip, count);
  put32(zip, static_cast<uint32_t>(dir.size()));
  put32(zip, dir_at);
  put16(zip, 0);

  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(zip.data(), static_cast<std::streamsize>(zip.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw NpzError("cannot write '" + path + "': " + std::strerror(errno));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw NpzError("cannot write '" + path + "': " + why);
  }
}

}  // namespace nabla::runtime
