// Reading safetensors files: mmap, full validation of the header against the spec, and
// zero-copy tensor views. Spec: 8-byte little-endian header length N (at most 100,000,000),
// N bytes of JSON object {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
// {string: string}}, then the data section, covered by the tensors exactly: no holes, no
// overlaps, end - begin == numel * itemsize.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/mapped_file.h"
#include "io/tensor.h"

namespace modelpress {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin;  // byte offsets relative to the start of the data section
  uint64_t end;
};

class SafetensorsFile {
 public:
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  // Maps and validates `path`; throws Error naming the file and the first problem found.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  // Every tensor, in the order of its bytes in the file.
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const SafetensorsEntry* find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t header_bytes() const { return header_bytes_; }  // N
  uint64_t data_start() const { return 8 + header_bytes_; }
  uint64_t file_size() const { return file_->size(); }

  // A read-only view of the tensor's bytes in the mapping. Its pages are handed back to
  // the kernel when the last copy of the view is gone, so walking a large file tensor by
  // tensor keeps resident memory near one tensor.
  Tensor read(const SafetensorsEntry& entry) const;
  Tensor read(std::string_view name) const;  // throws Error if absent

 private:
  std::shared_ptr<MappedFile> file_;
  uint64_t header_bytes_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace modelpress
