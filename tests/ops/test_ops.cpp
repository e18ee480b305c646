// The op-registry harness (tests/ops/op_registry.h): every registered op through
//   RecordsItsNodes - the entry's graph holds the autograd nodes it claims to exercise,
//   Gradcheck       - float64 CPU, analytic vs central differences (tests/common/gradcheck.h),
//   NaiveVsFast     - float32 CPU, the naive twin vs the op, forward and every input gradient
//                     (instantiated only for the entries that have a twin),
//   CudaParity      - float32, CPU vs CUDA, forward and every input gradient (SKIPPED without a GPU),
// and Coverage.EveryAutogradNodeIsRegistered: the node names passed to attach_grad anywhere in the
// product sources (SX_SOURCE_DIR) must all be recorded by some registry entry's graph.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"
#include "tests/ops/op_registry.h"

#ifndef SX_SOURCE_DIR
#error "test_ops needs SX_SOURCE_DIR (the source tree it scans for attach_grad call sites)"
#endif

namespace sx::test {
namespace {

// |got - ref| <= atol + rtol * |ref| per element; "" when close, else the first mismatches.
std::string compare(const std::string& what, const Tensor& got, const Tensor& ref, const Tolerance& tol) {
  std::ostringstream os;
  if (!got.defined() || !ref.defined()) {
    os << what << ": " << (got.defined() ? "reference" : "result") << " undefined\n";
    return os.str();
  }
  if (got.shape() != ref.shape()) {
    os << what << ": shape " << shape_str(got.shape()) << " != " << shape_str(ref.shape()) << "\n";
    return os.str();
  }
  const std::vector<double> g = got.to_vector(), r = ref.to_vector();
  int bad = 0;
  double worst = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double d = std::fabs(g[i] - r[i]);
    if (!(d <= tol.atol + tol.rtol * std::fabs(r[i]))) {
      worst = std::max(worst, d);
      if (++bad <= 5) os << what << " element " << i << ": " << g[i] << " vs reference " << r[i] << "\n";
    }
  }
  if (bad > 0) os << what << ": " << bad << " of " << r.size() << " elements differ (worst " << worst << ")\n";
  return os.str();
}

std::string compare_all(const std::vector<Tensor>& got, const std::vector<Tensor>& ref, const Tolerance& tol) {
  if (got.size() != ref.size()) return "different numbers of results";
  std::string msg;
  for (size_t i = 0; i < got.size(); ++i)
    msg += compare(i == 0 ? "forward" : "grad of differentiable input " + std::to_string(i - 1), got[i], ref[i], tol);
  return msg;
}

class OpTest : public ::testing::TestWithParam<size_t> {
 protected:
  const OpCase& op() const { return op_registry()[GetParam()]; }
};

TEST_P(OpTest, RecordsItsNodes) {
  const OpCase& c = op();
  Tensor out = c.fn(make_inputs(c, DType::Float64, Device::cpu()));
  const std::vector<std::string> names = graph_node_names(out);
  const std::set<std::string> got(names.begin(), names.end());
  std::string list;
  for (const auto& n : names) list += " " + n;
  for (const std::string& n : c.nodes) EXPECT_TRUE(got.count(n)) << c.name << ": node '" << n << "' not in the graph {" << list << " }";
}

TEST_P(OpTest, Gradcheck) {
  const OpCase& c = op();
  const std::vector<Tensor> in = make_inputs(c, DType::Float64, Device::cpu());
  // The checker takes float64 tensors only: integer / bool inputs (indices, targets, masks) are bound.
  std::vector<size_t> pos;
  std::vector<Tensor> floats;
  for (size_t i = 0; i < in.size(); ++i)
    if (in[i].dtype() == DType::Float64) {
      pos.push_back(i);
      floats.push_back(in[i]);
    }
  auto f = [&](const std::vector<Tensor>& x) {
    std::vector<Tensor> all = in;
    for (size_t k = 0; k < pos.size(); ++k) all[pos[k]] = x[k];
    return c.fn(all);
  };
  auto r = gradcheck(f, floats, c.gc.eps, c.gc.atol, c.gc.rtol);
  EXPECT_TRUE(r.ok) << c.name << ":\n" << r.message;
}

// Instantiated only for the entries that have a twin (a skip would not be a pass).
class OpTwinTest : public OpTest {};

TEST_P(OpTwinTest, NaiveVsFast) {
  const OpCase& c = op();
  ASSERT_TRUE(static_cast<bool>(c.naive)) << c.name << " has no naive twin";
  // Each side gets its own inputs (same values), so the gradients cannot mix.
  const std::vector<Tensor> fast = forward_backward(c.fn, make_inputs(c, DType::Float32, Device::cpu()));
  const std::vector<Tensor> naive = forward_backward(c.naive, make_inputs(c, DType::Float32, Device::cpu()));
  const std::string msg = compare_all(fast, naive, c.naive_tol);
  EXPECT_TRUE(msg.empty()) << c.name << " vs its naive twin (" << c.naive_what << "):\n" << msg;
}

TEST_P(OpTest, CudaParity) {
  SX_REQUIRE_CUDA();
  const OpCase& c = op();
  if (!c.cuda) GTEST_SKIP() << c.name << " has no CUDA path";
  const std::vector<Tensor> cpu = forward_backward(c.fn, make_inputs(c, DType::Float32, Device::cpu()));
  const std::vector<Tensor> gpu = forward_backward(c.fn, make_inputs(c, DType::Float32, Device::cuda(0)));
  const std::string msg = compare_all(gpu, cpu, c.parity);
  EXPECT_TRUE(msg.empty()) << c.name << " CUDA vs CPU:\n" << msg;
}

std::vector<size_t> all_indices() {
  std::vector<size_t> v(op_registry().size());
  for (size_t i = 0; i < v.size(); ++i) v[i] = i;
  return v;
}

std::vector<size_t> twin_indices() {
  std::vector<size_t> v;
  for (size_t i = 0; i < op_registry().size(); ++i)
    if (op_registry()[i].naive) v.push_back(i);
  return v;
}

std::string case_name(const ::testing::TestParamInfo<size_t>& info) { return op_registry()[info.param].name; }

INSTANTIATE_TEST_SUITE_P(Registry, OpTest, ::testing::ValuesIn(all_indices()), case_name);
INSTANTIATE_TEST_SUITE_P(Registry, OpTwinTest, ::testing::ValuesIn(twin_indices()), case_name);

TEST(Registry, NamesAreUniqueAndEveryEntryIsComplete) {
  std::set<std::string> seen;
  const std::regex valid("[A-Za-z0-9_]+");
  for (const OpCase& c : op_registry()) {
    EXPECT_TRUE(seen.insert(c.name).second) << "duplicate entry " << c.name;
    EXPECT_TRUE(std::regex_match(c.name, valid)) << "not a valid test name: " << c.name;
    EXPECT_FALSE(c.nodes.empty()) << c.name << " names no autograd node";
    EXPECT_TRUE(c.inputs && c.fn) << c.name;
    if (c.naive) {
      EXPECT_FALSE(c.naive_what.empty()) << c.name << ": say what the naive twin is";
    }
    bool any_grad = false;
    Generator g(1);
    for (const InputSpec& s : c.inputs(g)) any_grad = any_grad || s.grad;
    EXPECT_TRUE(any_grad) << c.name << " differentiates no input";
  }
}

// ---- coverage -------------------------------------------------------------------------------------
// The product's autograd node names, read from the sources: every attach_grad(out, "name", ...) call
// site gives "name"; a call site whose name is a variable (attach_grad(out, op, ...)) is resolved
// through its enclosing function: the string literals passed as that parameter at the function's
// call sites in the same file (minmax("maximum", ...), sort_along(..., "sort")). A variable that
// cannot be resolved is reported, so a new kind of call site cannot slip through.
struct ScanResult {
  std::map<std::string, std::set<std::string>> names;  // node name -> "file:line" of its sites
  std::vector<std::string> unresolved;
  int sites = 0;
};

std::string strip_line_comments(const std::string& text) {
  std::string out;
  std::istringstream is(text);
  std::string line;
  while (std::getline(is, line)) {
    bool in_str = false;
    size_t cut = std::string::npos;
    for (size_t i = 0; i + 1 < line.size(); ++i) {
      if (line[i] == '"' && (i == 0 || line[i - 1] != '\\')) in_str = !in_str;
      if (!in_str && line[i] == '/' && line[i + 1] == '/') {
        cut = i;
        break;
      }
    }
    out += (cut == std::string::npos ? line : line.substr(0, cut)) + "\n";
  }
  return out;
}

// The arguments of the call whose '(' is at text[open], split at top-level commas.
std::vector<std::string> call_args(const std::string& text, size_t open) {
  std::vector<std::string> args;
  std::string cur;
  int depth = 0;
  bool in_str = false;
  for (size_t i = open + 1; i < text.size(); ++i) {
    const char ch = text[i];
    if (ch == '"' && text[i - 1] != '\\') in_str = !in_str;
    if (!in_str) {
      if (ch == '(' || ch == '{' || ch == '[') ++depth;
      if (ch == ')' || ch == '}' || ch == ']') {
        if (depth == 0) {
          args.push_back(cur);
          return args;
        }
        --depth;
      }
      if (ch == ',' && depth == 0) {
        args.push_back(cur);
        cur.clear();
        continue;
      }
    }
    cur += ch;
  }
  return args;
}

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\n"), b = s.find_last_not_of(" \t\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

int line_of(const std::string& text, size_t pos) { return 1 + static_cast<int>(std::count(text.begin(), text.begin() + pos, '\n')); }

void scan_file(const std::filesystem::path& path, const std::string& rel, ScanResult& res) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = strip_line_comments(ss.str());
  const std::regex site(R"(\battach_grad\s*\()");
  const std::regex literal(R"re(^\s*"([^"]+)"\s*$)re");
  const std::regex ident(R"(^\s*([A-Za-z_]\w*)\s*$)");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), site); it != std::sregex_iterator(); ++it) {
    const size_t open = static_cast<size_t>(it->position() + it->length() - 1);
    const std::vector<std::string> args = call_args(text, open);
    const std::string where = rel + ":" + std::to_string(line_of(text, open));
    std::smatch m;
    if (args.size() < 4) continue;  // the declaration / definition (typed parameters), not a call
    if (std::regex_search(args[0], std::regex(R"(\bTensor\s+\w+$)"))) continue;  // definition
    ++res.sites;
    if (std::regex_match(args[1], m, literal)) {
      res.names[m[1]].insert(where);
      continue;
    }
    if (!std::regex_match(args[1], m, ident)) {
      res.unresolved.push_back(where + ": name argument '" + trim(args[1]) + "'");
      continue;
    }
    const std::string var = m[1];
    // The enclosing function: the last definition line (at column 0) before the site.
    size_t line_start = text.rfind('\n', open);
    std::string fname;
    size_t def_open = std::string::npos;
    while (line_start != std::string::npos && line_start > 0) {
      const size_t prev = text.rfind('\n', line_start - 1);
      const size_t b = prev == std::string::npos ? 0 : prev + 1;
      const std::string line = text.substr(b, line_start - b);
      std::smatch dm;
      if (!line.empty() && std::isalpha(static_cast<unsigned char>(line[0])) &&
          std::regex_search(line, dm, std::regex(R"(([A-Za-z_]\w*)\s*\()")) && line.rfind("namespace", 0) != 0) {
        fname = dm[1];
        def_open = b + static_cast<size_t>(dm.position(0) + dm.length(0) - 1);
        break;
      }
      if (prev == std::string::npos) break;
      line_start = prev;
    }
    int param = -1;
    if (def_open != std::string::npos) {
      const std::vector<std::string> params = call_args(text, def_open);
      for (size_t i = 0; i < params.size(); ++i)
        if (std::regex_search(params[i], std::regex("\\b" + var + "\\s*$"))) param = static_cast<int>(i);
    }
    std::set<std::string> found;
    if (param >= 0) {
      const std::regex call("\\b" + fname + "\\s*\\(");
      for (auto ct = std::sregex_iterator(text.begin(), text.end(), call); ct != std::sregex_iterator(); ++ct) {
        const size_t co = static_cast<size_t>(ct->position() + ct->length() - 1);
        if (co == def_open) continue;
        const std::vector<std::string> a = call_args(text, co);
        std::smatch lm;
        if (static_cast<int>(a.size()) > param && std::regex_match(a[param], lm, literal)) found.insert(lm[1]);
      }
    }
    if (found.empty()) {
      res.unresolved.push_back(where + ": node name '" + var + "' in " + (fname.empty() ? "?" : fname) +
                               "() could not be resolved to string literals");
      continue;
    }
    for (const std::string& n : found) res.names[n].insert(where + " (via " + fname + ")");
  }
}

