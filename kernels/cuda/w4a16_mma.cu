// W4A16 for M <= 16 on tensor cores (w4a16.h): the weight in the layout of w4_mma_layout.h,
// dequantized in registers straight into mma.m16n8k16 A fragments.
//
// Each warp owns R (2) tiles of 16 rows and every kWarps-th 64-column slice of K; per slice a
// lane copies 16 bytes per row tile (four k16 chunks of A) into a shared-memory ring with
// cp.async, kStages - 1 slices ahead (bytes in flight without holding registers: the kernel is
// bound by reading the weight), and loads two 16-byte words of x per 8 tokens (its B
// fragments, thanks to the layout's column permutation) and its group scales one slice ahead.
// A nibble becomes an exact 16-bit integer without a conversion instruction: the bits 0x6400 | u are the f16
// 1024 + u (0x4300 | u the bf16 128 + u), and subtracting (1024 + zero) in half2 is exact, so
// the tensor cores multiply the integers u - zero by x exactly and accumulate in f32. The
// group scale (one per row and 64-column slice, since group % 64 == 0) is applied in f32 to
// each slice's partial sum. The warps' partial outputs are summed through shared memory in a
// fixed order (deterministic), plus bias, and written once.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/cuda/device_types.cuh"
#include "kernels/cuda/w4_mma_layout.h"
#include "kernels/cuda/w4a16.h"

namespace modelpress::kernels::cuda {

namespace {

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;

// Per 16-bit type: the bit pattern whose value is an offset plus its low bits, and the type
// of a pair (one 32-bit register of an mma operand).
template <typename T>
struct Magic;
template <>
struct Magic<__half> {
  static constexpr uint32_t bits = 0x6400u;  // 1024
  using Pair = __half2;
};
template <>
struct Magic<__nv_bfloat16> {
  static constexpr uint32_t bits = 0x4300u;  // 128
  using Pair = __nv_bfloat162;
};

// a - b on two 16-bit values packed in each word.
template <typename T>
__device__ __forceinline__ uint32_t sub2(uint32_t a, uint32_t b) {
  typename Magic<T>::Pair x, y;
  memcpy(&x, &a, 4);
  memcpy(&y, &b, 4);
  const typename Magic<T>::Pair r = __hsub2(x, y);
  uint32_t out;
  memcpy(&out, &r, 4);
  return out;
}

// d += A (16 x 16) . B (16 x 8), f32 accumulation.
template <typename T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// cp.async (sm_80+): 16 bytes global -> shared without passing through registers, so the ring
// below keeps several slices of weight in flight per warp at no register cost.
__device__ __forceinline__ void cp_async16(unsigned smem, const void* gmem) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem), "l"(gmem));
}

