// W8A8 weights: int8, symmetric, one scale per output channel, as compressed-tensors'
// int-quantized format stores them (activations are quantized per token at run time).
// Restricted grid [-127, 127] with scale = absmax / 127: the same codes LLM.int8 computes,
// and a symmetric grid the int8 GEMM needs no correction term for. Scales are rounded up
// to the weight's dtype, the dtype weight_scale is stored in (see PackedLayer::scale_dtype).
#include <algorithm>
#include <bit>

#include "quant/packed_layer.h"
#include "quant/rtn.h"
#include "quant/weight_rows.h"

namespace modelpress::quant {

DType scale_dtype_for(DType weight);  // w4a16.cpp

PackedLayer quantize_w8a8(const std::string& name, const Tensor& weight, const Tensor* bias) {
  const std::string tensor = name + ".weight";
  check_weight(tensor, weight);
  PackedLayer layer;
  layer.name = name;
  layer.format = kernels::LinearFormat::W8A8;
  layer.n = weight.shape()[0];
  layer.k = weight.shape()[1];
  layer.scale_dtype = scale_dtype_for(weight.dtype());
  const int64_t n = layer.n, k = layer.k;
  RtnOptions options;
  options.bits = 8;
  options.symmetric = true;
  options.granularity = Granularity::Channel;
  options.grid = SymmetricGrid::Restricted;
  options.scale_dtype = layer.scale_dtype;
  const IntGrid grid = int_grid(8, true, options.grid);
  layer.q8.resize(static_cast<size_t>(n * k));
  layer.scale8.resize(static_cast<size_t>(n));
  std::vector<uint8_t> bad(static_cast<size_t>(n), 0);
  for_each_row(n, k, [&](int64_t r, float* row) {
    load_row(weight, r, row);
    const uint32_t bits = absmax_bits(row, k);
    if (bits >= 0x7f800000u) {
      bad[static_cast<size_t>(r)] = 1;
      return;
    }
    const float absmax = std::bit_cast<float>(bits);
    const GroupParams p = choose_params(-absmax, absmax, options);
    quantize_values(row, k, p, grid, layer.q8.data() + r * k);
    layer.scale8[static_cast<size_t>(r)] = p.scale;
  });
  if (const auto it = std::find(bad.begin(), bad.end(), 1); it != bad.end())
    fail_nonfinite(tensor, weight, it - bad.begin());
  layer.bias = read_bias(name + ".bias", bias, n);
  return layer;
}

}  // namespace modelpress::quant
