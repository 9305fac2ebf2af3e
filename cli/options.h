// Reading the global options into what the pipeline takes.
#pragma once

#include <iosfwd>
#include <optional>

#include "cli/commands.h"
#include "frontend/model.h"
#include "frontend/sema.h"
#include "runtime/init.h"

namespace nabla::cli {

// The --set NAME=VALUE list as sema options; nullopt (with an error on `err`)
// when one is malformed.
std::optional<SemaOptions> sema_options(const GlobalOptions& global, std::ostream& err);

// A param's init as the runtime's initializer takes it.
runtime::InitKind kind_of(InitSpecDecl::Kind k);

// `nabla check`'s one-line summary of a model.
std::string model_summary(const CheckedModel& m);

}  // namespace nabla::cli
