#include "io/file_util.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <vector>

#include "io/error.h"
#include "io/interrupt.h"

namespace modelpress {

namespace {

// ".NAME.KIND-PID-N" beside the target, registered for interrupt cleanup; the first time a
// process writes beside a target it also clears what dead processes left there.
std::string hidden_path_for(const std::string& target, const char* kind) {
  static std::atomic<unsigned> counter{0};
  static std::mutex recovered_mutex;
  static std::set<std::string> recovered;
  {
    std::lock_guard<std::mutex> lock(recovered_mutex);
    if (recovered.insert(target).second) recover_interrupted(target);
  }
  const std::filesystem::path p(target);
  const std::string name = "." + p.filename().string() + "." + kind + "-" + std::to_string(getpid()) + "-" +
                           std::to_string(counter++);
  const std::string path = (p.parent_path() / name).string();
  register_temporary(path);
  return path;
}

}  // namespace

std::string temporary_path_for(const std::string& target) { return hidden_path_for(target, "partial"); }
std::string previous_path_for(const std::string& target) { return hidden_path_for(target, "previous"); }

void write_all(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_file(path, std::string("write failed: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void pwrite_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_file(path, std::string("write failed: ") + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
}

void copy_range(int in, uint64_t in_offset, int out, uint64_t out_offset, uint64_t n, const std::string& path) {
  auto in_off = static_cast<off_t>(in_offset);
  auto out_off = static_cast<off_t>(out_offset);
  while (n > 0) {
    const ssize_t c = ::copy_file_range(in, &in_off, out, &out_off, n, 0);
    if (c > 0) {
      n -= static_cast<uint64_t>(c);
      continue;
    }
    if (c < 0 && errno == EINTR) continue;
    if (c == 0) fail_file(path, "copy ended early: source is shorter than expected");
    if (errno != EXDEV && errno != ENOSYS && errno != EOPNOTSUPP && errno != EINVAL)
      fail_file(path, std::string("copy failed: ") + std::strerror(errno));
    // Filesystems without copy_file_range: plain reads and writes.
    std::vector<char> buf(1 << 20);
    while (n > 0) {
      const ssize_t r = ::pread(in, buf.data(), std::min<uint64_t>(n, buf.size()), in_off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail_file(path, std::string("read failed while copying: ") + std::strerror(errno));
      pwrite_all(out, buf.data(), static_cast<size_t>(r), static_cast<uint64_t>(out_off), path);
      in_off += r;
      out_off += r;
      n -= static_cast<uint64_t>(r);
    }
  }
}

void rename_file(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0)
    fail_file(to, std::string("cannot move finished file into place: ") + std::strerror(errno));
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = temporary_path_for(path);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail_file(path, std::string("cannot create: ") + std::strerror(errno));
  try {
    write_all(fd, text.data(), text.size(), path);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  rename_file(tmp, path);
}

}  // namespace modelpress