// (a & b) | c in one LOP3 (the compiler emits an AND and an OR otherwise).
__device__ __forceinline__ uint32_t and_or(uint32_t a, uint32_t b, uint32_t c) {
  uint32_t d;
  asm("lop3.b32 %0, %1, %2, %3, 0xEA;\n" : "=r"(d) : "r"(a), "r"(b), "r"(c));
  return d;
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// What one lane loads into registers for one 64-column slice, one slice ahead: the group
// scales and zeros of its rows (g and g + 8 of each row tile) and its B words per 8 tokens.
template <int NT, int R>
struct Slice {
  float s_lo[R], s_hi[R];
  uint32_t z_lo[R], z_hi[R];  // (offset + zero) in both halves
  uint32_t x[NT][8];
};

// The lane's fixed pointers. Rows past N and tokens past M read a valid row instead (the last
// row, token 0): they only feed outputs that are never written, so the hot loop has no
// predicates. 32-bit offsets: the host checks that every offset fits.
template <typename T, int NT, int R>
struct LanePointers {
  const float* s_lo[R];
  const float* s_hi[R];
  const uint8_t* z_lo[R];
  const uint8_t* z_hi[R];
  const T* x[NT];
};

template <typename T, int NT, int R, bool Asym>
__device__ __forceinline__ Slice<NT, R> load_slice(const LanePointers<T, NT, R>& p, int kb, int group_shift) {
  Slice<NT, R> s;
  const int gi = kb >> group_shift;  // group = 64 << group_shift
#pragma unroll
  for (int r = 0; r < R; ++r) {
    s.s_lo[r] = __ldg(p.s_lo[r] + gi);
    s.s_hi[r] = __ldg(p.s_hi[r] + gi);
    const uint32_t zl = Asym ? __ldg(p.z_lo[r] + gi) : 8u, zh = Asym ? __ldg(p.z_hi[r] + gi) : 8u;
    s.z_lo[r] = (Magic<T>::bits | zl) * 0x00010001u;
    s.z_hi[r] = (Magic<T>::bits | zh) * 0x00010001u;
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) {
    const uint4* xp = reinterpret_cast<const uint4*>(p.x[nt] + kb * 64);
    const uint4 a = __ldg(xp), b = __ldg(xp + 1);
    s.x[nt][0] = a.x, s.x[nt][1] = a.y, s.x[nt][2] = a.z, s.x[nt][3] = a.w;
    s.x[nt][4] = b.x, s.x[nt][5] = b.y, s.x[nt][6] = b.z, s.x[nt][7] = b.w;
  }
  return s;
}

// Slices of weight in flight per warp: kStages - 1 ahead of the one computing.
constexpr int kStages = 4;

// Grid: ceil(ceil(N / 16) / R) blocks of kWarps warps; NT groups of 8 tokens (M <= 8 NT).
template <typename T, typename OutT, int NT, int R, int MinBlocks, bool Asym>
__global__ void __launch_bounds__(kThreads, MinBlocks)
    w4_mma_kernel(const uint4* __restrict__ tiles, const float* __restrict__ scales, const uint8_t* __restrict__ zeros,
                  int n, int k, int group_shift, const T* __restrict__ x, int m, const float* __restrict__ bias,
                  OutT* __restrict__ y) {
  // The weight ring while the warps stream K; the warps' partial outputs once they are done.
  union Shared {
    uint4 ring[kWarps][kStages][R][32];
    float partial[kWarps][R][NT][4][32];
  };
  __shared__ Shared sh;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
  const int kbs = k / 64, groups = (k / 64) >> group_shift, row_tiles = (n + 15) / 16;
  const int rb0 = blockIdx.x * R;

  LanePointers<T, NT, R> p;
  const uint4* wtile[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    wtile[r] = tiles + (min(rb0 + r, row_tiles - 1) * kbs) * 32 + lane;
    const int row_lo = min((rb0 + r) * 16 + g, n - 1), row_hi = min((rb0 + r) * 16 + g + 8, n - 1);
    p.s_lo[r] = scales + row_lo * groups;
    p.s_hi[r] = scales + row_hi * groups;
    p.z_lo[r] = Asym ? zeros + row_lo * groups : nullptr;
    p.z_hi[r] = Asym ? zeros + row_hi * groups : nullptr;
  }
#pragma unroll
  for (int nt = 0; nt < NT; ++nt) p.x[nt] = x + min(nt * 8 + g, m - 1) * k + 16 * t;

  float acc[R][NT][4];
#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[r][nt][e] = 0.0f;

  // This warp's slices are kb = warp, warp + kWarps, ...; slice number i is kb = warp + i kWarps.
  // A lane copies its own 16 bytes per row tile and reads back only those, so the ring needs no
  // barrier: cp.async.wait_group makes a thread's own copies visible to it.
  const int count = kbs > warp ? (kbs - warp + kWarps - 1) / kWarps : 0;
  const unsigned ring = static_cast<unsigned>(__cvta_generic_to_shared(&sh.ring[warp][0][0][lane]));
  auto issue = [&](int i) {
    if (i < count) {
      const int off = (warp + i * kWarps) * 32;
      const unsigned stage = ring + (i % kStages) * (R * 32 * 16);
#pragma unroll
      for (int r = 0; r < R; ++r) cp_async16(stage + r * 32 * 16, wtile[r] + off);
    }
    cp_async_commit();  // an empty group past the end keeps the wait count uniform
  };
#pragma unroll
  for (int i = 0; i < kStages - 1; ++i) issue(i);
  Slice<NT, R> cur = load_slice<T, NT, R, Asym>(p, min(warp, kbs - 1), group_shift);
  for (int i = 0; i < count; ++i) {
    issue(i + kStages - 1);
    // Past the end, the last slice again (valid memory; its values are not used).
    const Slice<NT, R> next = load_slice<T, NT, R, Asym>(p, min(warp + (i + 1) * kWarps, kbs - 1), group_shift);
    cp_async_wait<kStages - 1>();  // slice i has landed
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const uint4 wv = sh.ring[warp][i % kStages][r][lane];
      const uint32_t words[4] = {wv.x, wv.y, wv.z, wv.w};
      float d[NT][4];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) d[nt][e] = 0.0f;
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t a[4];
#pragma unroll
        for (int q = 0; q < 4; ++q)
          a[q] = sub2<T>(and_or(words[j] >> (4 * q), 0x000F000Fu, Magic<T>::bits * 0x00010001u),
                         (q & 1) ? cur.z_hi[r] : cur.z_lo[r]);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mma16816<T>(d[nt], a, cur.x[nt][2 * j], cur.x[nt][2 * j + 1]);
      }
      // C fragment: elements 0, 1 are row g, elements 2, 3 row g + 8.
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        acc[r][nt][0] = fmaf(cur.s_lo[r], d[nt][0], acc[r][nt][0]);
        acc[r][nt][1] = fmaf(cur.s_lo[r], d[nt][1], acc[r][nt][1]);
        acc[r][nt][2] = fmaf(cur.s_hi[r], d[nt][2], acc[r][nt][2]);
        acc[r][nt][3] = fmaf(cur.s_hi[r], d[nt][3], acc[r][nt][3]);
      }
    }
    cur = next;
  }
  cp_async_wait<0>();
  __syncthreads();  // every warp is done with the ring before it becomes `partial`

