#include "io/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "io/error.h"
#include "io/file_util.h"
#include "io/mapped_file.h"

namespace modelpress {
namespace {

uint64_t round_up8(uint64_t n) { return (n + 7) / 8 * 8; }

// A header entry costs about 110 bytes for typical names; 200 leaves room for long ones.
uint64_t header_reserve(const std::map<std::string, std::string>& metadata, size_t expected_tensors) {
  uint64_t bytes = 8 + 256 + 200 * static_cast<uint64_t>(expected_tensors);
  for (const auto& [k, v] : metadata) bytes += k.size() + v.size() + 8;
  return round_up8(bytes);
}

}  // namespace

SafetensorsWriter::SafetensorsWriter(std::string path, std::map<std::string, std::string> metadata,
                                     size_t expected_tensors)
    : path_(std::move(path)), tmp_path_(temporary_path_for(path_)) {
  if (!metadata.empty()) header_["__metadata__"] = metadata;
  reserved_ = header_reserve(metadata, expected_tensors);
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_file(path_, std::string("cannot create: ") + std::strerror(errno));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (fd_ >= 0) {  // never finished: leave nothing behind
    ::close(fd_);
    ::unlink(tmp_path_.c_str());
  }
}

// MODELPRESS_NO_KERNEL_COPY=1 writes file-backed views through user space like any other
// tensor: an escape hatch for filesystems whose copy_file_range misbehaves, and how the
// benchmark measures the memory of the path passes take (read through the mapping).
static bool kernel_copy_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("MODELPRESS_NO_KERNEL_COPY");
    return !(v && *v && std::string(v) != "0");
  }();
  return enabled;
}

void SafetensorsWriter::append(const std::string& name, const Tensor& tensor) {
  const auto& span = tensor.file_span();
  if (!span || !kernel_copy_enabled()) {
    append(name, tensor.dtype(), tensor.shape(), {tensor.data(), tensor.nbytes()});
    return;
  }
  // Bytes that lie unchanged in a file: copy them in the kernel, as cp does.
  check_entry(name, tensor.dtype(), tensor.shape(), tensor.nbytes());
  copy_range(span->file->fd(), span->offset, fd_, reserved_ + data_bytes_, tensor.nbytes(), path_);
  add_entry(name, tensor.dtype(), tensor.shape(), tensor.nbytes());
}

void SafetensorsWriter::append(const std::string& name, DType dtype, const Shape& shape,
                               std::span<const std::byte> bytes) {
  check_entry(name, dtype, shape, bytes.size());
  pwrite_all(fd_, bytes.data(), bytes.size(), reserved_ + data_bytes_, path_);
  add_entry(name, dtype, shape, bytes.size());
}

void SafetensorsWriter::check_entry(const std::string& name, DType dtype, const Shape& shape, uint64_t nbytes) const {
  if (fd_ < 0) throw Error(path_ + ": append after finish");
  if (name == "__metadata__") fail_file(path_, "'__metadata__' is reserved and cannot name a tensor");
  if (names_.count(name)) fail_file(path_, "tensor '" + name + "' appended twice");
  const uint64_t need = static_cast<uint64_t>(shape_numel(shape)) * dtype_size(dtype);
  if (need != nbytes)
    fail_file(path_, "tensor '" + name + "': " + std::to_string(nbytes) + " bytes for shape " +
                         shape_to_string(shape) + " of " + std::string(dtype_name(dtype)) + " (needs " +
                         std::to_string(need) + ")");
}

// Called once the bytes are written: a failed append claims no name and no space.
void SafetensorsWriter::add_entry(const std::string& name, DType dtype, const Shape& shape, uint64_t nbytes) {
  names_.insert(name);
  header_[name] = {{"dtype", dtype_name(dtype)}, {"shape", shape}, {"data_offsets", {data_bytes_, data_bytes_ + nbytes}}};
  data_bytes_ += nbytes;
  ++count_;
}

void SafetensorsWriter::finish() { finish(path_); }

