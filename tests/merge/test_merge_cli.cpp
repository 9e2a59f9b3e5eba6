// `modelpress merge ...` as a user meets it: help, the summaries, --json, usage errors (exit
// 2), input errors (one line naming the file and tensor, exit 1, no output left behind).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/synthetic_checkpoint.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::CommandResult;
using testing::lines;
using testing::run;
using testing::TempDir;

void synth(const std::string& path, uint64_t seed, int intermediate = 48) {
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 24;
  o.intermediate = intermediate;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = 40;
  o.seed = seed;
  o.dtype = DType::F32;
  write_synthetic_checkpoint(path, o);
}

std::string q(const std::string& s) { return "'" + s + "'"; }

TEST(MergeCli, HelpListsTheMethods) {
  TempDir dir;
  CommandResult r = run(dir, "merge --help");
  EXPECT_EQ(r.status, 0);
  for (const char* m : {"ewa", "opcm", "average", "task-arithmetic", "ties"}) EXPECT_NE(r.out.find(m), std::string::npos) << m;
  r = run(dir, "merge opcm --help");
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.out.find("--alpha"), std::string::npos);
  EXPECT_NE(r.out.find("--state"), std::string::npos);
}

TEST(MergeCli, OpcmThenContinueAndJson) {
  TempDir dir;
  synth(dir / "base", 1);
  synth(dir / "a", 2);
  synth(dir / "b", 3);
  CommandResult r = run(dir, "merge opcm --base " + q(dir / "base") + " --add " + q(dir / "a") + " " + q(dir / "b") + " -o " + q(dir / "m"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("merged 2 model(s)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lambda"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.empty()) << r.err;  // no progress line when stderr is not a terminal
  r = run(dir, "merge opcm --json --base " + q(dir / "base") + " --add " + q(dir / "a") + " --state " + q(dir / "m") + " -o " + q(dir / "m2"));
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["models_total"], 3);
  EXPECT_EQ(j["state"]["models"].size(), 3u);
  EXPECT_GT(j["lambda"].get<double>(), 1.0);
  EXPECT_TRUE(std::filesystem::exists(dir / "m2/modelpress_merge_state.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "m2/config.json"));
}

TEST(MergeCli, UsageErrorsExitTwo) {
  TempDir dir;
  for (const std::string args : {"merge", "merge opcm -o x", "merge opcm --base b --add a -o x --alpha 1.5",
                                 "merge ties --base b --add a -o x --top-k 120", "merge ewa in -o x --share-rate 2",
                                 "merge frobnicate"}) {
    const CommandResult r = run(dir, args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.err;
  }
}

TEST(MergeCli, InputErrorsAreOneLineAndLeaveNothing) {
  TempDir dir;
  synth(dir / "base", 1);
  synth(dir / "wide", 2, 64);  // a different intermediate size: shapes differ
  CommandResult r = run(dir, "merge task-arithmetic --base " + q(dir / "base") + " --add " + q(dir / "wide") + " -o " + q(dir / "out"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("model.layers.0.mlp"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[64, 24]"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  r = run(dir, "merge ewa " + q(dir / "base") + " -o " + q(dir / "out"));
  EXPECT_EQ(r.status, 1);
  EXPECT_EQ(lines(r.err), 1u) << r.err;
  EXPECT_NE(r.err.find("no experts found"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "out"));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".partial"), std::string::npos) << e.path();
}

}  // namespace
}  // namespace modelpress