#pragma unroll
  for (int r = 0; r < R; ++r)
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int e = 0; e < 4; ++e) sh.partial[warp][r][nt][e][lane] = acc[r][nt][e];
  __syncthreads();
  constexpr int kOutputs = R * NT * 4 * 32;
  for (int o = threadIdx.x; o < kOutputs; o += kThreads) {
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += (&sh.partial[w][0][0][0][0])[o];
    const int ln = o % 32, e = (o / 32) % 4, nt = (o / 128) % NT, r = o / (128 * NT);
    const int row = (rb0 + r) * 16 + (ln >> 2) + (e >= 2 ? 8 : 0);
    const int tok = nt * 8 + 2 * (ln & 3) + (e & 1);
    if (row < n && tok < m) y[static_cast<int64_t>(tok) * n + row] = dev::from_f32<OutT>(v + (bias ? bias[row] : 0.0f));
  }
}

template <typename T, typename OutT, int NT, int R, int MinBlocks>
void launch_nt(Context& ctx, const DeviceW4Weight& w, const float* bias, const void* x, int m, void* y) {
  const int64_t blocks = ((w.n + 15) / 16 + R - 1) / R;
  const auto* tiles = reinterpret_cast<const uint4*>(w.mma);
  int shift = 0;
  while ((int64_t{64} << shift) < w.group) ++shift;
  const auto args = [&](auto kernel) {
    kernel<<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(
        tiles, w.scales, w.zeros, static_cast<int>(w.n), static_cast<int>(w.k), shift, static_cast<const T*>(x), m,
        bias, static_cast<OutT*>(y));
  };
  if (w.zeros) args(w4_mma_kernel<T, OutT, NT, R, MinBlocks, true>);
  else args(w4_mma_kernel<T, OutT, NT, R, MinBlocks, false>);
  MP_CUDA_CHECK_LAUNCH();
}

template <typename T, typename OutT>
void launch(Context& ctx, const DeviceW4Weight& w, const float* bias, const void* x, int64_t m, void* y) {
  // Two row tiles per warp, no occupancy floor: measured fastest on an H200 at 8192^2 of four
  // (row tiles, blocks per SM) pairs, (1, 4), (2, 3), (1, 2), (2, 1) (docs/CUDA.md).
  if (m <= 8) launch_nt<T, OutT, 1, 2, 1>(ctx, w, bias, x, static_cast<int>(m), y);
  else launch_nt<T, OutT, 2, 2, 1>(ctx, w, bias, x, static_cast<int>(m), y);
}

// One thread per layout byte: gathers its two nibbles from the row-major packing.
__global__ void __launch_bounds__(kThreads)
    repack_kernel(const uint8_t* __restrict__ packed, int64_t n, int64_t k, int64_t bytes, uint8_t* __restrict__ out) {
  for (int64_t b = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; b < bytes;
       b += static_cast<int64_t>(gridDim.x) * kThreads) {
    uint8_t v = 0;
    for (int shift = 0; shift <= 4; shift += 4) {
      int64_t row, col;
      w4_mma_element(b, shift, k, &row, &col);
      if (row < n) {
        const uint8_t src = packed[row * (k / 2) + col / 2];
        v |= static_cast<uint8_t>(((col & 1) ? src >> 4 : src & 0x0F) << shift);
      }
    }
    out[b] = v;
  }
}

}  // namespace

bool w4a16_mma_supported(const DeviceW4Weight& w, std::string* why) {
  // The group must be 64 times a power of two (a shift finds its index in the hot loop), and
  // every 32-bit offset the kernel forms must fit.
  const bool pow2 = w.group >= 64 && (w.group & (w.group - 1)) == 0;
  if (w.k % 64 != 0 || !pow2 || w.k % w.group != 0) {
    if (why)
      *why = "K = " + std::to_string(w.k) + " must be a multiple of 64 and group " + std::to_string(w.group) +
             " a power of two >= 64 dividing it, for the tensor-core kernel";
    return false;
  }
  if ((w.n + 16) * w.k >= (int64_t{1} << 31)) {
    if (why) *why = "the weight has 2^31 or more elements, past the tensor-core kernel's 32-bit offsets";
    return false;
  }
  return true;
}

void w4a16_repack_mma(Context& ctx, const DeviceW4Weight& w, uint8_t* out) {
  if (w.k % 64 != 0) throw CudaError("w4a16_repack_mma: K = " + std::to_string(w.k) + " is not a multiple of 64");
  const int64_t bytes = w4_mma_bytes(w.n, w.k);
  if (bytes == 0) return;
  const int64_t blocks = std::min<int64_t>((bytes + kThreads - 1) / kThreads, int64_t{1} << 16);
  repack_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, ctx.stream>>>(w.packed, w.n, w.k, bytes, out);
  MP_CUDA_CHECK_LAUNCH();
}

void w4a16_mma_linear(Context& ctx, const DeviceW4Weight& w, const float* bias, DType xt, const void* x, int64_t m,
                      DType yt, void* y) {
  if (xt == DType::BF16) return launch<__nv_bfloat16, __nv_bfloat16>(ctx, w, bias, x, m, y);
  if (yt == DType::F32) return launch<__half, float>(ctx, w, bias, x, m, y);
  launch<__half, __half>(ctx, w, bias, x, m, y);
}

}  // namespace modelpress::kernels::cuda
