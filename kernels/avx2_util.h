// Shared by the AVX2 kernel files: the target attributes they compile under (per function,
// never a global -mavx2: kernels/cpu_features.h picks the path at run time) and the f32
// horizontal sum their GEMV rows end with.
#pragma once
#include <immintrin.h>

#define MP_AVX2 __attribute__((target("avx2,fma")))
#define MP_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace modelpress::kernels {

// Sum of the 8 f32 lanes.
MP_AVX2_INLINE float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace modelpress::kernels