ScanResult scan_sources() {
  ScanResult res;
  const std::filesystem::path root(SX_SOURCE_DIR);
  for (const char* dir : {"tensor", "kernels", "layers", "models", "io", "train"}) {
    if (!std::filesystem::exists(root / dir)) continue;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root / dir)) {
      const std::string ext = e.path().extension().string();
      if (!e.is_regular_file() || (ext != ".cpp" && ext != ".h" && ext != ".cu" && ext != ".cuh")) continue;
      scan_file(e.path(), std::filesystem::relative(e.path(), root).string(), res);
    }
  }
  return res;
}

// The scanner on a synthetic source: a literal name, names through a wrapper's parameter, and a name
// it cannot resolve (reported, so the coverage test fails rather than missing the op).
TEST(Coverage, ScannerReadsLiteralAndWrappedNamesAndReportsTheRest) {
  const std::filesystem::path file = std::filesystem::path(::testing::TempDir()) / "sx_scan_fixture.cpp";
  {
    std::ofstream f(file);
    f << "// attach_grad(out, \"in_a_comment\", {a}, fn) is ignored\n"
         "Tensor attach_grad(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward);\n"
         "Tensor plain(const Tensor& a) {\n"
         "  return attach_grad(out, \"plain_op\", {a}, [](const Tensor& g) { return V{g}; });\n"
         "}\n"
         "Tensor wrapper(const Tensor& a, int k, const char* op) {\n"
         "  Tensor v = f(a);\n"
         "  v = attach_grad(v, op, {a}, [k](const Tensor& g) { return V{g}; });\n"
         "  return v;\n"
         "}\n"
         "Tensor first(const Tensor& a) { return wrapper(a.reshape({1}), 0, \"first_op\"); }\n"
         "Tensor second(const Tensor& a) { return wrapper(a, 1, \"second_op\"); }\n"
         "Tensor opaque(const Tensor& a, const std::string& s) {\n"
         "  return attach_grad(out, s.c_str(), {a}, fn);\n"
         "}\n";
  }
  ScanResult res;
  scan_file(file, "fixture.cpp", res);
  std::filesystem::remove(file);
  EXPECT_EQ(res.sites, 3);
  std::set<std::string> names;
  for (const auto& kv : res.names) names.insert(kv.first);
  EXPECT_EQ(names, (std::set<std::string>{"plain_op", "first_op", "second_op"}));
  ASSERT_EQ(res.unresolved.size(), 1u);
  EXPECT_NE(res.unresolved[0].find("fixture.cpp:14"), std::string::npos) << res.unresolved[0];
}

