// Writes the fuzz targets' seed corpora with modelpress's own writers: small valid files of
// every dtype and block type the readers accept, so fuzzing starts from inputs that reach
// deep into each parser. Usage: make_seeds DIR (creates DIR/<target>/...).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "io/dtype.h"
#include "io/gguf_dequant.h"
#include "io/gguf_writer.h"
#include "io/safetensors_writer.h"
#include "io/tensor.h"

namespace fs = std::filesystem;
using namespace modelpress;

namespace {

std::vector<std::byte> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::byte> b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng() & 0xff);
  return b;
}

Tensor values(DType dtype, Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = normal(rng);
  if (dtype_is_float(dtype)) return Tensor::from_f32(v, dtype, shape);
  const std::vector<std::byte> raw = random_bytes(v.size() * dtype_size(dtype), seed);
  Tensor t = Tensor::zeros(dtype, shape);
  std::copy(raw.begin(), raw.end(), t.mutable_data());
  return t;
}

void safetensors_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  uint32_t seed = 1;
  for (DType d : {DType::F32, DType::F16, DType::BF16, DType::F64, DType::F8_E4M3, DType::F8_E5M2, DType::I64,
                  DType::I32, DType::I8, DType::U8, DType::BOOL}) {
    SafetensorsWriter w((dir / (std::string(dtype_name(d)) + ".safetensors")).string(), {{"format", "pt"}});
    w.append("model.layers.0.mlp.up_proj.weight", values(d, {3, 5}, seed++));
    w.append("model.norm.weight", values(d, {5}, seed++));
    w.finish();
  }
  SafetensorsWriter w((dir / "llama.safetensors").string());
  w.append("model.embed_tokens.weight", values(DType::F32, {7, 4}, 90));
  w.append("model.layers.0.self_attn.q_proj.weight", values(DType::BF16, {4, 4}, 91));
  w.append("lm_head.weight", values(DType::F16, {7, 4}, 92));
  w.append("scalar", values(DType::F32, {}, 93));
  w.append("empty", values(DType::F32, {0, 4}, 94));
  w.finish();
}

void gguf_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  namespace g = ggml_type;
  for (uint32_t type : {g::F32, g::F16, g::BF16, g::Q4_0, g::Q4_1, g::Q5_0, g::Q5_1, g::Q8_0, g::Q2_K, g::Q3_K,
                        g::Q4_K, g::Q5_K, g::Q6_K, g::IQ4_NL, g::IQ4_XS}) {
    GgufWriter w((dir / (ggml_type_name(type) + ".gguf")).string(), true);
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 1);
    w.add_f32("llama.rope.freq_base", 10000.0f);
    const uint64_t cols = ggml_type_traits(type)->block_elems == 256 ? 256 : 64;
    const uint64_t a = w.declare_tensor("blk.0.ffn_up.weight", {cols, 2}, type);
    const uint64_t b = w.declare_tensor("output_norm.weight", {cols}, g::F32);
    w.write_tensor(random_bytes(a, type));
    const Tensor norm = values(DType::F32, {static_cast<int64_t>(cols)}, type + 100);
    w.write_tensor(std::span<const std::byte>(norm.data(), b));
    w.finish();
  }
}

void calibration_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  SafetensorsWriter w((dir / "calib.safetensors").string(),
                      {{"format", "modelpress-calibration"}, {"version", "1"}, {"source", "seed"}});
  const std::string layer = "model.layers.0.mlp.up_proj";
  w.append(layer, values(DType::F32, {6, 4}, 1));
  w.append(layer + ".step", values(DType::I64, {6}, 2));
  for (const char* s : {".absmax", ".min", ".max"}) w.append(layer + s, values(DType::F32, {4}, 3));
  w.append(layer + ".gram", values(DType::F32, {4, 4}, 4));
  Tensor tokens = Tensor::zeros(DType::I64, {1});
  const int64_t six = 6;
  std::memcpy(tokens.mutable_data(), &six, sizeof six);
  w.append(layer + ".tokens", tokens);
  w.append("model.layers.1.self_attn.q_proj", values(DType::BF16, {3, 16}, 5));
  w.finish();
}

void merge_config_seeds(const fs::path& dir) {
  fs::create_directories(dir);
  const std::vector<std::string> configs = {
      "merge_method: ties\nbase_model: base\nmodels:\n  - model: a\n    parameters: {weight: 0.5, density: 0.3}\n"
      "  - model: b\n    parameters:\n      weight: [0.1, 0.9]\n      density: 0.7\nparameters: {normalize: true, lambda: "
      "0.8}\ndtype: bfloat16\n",
      "merge_method: slerp\nbase_model: a\nslices:\n  - sources:\n      - {model: a, layer_range: [0, 4]}\n"
      "      - {model: b, layer_range: [2, 6]}\nparameters:\n  t:\n    - filter: self_attn\n      value: [0, 0.5, 1]\n"
      "    - value: 0.6\n",
      "merge_method: passthrough\nslices:\n  - sources: [{model: a, layer_range: [0, 3]}]\n"
      "  - sources: [{model: b, layer_range: [1, 4]}]\nout_dtype: float16\ntokenizer_source: base\n",
      "merge_method: dare_ties\nbase_model: x\nmodels:\n  - model: y\n    parameters: {weight: 1, density: 0.5}\n"
      "parameters: {rescale: false, int8_mask: true}\n",
      "merge_method: model_stock\nbase_model: x\nmodels: [{model: a}, {model: b}]\nparameters: {filter_wise: true}\n",
      "merge_method: linear\nmodels:\n  - {model: a, parameters: {weight: [{filter: mlp, value: 2}, {value: 1}]}}\n"};
  for (size_t i = 0; i < configs.size(); ++i) std::ofstream(dir / ("seed" + std::to_string(i) + ".yml")) << configs[i];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 2;
  }
  const fs::path dir = argv[1];
  safetensors_seeds(dir / "safetensors");
  gguf_seeds(dir / "gguf");
  calibration_seeds(dir / "calibration");
  merge_config_seeds(dir / "merge_config");
  return 0;
}
