// Facts about the LLVM this build of nabla generates code with.
// (codegen/ is the only directory that includes LLVM headers.)
#pragma once

#include <string>

namespace nabla {

std::string llvm_version();   // "19.1.7"
std::string host_cpu_name();  // LLVM's name for this CPU, e.g. "znver5"
std::string host_target_triple();

}  // namespace nabla