TEST(Coverage, EveryAutogradNodeIsRegistered) {
  const ScanResult scan = scan_sources();
  // The scanner itself must work: these sites exist, one literal and two through variables.
  ASSERT_GE(scan.sites, 40) << "attach_grad call sites found under " << SX_SOURCE_DIR;
  for (const char* known : {"matmul", "conv2d", "maximum", "softmax", "topk", "max"})
    ASSERT_TRUE(scan.names.count(known)) << "the scanner missed '" << known << "'";
  for (const std::string& u : scan.unresolved) ADD_FAILURE() << u;

  // What the registry really records: the node names in every entry's graph.
  std::map<std::string, std::vector<std::string>> recorded;  // node -> entries
  for (const OpCase& c : op_registry()) {
    Tensor out = c.fn(make_inputs(c, DType::Float64, Device::cpu()));
    for (const std::string& n : graph_node_names(out)) recorded[n].push_back(c.name);
  }
  std::vector<std::string> missing;
  for (const auto& [name, sites] : scan.names)
    if (!recorded.count(name)) {
      std::string s = name + " (attached at";
      for (const auto& w : sites) s += " " + w;
      missing.push_back(s + ")");
    }
  std::string list;
  for (const auto& m : missing) list += "\n  " + m;
  EXPECT_TRUE(missing.empty()) << missing.size() << " differentiable op(s) not covered by the registry "
                               << "(tests/ops/op_registry.cpp):" << list;
  std::cout << "[ coverage ] " << scan.sites << " attach_grad call sites, " << scan.names.size()
            << " distinct node names in the sources; " << op_registry().size() << " registry entries record "
            << recorded.size() << " distinct node names; " << missing.size() << " missing\n";
  int twins = 0;
  for (const OpCase& c : op_registry()) twins += c.naive ? 1 : 0;
  std::cout << "[ coverage ] " << twins << " entries have a naive twin\n";
}

}  // namespace
}  // namespace sx::test
