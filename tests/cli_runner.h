// Runs the modelpress executable as a user would, capturing exit status, stdout and stderr.
// Test targets that include this define MODELPRESS_BIN to the built binary's path.
#pragma once
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "io/synthetic_checkpoint.h"
#include "tests/test_util.h"

namespace modelpress::testing {

struct CommandResult {
  int status;
  std::string out, err;
};

// `args` is appended to the binary's path as shell words; the caller quotes paths. `env`
// (optional): NAME=VALUE words set for this run only.
inline CommandResult run(const TempDir& dir, const std::string& args, const std::string& env = "") {
  const std::string out = dir / ".stdout", err = dir / ".stderr";
  const std::string cmd = env + (env.empty() ? "" : " ") + "'" + MODELPRESS_BIN + "' " + args + " >'" + out + "' 2>'" +
                          err + "'";
  const int raw = std::system(cmd.c_str());
  CommandResult r{WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_file(out), read_file(err)};
  std::filesystem::remove(out);
  std::filesystem::remove(err);
  return r;
}

// The smallest LLaMA-style checkpoint the CLI tests run on: one layer, hidden 32, f16 default.
inline void write_tiny_checkpoint(const std::string& path, int64_t intermediate = 64) {
  SyntheticOptions o;
  o.layers = 1;
  o.hidden = 32;
  o.intermediate = intermediate;
  o.heads = 2;
  o.kv_heads = 1;
  o.vocab = 40;
  write_synthetic_checkpoint(path, o);
}

inline size_t lines(const std::string& s) { return static_cast<size_t>(std::count(s.begin(), s.end(), '\n')); }

}  // namespace modelpress::testing
