// Internal to quant/: what every pass does with its input weight before the method's own
// math: check it (2-D, a float dtype, finite), read it row by row as f32 without
// materialising the whole tensor (a 4096 x 11008 BF16 weight would otherwise cost 180 MB
// of f32), and run rows in parallel.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/tensor.h"

namespace modelpress::quant {

// Throws Error "<tensor>: ..." unless `weight` is a non-empty 2-D tensor of a float dtype.
void check_weight(const std::string& tensor, const Tensor& weight);
// Optional bias: 1-D of `n` finite values of a float dtype; returned as f32 (empty if null).
std::vector<float> read_bias(const std::string& tensor, const Tensor* bias, int64_t n);

// Row `row` of a checked 2-D weight as f32 into `out` (K values).
void load_row(const Tensor& weight, int64_t row, float* out);

// Index of the first NaN or Inf in x[0, n), or -1. Compares bit patterns as integers, which
// vectorizes (a float max reduction would not, without -ffast-math).
int64_t first_nonfinite(const float* x, int64_t n);
// The largest |x[i]| of finite values as bits (IEEE order of non-negative floats is the
// order of their bit patterns). A result >= 0x7f800000 means the row holds NaN or Inf.
uint32_t absmax_bits(const float* x, int64_t n);
std::string describe_nonfinite(float v);                // "NaN", "+Inf", "-Inf"
std::string index_text(int64_t row, int64_t col);        // "[3, 17]"

// Throws the error for the first non-finite element of `weight` at or after row
// `first_bad_row`, scanning from there: "<tensor>: NaN at [r, c] (element i); ...".
[[noreturn]] void fail_nonfinite(const std::string& tensor, const Tensor& weight, int64_t first_bad_row);

// Calls fn(row, scratch) for every row in [0, n), on row_threads() threads (chunks of rows
// handed out on demand); `scratch` is a per-thread buffer of `k` floats. If fn throws, the
// exception of the lowest such row is rethrown after every row has run (the one a serial
// loop would raise).
void for_each_row(int64_t n, int64_t k, const std::function<void(int64_t row, float* scratch)>& fn);
// The cores, or MODELPRESS_THREADS when set.
int row_threads();

}  // namespace modelpress::quant
