// The forward's non-linear-layer math, in plain f32 C++ (OpenMP over rows or heads): norms,
// activations, rotary position embeddings and attention. Each follows the transformers
// module it replaces (named beside it) so logits match a torch run to f32 rounding.
#pragma once
#include <cstdint>
#include <vector>

#include "model/config.h"

namespace modelpress::model {

// LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w, row by row, in place.
void rms_norm(float* x, int64_t rows, int64_t dim, const float* w, double eps);
// nn.LayerNorm: (x - mean) / sqrt(var + eps) * w + b (biased variance), in place.
void layer_norm(float* x, int64_t rows, int64_t dim, const float* w, const float* b, double eps);
// GELU with the exact erf (transformers' "gelu"), in place.
void gelu_erf(float* x, int64_t n);
// out[i] = silu(gate[i]) * up[i]: LlamaMLP's act_fn(gate_proj(x)) * up_proj(x), into gate.
void silu_mul(float* gate, const float* up, int64_t n);
// y += x.
void add_in_place(float* y, const float* x, int64_t n);

// Rotary position embedding as LlamaRotaryEmbedding + apply_rotary_pos_emb (rotate_half:
// the two halves of each head are the pairs). inv_freq is computed in f32 as transformers
// does (then adjusted for rope_scaling), angles as f32(position) * inv_freq in f32.
class Rope {
 public:
  Rope(int64_t head_dim, double theta, const RopeScaling& scaling);
  // x: rows at positions first_pos, first_pos + 1, ...; each row holds `heads` heads of
  // head_dim, contiguous. Rotated in place.
  void apply(float* x, int64_t rows, int64_t heads, int64_t first_pos) const;
  const std::vector<float>& inv_freq() const { return inv_freq_; }

 private:
  int64_t head_dim_;
  std::vector<float> inv_freq_;  // head_dim / 2
  float position_scale_ = 1.0f;  // linear scaling divides positions
};

// Keys or values of one layer: head h, position p starts at data + h * head_stride + p * row_stride.
struct HeadRows {
  const float* data;
  int64_t head_stride, row_stride;
};

// Scaled dot-product attention for `q_rows` query rows (row stride heads * head_dim, heads
// contiguous within a row) against `kv_len` key/value rows. Query head h reads key/value
// head h / (heads / kv_heads) (grouped-query attention). Causal: query row i sits at
// position kv_len - q_rows + i and sees keys up to it. out: (q_rows, heads * head_dim).
void attention(const float* q, int64_t q_rows, HeadRows k, HeadRows v, int64_t kv_len, int64_t heads,
               int64_t kv_heads, int64_t head_dim, bool causal, float* out);

}  // namespace modelpress::model
