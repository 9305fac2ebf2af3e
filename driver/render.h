// Writing derivative programs in the formats of `--format` (docs/commands.md).
#pragma once

#include <string>
#include <vector>

#include "ir/node.h"
#include "ir/print.h"

namespace nabla::driver {

// `labels[i]` names `roots[i]` ("d/dW1"); `options` names shared nodes.
// format: text (re-parseable), latex, dot, json.
std::string render(const std::vector<const ir::Node*>& roots, const std::vector<std::string>& labels,
                   ir::PrintOptions options, const std::string& format);

}  // namespace nabla::driver
