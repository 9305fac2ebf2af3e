// Reading the global options into what the pipeline takes.
#pragma once

#include <iosfwd>
#include <optional>

#include "cli/commands.h"
#include "frontend/model.h"
#include "frontend/sema.h"

namespace nabla::cli {

// The --set NAME=VALUE list as sema options; nullopt (with an error on `err`)
// when one is malformed.
std::optional<SemaOptions> sema_options(const GlobalOptions& global, std::ostream& err);

// `nabla check`'s one-line summary of a model.
std::string model_summary(const CheckedModel& m);

}  // namespace nabla::cli
