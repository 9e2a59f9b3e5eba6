// Eigen built for AVX2 + FMA, called only where cpu_features().avx2_fma holds.
//
// Eigen chooses its packet width from the compiler's target macros (__AVX2__, __FMA__), so
// target attributes cannot reach it: this one file is compiled with -mavx2 -mfma
// (kernels/CMakeLists.txt). Its Eigen functions would then share mangled names with the
// baseline Eigen in dense_f32.cpp while holding AVX2 code, and the linker keeps one copy of
// each inline function: the baseline caller could end up in AVX2 code. Renaming Eigen's
// namespace for this file gives its instantiations names of their own. Only the one
// function below is meant to leave the file; `nm -C` on this object lists its weak
// symbols (all in modelpress_eigen_avx2:: in an optimised build).
#define Eigen modelpress_eigen_avx2
#include <Eigen/Core>

#include <algorithm>

#include "kernels/dense_f32.h"

#if !defined(__AVX2__) || !defined(__FMA__)
#error "dense_f32_avx2.cpp must be compiled with -mavx2 -mfma (see kernels/CMakeLists.txt)"
#endif

namespace modelpress::kernels::detail {

void dense_f32_eigen_avx2(const float* w, int64_t n, int64_t k, const float* bias, const float* x, int64_t m,
                          float* y)
#include "kernels/dense_f32_eigen.inc"

}  // namespace modelpress::kernels::detail
