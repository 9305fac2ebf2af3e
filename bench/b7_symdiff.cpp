// B7: symbolic differentiation of the baselines' corpus (40 expressions of
// neural-network units), timed as nabla does it for `nabla diff -e`.
//
// For each expression (read in .nn syntax, see b7_translate.py), the
// "gradient" is the partial derivative with respect to each of x, w, b that
// occurs, as in the SymPy and GiNaC baselines. Two timings per expression,
// each call starting from a fresh IR context (nothing cached between calls,
// like SymPy's cleared cache):
//   diff           lower the checked expression, differentiate (reverse mode,
//                  all partials in one pass): comparable to GiNaC's diff, which
//                  does not simplify;
//   diff+simplify  lower, simplify, differentiate, simplify the gradient:
//                  what `nabla diff` prints; comparable to SymPy diff + simplify.
// `ops` counts the operations of the simplified gradient with every shared
// subexpression once (the non-leaf nodes of its DAG), as `cse ops` does.
//
//   b7_symdiff CORPUS.nn-expr LABELS.txt   -> one JSON line per expression
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "bench_util.h"
#include "frontend/lower.h"
#include "frontend/parser.h"
#include "frontend/sema.h"
#include "ir/differentiate.h"
#include "ir/simplify.h"

using namespace nabla;

namespace {

struct Prepared {
  std::unique_ptr<SourceFile> file;
  ast::Module ast;
  CheckedExpr checked;
  std::vector<std::string> vars;  // of x, w, b, in that order, those that occur
};

struct Result {
  std::vector<const ir::Node*> gradient;
  size_t ops = 0;
};

Result differentiate(const Prepared& p, bool simplify) {
  ir::Context ctx;
  LoweredExpr e = lower_expression(p.checked, ctx);
  std::vector<const ir::Node*> wrt;
  for (const std::string& v : p.vars)
    for (const ir::Node* n : e.vars)
      if (n->name() == v) wrt.push_back(n);
  const ir::Node* f = simplify ? ir::simplify(ctx, e.root) : e.root;
  Result r;
  r.gradient = ir::gradient(ctx, f, wrt);
  if (simplify) r.gradient = ir::simplify(ctx, r.gradient);
  for (const ir::Node* n : ir::reachable(r.gradient)) r.ops += n->arity() > 0 ? 1 : 0;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: b7_symdiff CORPUS.nn-expr LABELS.txt\n";
    return 2;
  }
  std::ifstream corpus(argv[1]), labels(argv[2]);
  std::string line, label;
  int index = 0;
  while (std::getline(corpus, line) && std::getline(labels, label)) {
    Prepared p;
    p.file = std::make_unique<SourceFile>("<expr>", line);
    Diagnostics diags(*p.file);
    p.ast = parse_expression(*p.file, diags);
    if (!diags.has_errors()) p.checked = check_expression(p.ast, diags);
    if (diags.has_errors()) {
      std::cerr << "b7_symdiff: cannot read expression " << index << ": " << line << "\n";
      return 1;
    }
    for (const char* v : {"x", "w", "b"})
      for (const std::string& name : p.checked.vars)
        if (name == v) p.vars.push_back(v);
    const bench::Timing diff = bench::measure([&] { differentiate(p, false); });
    const bench::Timing full = bench::measure([&] { differentiate(p, true); });
    const size_t raw_ops = differentiate(p, false).ops;
    const size_t ops = differentiate(p, true).ops;
    std::string vars;
    for (const std::string& v : p.vars) vars += (vars.empty() ? "" : ",") + v;
    std::printf(
        "{\"index\": %d, \"label\": \"%s\", \"vars\": \"%s\", \"diff_us\": %.4g, \"diff_min_us\": %.4g, "
        "\"diff_max_us\": %.4g, \"diff_simplify_us\": %.4g, \"diff_simplify_min_us\": %.4g, "
        "\"diff_simplify_max_us\": %.4g, \"raw_ops\": %zu, \"ops\": %zu}\n",
        index, label.c_str(), vars.c_str(), diff.median_s * 1e6, diff.min_s * 1e6, diff.max_s * 1e6,
        full.median_s * 1e6, full.min_s * 1e6, full.max_s * 1e6, raw_ops, ops);
    std::fflush(stdout);
    ++index;
  }
  return 0;
}
