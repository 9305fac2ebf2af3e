#include "cli/pipeline.h"

#include <ostream>

#include "runtime/budget.h"
#include "runtime/comm.h"

namespace nabla::cli {

void print_error(std::ostream& err, const std::string& message) {
  // In a data-parallel job, which process it was (docs/distributed.md).
  if (const runtime::Comm* w = runtime::started_world())
    err << "nabla: rank " << w->rank() << " of " << w->size() << ": error: " << message << "\n";
  else
    err << "nabla: error: " << message << "\n";
}

std::optional<LoadedModel> load_model(const std::string& path, const SemaOptions& options, std::ostream& err,
                                      Stage last, PassTimes* times) {
  auto r = driver::load_model(path, options, last, times);
  err << r.rendered;
  return std::move(r.value);
}

std::optional<LoadedExpr> load_expression(const std::string& text, std::ostream& err, Stage last) {
  auto r = driver::load_expression(text, last);
  err << r.rendered;
  return std::move(r.value);
}

void print_times(const PassTimes& times, std::ostream& out) { out << times.table(); }

runtime::DType dtype_of(const GlobalOptions& global) {
  return global.dtype == "f64" ? runtime::DType::F64 : runtime::DType::F32;
}

int thread_count(const GlobalOptions& global) {
  return runtime::useful_threads(global.threads.value_or(0), runtime::kMaxThreads);
}

driver::CompileOptions compile_options(const GlobalOptions& global, runtime::DType dtype) {
  driver::CompileOptions o;
  o.dtype = dtype;
  o.threads = global.threads.value_or(0);
  o.use_cache = !global.no_cache;
  return o;
}

}  // namespace nabla::cli
