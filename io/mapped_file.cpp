#include "io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "io/error.h"

namespace modelpress {
namespace {

size_t page_size() {
  static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

}  // namespace

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_file(path, std::string("cannot open: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    fail_file(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    fail_file(path, "not a regular file");
  }
  const auto size = static_cast<size_t>(st.st_size);
  const std::byte* data = nullptr;
  if (size > 0) {  // mmap of length 0 fails; an empty file is a valid (empty) mapping
    void* p = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      fail_file(path, std::string("cannot map: ") + std::strerror(err));
    }
    data = static_cast<const std::byte*>(p);
  }
  return std::shared_ptr<MappedFile>(new MappedFile(path, fd, data, size));
}

MappedFile::~MappedFile() {
  if (data_) munmap(const_cast<std::byte*>(data_), size_);
  ::close(fd_);
}

void MappedFile::will_need(size_t offset, size_t n) const {
  if (!data_ || n == 0) return;
  const size_t begin = offset / page_size() * page_size();
  madvise(const_cast<std::byte*>(data_) + begin, offset + n - begin, MADV_WILLNEED);
}

void MappedFile::release(size_t offset, size_t n) const {
  if (!data_ || n == 0) return;
  // Every page the range touches, shared edge pages included: a neighbour still in use
  // simply faults its page back in.
  const size_t begin = offset / page_size() * page_size();
  const size_t end = std::min(size_, (offset + n + page_size() - 1) / page_size() * page_size());
  if (end > begin) madvise(const_cast<std::byte*>(data_) + begin, end - begin, MADV_DONTNEED);
}

}  // namespace modelpress
