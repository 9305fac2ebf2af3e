// NumPy .npy / .npz files: how tensors go in and out of nabla (docs/npz.md).
//
// Reads what numpy.save, numpy.savez and numpy.savez_compressed write: ZIP
// archives (stored or deflate-compressed, ZIP64 records included) of NAME.npy
// members in .npy format 1.0, 2.0 or 3.0, float32 or float64 (little- or
// big-endian, the latter byte-swapped), C order. Every member's CRC-32 is
// checked; the .npy header is parsed strictly; no member is inflated past the
// size its header declares, and the arrays' memory is checked against the
// budget (runtime/budget.h) before it is allocated. docs/npz.md lists what is
// read and what is refused.
// Writes the same (stored, or deflate with `compress`), readable by numpy.load.
// Every failure is an NpzError (or a ResourceError for a request over the
// memory budget) whose message names the file and, where there is one, the
// array; names taken from a file are printed escaped().
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/aligned.h"

namespace nabla::runtime {

enum class DType : uint8_t { F32, F64 };
const char* dtype_name(DType t);  // "float32", "float64"

// A dense C-order array of float32 or float64 values, 64-byte aligned
// (runtime/aligned.h: the kernels' loads and stores then stay within cache
// lines).
struct Array {
  std::vector<int64_t> shape;
  DType dtype = DType::F64;
  AlignedVector<float> f32;   // the values when dtype is F32
  AlignedVector<double> f64;  // the values when dtype is F64

  int64_t size() const;
  double at(size_t i) const { return dtype == DType::F32 ? f32[i] : f64[i]; }
  // The values' memory (f32 or f64 by dtype), as kernels take it.
  void* bytes() { return dtype == DType::F32 ? static_cast<void*>(f32.data()) : static_cast<void*>(f64.data()); }
  const void* bytes() const {
    return dtype == DType::F32 ? static_cast<const void*>(f32.data()) : static_cast<const void*>(f64.data());
  }
  // The same values in the other (or the same) element type.
  Array as(DType t) const;
  // The same, for values a user gave: a finite value float32 cannot hold
  // (beyond 3.4e38) is an NpzError naming `what`, not an infinity.
  Array as(DType t, const std::string& what) const;
  // Throws as as(t, what) would, converting nothing (beyond_float32).
  void check_fits(DType t, const std::string& what) const;
  // An NpzError naming `what`, the first NaN or infinity and `why` when the
  // array holds one.
  void check_finite(const std::string& what, const std::string& why) const;
  static Array zeros(std::vector<int64_t> shape, DType t);
};

std::string shape_str(const std::vector<int64_t>& shape);  // "[3, 4]"

class NpzError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// The message for `value`, element `element` of `what`, which float32 cannot
// hold (Array::check_fits; the Python module's arrays too).
std::string beyond_float32(const std::string& what, double value, size_t element);

// Arrays by name, in name order.
using ArrayMap = std::map<std::string, Array>;

// `text` fit for a message: printable ASCII and printable UTF-8 as they are,
// every other byte (control characters, invalid UTF-8, invisible or
// direction-changing code points) as \xNN.
std::string escaped(std::string_view text);

// The arrays of the .npz file at `path` (a regular file, or a pipe read whole).
ArrayMap read_npz(const std::string& path);
// The arrays of an .npz archive held in memory; messages call it `what`.
ArrayMap read_npz_bytes(std::string_view bytes, const std::string& what);

// The deflated members read so far in this process that were inflated whole
// (libdeflate) rather than as zlib's stream (docs/npz.md); for tests.
uint64_t whole_inflated_members();

// `in` deflated as a raw stream (a ZIP member's body, method 8).
std::string deflate_bytes(std::string_view in);

// The .npz archive of `arrays` (members NAME.npy, stored or deflated).
std::string npz_bytes(const ArrayMap& arrays, bool compress);
// Writes npz_bytes to `path` through the one output path (runtime/output.h):
// a regular file atomically (a reader or a crash never sees half a file), a
// device in place; refused when it is one of `inputs`. Throws OutputError.
void write_npz(const std::string& path, const ArrayMap& arrays, bool compress = false,
               const std::vector<std::string>& inputs = {});

// One .npy payload (the bytes of a .npy file, nothing after the data): parse
// and make. Messages name the array `what`.
Array parse_npy(std::string_view bytes, const std::string& what);
std::string make_npy(const Array& a);

}  // namespace nabla::runtime
