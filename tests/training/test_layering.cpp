// The library's layers only look down: autograd < {nn, optim, datasets} < distributed < train.
// Every #include of every source under the layer folders is read and checked against that order;
// an offending include is reported with its file, line and text. examples/, bench/ and tests/ may
// include anything (they are not scanned).
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <string>
#include <utility>
#include <vector>

namespace fs = std::filesystem;

namespace {

/// Each layer folder and its level: a file may include its own layer and lower levels only.
const std::map<std::string, int> kLayers = {
    {"autograd", 0}, {"nn", 1}, {"optim", 1}, {"datasets", 1}, {"distributed", 2}, {"train", 3},
};

/// The top folder of `path` relative to `root` (its layer), or "" when it is in none.
std::string layer_of(const fs::path& root, const fs::path& path) {
  const fs::path rel = path.lexically_normal().lexically_relative(root.lexically_normal());
  if (rel.empty() || *rel.begin() == "..") return "";
  const std::string top = rel.begin()->string();
  return kLayers.count(top) ? top : "";
}

/// Every include of a layer file that reaches a higher layer or a layer of the same level:
/// "<file>:<line>: #include ... (<from> may not include <to>)".
std::vector<std::string> layering_violations(const fs::path& root) {
  static const std::regex include_re(R"(^\s*#\s*include\s*["<]([^">]+)[">])");
  std::vector<std::string> out;
  for (const auto& [from, from_level] : kLayers) {
    if (!fs::is_directory(root / from)) continue;
    for (const auto& entry : fs::recursive_directory_iterator(root / from)) {
      const std::string ext = entry.path().extension().string();
      if (!entry.is_regular_file() || (ext != ".hpp" && ext != ".cpp" && ext != ".h" && ext != ".inc")) continue;
      const std::string file = entry.path().lexically_relative(root).generic_string();
      std::ifstream in(entry.path());
      std::string line;
      for (int number = 1; std::getline(in, line); ++number) {
        std::smatch m;
        if (line.find("include") == std::string::npos || !std::regex_search(line, m, include_re)) continue;
        std::string target = m[1].str();
        if (target.rfind("tapegrad/", 0) == 0) target = target.substr(9);  // <tapegrad/nn/...>
        // "nn/x.hpp" names a layer; "x.hpp" or "../nn/x.hpp" is relative to the including file.
        std::string to = layer_of(root, root / target);
        if (to.empty() || !fs::exists(root / target)) {
          const fs::path relative = entry.path().parent_path() / target;
          if (!fs::exists(relative)) continue;  // a system or third-party header
          to = layer_of(root, relative);
          if (to.empty()) continue;
          target = relative.lexically_normal().lexically_relative(root).generic_string();
        }
        const int to_level = kLayers.at(to);
        if (to == from || to_level < from_level) continue;
        out.push_back(file + ":" + std::to_string(number) + ": " + line + "  (" + from + " may not include " + to +
                      (to_level > from_level ? ", a higher layer)" : ", a layer beside it)"));
      }
    }
  }
  return out;
}

/// The repository root: tests/.. .
fs::path source_root() { return fs::path(TAPEGRAD_TESTS_DIR).parent_path(); }

/// A scratch tree under the system's temporary folder, removed at the end of the test.
struct ScratchTree {
  fs::path root = fs::temp_directory_path() / ("tapegrad_layering_" + std::to_string(::getpid()));
  ScratchTree() { fs::create_directories(root); }
  ~ScratchTree() { fs::remove_all(root); }
  void write(const std::string& path, const std::string& text) const {
    fs::create_directories((root / path).parent_path());
    std::ofstream(root / path) << text;
  }
};

}  // namespace

TEST_CASE("layering: no library file includes a layer above it or a new one beside it") {
  const auto violations = layering_violations(source_root());
  std::string all;
  for (const auto& v : violations) all += v + "\n";
  INFO("offending includes:\n" << all);
  CHECK(violations.empty());
  // The scan saw the tree: the layers exist where it looked.
  CHECK(fs::is_directory(source_root() / "train"));
  CHECK(fs::is_directory(source_root() / "nn"));
}

TEST_CASE("layering: the check names the file and the include that break the order") {
  ScratchTree tree;
  tree.write("autograd/tensor.hpp", "#pragma once\n");
  tree.write("nn/module.hpp", "#pragma once\n#include \"autograd/tensor.hpp\"\n");
  tree.write("optim/sgd.hpp", "#pragma once\n#include <vector>\n#include \"autograd/tensor.hpp\"\n");
  tree.write("autograd/file_io.hpp", "#pragma once\n");
  tree.write("nn/serialize.hpp", "#pragma once\n#include \"autograd/file_io.hpp\"\n");   // down: fine
  tree.write("datasets/idx.hpp", "#pragma once\n#include \"autograd/file_io.hpp\"\n");
  tree.write("train/fit.hpp", "#pragma once\n#include \"nn/module.hpp\"\n#include \"optim/sgd.hpp\"\n");
  CHECK(layering_violations(tree.root).empty());

  tree.write("nn/layers.cpp", "#include <map>\n#include \"nn/module.hpp\"\n#include \"train/fit.hpp\"\n");
  tree.write("autograd/ops.cpp", "#include \"../nn/module.hpp\"\n");                  // relative, upward
  tree.write("optim/adam.cpp", "#include <tapegrad/datasets/idx.hpp>\n");             // beside, not allowed
  const auto v = layering_violations(tree.root);
  REQUIRE(v.size() == 3);
  std::string all;
  for (const auto& s : v) all += s + "\n";
  INFO(all);
  CHECK(all.find("nn/layers.cpp:3: #include \"train/fit.hpp\"  (nn may not include train, a higher layer)") !=
        std::string::npos);
  CHECK(all.find("autograd/ops.cpp:1: #include \"../nn/module.hpp\"  (autograd may not include nn, a higher layer)") !=
        std::string::npos);
  CHECK(all.find("optim/adam.cpp:1: #include <tapegrad/datasets/idx.hpp>  (optim may not include datasets, a "
                 "layer beside it)") != std::string::npos);
}
