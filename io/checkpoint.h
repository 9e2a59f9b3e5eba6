// A checkpoint as the passes see it: one safetensors file, a Hugging Face folder (single
// file or sharded with model.safetensors.index.json), or a GGUF file. Opening validates
// every file and classifies every tensor once; reading a tensor is a zero-copy view where
// the stored type is a plain dtype, and a dequantized f32 tensor for GGUF block types.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/gguf_reader.h"
#include "io/safetensors_reader.h"
#include "io/tensor_category.h"

namespace modelpress {

enum class CheckpointFormat { Safetensors, ShardedSafetensors, Gguf };
std::string_view format_name(CheckpointFormat f);  // "safetensors", "safetensors-sharded", "gguf"

struct CheckpointTensor {
  std::string name;
  std::string stored_type;  // dtype as stored: "BF16", or a GGUF block type such as "Q4_1"
  DType dtype;              // dtype of the tensor read() returns (F32 for GGUF block types)
  Shape shape;              // row-major, outermost dimension first
  uint64_t nbytes;          // bytes on disk
  TensorCategory category;
  size_t file;              // index into files()
};

class Checkpoint {
 public:
  // `path`: a .safetensors or .gguf file, a model.safetensors.index.json, or a folder
  // holding one of them. Throws Error naming the file and the problem.
  static Checkpoint open(const std::string& path);

  CheckpointFormat format() const { return format_; }
  const std::string& folder() const { return folder_; }
  const std::vector<std::string>& files() const { return files_; }  // weight files, full paths
  // Every tensor: shard by shard, and within a file in the order of its bytes.
  const std::vector<CheckpointTensor>& tensors() const { return tensors_; }
  const CheckpointTensor* find(std::string_view name) const;
  Tensor read(const CheckpointTensor& t) const;

  // config.json beside the weights (null when there is none).
  const nlohmann::json& config() const { return config_; }
  // "LlamaForCausalLM", GGUF general.architecture, or a guess from tensor names.
  std::string architecture() const;
  // Files a compressed copy should carry along (config, tokenizer, generation config, ...),
  // relative to folder(): every non-weight file of a folder input; for a file input, the
  // usual Hugging Face side files found beside it.
  const std::vector<std::string>& carried_files() const { return carried_; }
  // safetensors __metadata__ of the first file (empty for GGUF).
  const std::map<std::string, std::string>& metadata() const;
  const GgufFile* gguf() const { return gguf_.get(); }

 private:
  void add_safetensors(const SafetensorsFile& file);
  void add_gguf();
  void finish_open();

  CheckpointFormat format_ = CheckpointFormat::Safetensors;
  std::string folder_;
  std::vector<std::string> files_;
  std::vector<SafetensorsFile> shards_;
  std::shared_ptr<GgufFile> gguf_;
  std::vector<CheckpointTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  nlohmann::json config_;
  std::vector<std::string> carried_;
};

}  // namespace modelpress
