// Eigen built for AVX-512 (F/BW/DQ/VL + FMA), called only where cpu_features().avx512_f32
// holds. Same construction as dense_f32_avx2.cpp: Eigen picks its packet width from the
// compiler's target macros (__AVX512F__ etc.), so this one file is compiled with
// -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma (kernels/CMakeLists.txt), and Eigen's
// namespace is renamed so its inline functions cannot be merged by the linker with the
// baseline or AVX2 copies.
#define Eigen modelpress_eigen_avx512
#include <Eigen/Core>

#include <algorithm>

#include "kernels/dense_f32.h"

#if !defined(__AVX512F__) || !defined(__AVX512DQ__) || !defined(__FMA__)
#error "dense_f32_avx512.cpp must be compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma"
#endif

namespace modelpress::kernels::detail {

void dense_f32_eigen_avx512(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                            float* y)
#include "kernels/dense_f32_eigen.inc"

}  // namespace modelpress::kernels::detail
