#include "cli/options.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/pipeline.h"

namespace nabla::cli {

namespace {
// `text` whole as a number, with from_chars (so "nan" and "inf" parse too).
template <typename T>
bool parse_whole(const std::string& text, T& value) {
  const char* end = text.data() + text.size();
  const auto res = std::from_chars(text.data(), end, value);
  return res.ec == std::errc() && res.ptr == end;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}
}  // namespace

CLI::Validator positive_integer(const std::string& what, int64_t max) {
  return CLI::Validator(
      [what, max](std::string& text) -> std::string {
        int64_t v = 0;
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        if (digits && !parse_whole(text, v)) v = INT64_MAX;  // overflow: too large
        double written = 0;  // "1e12", "2.5": a number, but not written as a whole one
        if (!digits && parse_whole(text, written) && written >= 1)
          return "'" + text + "' is not a whole " + what + " written in digits (from 1 to " + std::to_string(max) + ")";
        if (!digits || v < 1) return "'" + text + "' is not a positive " + what;
        if (v > max) return "'" + text + "' is too large a " + what + " (at most " + std::to_string(max) + ")";
        return "";
      },
      "POSITIVE INTEGER");
}

CLI::Validator seed_value() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        uint64_t v = 0;
        const bool digits = !text.empty() && text.find_first_not_of("0123456789") == std::string::npos;
        if (!digits || !parse_whole(text, v))
          return "'" + text + "' is not a seed (a whole number from 0 to 18446744073709551615)";
        return "";
      },
      "SEED");
}

CLI::Validator number_in(const std::string& what, double lo, double hi, bool lo_open) {
  return CLI::Validator(
      [what, lo, hi, lo_open](std::string& text) -> std::string {
        double v = 0;
        if (!parse_whole(text, v)) return "'" + text + "' is not a number (" + what + ")";
        if (!std::isfinite(v)) return "'" + text + "' is not a finite " + what;
        if (lo_open ? v <= lo : v < lo)
          return "'" + text + "' is not a " + (lo == 0 ? (lo_open ? "positive " : "non-negative ") : "") + what +
                 (lo == 0 ? "" : " (from " + number_text(lo) + ")");
        if (v > hi) return "'" + text + "' is too large a " + what + " (at most " + number_text(hi) + ")";
        return "";
      },
      "NUMBER");
}

// "NAME=VALUE" with a finite number: "" and *name, *value, or the error.
std::string parse_name_value(const std::string& item, const std::string& option, std::string* name, double* value) {
  const size_t eq = item.find('=');
  *name = item.substr(0, eq);
  const char* begin = eq == std::string::npos ? nullptr : item.data() + eq + 1;
  const char* end = item.data() + item.size();
  auto res = begin ? std::from_chars(begin, end, *value) : std::from_chars_result{end, std::errc::invalid_argument};
  if (res.ec == std::errc::result_out_of_range && res.ptr == end) {
    // As a number in a model: one that underflows rounds to zero or a
    // subnormal; one that overflows is refused below.
    *value = std::strtod(std::string(begin, end).c_str(), nullptr);
    res.ec = std::errc();
  }
  if (eq == std::string::npos || name->empty() || res.ec != std::errc() || res.ptr != end || !std::isfinite(*value))
    return "'" + item + "' is not NAME=VALUE with a finite number (as in " + option +
           (option == "--set" ? " lambda=1e-3)" : " x=1.5,w=2: pairs separated by commas)");
  return "";
}

CLI::Validator set_value() {
  return CLI::Validator(
      [](std::string& item) -> std::string {
        std::string name;
        double value = 0;
        return parse_name_value(item, "--set", &name, &value);
      },
      "NAME=VALUE");
}

std::optional<SemaOptions> sema_options(const GlobalOptions& global, std::ostream& err) {
  SemaOptions options;
  for (const std::string& item : global.set) {
    std::string name;
    double value = 0;
    if (const std::string why = parse_name_value(item, "--set", &name, &value); !why.empty()) {
      print_error(err, "--set: " + why);  // set_value() checked the option already
      return std::nullopt;
    }
    options.overrides[name] = value;  // the last one given wins, so a script may append overrides
  }
  return options;
}

}  // namespace nabla::cli
