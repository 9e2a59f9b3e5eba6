// Interrupted runs (io/interrupt.h): SIGINT / SIGTERM remove the unfinished output and exit
// with 130 / 143; SIGKILL at random moments never leaves the target half-written, and the
// next run removes what the killed one left (saying so); leftovers of dead processes are
// removed or restored, those of live ones left alone. The input is never touched.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "io/checkpoint.h"
#include "io/interrupt.h"
#include "io/synthetic_checkpoint.h"
#include "tests/cli_runner.h"
#include "tests/test_util.h"

extern char** environ;

namespace modelpress {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A checkpoint large enough that clustering it takes a while (about 0.5 s in Release).
void write_model(const std::string& path) {
  SyntheticOptions o;
  o.layers = 4;
  o.hidden = 768;
  o.intermediate = 2048;
  o.dtype = DType::F16;
  write_synthetic_checkpoint(path, o);
}

// modelpress with `args`, stdout and stderr to files in `dir`; returns its pid.
pid_t spawn(const TempDir& dir, const std::vector<std::string>& args) {
  std::vector<std::string> all{MODELPRESS_BIN};
  all.insert(all.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : all) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  const std::string out = dir / ".stdout", err = dir / ".stderr";
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, all[0].c_str(), &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  EXPECT_EQ(rc, 0);
  return pid;
}

int wait_status(pid_t pid) {
  int raw = 0;
  waitpid(pid, &raw, 0);
  return raw;
}

// The entries of `dir` whose name starts with `prefix`.
std::vector<std::string> entries(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind(prefix, 0) == 0) names.push_back(n);
  }
  return names;
}

