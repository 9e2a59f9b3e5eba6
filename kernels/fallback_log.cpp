#include "kernels/fallback_log.h"

#include <cstdio>
#include <mutex>
#include <set>

namespace modelpress::kernels {

void log_fallback_once(const std::string& key, const std::string& message) {
  static std::mutex mutex;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lock(mutex);
  if (!seen.insert(key).second) return;
  std::fprintf(stderr, "modelpress: %s\n", message.c_str());
  std::fflush(stderr);
}

}  // namespace modelpress::kernels
