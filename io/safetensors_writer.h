// Streaming safetensors writer. Tensors are appended one at a time and their bytes go
// straight to disk; the header is written by finish(), once every name, shape and offset is
// known. Until then the file lives under a hidden temporary name in the target folder;
// finish() renames it into place, and a writer destroyed before finish() deletes it, so a
// reader never sees a half-written file.
//
// Where the header goes: the data section starts after a reserved header area sized from
// the expected tensor count. If the final header fits, it is padded with spaces to fill the
// area (the spec pads headers with spaces; JSON ignores them) and written in place. If it
// does not fit, finish() writes a new file with the header and copies the data behind it
// with copy_file_range: correct always, slower only when the estimate was too small.
#pragma once
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "io/tensor.h"

namespace modelpress {

class SafetensorsWriter {
 public:
  // `expected_tensors` sizes the reserved header area (0: a small default).
  explicit SafetensorsWriter(std::string path, std::map<std::string, std::string> metadata = {},
                             size_t expected_tensors = 0);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  // A view straight out of a file (Tensor::file_span) is copied in the kernel.
  void append(const std::string& name, const Tensor& tensor);
  void append(const std::string& name, DType dtype, const Shape& shape, std::span<const std::byte> bytes);

  size_t tensor_count() const { return count_; }
  uint64_t data_bytes() const { return data_bytes_; }
  const std::string& path() const { return path_; }

  // Writes the header and renames the file to `path()` (or to `final_path`).
  void finish();
  void finish(const std::string& final_path);

 private:
  void check_entry(const std::string& name, DType dtype, const Shape& shape, uint64_t nbytes) const;
  void add_entry(const std::string& name, DType dtype, const Shape& shape, uint64_t nbytes);

  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  uint64_t reserved_ = 0;    // bytes before the data section: 8 + header area
  uint64_t data_bytes_ = 0;  // bytes of tensor data written so far
  size_t count_ = 0;
  nlohmann::ordered_json header_;
  std::unordered_set<std::string> names_;
};

// Writes a Hugging Face style checkpoint into `dir`: one `model.safetensors`, or when the
// data exceeds `max_shard_bytes`, shards `model-0000i-of-0000n.safetensors` plus
// `model.safetensors.index.json` (weight_map and metadata.total_size). A shard is closed
// before the tensor that would push it over the limit; a tensor larger than the limit gets
// a shard of its own. Shard names need the shard count, so shards are renamed into place
// only by finish().
class ShardedSafetensorsWriter {
 public:
  ShardedSafetensorsWriter(std::string dir, uint64_t max_shard_bytes, std::map<std::string, std::string> metadata = {},
                           size_t expected_tensors = 0);
  ~ShardedSafetensorsWriter();
  void append(const std::string& name, const Tensor& tensor);
  void append(const std::string& name, DType dtype, const Shape& shape, std::span<const std::byte> bytes);
  // Returns the names of the files written, in shard order (the index last, if any).
  std::vector<std::string> finish();

 private:
  struct Shard {
    std::string tmp;  // finished shard under a temporary name
    std::vector<std::string> names;
  };
  SafetensorsWriter& shard_for(const std::string& name, uint64_t nbytes);  // opens or rolls over
  void added(const std::string& name, uint64_t nbytes);                    // after a successful append
  void close_current();

  std::string dir_;
  uint64_t max_shard_bytes_;
  std::map<std::string, std::string> metadata_;
  size_t expected_tensors_;
  std::unique_ptr<SafetensorsWriter> current_;
  std::vector<std::string> current_names_;
  std::vector<Shard> done_;
  std::unordered_set<std::string> names_;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

}  // namespace modelpress
