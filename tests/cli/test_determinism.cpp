// Outputs are byte-identical whatever the thread count (MODELPRESS_THREADS and OpenMP's 1, 2
// and 8) and whichever CPU kernel path runs (MODELPRESS_KERNEL_ISA baseline / avx2 / the
// best this CPU has): every quantize method and the clustering variants, on a model large
// enough that the multi-threaded paths (a lone table's DKM rounds split over threads, the
// exact start's search split in two) are taken.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "io/synthetic_checkpoint.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// Every file of the output folder, by name.
std::map<std::string, std::string> folder_bytes(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = testing::read_file(e.path().string());
  return files;
}

TEST(Determinism, SameBytesAtAnyThreadCountAndKernelPath) {
  TempDir dir;
  const std::string model = dir / "model";
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 512;
  o.intermediate = 1024;
  o.dtype = DType::F32;  // f32: clustering keys by f16 and has the most distinct values
  write_synthetic_checkpoint(model, o);
  const std::vector<std::string> commands = {
      "quantize --method llm-int8", "quantize --method w8a8", "quantize --method w4a16 --group-size 64",
      "cluster --bits 3", "cluster --bits 4 --group-size 8 --channel-scale", "cluster --bits 3 --algorithm kmeans"};
  const std::vector<std::string> settings = {"MODELPRESS_THREADS=1 OMP_NUM_THREADS=1",
                                             "MODELPRESS_THREADS=2 OMP_NUM_THREADS=2",
                                             "MODELPRESS_THREADS=8 OMP_NUM_THREADS=8",
                                             "MODELPRESS_KERNEL_ISA=baseline", "MODELPRESS_KERNEL_ISA=avx2"};
  for (const auto& cmd : commands) {
    SCOPED_TRACE(cmd);
    const std::string first = dir / "first";
    auto r = testing::run(dir, cmd + " '" + model + "' -o '" + first + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    const auto want = folder_bytes(first);
    ASSERT_FALSE(want.empty());
    for (const auto& env : settings) {
      SCOPED_TRACE(env);
      const std::string out = dir / "again";
      // testing::run passes its words to the shell: `env` sets the variables for this run only.
      r = testing::run(dir, cmd + " '" + model + "' -o '" + out + "'", env);
      ASSERT_EQ(r.status, 0) << r.err;
      const auto got = folder_bytes(out);
      ASSERT_EQ(got.size(), want.size());
      for (const auto& [name, bytes] : want) EXPECT_TRUE(got.at(name) == bytes) << name << " differs";
      fs::remove_all(out);
    }
    fs::remove_all(first);
  }
}

}  // namespace
}  // namespace modelpress
