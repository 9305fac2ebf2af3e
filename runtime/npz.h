// NumPy .npy / .npz files: how tensors go in and out of nabla (spec/cli.md).
//
// Reads what numpy.save, numpy.savez and numpy.savez_compressed write: ZIP
// archives (stored or deflate-compressed, ZIP64 records included) of .npy
// arrays in format 1.0, 2.0 or 3.0, little-endian float32 or float64, C order.
// Writes the same (stored, or deflate with `compress`), readable by numpy.load.
// Every failure is an NpzError whose message names the file and, where there
// is one, the array.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace nabla::runtime {

enum class DType : uint8_t { F32, F64 };
const char* dtype_name(DType t);  // "float32", "float64"

// A dense C-order array of float32 or float64 values.
struct Array {
  std::vector<int64_t> shape;
  DType dtype = DType::F64;
  std::vector<float> f32;   // the values when dtype is F32
  std::vector<double> f64;  // the values when dtype is F64

  int64_t size() const;
  double at(size_t i) const { return dtype == DType::F32 ? f32[i] : f64[i]; }
  // The same values in the other (or the same) element type.
  Array as(DType t) const;
  static Array zeros(std::vector<int64_t> shape, DType t);
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[3, 4]"

class NpzError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// Arrays by name, in name order.
using ArrayMap = std::map<std::string, Array>;

ArrayMap read_npz(const std::string& path);
// Writes to `path` through a temporary file and a rename, so a reader (or a
// crash) never sees half a file.
void write_npz(const std::string& path, const ArrayMap& arrays, bool compress = false);

// One .npy payload (the bytes of a .npy file): parse and make.
Array parse_npy(const std::string& bytes, const std::string& what);
std::string make_npy(const Array& a);

}  // namespace nabla::runtime
