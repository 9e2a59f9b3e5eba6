#include "model/ops.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "kernels/dense_f32.h"

namespace modelpress::model {

void rms_norm(float* x, int64_t rows, int64_t dim, const float* w, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * dim;
    double sum = 0;  // f64 sum: an f32 result independent of summation order
    for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(row[i]) * row[i];
    const float inv = static_cast<float>(1.0 / std::sqrt(sum / static_cast<double>(dim) + eps));
    for (int64_t i = 0; i < dim; ++i) row[i] = w[i] * (row[i] * inv);
  }
}

void layer_norm(float* x, int64_t rows, int64_t dim, const float* w, const float* b, double eps) {
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * dim;
    double mean = 0;
    for (int64_t i = 0; i < dim; ++i) mean += row[i];
    mean /= static_cast<double>(dim);
    double var = 0;
    for (int64_t i = 0; i < dim; ++i) var += (row[i] - mean) * (row[i] - mean);
    var /= static_cast<double>(dim);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t i = 0; i < dim; ++i) row[i] = static_cast<float>((row[i] - mean) * inv) * w[i] + b[i];
  }
}

void gelu_erf(float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) x[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * static_cast<float>(std::numbers::sqrt2 / 2)));
}

void silu_mul(float* gate, const float* up, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void add_in_place(float* y, const float* x, int64_t n) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

Rope::Rope(int64_t head_dim, double theta, const RopeScaling& s) : head_dim_(head_dim) {
  const int64_t half = head_dim / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    // transformers: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in f32.
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(head_dim);
    inv_freq_[i] = 1.0f / std::pow(static_cast<float>(theta), exponent);
  }
  if (s.type == RopeScaling::Type::Linear) position_scale_ = static_cast<float>(1.0 / s.factor);
  if (s.type == RopeScaling::Type::Llama3) {
    // transformers' _compute_llama3_parameters: long wavelengths slow down by `factor`,
    // short ones stay, the band between is interpolated.
    const double old_len = static_cast<double>(s.original_max_positions);
    const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
    for (float& f : inv_freq_) {
      const double wavelen = 2 * std::numbers::pi / f;
      if (wavelen > low_wavelen) {
        f = static_cast<float>(f / s.factor);
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        f = static_cast<float>((1 - smooth) * f / s.factor + smooth * f);
      }
    }
  }
}

void Rope::apply(float* x, int64_t rows, int64_t heads, int64_t first_pos) const {
  const int64_t half = head_dim_ / 2;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    const float pos = static_cast<float>(first_pos + r) * position_scale_;
    std::vector<float> c(half), s(half);
    for (int64_t i = 0; i < half; ++i) {
      const float angle = pos * inv_freq_[i];
      c[i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      s[i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (r * heads + h) * head_dim_;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[i] - b * s[i];
        v[i + half] = b * c[i] + a * s[i];
      }
    }
  }
}

void attention(const float* q, int64_t q_rows, HeadRows k, HeadRows v, int64_t kv_len, int64_t heads,
               int64_t kv_heads, int64_t head_dim, bool causal, float* out) {
  // The two products go through the kernels' dense f32 GEMM (y = x W^T, dispatched to the
  // machine's vector width): scores = Q_h K_h^T with K_h as the "weight", and, for more than a
  // few query rows, O_h = P V_h with V_h^T as the weight. A single query row (decoding) sums
  // the value rows directly instead of transposing V for a one-row product.
  const int64_t group = heads / kv_heads, d = head_dim;
  const int64_t q_stride = heads * d;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t first_pos = kv_len - q_rows;
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t h = 0; h < heads; ++h) {
    const int64_t kvh = h / group;
    std::vector<float> qh(static_cast<size_t>(q_rows * d)), scores(static_cast<size_t>(q_rows * kv_len)), kh;
    for (int64_t i = 0; i < q_rows; ++i)
      for (int64_t c = 0; c < d; ++c) qh[i * d + c] = q[i * q_stride + h * d + c] * scale;
    const float* kbase = k.data + kvh * k.head_stride;
    if (k.row_stride != d) {  // gather K_h into rows of d
      kh.resize(static_cast<size_t>(kv_len * d));
      for (int64_t j = 0; j < kv_len; ++j) std::copy_n(kbase + j * k.row_stride, d, kh.data() + j * d);
      kbase = kh.data();
    }
    kernels::dense_f32_linear(kbase, kv_len, d, nullptr, qh.data(), q_rows, scores.data());
    for (int64_t i = 0; i < q_rows; ++i) {
      float* row = scores.data() + i * kv_len;
      const int64_t visible = causal ? first_pos + i + 1 : kv_len;
      float mx = -INFINITY;
      for (int64_t j = 0; j < visible; ++j) mx = std::max(mx, row[j]);
      double sum = 0;
      for (int64_t j = 0; j < visible; ++j) {
        row[j] = std::exp(row[j] - mx);
        sum += row[j];
      }
      const float inv = static_cast<float>(1.0 / sum);
      for (int64_t j = 0; j < visible; ++j) row[j] *= inv;
      std::fill(row + visible, row + kv_len, 0.0f);
    }
    const float* vbase = v.data + kvh * v.head_stride;
    if (q_rows < 8) {
      for (int64_t i = 0; i < q_rows; ++i) {
        float* o = out + i * q_stride + h * d;
        std::fill(o, o + d, 0.0f);
        const float* p = scores.data() + i * kv_len;
        for (int64_t j = 0; j < kv_len; ++j) {
          const float* vj = vbase + j * v.row_stride;
          for (int64_t c = 0; c < d; ++c) o[c] += p[j] * vj[c];
        }
      }
      continue;
    }
    std::vector<float> vt(static_cast<size_t>(d * kv_len)), oh(static_cast<size_t>(q_rows * d));
    for (int64_t j = 0; j < kv_len; ++j)
      for (int64_t c = 0; c < d; ++c) vt[c * kv_len + j] = vbase[j * v.row_stride + c];
    kernels::dense_f32_linear(vt.data(), d, kv_len, nullptr, scores.data(), q_rows, oh.data());
    for (int64_t i = 0; i < q_rows; ++i) std::copy_n(oh.data() + i * d, d, out + i * q_stride + h * d);
  }
}

}  // namespace modelpress::model
