// Writing derivative programs in the formats of `--format` (spec/cli.md).
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "ir/node.h"
#include "ir/print.h"

namespace nabla::cli {

// `labels[i]` names `roots[i]` ("d/dW1"); `options` names shared nodes.
// format: text (re-parseable), latex, dot, json.
void render(std::ostream& out, const std::vector<const ir::Node*>& roots,
            const std::vector<std::string>& labels, ir::PrintOptions options,
            const std::string& format);

}  // namespace nabla::cli
