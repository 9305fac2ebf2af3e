// Arrays for a model: params made by their `init` or taken from a file's
// arrays, and data batches checked against the model (names, shapes, a batch
// axis, label distributions) in the kernels' element type.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "frontend/lower.h"
#include "frontend/model.h"
#include "ir/interpret.h"
#include "runtime/init.h"
#include "runtime/npz.h"
#include "runtime/train.h"

namespace nabla::driver {

// Sample `i` of a batched array (the whole array for i = 0 of an
// unbatched one) as an interpreter tensor of `shape`.
ir::Tensor sample_tensor(const runtime::Array& a, int64_t i, const Shape& shape);

// A param's init as the runtime's initializer takes it.
runtime::InitKind init_kind(InitSpecDecl::Kind k);

// Every param of `model` by its init, seeded.
runtime::ArrayMap initial_params(const CheckedModel& model, uint64_t seed, runtime::DType dtype);

// The params of `m` from `given` (read from `file`, for messages), each
// checked against its declared shape and converted to `dtype`.
runtime::ArrayMap params_from(const runtime::ArrayMap& given, const std::string& file, const LoweredModel& m,
                              runtime::DType dtype);

// The inputs and (when `labels`) labels of `m` from `arrays` (read from
// `file`), batch first, in `dtype`; `storage` owns the converted arrays the
// result points to. Throws runtime::NpzError naming what does not fit, or
// when there are no samples.
runtime::TrainData batch_data(const runtime::ArrayMap& arrays, const std::string& file, const LoweredModel& m,
                              runtime::DType dtype, bool labels, std::vector<runtime::Array>& storage);
// The same, taking `arrays`: those already in `dtype` move into `storage`
// instead of being copied (MNIST's 25 MB of pixels, read from an .npz: one
// fresh copy less; a one-epoch `nabla train` 0.121 -> 0.113 s on the guest
// of bench/RESULTS.md, whose fresh pages are slow to fault in).
runtime::TrainData batch_data(runtime::ArrayMap&& arrays, const std::string& file, const LoweredModel& m,
                              runtime::DType dtype, bool labels, std::vector<runtime::Array>& storage);

// Validation data must be finite: a NaN or infinity in `d` (read from
// `file`) throws runtime::NpzError naming the array and the element (the
// validation loss was printed as nan, the exit status 0).
void require_finite(const runtime::TrainData& d, const std::string& file);

// Whether `data` names shards: a glob pattern (`*`, `?` or `[`) rather
// than one file (docs/distributed.md).
bool is_shard_pattern(const std::string& data);

// The files of `pattern` (sorted) that process `rank` of `size` loads: the
// i-th when i mod size = rank. Throws runtime::NpzError when nothing matches.
std::vector<std::string> shard_files(const std::string& pattern, int rank, int size);

// batch_data of several files, their samples one after the other (no file:
// no samples, and no error).
runtime::TrainData shard_data(const std::vector<std::string>& files, const LoweredModel& m, runtime::DType dtype,
                              std::vector<runtime::Array>& storage);

// Checks `params` (from `params_file`) and `data` (from `data_file`: the
// inputs and, with `labels`, the labels, batch first) against `m` as the
// kernels' calls need them; returns the batch size. Throws
// runtime::NpzError naming the first array that does not fit, or when the
// data holds no samples.
int64_t check_arrays(const LoweredModel& m, const runtime::ArrayMap& params, const std::string& params_file,
                     const runtime::ArrayMap& data, const std::string& data_file, bool labels,
                     runtime::DType dtype);

}  // namespace nabla::driver
