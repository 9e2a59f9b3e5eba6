#include "cli/progress.h"

#include <unistd.h>

#include <cstdio>

namespace modelpress::cli {

Progress::Progress(std::string what, size_t total)
    : what_(std::move(what)), total_(total), active_(isatty(STDERR_FILENO) != 0) {}

Progress::~Progress() {
  if (active_ && done_ > 0) std::fprintf(stderr, "\r\033[K");
}

void Progress::step(const std::string& item) {
  ++done_;
  if (!active_) return;
  std::fprintf(stderr, "\r\033[K%s [%zu/%zu] %.60s", what_.c_str(), done_, total_, item.c_str());
  std::fflush(stderr);
}

}  // namespace modelpress::cli
