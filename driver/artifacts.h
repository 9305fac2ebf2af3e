// A model's kernels as files (`nabla compile --emit ...`): LLVM IR, assembly,
// an object file, its C header, or the loop programs (optionally after each
// of codegen's passes).
#pragma once

#include <string>

#include "driver/load.h"
#include "frontend/lower.h"

namespace nabla::driver {

struct ArtifactRequest {
  std::string emit = "obj";  // llvm, asm, obj, header, program, paths
  std::string cpu;           // the CPU to compile for, by LLVM's name ("": this host)
  ir::DType dtype = ir::DType::F32;
  std::string prefix;        // the functions' prefix, a C identifier
  std::string model_name;    // for the header's comment
  bool after_each_pass = false;  // program: after each pass of build_program
};

// A C identifier made from a model or file name ("2-layer" -> "m_2_layer").
std::string c_identifier(const std::string& name);

// Throws Error when `m` has no output and no loss: there is no kernel to compile.
void require_kernels(const LoweredModel& m, const std::string& file);

// The artifact's text (bytes, for obj). Throws Error for a model with no
// output and no loss (no kernel to compile).
std::string compile_artifact(ir::Context& ctx, const LoweredModel& m, const ArtifactRequest& request,
                             const std::string& file, PassTimes* times = nullptr);

}  // namespace nabla::driver
