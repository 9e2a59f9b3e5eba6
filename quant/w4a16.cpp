// W4A16 weights: 4-bit codes in groups of G input columns, one scale (and, asymmetric, one
// zero point) per group, as compressed-tensors' pack-quantized W4A16 preset (int4, group
// 128, symmetric) produces them with its min-max observer:
//   symmetric:  scale = absmax / 7.5, q = clamp(round(w / scale), -8, 7)      (full grid)
//   asymmetric: scale = (max - min) / 15 with 0 in [min, max],
//               zero = round(-8 - min / scale), q = clamp(round(w / scale) + zero, -8, 7)
// Codes are held as u = q + 8 nibbles (the kernels' W4Weight), zeros4 = zero + 8.
// With the scale search (the default, W4A16Options::scale_search), each group's scale and
// zero point are instead the least-squares ones of search_params (quant/rtn.h); the codes
// are still round(w / scale) + zero in the grid, so every reader decodes them the same way.
#include <algorithm>
#include <bit>
#include <utility>

#include "io/error.h"
#include "quant/packed_layer.h"
#include "quant/rtn.h"
#include "quant/weight_rows.h"

namespace modelpress::quant {

// compressed-tensors keeps scales in the weight's dtype (initialize.py: observed dtype);
// other dtypes (F64, F8) get F32 scales, which every loader reads.
DType scale_dtype_for(DType weight) {
  return weight == DType::F16 || weight == DType::BF16 ? weight : DType::F32;
}

namespace {

// min(0, x...) and max(0, x...) of a group (finite values). Eight running lanes instead of
// one: a float min/max reduction does not vectorize without -ffast-math (it reorders
// comparisons), but eight independent lanes are plain SIMD min/max.
std::pair<float, float> group_range(const float* x, int64_t g) {
  float lo[8] = {}, hi[8] = {};
  int64_t i = 0;
  for (; i + 8 <= g; i += 8)
    for (int j = 0; j < 8; ++j) {
      lo[j] = x[i + j] < lo[j] ? x[i + j] : lo[j];
      hi[j] = x[i + j] > hi[j] ? x[i + j] : hi[j];
    }
  for (; i < g; ++i) {
    lo[0] = std::min(lo[0], x[i]);
    hi[0] = std::max(hi[0], x[i]);
  }
  for (int j = 1; j < 8; ++j) {
    lo[0] = std::min(lo[0], lo[j]);
    hi[0] = std::max(hi[0], hi[j]);
  }
  return {lo[0], hi[0]};
}

}  // namespace

PackedLayer quantize_w4a16(const std::string& name, const Tensor& weight, const Tensor* bias,
                           const W4A16Options& options) {
  const std::string tensor = name + ".weight";
  check_weight(tensor, weight);
  const int64_t n = weight.shape()[0], k = weight.shape()[1], g = options.group_size;
  if (g <= 0 || k % g != 0)
    throw Error(tensor + ": group size " + std::to_string(g) + " does not divide the " + std::to_string(k) +
                " input columns of shape " + shape_to_string(weight.shape()) + " (choose --group-size dividing " +
                std::to_string(k) + ", or skip the layer)");
  if (g % 2 != 0)
    throw Error(tensor + ": group size " + std::to_string(g) + " is odd; 4-bit groups must fill whole bytes");
  PackedLayer layer;
  layer.name = name;
  layer.format = kernels::LinearFormat::W4A16;
  layer.n = n;
  layer.k = k;
  layer.group = g;
  layer.scale_dtype = scale_dtype_for(weight.dtype());
  layer.searched_scales = options.scale_search;
  RtnOptions ro;
  ro.bits = 4;
  ro.symmetric = options.symmetric;
  ro.granularity = Granularity::Group;
  ro.group_size = g;
  ro.grid = SymmetricGrid::Full;
  ro.scale_dtype = layer.scale_dtype;
  const IntGrid grid = int_grid(4, ro.symmetric, ro.grid);
  const int64_t groups = k / g;
  layer.packed4.resize(static_cast<size_t>(n * (k / 2)));
  layer.scales4.resize(static_cast<size_t>(n * groups));
  if (!options.symmetric) layer.zeros4.resize(layer.scales4.size());
  std::vector<uint8_t> bad(static_cast<size_t>(n), 0);
  for_each_row(n, k, [&](int64_t r, float* row) {
    load_row(weight, r, row);
    if (absmax_bits(row, k) >= 0x7f800000u) {
      bad[static_cast<size_t>(r)] = 1;
      return;
    }
    thread_local std::vector<int8_t> codes;
    codes.resize(static_cast<size_t>(g));
    uint8_t* out = layer.packed4.data() + r * (k / 2);
    for (int64_t j = 0; j < groups; ++j) {
      const float* x = row + j * g;
      const auto [lo, hi] = group_range(x, g);
      const GroupParams p = options.scale_search ? search_params(x, g, lo, hi, ro) : choose_params(lo, hi, ro);
      quantize_values(x, g, p, grid, codes.data());
      for (int64_t i = 0; i < g; i += 2)  // g even: a group fills whole bytes
        out[(j * g + i) / 2] = static_cast<uint8_t>((codes[static_cast<size_t>(i)] + 8) |
                                                    ((codes[static_cast<size_t>(i + 1)] + 8) << 4));
      layer.scales4[static_cast<size_t>(r * groups + j)] = p.scale;
      if (!options.symmetric) layer.zeros4[static_cast<size_t>(r * groups + j)] = static_cast<uint8_t>(p.zero + 8);
    }
  });
  if (const auto it = std::find(bad.begin(), bad.end(), 1); it != bad.end())
    fail_nonfinite(tensor, weight, it - bad.begin());
  layer.bias = read_bias(name + ".bias", bias, n);
  return layer;
}

}  // namespace modelpress::quant