void SafetensorsWriter::finish(const std::string& final_path) {
  if (fd_ < 0) throw Error(path_ + ": finish called twice");
  std::string text = header_.empty() ? std::string("{}") : header_.dump();
  // The data section starts 8-byte aligned: pad the header with spaces.
  text.resize(round_up8(8 + text.size()) - 8, ' ');
  if (8 + text.size() <= reserved_) {
    text.resize(reserved_ - 8, ' ');
    const uint64_t n = text.size();
    pwrite_all(fd_, &n, 8, 0, path_);
    pwrite_all(fd_, text.data(), text.size(), 8, path_);
    if (data_bytes_ == 0 && ftruncate(fd_, static_cast<off_t>(reserved_)) != 0)
      fail_file(path_, std::string("cannot size file: ") + std::strerror(errno));
  } else {
    // The reserved area was too small: header first in a new file, then the data.
    const std::string moved = temporary_path_for(path_);
    const int out = ::open(moved.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out < 0) fail_file(path_, std::string("cannot create: ") + std::strerror(errno));
    try {
      const uint64_t n = text.size();
      write_all(out, &n, 8, path_);
      write_all(out, text.data(), text.size(), path_);
      const int in = ::open(tmp_path_.c_str(), O_RDONLY | O_CLOEXEC);
      if (in < 0) fail_file(path_, std::string("cannot reopen temporary file: ") + std::strerror(errno));
      try {
        copy_range(in, reserved_, out, 8 + text.size(), data_bytes_, path_);
      } catch (...) {
        ::close(in);
        throw;
      }
      ::close(in);
    } catch (...) {
      ::close(out);
      ::unlink(moved.c_str());
      throw;
    }
    ::close(out);
    ::unlink(tmp_path_.c_str());
    tmp_path_ = moved;
  }
  if (::close(fd_) != 0) {
    fd_ = -1;
    ::unlink(tmp_path_.c_str());
    fail_file(path_, std::string("close failed: ") + std::strerror(errno));
  }
  fd_ = -1;
  try {
    rename_file(tmp_path_, final_path);
  } catch (...) {
    ::unlink(tmp_path_.c_str());
    throw;
  }
}

ShardedSafetensorsWriter::ShardedSafetensorsWriter(std::string dir, uint64_t max_shard_bytes,
                                                   std::map<std::string, std::string> metadata,
                                                   size_t expected_tensors)
    : dir_(std::move(dir)),
      max_shard_bytes_(max_shard_bytes),
      metadata_(std::move(metadata)),
      expected_tensors_(expected_tensors) {}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() {
  if (finished_) return;
  for (const auto& s : done_) std::remove(s.tmp.c_str());
}

void ShardedSafetensorsWriter::append(const std::string& name, const Tensor& tensor) {
  shard_for(name, tensor.nbytes()).append(name, tensor);
  added(name, tensor.nbytes());
}

void ShardedSafetensorsWriter::append(const std::string& name, DType dtype, const Shape& shape,
                                      std::span<const std::byte> bytes) {
  shard_for(name, bytes.size()).append(name, dtype, shape, bytes);
  added(name, bytes.size());
}

SafetensorsWriter& ShardedSafetensorsWriter::shard_for(const std::string& name, uint64_t nbytes) {
  if (finished_) throw Error(dir_ + ": append after finish");
  // Before any shard is closed or started: a rejected name must leave no empty shard behind.
  if (names_.count(name)) fail_file(dir_, "tensor '" + name + "' appended twice");
  if (current_ && max_shard_bytes_ > 0 && current_->tensor_count() > 0 &&
      current_->data_bytes() + nbytes > max_shard_bytes_)
    close_current();
  if (!current_) {
    const std::string placeholder = (std::filesystem::path(dir_) / "model.safetensors").string();
    current_ = std::make_unique<SafetensorsWriter>(placeholder, metadata_, expected_tensors_);
  }
  return *current_;
}

void ShardedSafetensorsWriter::added(const std::string& name, uint64_t nbytes) {
  names_.insert(name);
  current_names_.push_back(name);
  total_bytes_ += nbytes;
}

void ShardedSafetensorsWriter::close_current() {
  // Finished under a temporary name: its final name needs the shard count.
  const std::string tmp = temporary_path_for(current_->path());
  current_->finish(tmp);
  done_.push_back({tmp, std::move(current_names_)});
  current_names_.clear();
  current_.reset();
}

std::vector<std::string> ShardedSafetensorsWriter::finish() {
  if (finished_) throw Error(dir_ + ": finish called twice");
  // A shard opened by an append that then failed holds nothing: no empty trailing shard.
  if (current_ && current_->tensor_count() == 0 && !done_.empty()) current_.reset();
  if (current_ || done_.empty()) {
    if (!current_) {
      const std::string placeholder = (std::filesystem::path(dir_) / "model.safetensors").string();
      current_ = std::make_unique<SafetensorsWriter>(placeholder, metadata_, 0);
    }
    close_current();
  }
  std::vector<std::string> written;
  const std::filesystem::path dir(dir_);
  if (done_.size() == 1) {
    rename_file(done_[0].tmp, (dir / "model.safetensors").string());
    written.push_back("model.safetensors");
  } else {
    nlohmann::ordered_json index;
    index["metadata"] = {{"total_size", total_bytes_}};
    index["weight_map"] = nlohmann::ordered_json::object();
    char name[64];
    for (size_t i = 0; i < done_.size(); ++i) {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, done_.size());
      for (const auto& n : done_[i].names) index["weight_map"][n] = name;
      written.push_back(name);
    }
    for (size_t i = 0; i < done_.size(); ++i) rename_file(done_[i].tmp, (dir / written[i]).string());
    write_text_file((dir / "model.safetensors.index.json").string(), index.dump(2) + "\n");
    written.push_back("model.safetensors.index.json");
  }
  finished_ = true;
  return written;
}

}  // namespace modelpress
