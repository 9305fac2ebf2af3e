// Run by the build (codegen/CMakeLists.txt): compiles the shared GEMM support
// objects (f32, f64) for the machine the build runs on into DIR, keyed as the
// kernel cache keys them, so that no user of this build waits for them
// (compile_kernels reads shipped_support_dir() first). On another CPU the
// keys differ and the objects are compiled and cached on first use instead.
//
// usage: nabla_support_objects DIR
#include <cstdio>
#include <filesystem>

#include "codegen/cache.h"
#include "codegen/jit.h"
#include "codegen/kernels.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::error_code ec;
  std::filesystem::create_directories(argv[1], ec);
  const nabla::codegen::EmitTarget host = nabla::codegen::host_target();
  for (nabla::ir::DType t : {nabla::ir::DType::F32, nabla::ir::DType::F64}) {
    const std::string object = nabla::codegen::compile_support(t, host);
    if (!nabla::codegen::cache_write(argv[1], nabla::codegen::support_key(t, host), object)) {
      std::fprintf(stderr, "%s: cannot write the support object into %s\n", argv[0], argv[1]);
      return 1;
    }
  }
  return 0;
}
