// LUT (palettized) linear on the GPU: y (M, N) f32 = x (M, K) f32 . W^T + b with W a
// LutWeight (kernels/packed_linear.h) uploaded as is: b-bit LSB-first index rows, one f32
// table per group of rows, optional row scales.
//
// Fast kernel (b <= 5, K % 32 == 0): each block owns 4 output rows and its 8 warps split K, each
// lane taking 32 consecutive indices per pass (b whole 32-bit words); every lane holds the entry (lane mod 2^b) of each
// row's table, so a lookup is one shuffle with no masking; x is loaded once per 8 columns for
// the 4 rows. Up to 4 rows of x per launch.
//
// General kernel: one warp per output row; lane l takes the 8-index steps l, l + 32, ... of the row (a step is
// exactly b bytes, so a warp reads 32 b consecutive bytes per pass: coalesced). The table
// lives in registers for b <= 5 (lane j holds entry j; a lookup is one __shfl_sync), in
// shared memory for b = 6..8 (256 floats per warp at most). The weight is read once for up
// to 8 rows of x; larger M runs in slices of 8 rows. A warp reduction finishes each output.
#pragma once
#include <cstdint>

#include "kernels/cuda/context.h"

namespace modelpress::kernels::cuda {

struct DeviceLutWeight {
  const uint8_t* indices = nullptr;  // (N, lut_row_bytes(K, bits))
  const float* lut = nullptr;        // (N / group_rows, 2^bits)
  const float* row_scale = nullptr;  // (N) or null
  int64_t n = 0, k = 0, group_rows = 0;
  int bits = 0;
};

// Whether the fast kernel (b <= 5, K % 32 == 0, 4-byte aligned indices; see lut_gemv.cu) takes
// this weight; x must also be 16-byte aligned. Others run the general kernel described above.
bool lut_fast_supported(const DeviceLutWeight& w);

// x (M, K) f32, y (M, N) f32, bias (N) f32 or null, all on the device. Asynchronous on
// ctx.stream.
void lut_linear(Context& ctx, const DeviceLutWeight& w, const float* bias, const float* x, int64_t m, float* y);

}  // namespace modelpress::kernels::cuda
