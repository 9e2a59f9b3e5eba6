#include "io/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "io/error.h"

namespace modelpress {
namespace fs = std::filesystem;
namespace {

constexpr const char* kIndexName = "model.safetensors.index.json";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Files that hold weights: never carried into an output (the output has its own).
bool is_weight_file(const std::string& name) {
  for (const char* ext : {".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth",
                          ".ckpt", ".gguf", ".onnx", ".onnx_data", ".h5", ".msgpack", ".ot"})
    if (ends_with(name, ext)) return true;
  return false;
}

// Side files of a Hugging Face model that travel with a single weight file.
bool is_side_file(const std::string& name) {
  static const std::set<std::string> names{
      "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
      "special_tokens_map.json", "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
      "tokenizer.model", "chat_template.jinja", "chat_template.json", "preprocessor_config.json"};
  return names.count(name) > 0;
}

bool has_gguf_magic(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {};
  return f.read(magic, 4) && std::memcmp(magic, "GGUF", 4) == 0;
}

nlohmann::json read_json_file(const std::string& path) {
  std::ifstream f(path);
  if (!f) fail_file(path, "cannot open");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {  // parse_error, and out_of_range for 1e999
    fail_file(path, "not valid JSON (" + std::string(e.what()) + ")");
  }
}

// weight_map of an index file, grouped by shard in the order the shards are named.
std::map<std::string, std::vector<std::string>> read_index(const std::string& path) {
  const nlohmann::json index = read_json_file(path);
  if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
    fail_file(path, "no \"weight_map\" object");
  std::map<std::string, std::vector<std::string>> shards;
  for (const auto& [tensor, shard] : index["weight_map"].items()) {
    if (!shard.is_string()) fail_file(path, "weight_map entry for '" + tensor + "' is not a file name");
    const std::string file = shard.get<std::string>();
    if (file.find('/') != std::string::npos || file == "." || file == "..")
      fail_file(path, "weight_map names shard '" + file + "' outside the checkpoint folder");
    shards[file].push_back(tensor);
  }
  if (shards.empty()) fail_file(path, "weight_map is empty");
  return shards;
}

// GGUF types that are plain dtypes: read as zero-copy views rather than dequantized.
std::optional<DType> gguf_plain_dtype(uint32_t ggml_type) {
  switch (ggml_type) {
    case 0: return DType::F32;
    case 1: return DType::F16;
    case 24: return DType::I8;
    case 25: return DType::I16;
    case 26: return DType::I32;
    case 27: return DType::I64;
    case 28: return DType::F64;
    case 30: return DType::BF16;
    default: return std::nullopt;
  }
}

}  // namespace

std::string_view format_name(CheckpointFormat f) {
  switch (f) {
    case CheckpointFormat::Safetensors: return "safetensors";
    case CheckpointFormat::ShardedSafetensors: return "safetensors-sharded";
    case CheckpointFormat::Gguf: return "gguf";
  }
  return "unknown";
}

Checkpoint Checkpoint::open(const std::string& path) {
  Checkpoint c;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_file(path, "no such file or folder");
  std::string index_path, single_path;
  if (fs::is_directory(path)) {
    c.folder_ = path;
    const fs::path dir(path);
    std::vector<std::string> safetensors, ggufs;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (!e.is_regular_file() || name.starts_with(".")) continue;
      if (ends_with(name, ".safetensors")) safetensors.push_back(e.path().string());
      if (ends_with(name, ".gguf")) ggufs.push_back(e.path().string());
    }
    if (fs::exists(dir / kIndexName)) {
      index_path = (dir / kIndexName).string();
    } else if (fs::exists(dir / "model.safetensors")) {
      single_path = (dir / "model.safetensors").string();
    } else if (safetensors.size() == 1) {
      single_path = safetensors[0];
    } else if (safetensors.size() > 1) {
      fail_file(path, "several .safetensors files but no " + std::string(kIndexName) + " saying how they form one model");
    } else if (ggufs.size() == 1) {
      single_path = ggufs[0];
    } else if (ggufs.size() > 1) {
      fail_file(path, "several .gguf files: name the one to open");
    } else {
      fail_file(path, "no model.safetensors, " + std::string(kIndexName) + " or .gguf file in this folder");
    }
  } else {
    c.folder_ = fs::path(path).parent_path().string();
    if (c.folder_.empty()) c.folder_ = ".";
    if (ends_with(path, ".index.json"))
      index_path = path;
    else
      single_path = path;
  }

