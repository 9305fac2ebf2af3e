#include "codegen/llvm_info.h"

#include <llvm/ADT/StringRef.h>
#include <llvm/Config/llvm-config.h>
#include <llvm/TargetParser/Host.h>

namespace nabla {

std::string llvm_version() { return LLVM_VERSION_STRING; }
std::string host_cpu_name() { return llvm::sys::getHostCPUName().str(); }
std::string host_target_triple() { return llvm::sys::getProcessTriple(); }

}  // namespace nabla
