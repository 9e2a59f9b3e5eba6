// LLM.int8 / W8A8 mixed product (llm_int8.h).
#include "kernels/llm_int8.h"

#include <algorithm>
#include <cstring>

#include "kernels/activation_quant.h"
#include "kernels/half.h"
#include "kernels/int8_gemm.h"
#include "kernels/workspace.h"

namespace modelpress::kernels {

namespace {

struct Scratch {
  int8_t* q;             // (M, K)
  float* row_scale;      // (M)
  uint8_t* col_flags;    // (K)
  int32_t* cols;         // (K): outlier columns, ascending
  int32_t* fp16_index;   // (K): per outlier column, its row in fp16_columns or -1
  int32_t* c;            // (M, N)
};

Scratch carve(void* base, int64_t m, int64_t n, int64_t k, WorkspaceCarver* out = nullptr) {
  WorkspaceCarver w(base);
  Scratch s;
  s.q = w.take<int8_t>(m * k);
  s.row_scale = w.take<float>(m);
  s.col_flags = w.take<uint8_t>(k);
  s.cols = w.take<int32_t>(k);
  s.fp16_index = w.take<int32_t>(k);
  s.c = w.take<int32_t>(m * n);
  if (out) *out = w;
  return s;
}

// For each outlier column, where its 16-bit weights are in `fp16` (-1: use the int8 column).
// Both lists ascend, so one merge walk.
void match_fp16_columns(const int32_t* cols, int64_t count, const Fp16Columns& fp16, int32_t* index) {
  int64_t f = 0;
  for (int64_t j = 0; j < count; ++j) {
    while (f < fp16.count && fp16.cols[f] < cols[j]) ++f;
    index[j] = f < fp16.count && fp16.cols[f] == cols[j] ? static_cast<int32_t>(f) : -1;
  }
}

// Weight column `col` (its position `fidx` in fp16 columns, or -1) at output row n.
inline float outlier_weight(const PackedLinear& layer, int32_t col, int32_t fidx, int64_t n) {
  if (fidx >= 0) return f16_bits_to_f32(layer.fp16_columns.w_f16[fidx * layer.n + n]);
  return static_cast<float>(layer.int8.q[n * layer.k + col]) * layer.int8.scale[n];
}

// W8A8 has no decomposition whatever the struct's LLM.int8 fields hold (PackedLayer::view()
// leaves the default threshold 6 in a W8A8 layer): threshold 0, so no outlier columns and
// the fp16 columns are never consulted.
float effective_threshold(const PackedLinear& layer) {
  return layer.format == LinearFormat::LlmInt8 ? layer.threshold : 0.0f;
}

}  // namespace

size_t llm_int8_workspace_bytes(int64_t m, int64_t n, int64_t k) {
  WorkspaceCarver w(nullptr);
  carve(nullptr, m, n, k, &w);
  return w.bytes();
}

void llm_int8_linear_ref(const PackedLinear& layer, const float* x, int64_t m, float* y, void* workspace) {
  const int64_t n = layer.n, k = layer.k;
  const Scratch s = carve(workspace, m, n, k);
  const int64_t count =
      quantize_activations_ref(x, m, k, effective_threshold(layer), s.q, s.row_scale, s.cols, s.col_flags);
  int8_gemm_ref(s.q, layer.int8.q, s.c, m, n, k);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j)
      y[i * n + j] = static_cast<float>(s.c[i * n + j]) * s.row_scale[i] * layer.int8.scale[j] +
                     (layer.bias ? layer.bias[j] : 0.0f);
  // The 16-bit side, in the order of the outlier columns.
  match_fp16_columns(s.cols, count, layer.fp16_columns, s.fp16_index);
  for (int64_t c = 0; c < count; ++c)
    for (int64_t j = 0; j < n; ++j) {
      const float w = outlier_weight(layer, s.cols[c], s.fp16_index[c], j);
      for (int64_t i = 0; i < m; ++i) y[i * n + j] += x[i * k + s.cols[c]] * w;
    }
}

void llm_int8_linear(const PackedLinear& layer, const float* x, int64_t m, float* y, void* workspace) {
  const int64_t n = layer.n, k = layer.k;
  const Scratch s = carve(workspace, m, n, k);
  const int64_t count = quantize_activations(x, m, k, effective_threshold(layer), s.q, s.row_scale, s.cols, s.col_flags);
  int8_gemm(s.q, layer.int8.q, s.c, m, n, k);

  const float* scale = layer.int8.scale;
  const float* bias = layer.bias;
  // Dequantize: (M, N) int32 -> f32. Plain loops the compiler vectorizes; this streams C
  // once, a small cost next to the GEMM.
#pragma omp parallel for schedule(static) if (m * n >= (int64_t{1} << 16))
  for (int64_t i = 0; i < m; ++i) {
    const int32_t* ci = s.c + i * n;
    float* yi = y + i * n;
    const float rs = s.row_scale[i];
    if (bias)
      for (int64_t j = 0; j < n; ++j) yi[j] = static_cast<float>(ci[j]) * rs * scale[j] + bias[j];
    else
      for (int64_t j = 0; j < n; ++j) yi[j] = static_cast<float>(ci[j]) * rs * scale[j];
  }
  if (count == 0) return;

  // 16-bit side: blocks of 64 output columns; per outlier column, its 64 weights are gathered
  // once into a small buffer (f16 -> f32, or int8 * scale with stride K), then added to every
  // row as an axpy: y[i, block] += x[i, col] * w[block].
  match_fp16_columns(s.cols, count, layer.fp16_columns, s.fp16_index);
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (blocks > 1 && m * n * count >= (int64_t{1} << 16))
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kBlock, j1 = std::min(n, j0 + kBlock);
    float w[kBlock];  // (block) weights of one outlier column
    for (int64_t c = 0; c < count; ++c) {
      for (int64_t j = j0; j < j1; ++j) w[j - j0] = outlier_weight(layer, s.cols[c], s.fp16_index[c], j);
      for (int64_t i = 0; i < m; ++i) {
        const float xv = x[i * k + s.cols[c]];
        float* yi = y + i * n + j0;
        for (int64_t j = 0; j < j1 - j0; ++j) yi[j] += xv * w[j];
      }
    }
  }
}

}  // namespace modelpress::kernels