  if (!index_path.empty()) {
    c.format_ = CheckpointFormat::ShardedSafetensors;
    const auto shards = read_index(index_path);
    for (const auto& [shard, names] : shards) {
      const std::string shard_path = (fs::path(c.folder_) / shard).string();
      if (!fs::exists(shard_path))
        fail_file(index_path, "weight_map names shard '" + shard + "', which does not exist");
      c.shards_.push_back(SafetensorsFile::open(shard_path));
      c.files_.push_back(shard_path);
      for (const auto& name : names)
        if (!c.shards_.back().find(name))
          fail_file(index_path, "weight_map puts tensor '" + name + "' in shard '" + shard + "', which has no such tensor");
      if (c.shards_.back().entries().size() != names.size()) {
        for (const auto& e : c.shards_.back().entries())
          if (std::find(names.begin(), names.end(), e.name) == names.end()) {
            // A tensor in two shards: say where weight_map puts it, not that it is unlisted.
            for (const auto& [owner, listed] : shards)
              if (std::find(listed.begin(), listed.end(), e.name) != listed.end())
                fail_file(index_path, "shard '" + shard + "' holds tensor '" + e.name +
                                          "', which weight_map puts in shard '" + owner + "'");
            fail_file(index_path, "shard '" + shard + "' holds tensor '" + e.name + "', which weight_map does not list");
          }
      }
      c.add_safetensors(c.shards_.back());
    }
  } else if (has_gguf_magic(single_path)) {
    c.format_ = CheckpointFormat::Gguf;
    c.gguf_ = std::make_shared<GgufFile>(GgufFile::open(single_path));
    c.files_.push_back(single_path);
    c.add_gguf();
  } else {
    c.format_ = CheckpointFormat::Safetensors;
    c.shards_.push_back(SafetensorsFile::open(single_path));
    c.files_.push_back(single_path);
    c.add_safetensors(c.shards_.back());
  }

  const fs::path folder(c.folder_);
  if (c.format_ != CheckpointFormat::Gguf && fs::exists(folder / "config.json"))
    c.config_ = read_json_file((folder / "config.json").string());
  // Side files: all non-weight files of a folder input; the known ones beside a file input.
  const bool whole_folder = fs::is_directory(path);
  if (c.format_ != CheckpointFormat::Gguf || whole_folder) {
    for (auto it = fs::recursive_directory_iterator(folder); it != fs::recursive_directory_iterator(); ++it) {
      const std::string name = it->path().filename().string();
      if (name.starts_with(".")) {  // .git, .cache, our own temporary files
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      if (!it->is_regular_file() || is_weight_file(name)) continue;
      if (!whole_folder && (it.depth() > 0 || !is_side_file(name))) continue;
      c.carried_.push_back(fs::relative(it->path(), folder).string());
    }
    std::sort(c.carried_.begin(), c.carried_.end());
  }
  c.finish_open();
  return c;
}

void Checkpoint::add_safetensors(const SafetensorsFile& file) {
  const size_t file_index = files_.size() - 1;
  for (const auto& e : file.entries()) {
    tensors_.push_back({e.name, std::string(dtype_name(e.dtype)), e.dtype, e.shape, e.end - e.begin,
                        classify_tensor(e.name, e.shape.size()), file_index});
  }
}

void Checkpoint::add_gguf() {
  // Tensors in the order of their bytes, like safetensors.
  std::vector<const GgufTensorInfo*> infos;
  for (const auto& t : gguf_->tensors()) infos.push_back(&t);
  std::stable_sort(infos.begin(), infos.end(), [](auto* a, auto* b) { return a->offset < b->offset; });
  for (const GgufTensorInfo* t : infos) {
    const Shape shape = t->shape();
    const std::optional<DType> plain = gguf_plain_dtype(t->type);
    tensors_.push_back({t->name, ggml_type_name(t->type), plain.value_or(DType::F32), shape, t->nbytes,
                        classify_tensor(t->name, shape.size()), 0});
  }
}

void Checkpoint::finish_open() {
  for (size_t i = 0; i < tensors_.size(); ++i) {
    if (!index_.emplace(tensors_[i].name, i).second)
      fail_file(files_[tensors_[i].file], "tensor '" + tensors_[i].name + "' appears in more than one shard");
  }
}

const CheckpointTensor* Checkpoint::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor Checkpoint::read(const CheckpointTensor& t) const {
  if (gguf_) {
    const GgufTensorInfo* info = gguf_->find(t.name);
    if (gguf_plain_dtype(info->type)) {
      const auto bytes = gguf_->raw(*info);
      return Tensor::view(t.dtype, t.shape, bytes.data(), gguf_);
    }
    return gguf_->read_f32(*info);
  }
  return shards_[t.file].read(*shards_[t.file].find(t.name));
}

const std::map<std::string, std::string>& Checkpoint::metadata() const {
  static const std::map<std::string, std::string> none;
  return shards_.empty() ? none : shards_.front().metadata();
}

std::string Checkpoint::architecture() const {
  if (config_.is_object()) {
    if (config_.contains("architectures") && config_["architectures"].is_array() &&
        !config_["architectures"].empty() && config_["architectures"][0].is_string())
      return config_["architectures"][0].get<std::string>();
    if (config_.contains("model_type") && config_["model_type"].is_string())
      return config_["model_type"].get<std::string>();
  }
  if (gguf_) {
    const auto& md = gguf_->metadata();
    if (md.contains("general.architecture") && md["general.architecture"].is_string())
      return md["general.architecture"].get<std::string>();
  }
  // No config: name the family the tensor names look like.
  auto any = [&](std::string_view needle) {
    return std::any_of(tensors_.begin(), tensors_.end(),
                       [&](const auto& t) { return t.name.find(needle) != std::string::npos; });
  };
  if (any(".experts.")) return "unknown (MoE tensor names)";
  if (any("self_attn.q_proj")) return "unknown (LLaMA-style tensor names)";
  if (any("attention.self.query")) return "unknown (BERT-style tensor names)";
  if (any("attn.c_attn")) return "unknown (GPT-2-style tensor names)";
  return "unknown";
}

}  // namespace modelpress
