// DenseF32: y (M, N) = x (M, K) W^T + b with an f32 weight (N, K): the baseline every
// packed format is measured against.
#pragma once
#include <cstdint>

namespace modelpress::kernels {

// The reference: double accumulation, one output at a time.
void dense_f32_linear_ref(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                          float* y);
// Eigen's GEMM (OpenMP threads). Eigen picks its vector width when it is compiled, so this
// calls a copy of Eigen built for AVX-512 (dense_f32_avx512.cpp) where the CPU has AVX-512
// F/BW/DQ/VL + FMA, else one built for AVX2 + FMA (dense_f32_avx2.cpp), else one built for
// baseline x86-64 (SSE2). dense_f32_path_name() says which.
void dense_f32_linear(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m, float* y);

const char* dense_f32_path_name();

namespace detail {
// The Eigen builds, for tests and benchmarks (each needs its CPU features).
void dense_f32_eigen_baseline(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                              float* y);
void dense_f32_eigen_avx2(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                          float* y);
void dense_f32_eigen_avx512(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                            float* y);
// cpu_features() allows dense_f32_eigen_avx512.
bool dense_f32_avx512_available();
}  // namespace detail

}  // namespace modelpress::kernels
