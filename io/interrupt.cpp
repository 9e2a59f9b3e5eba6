// Cleanup of interrupted runs (interrupt.h).
#include "io/interrupt.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

namespace modelpress {

namespace fs = std::filesystem;

namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::vector<std::string>& registry() {
  static std::vector<std::string> r;
  return r;
}
std::mutex& commit_mutex() {
  static std::mutex m;
  return m;
}

// Removes `path` and every sibling whose name starts with its name (scratch files named after
// it). Other threads may still be writing into a staging folder: a few tries.
void remove_with_siblings(const std::string& path) {
  const fs::path p(path);
  const std::string stem = p.filename().string();
  std::error_code ec;
  for (int attempt = 0; attempt < 5; ++attempt) {
    bool left = false;
    for (fs::directory_iterator it(p.has_parent_path() ? p.parent_path() : fs::path("."), ec), end; !ec && it != end;
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind(stem, 0) != 0) continue;
      std::error_code rm;
      fs::remove_all(it->path(), rm);
      left = left || rm;
    }
    if (!left) return;
  }
}

// ".NAME.partial-PID-N..." or ".NAME.previous-PID-N...": the kind and the process id.
bool parse_temporary(const std::string& entry, const std::string& name, std::string* kind, long* pid) {
  for (const char* k : {"partial", "previous"}) {
    const std::string prefix = "." + name + "." + k + "-";
    if (entry.rfind(prefix, 0) != 0) continue;
    char* end = nullptr;
    const long p = std::strtol(entry.c_str() + prefix.size(), &end, 10);
    if (end == entry.c_str() + prefix.size() || *end != '-' || p <= 0) return false;
    *kind = k;
    *pid = p;
    return true;
  }
  return false;
}

bool process_alive(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

}  // namespace

void register_temporary(const std::string& path) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().push_back(path);
}

std::unique_lock<std::mutex> lock_commit() { return std::unique_lock<std::mutex>(commit_mutex()); }

namespace {
int interrupt_pipe[2] = {-1, -1};

// The signal handler only writes the signal number to a pipe (async-signal-safe); a normal
// thread reads it and does the cleanup. (Blocking the signals and sigwait-ing would miss any
// thread some library started before main, which would take the default action instead.)
void on_interrupt(int sig) {
  const unsigned char b = static_cast<unsigned char>(sig);
  const int saved = errno;
  [[maybe_unused]] const ssize_t w = ::write(interrupt_pipe[1], &b, 1);
  errno = saved;
}
}  // namespace

void install_interrupt_cleanup() {
  if (::pipe2(interrupt_pipe, O_CLOEXEC) != 0) return;  // default handling stays
  std::thread([] {
    unsigned char b = 0;
    while (::read(interrupt_pipe[0], &b, 1) != 1) {
    }
    const int sig = b;
    auto commit = lock_commit();  // a move into place finishes first
    std::lock_guard<std::mutex> lock(registry_mutex());
    for (const auto& path : registry()) remove_with_siblings(path);
    std::fprintf(stderr, "modelpress: interrupted (%s); the unfinished output was removed\n",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
    std::fflush(stderr);
    ::_exit(128 + sig);
  }).detach();
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  // Past a file-size limit (ulimit -f) a write fails with EFBIG, reported and cleaned up like a
  // full disk, instead of SIGXFSZ killing the process with its staging folder in place.
  signal(SIGXFSZ, SIG_IGN);
}

std::vector<std::string> recover_interrupted(const std::string& target) {
  std::vector<std::string> done;
  const fs::path t(target);
  const std::string name = t.filename().string();
  if (name.empty()) return done;
  std::error_code ec;
  std::vector<std::pair<fs::path, std::string>> stale;  // (path, kind)
  for (fs::directory_iterator it(t.has_parent_path() ? t.parent_path() : fs::path("."), ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string kind;
    long pid = 0;
    if (parse_temporary(it->path().filename().string(), name, &kind, &pid) && pid != ::getpid() && !process_alive(pid))
      stale.emplace_back(it->path(), kind);
  }
  for (const auto& [path, kind] : stale) {
    std::error_code e2;
    if (kind == "previous" && !fs::exists(t, e2)) {
      fs::rename(path, t, e2);
      if (!e2) {
        done.push_back("restored " + target + " from " + path.string() + ", set aside by an interrupted run");
        continue;
      }
    }
    fs::remove_all(path, e2);
    if (!e2) done.push_back("removed " + path.string() + ", left by an interrupted run");
  }
  for (const auto& line : done) std::fprintf(stderr, "modelpress: note: %s\n", line.c_str());
  return done;
}

}  // namespace modelpress
