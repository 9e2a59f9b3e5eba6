// The fuzz harnesses' one helper: the readers take paths (they memory-map), so each input is
// written to a file on tmpfs (/dev/shm when present) named for this process, and read from
// there. Only modelpress::Error is an expected outcome of a malformed input; anything else
// (another exception, a crash, a sanitizer report, an allocation past -rss_limit_mb) is a
// finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

namespace modelpress::fuzz {

inline std::string input_path(const char* suffix) {
  static const std::string dir = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::filesystem::temp_directory_path().string();
  return dir + "/modelpress-fuzz-" + std::to_string(::getpid()) + suffix;
}

inline std::string write_input(const uint8_t* data, size_t size, const char* suffix) {
  const std::string path = input_path(suffix);
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  return path;
}

}  // namespace modelpress::fuzz