bool wait_for_staging(const std::string& dir, const std::string& name, pid_t pid) {
  for (int i = 0; i < 20000; ++i) {
    if (!entries(dir, "." + name + ".partial-").empty()) return true;
    int raw = 0;
    if (waitpid(pid, &raw, WNOHANG) == pid) return false;  // finished (or failed) already
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return false;
}

TEST(Interrupt, SigintAndSigtermRemoveTheUnfinishedOutput) {
  TempDir dir;
  const std::string model = dir / "model";
  write_model(model);
  const std::string input_bytes = testing::read_file(model + "/model.safetensors");
  for (const int sig : {SIGTERM, SIGINT}) {
    SCOPED_TRACE(sig == SIGTERM ? "SIGTERM" : "SIGINT");
    const pid_t pid = spawn(dir, {"cluster", model, "-o", dir / "out", "--bits", "4"});
    ASSERT_TRUE(wait_for_staging(dir.path().string(), "out", pid)) << "the run ended before its output was staged";
    kill(pid, sig);
    const int raw = wait_status(pid);
    ASSERT_TRUE(WIFEXITED(raw)) << "killed by the signal instead of handling it";
    EXPECT_EQ(WEXITSTATUS(raw), 128 + sig);
    const std::string err = testing::read_file(dir / ".stderr");
    EXPECT_NE(err.find("interrupted"), std::string::npos) << err;
    EXPECT_EQ(testing::lines(err), 1u) << err;
    EXPECT_TRUE(entries(dir.path().string(), "out").empty());
    EXPECT_TRUE(entries(dir.path().string(), ".out").empty());
  }
  EXPECT_TRUE(testing::read_file(model + "/model.safetensors") == input_bytes) << "the input changed";
}

TEST(Interrupt, KilledAtAnyMomentTheTargetIsWholeAndTheNextRunCleansUp) {
  TempDir dir;
  const std::string model = dir / "model", out = dir / "out";
  write_model(model);
  const std::string input_bytes = testing::read_file(model + "/model.safetensors");
  // A complete previous output, and how long a run takes.
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(testing::run(dir, "cluster '" + model + "' -o '" + out + "' --bits 4").status, 0);
  const double full = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const size_t tensors = Checkpoint::open(out).tensors().size();
  std::mt19937 rng(std::random_device{}());
  bool saw_cleanup = false;
  for (int point = 0; point < 8; ++point) {
    const double at = std::uniform_real_distribution<double>(0.0, 1.1 * full)(rng);
    SCOPED_TRACE("SIGKILL after " + std::to_string(at) + " s of " + std::to_string(full));
    const pid_t pid = spawn(dir, {"cluster", model, "-o", out, "--bits", "4", "--overwrite"});
    std::this_thread::sleep_for(std::chrono::duration<double>(at));
    kill(pid, SIGKILL);
    wait_status(pid);
    saw_cleanup = saw_cleanup || testing::read_file(dir / ".stderr").find("interrupted run") != std::string::npos;
    // The target is a complete output (the previous one or the new one), or, killed between
    // the two renames of the move into place, missing with the previous one set aside.
    if (fs::exists(out)) {
      EXPECT_EQ(Checkpoint::open(out).tensors().size(), tensors);
    } else {
      EXPECT_FALSE(entries(dir.path().string(), ".out.previous-").empty());
    }
    // Nothing visible besides the target and the input.
    for (const auto& e : fs::directory_iterator(dir.path())) {
      const std::string n = e.path().filename().string();
      EXPECT_TRUE(n == "out" || n == "model" || n[0] == '.') << n;
    }
  }
  // The next run removes (or restores) what the killed ones left, and says so.
  const auto r = testing::run(dir, "cluster '" + model + "' -o '" + out + "' --bits 4 --overwrite");
  ASSERT_EQ(r.status, 0) << r.err;
  saw_cleanup = saw_cleanup || r.err.find("interrupted run") != std::string::npos;
  EXPECT_TRUE(entries(dir.path().string(), ".out").empty());
  EXPECT_EQ(Checkpoint::open(out).tensors().size(), tensors);
  EXPECT_TRUE(saw_cleanup) << "no run found anything to clean up after 8 kills";
  EXPECT_TRUE(testing::read_file(model + "/model.safetensors") == input_bytes) << "the input changed";
}

TEST(Interrupt, AFullDiskFailsWithOneLineAndLeavesNothing) {
  // A file-size limit (ulimit -f, 1 MiB) stands in for a full disk: the write fails, the
  // command says which output in one line and exits 1, and no staging folder is left.
  TempDir dir;
  const std::string model = dir / "model";
  write_model(model);
  const std::string cmd = "ulimit -f 1024; '" + std::string(MODELPRESS_BIN) + "' quantize '" + model + "' -o '" +
                          (dir / "out") + "' --method w8a8 2>'" + (dir / ".err") + "'";
  const int raw = std::system(("bash -c \"" + cmd + "\"").c_str());
  ASSERT_TRUE(WIFEXITED(raw));
  EXPECT_EQ(WEXITSTATUS(raw), 1);
  const std::string err = testing::read_file(dir / ".err");
  EXPECT_EQ(testing::lines(err), 1u) << err;
  EXPECT_NE(err.find("out"), std::string::npos) << err;
  EXPECT_TRUE(entries(dir.path().string(), "out").empty());
  EXPECT_TRUE(entries(dir.path().string(), ".out").empty());
}

TEST(Interrupt, TwoRunsOnOneTargetNeverMixTheirOutputs) {
  // Both stage separately; the first to finish moves in, the second finds the target taken
  // and fails cleanly (without --overwrite), leaving the first's output whole.
  TempDir dir;
  const std::string model = dir / "model", out = dir / "out";
  write_model(model);
  const pid_t a = spawn(dir, {"quantize", model, "-o", out, "--method", "w8a8"});
  const auto b = testing::run(dir, "quantize '" + model + "' -o '" + out + "' --method w8a8");
  const int ra = wait_status(a);
  ASSERT_TRUE(WIFEXITED(ra));
  const int sa = WEXITSTATUS(ra);
  EXPECT_TRUE((sa == 0) != (b.status == 0)) << "exactly one run wins: " << sa << " " << b.status << " " << b.err;
  EXPECT_EQ(Checkpoint::open(out).config()["quantization_config"].is_object(), true);
  EXPECT_TRUE(entries(dir.path().string(), ".out").empty());
}

// A process id that no longer exists: a child that has exited and been reaped.
long dead_pid() {
  const pid_t pid = fork();
  if (pid == 0) _exit(0);
  waitpid(pid, nullptr, 0);
  return pid;
}

TEST(Interrupt, LeftoversOfDeadProcessesAreRemovedOrRestored) {
  TempDir dir;
  const long dead = dead_pid();
  const std::string d = dir.path().string();
  // A previous output set aside by a run killed between its renames: the target is missing.
  fs::create_directories(dir / (".out.previous-" + std::to_string(dead) + "-4"));
  testing::write_file(dir / (".out.previous-" + std::to_string(dead) + "-4/config.json"), "{}");
  // A staging folder and an OPCM scratch file of the dead run.
  fs::create_directories(dir / (".out.partial-" + std::to_string(dead) + "-0"));
  testing::write_file(dir / (".out.partial-" + std::to_string(dead) + "-1.opcm-scratch"), "x");
  // A live process's (this test's parent) and another target's: not ours to touch.
  const std::string live = ".out.partial-" + std::to_string(getppid()) + "-0";
  fs::create_directories(dir / live);
  fs::create_directories(dir / (".other.partial-" + std::to_string(dead) + "-0"));

  const std::vector<std::string> done = recover_interrupted(dir / "out");
  EXPECT_EQ(done.size(), 3u);
  EXPECT_TRUE(fs::exists(dir / "out/config.json"));  // restored
  EXPECT_EQ(entries(d, ".out.").size(), 1u);          // only the live process's
  EXPECT_TRUE(fs::exists(dir / live));
  EXPECT_TRUE(fs::exists(dir / (".other.partial-" + std::to_string(dead) + "-0")));
  // With the target present, a set-aside previous output is removed, not restored.
  fs::create_directories(dir / (".out.previous-" + std::to_string(dead) + "-5"));
  EXPECT_EQ(recover_interrupted(dir / "out").size(), 1u);
  EXPECT_EQ(entries(d, ".out.previous-").size(), 0u);
}

}  // namespace
}  // namespace modelpress
