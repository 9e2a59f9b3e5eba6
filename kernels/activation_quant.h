// Dynamic per-row symmetric int8 quantization of activations x (M, K) f32, with the LLM.int8
// outlier-column extraction (bitsandbytes' int8_vectorwise_quant semantics):
//
//   outlier element:  |x[m][k]| >= threshold            (threshold 0: none)
//   outlier column:   a column holding any outlier element
//   absmax[m]        = max |x[m][k]| over the row's elements that are not outliers
//   row_scale[m]     = absmax[m] / 127                   (x[m][k] ~= q[m][k] * row_scale[m])
//   q[m][k]          = round_half_even(x[m][k] * (127 / absmax[m])), clamped to [-127, 127];
//                      0 in every outlier column (all rows), 0 where absmax is 0 (all-zero row:
//                      scale 0, no NaN), 0 for a NaN
//
// As bitsandbytes, the row absmax leaves out outlier ELEMENTS, not whole outlier columns: a
// small value that shares a column with another row's outlier still counts, then is zeroed
// in q with its column. The reciprocal 127 / absmax is rounded to f32 first, as bitsandbytes
// computes A * (127 / row_stats); q is therefore exactly reproducible. q never holds -128,
// which the AVX2 int8 GEMM requires. One exception: a row whose absmax is below 127 / FLT_MAX
// (~3.7e-37), where 127 / absmax overflows f32, is quantized as round(x * 127 / absmax) in
// double (an infinite reciprocal would turn every nonzero element into +-127).
#pragma once
#include <cstdint>

namespace modelpress::kernels {

// All variants: q (M, K), row_scale (M), outlier_cols (capacity K) receive the ascending
// outlier column indices; col_flags is K bytes of scratch. Returns the outlier column count.
int64_t quantize_activations_ref(const float* x, int64_t m, int64_t k, float threshold, int8_t* q,
                                 float* row_scale, int32_t* outlier_cols, uint8_t* col_flags);
// Fastest path on this CPU (AVX2 when present, OpenMP over rows); same results bit for bit.
int64_t quantize_activations(const float* x, int64_t m, int64_t k, float threshold, int8_t* q, float* row_scale,
                             int32_t* outlier_cols, uint8_t* col_flags);
// The AVX2 path itself (needs cpu_features().avx2_fma), for tests.
int64_t quantize_activations_avx2(const float* x, int64_t m, int64_t k, float threshold, int8_t* q,
                                  float* row_scale, int32_t* outlier_cols, uint8_t* col_flags);

}  // namespace modelpress::kernels
