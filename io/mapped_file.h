// A read-only memory map of a whole file. Tensors read from checkpoints are views into it,
// so reading costs no copy; each view gives its pages back when it dies (see release()),
// which keeps resident memory at the tensors in use rather than the whole file.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

namespace modelpress {

class MappedFile {
 public:
  // Throws Error naming `path` when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // The open descriptor, for in-kernel copies (copy_file_range) out of this file.
  int fd() const { return fd_; }

  // Hints that [offset, offset + n) will be read soon, front to back.
  void will_need(size_t offset, size_t n) const;
  // Drops this process's resident pages under [offset, offset + n). The file is mapped
  // read-only, so a later read faults the same bytes back in: always safe.
  void release(size_t offset, size_t n) const;

 private:
  MappedFile(std::string path, int fd, const std::byte* data, size_t size)
      : path_(std::move(path)), fd_(fd), data_(data), size_(size) {}
  std::string path_;
  int fd_;
  const std::byte* data_;
  size_t size_;
};

}  // namespace modelpress
