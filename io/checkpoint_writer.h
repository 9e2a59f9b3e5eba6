// Writes a Hugging Face style output folder: safetensors weights (sharded by size), the
// side files carried from the source checkpoint, and config.json (possibly updated by a
// pass). Everything is written into a hidden staging folder beside the target and renamed
// into place by finish(); an unfinished writer removes its staging folder, so the target
// is either the complete output or untouched.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/safetensors_writer.h"

namespace modelpress {

class Checkpoint;

struct CheckpointWriterOptions {
  uint64_t max_shard_bytes = 5'000'000'000;  // Hugging Face's default shard size ("5GB")
  bool overwrite = false;                    // replace an existing target (only once finished)
  size_t expected_tensors = 0;               // sizes each shard's reserved header area
};

class CheckpointWriter {
 public:
  // `source` (optional) supplies the side files to carry and the default config.json.
  CheckpointWriter(std::string target, const Checkpoint* source, CheckpointWriterOptions options = {});
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  void append(const std::string& name, const Tensor& tensor);
  // The config.json to write instead of the source's.
  void set_config(nlohmann::json config) { config_ = std::move(config); }
  const nlohmann::json& config() const { return config_; }
  // A small text file written beside the weights by finish() (after the carried side files,
  // so it wins over one of the same name), e.g. a merge's state.
  void add_text_file(const std::string& relative_path, std::string text) {
    extra_files_.emplace_back(relative_path, std::move(text));
  }
  // Writes the index, side files and config, then moves the folder into place.
  void finish();

 private:
  std::string target_;
  std::string staging_;
  const Checkpoint* source_;
  CheckpointWriterOptions options_;
  nlohmann::json config_;
  std::vector<std::pair<std::string, std::string>> extra_files_;
  std::unique_ptr<ShardedSafetensorsWriter> weights_;
  bool finished_ = false;
};

// Parses "5GB", "500MB", "2GiB", "123" (bytes); throws Error on anything else.
uint64_t parse_byte_size(const std::string& text);
// "1.23 GB" style, powers of 1000 as Hugging Face counts shard sizes.
std::string format_bytes(uint64_t bytes);

}  // namespace modelpress
