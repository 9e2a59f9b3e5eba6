// The palettized (LUT) CUDA kernel against the CPU reference (kernels/lut_linear.h): every
// index width 1..8 (register tables for b <= 5, shared memory above), K not a multiple of 8
// (the tail), several row groups with their own tables, row scales and bias, and M across the
// kernels' slices of rows; the fast kernel (b <= 5, K % 32 == 0) and the general one. Outputs poisoned before each run.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/cuda/lut_gemv.h"
#include "kernels/lut_linear.h"
#include "tests/cuda/cuda_test_util.h"

namespace modelpress::kernels::cuda {
namespace {

using kernels::testing::Rng;
using kernels::testing::str;
using testing::poisoned;
using testing::to_device;
using testing::to_host;

using CudaLut = testing::CudaTest;

TEST_F(CudaLut, MatchesReferenceForEveryWidth) {
  struct Case {
    int64_t m, n, k, group_rows;
    bool row_scale, bias;
  };
  const Case cases[] = {{1, 37, 96, 37, false, false}, {3, 40, 83, 8, true, true}, {8, 19, 1029, 19, true, false},
                        {11, 24, 250, 6, false, true}, {17, 9, 7, 3, true, true},
                        // The fast kernel (b <= 5, K % 32 == 0): partial passes of 1024 columns,
                        // N not a multiple of its 4 rows per warp, slices of 1, 2 and 4 rows of x.
                        {2, 50, 1056, 10, true, true},   {5, 33, 2080, 33, true, false},
                        {4, 7, 32, 7, false, true},      {9, 130, 3072, 65, true, true}};
  for (int bits = 1; bits <= 8; ++bits)
    for (const Case& c : cases) {
      Rng rng;
      SCOPED_TRACE(str(rng.trace(), " bits ", bits, " M=", c.m, " N=", c.n, " K=", c.k, " group_rows ", c.group_rows));
      const int64_t rb = lut_row_bytes(c.k, bits), entries = (c.n / c.group_rows) << bits;
      std::vector<uint8_t> idx(static_cast<size_t>(c.n * rb));
      for (auto& b : idx) b = static_cast<uint8_t>(rng.integer(0, 255));
      const std::vector<float> lut = rng.normals(entries, 0.05f), rs = rng.normals(c.n, 1.0f),
                               bias = rng.normals(c.n, 0.3f), x = rng.normals(c.m * c.k);
      const LutWeight w{idx.data(), lut.data(), c.row_scale ? rs.data() : nullptr, c.n, c.k, c.group_rows, bits};
      std::vector<float> want(static_cast<size_t>(c.m * c.n));
      lut_linear_ref(w, c.bias ? bias.data() : nullptr, x.data(), c.m, want.data());
      // The error scale: sum |w x| + |b| per output (f32 accumulation in any order).
      std::vector<double> mag(want.size());
      for (int64_t i = 0; i < c.m; ++i)
        for (int64_t j = 0; j < c.n; ++j) {
          double a = c.bias ? std::fabs(bias[j]) : 0.0;
          const double s = c.row_scale ? std::fabs(rs[j]) : 1.0;
          for (int64_t t = 0; t < c.k; ++t)
            a += s * std::fabs(lut[(j / c.group_rows) * (int64_t{1} << bits) + lut_index(w, j, t)] * x[i * c.k + t]);
          mag[i * c.n + j] = a;
        }
      DeviceBuffer di = to_device(idx), dl = to_device(lut), drs = to_device(rs), db = to_device(bias),
                   dx = to_device(x);
      DeviceBuffer dy = poisoned(sizeof(float) * static_cast<size_t>(c.m * c.n));
      const DeviceLutWeight dw{di.as<uint8_t>(), dl.as<float>(), c.row_scale ? drs.as<float>() : nullptr,
                               c.n,  c.k,        c.group_rows,   bits};
      lut_linear(ctx(), dw, c.bias ? db.as<float>() : nullptr, dx.as<float>(), c.m, dy.as<float>());
      const std::vector<float> got = to_host<float>(ctx(), dy, want.size());
      const std::vector<double> want_d(want.begin(), want.end());
      EXPECT_TRUE(testing::close(got, want_d, mag, 0.0, 1e-5, 1e-6));
    }
}

TEST_F(CudaLut, RefusesWidthsOutsideOneToEight) {
  DeviceBuffer b(64);
  const DeviceLutWeight w{b.as<uint8_t>(), b.as<float>(), nullptr, 1, 8, 1, 9};
  EXPECT_THROW(lut_linear(ctx(), w, nullptr, b.as<float>(), 1, b.as<float>()), CudaError);
}

}  // namespace
}  // namespace modelpress::kernels::cuda
