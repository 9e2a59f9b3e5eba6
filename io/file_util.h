// Small POSIX file helpers shared by the writers: whole writes, temporary names beside a
// target, and in-kernel copies.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace modelpress {

// A hidden temporary name in the same folder as `target`, so a rename onto it is atomic:
// ".NAME.partial-PID-N". Registered for cleanup on SIGINT / SIGTERM, and recognized by later
// runs as a leftover once its process is gone (io/interrupt.h).
std::string temporary_path_for(const std::string& target);
// The hidden name an existing target is moved to while its replacement moves in:
// ".NAME.previous-PID-N" (a later run restores it if the target is then missing).
std::string previous_path_for(const std::string& target);
// Writes all n bytes at the current position (or at `offset` for the positional form);
// throws Error naming `path`.
void write_all(int fd, const void* data, size_t n, const std::string& path);
void pwrite_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path);
// Copies n bytes from `in` at in_offset to `out` at out_offset, in the kernel where the
// filesystem allows (copy_file_range), else through a buffer.
void copy_range(int in, uint64_t in_offset, int out, uint64_t out_offset, uint64_t n, const std::string& path);
// rename(2) with an Error naming both paths.
void rename_file(const std::string& from, const std::string& to);
// Writes `text` to `path` through a temporary file and a rename: never half-written.
void write_text_file(const std::string& path, const std::string& text);

}  // namespace modelpress
