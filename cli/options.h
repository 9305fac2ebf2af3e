// Reading the global options into what the pipeline takes.
#pragma once

#include <iosfwd>
#include <optional>

#include "cli/commands.h"
#include "frontend/model.h"
#include "frontend/sema.h"

namespace nabla::cli {

// Option values are checked where CLI11 reads them, by these validators, in
// one dialect: "'0' is not a positive batch size", "'nan' is not a finite
// learning rate", "'100000' is too large a thread count (at most 1024)". A
// failed check is a usage error (exit 2) before any work is done.
// Upper bounds of options that size work (memory is checked against the
// budget again when it is allocated, runtime/budget.h).
constexpr int64_t kMaxBatch = int64_t{1} << 40;
constexpr int64_t kMaxEpochs = 1'000'000'000;
constexpr double kMaxFactor = 1e30;  // learning rates, decays, tolerances

// A whole number from 1 to `max`.
CLI::Validator positive_integer(const std::string& what, int64_t max);
// A seed: a whole number from 0 to 2^64 - 1 ("-1" was taken as 2^64 - 1).
CLI::Validator seed_value();
// A finite number in [lo, hi] (`lo_open`: lo itself excluded).
CLI::Validator number_in(const std::string& what, double lo, double hi, bool lo_open);
inline CLI::Validator positive_number(const std::string& what, double max) {
  return number_in(what, 0, max, true);
}
inline CLI::Validator non_negative_number(const std::string& what, double max) {
  return number_in(what, 0, max, false);
}

// "NAME=VALUE" with a finite number (--set, --at's pairs): "" with *name and
// *value set, or the error message ("'a=abc' is not NAME=VALUE ...").
std::string parse_name_value(const std::string& item, const std::string& option, std::string* name, double* value);
// --set's check (a usage error, exit 2).
CLI::Validator set_value();
// The --set NAME=VALUE list as sema options; nullopt (with an error on `err`)
// when one is malformed.
std::optional<SemaOptions> sema_options(const GlobalOptions& global, std::ostream& err);

// `nabla check`'s one-line summary of a model.
std::string model_summary(const CheckedModel& m);

}  // namespace nabla::cli
