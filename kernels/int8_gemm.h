// C_i32 (M, N) = A_i8 (M, K) x B_i8 (N, K)^T. All row-major and contiguous: both operands
// run along K, as activations (M, K) and an nn.Linear int8 weight (N, K) are stored, so
// the caller passes the weight as it sits in the checkpoint. (The AVX-512 VNNI path packs A
// and B into panels inside each call from M = 8 on, in thread-local scratch it keeps; see
// int8_gemm_avx512.cpp.)
//
// Exactness: every path returns the exact int32 result (|C| <= K * 128 * 128 fits int32 for
// K < 131072, checked). The AVX2 path needs A in [-127, 127] (see int8_gemm_avx2.cpp for
// why); the quantizers in this project produce that range, and int8_gemm() checks it and
// takes a path without the restriction otherwise.
#pragma once
#include <cstdint>

namespace modelpress::kernels {

enum class Int8GemmPath { Reference, Avx2, Avx512Vnni };
const char* int8_gemm_path_name(Int8GemmPath p);

// The deliberately simple reference: one int32 dot product per output.
void int8_gemm_ref(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k);

// The fastest path this CPU offers for these operands (OpenMP inside). Falls back to the
// reference, with a log line, where no fast path can take them.
void int8_gemm(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k);
// The path int8_gemm() takes on this machine for A in [-127, 127].
Int8GemmPath int8_gemm_best_path();

// The fast paths themselves, for tests and benchmarks. Each needs its CPU features
// (cpu_features()); calling one without them is undefined (an illegal instruction).
// int8_gemm_avx2: A in [-127, 127]. int8_gemm_avx512vnni: any int8.
void int8_gemm_avx2(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k);
void int8_gemm_avx512vnni(const int8_t* a, const int8_t* b, int32_t* c, int64_t m, int64_t n, int64_t k);

// True when A (count bytes) holds -128, the one value the AVX2 path cannot take.
bool int8_has_min_value(const int8_t* a, int64_t count);

}  // namespace modelpress::kernels
