// cluster_weight (edkm.h): a weight (N, K) -> a Lut PackedLayer. Per table (the tensor, or
// a group of output rows): read the rows, optionally normalize each by its absmax, gather
// the unique values (eDKM), find the centroids (DKM or k-means), round them to the stored
// table dtype, and give every weight the index of its nearest stored centroid.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>

#include "io/error.h"
#include "io/float_convert.h"
#include "kernels/cpu_features.h"
#include "kernels/packed_linear.h"
#include "quant/edkm.h"
#include "quant/rtn.h"
#include "quant/weight_rows.h"

namespace modelpress::quant {

namespace {

// Index of the nearest centroid for x[0, count): the number of midpoints below x, counted
// 8 values at a time so the compares vectorize (a binary search per weight would be a chain
// of dependent branches). Ascending centroids give ascending midpoints; ties (x exactly on
// a midpoint) go to the lower centroid. Equal centroids have their midpoint on themselves,
// so an index may point at a later copy of the same value: the same weight.
template <int Dummy>
__attribute__((always_inline)) inline void nearest_indices_impl(const float* x, int64_t count, const float* mid, int mids, uint8_t* out) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    int cnt[8] = {};
    for (int j = 0; j < mids; ++j)
      for (int l = 0; l < 8; ++l) cnt[l] += x[i + l] > mid[j] ? 1 : 0;
    for (int l = 0; l < 8; ++l) out[i + l] = static_cast<uint8_t>(cnt[l]);
  }
  for (; i < count; ++i) out[i] = static_cast<uint8_t>(std::lower_bound(mid, mid + mids, x[i]) - mid);  // mids < x
}
// The same with explicit vectors, 16 weights per pass over the midpoints (GCC left the
// template's count loop half scalar): vcmpps gives -1 per midpoint below x, summed.
__attribute__((target("avx2,fma"))) void nearest_indices_avx2(const float* x, int64_t count, const float* mid,
                                                              int mids, uint8_t* out) {
  int64_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + 8);
    __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
    for (int j = 0; j < mids; ++j) {
      const __m256 m = _mm256_broadcast_ss(mid + j);
      c0 = _mm256_sub_epi32(c0, _mm256_castps_si256(_mm256_cmp_ps(x0, m, _CMP_GT_OQ)));
      c1 = _mm256_sub_epi32(c1, _mm256_castps_si256(_mm256_cmp_ps(x1, m, _CMP_GT_OQ)));
    }
    // 16 int32 counts (<= 255) -> 16 bytes: packs work per 128-bit half, so undo the
    // interleave with a permute of the 64-bit quarters.
    const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packus_epi32(c0, c1), 0xD8);  // (16) u16
    const __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), b);
  }
  nearest_indices_impl<1>(x + i, count - i, mid, mids, out + i);
}
void nearest_indices_baseline(const float* x, int64_t count, const float* mid, int mids, uint8_t* out) {
  nearest_indices_impl<0>(x, count, mid, mids, out);
}

// Writes b-bit indices as a row's LSB-first bit stream (kernels::LutWeight's layout), 32
// bits at a time through a 64-bit accumulator.
void pack_row(const uint8_t* idx, int64_t k, int bits, uint8_t* row) {
  uint64_t acc = 0;
  int fill = 0;
  for (int64_t c = 0; c < k; ++c) {
    acc |= static_cast<uint64_t>(idx[c]) << fill;
    fill += bits;
    if (fill >= 32) {
      const auto word = static_cast<uint32_t>(acc);
      std::memcpy(row, &word, 4);
      row += 4;
      acc >>= 32;
      fill -= 32;
    }
  }
  for (; fill > 0; fill -= 8, acc >>= 8) *row++ = static_cast<uint8_t>(acc);
}

// The table as stored: f16 rounding, f32 as is, or int8 codes with one absmax scale.
// Throws Error naming `tensor` for a centroid beyond f16's range (it would be stored as Inf,
// a table no loader accepts).
void round_table(const std::string& tensor, std::vector<float>& c, DType dtype, int8_t* codes, float* q_scale) {
  if (dtype == DType::F16) {
    for (float& v : c) {
      const float r = f16_to_f32(f32_to_f16(v));
      if (!std::isfinite(r))
        throw Error(tensor + ": centroid " + std::to_string(v) +
                    " does not fit in an F16 table (|value| > 65504); use --lut-dtype f32");
      v = r;
    }
  } else if (dtype == DType::I8) {
    float absmax = 0;
    for (float v : c) absmax = std::max(absmax, std::abs(v));
    const float s = absmax > 0 ? absmax / 127.0f : 1.0f;
    for (size_t j = 0; j < c.size(); ++j) {
      const float q = std::clamp(round_half_even(c[j] / s), -127.0f, 127.0f);
      codes[j] = static_cast<int8_t>(q);
      c[j] = q * s;
    }
    *q_scale = s;
  }
  std::sort(c.begin(), c.end());  // rounding is monotone; this only orders equal neighbours
}

}  // namespace

PackedLayer cluster_weight(const std::string& name, const Tensor& weight, const Tensor* bias, const ClusterOptions& o,
                           const std::vector<float>* importance) {
  const std::string tensor = name + ".weight";
  check_weight(tensor, weight);
  const int64_t n = weight.shape()[0], k = weight.shape()[1];
  if (o.bits < 1 || o.bits > 8)
    throw Error(tensor + ": " + std::to_string(o.bits) + " bits is outside 1..8 (a table has 2 to 256 entries)");
  const int64_t rows_per_table = o.group_size == 0 ? n : o.group_size;
  if (rows_per_table < 0 || n % rows_per_table != 0)
    throw Error(tensor + ": group size " + std::to_string(o.group_size) + " does not divide the " + std::to_string(n) +
                " output rows of shape " + shape_to_string(weight.shape()) + " (choose a divisor of " +
                std::to_string(n) + ", or 0 for one table per tensor)");
  if (o.lut_dtype != DType::F16 && o.lut_dtype != DType::F32 && o.lut_dtype != DType::I8)
    throw Error(tensor + ": table dtype " + std::string(dtype_name(o.lut_dtype)) + " is not F16, F32 or I8");
  if (!(o.dkm.tau >= 1e-30) || !std::isfinite(o.dkm.tau))
    throw Error(tensor + ": tau " + std::to_string(o.dkm.tau) + " must be a finite number >= 1e-30");
  std::vector<float> imp;
  if (importance) {
    if (static_cast<int64_t>(importance->size()) != k)
      throw Error(tensor + ": calibration importance has " + std::to_string(importance->size()) + " values, the layer has " +
                  std::to_string(k) + " input columns");
    double mean = 0;
    for (size_t c = 0; c < importance->size(); ++c) {
      const float h = (*importance)[c];
      if (!std::isfinite(h) || h < 0)
        throw Error(tensor + ": calibration importance of input column " + std::to_string(c) + " is " +
                    std::to_string(h) + " (must be finite and >= 0)");
      mean += h;
    }
    mean /= static_cast<double>(k);
    // A column no calibration row ever touched still has weights that need a centroid:
    // a floor of 1e-6 of the mean keeps them in the clustering without mattering otherwise.
    const auto floor = static_cast<float>(mean > 0 ? 1e-6 * mean : 1.0);
    imp.resize(static_cast<size_t>(k));
    for (int64_t c = 0; c < k; ++c) imp[static_cast<size_t>(c)] = std::max((*importance)[static_cast<size_t>(c)], floor);
  }

  PackedLayer layer;
  layer.name = name;
  layer.format = kernels::LinearFormat::Lut;
  layer.n = n;
  layer.k = k;
  layer.group = rows_per_table;
  layer.lut_bits = o.bits;
  layer.lut_dtype = o.lut_dtype;
  layer.original_dtype = weight.dtype();
  layer.scale_dtype = o.lut_dtype == DType::F16 ? DType::F16 : DType::F32;
  const int64_t tables = n / rows_per_table, entries = int64_t{1} << o.bits, rb = kernels::lut_row_bytes(k, o.bits);
  layer.lut_indices.assign(static_cast<size_t>(n * rb), 0);
  layer.lut.resize(static_cast<size_t>(tables * entries));
  if (o.lut_dtype == DType::I8) {
    layer.lut_q.resize(layer.lut.size());
    layer.lut_q_scale.resize(static_cast<size_t>(tables));
  }
  if (o.channel_scale) layer.lut_row_scale.resize(static_cast<size_t>(n));
  // bf16 keys are exact for bf16 weights; scaled rows are no longer bf16 values.
  const bool bf16_keys = weight.dtype() == DType::BF16 && !o.channel_scale;
  const bool avx2 = kernels::cpu_features().avx2_fma;

  // Three phases, each spread over the cores: rows are read (and scaled) into one f32 copy
  // of the weight, each table is clustered on its rows' unique values, then rows take their
  // indices. A table needs all its values at once, so the copy is the whole weight; with one
  // table per tensor, reading and assigning (most of the work besides the rounds) still run
  // on every core.
  // Not value-initialized: every element is written below, and zero-filling a layer's copy
  // first was a measurable part of a run.
  const std::unique_ptr<float[]> w(new float[static_cast<size_t>(n * k)]);  // (N, K), divided by the row scales
  std::vector<uint8_t> bad(static_cast<size_t>(n), 0);
  // f16 keys (eDKM's uniquification) computed here on every core; rows past f16's range
  // send their table to the exact path.
  const std::unique_ptr<uint16_t[]> keys(new uint16_t[static_cast<size_t>(n * k)]);
  std::vector<uint8_t> wide(static_cast<size_t>(n), 0);
  // Per row absmax (after scaling) of f16-keyed rows: a table whose values all lie below
  // f16's smallest normal (2^-14) would be keyed by subnormals (absolute steps of 2^-24, or
  // flushed to 0), no longer within 2^-11 of the table's scale; such a table takes the exact
  // path too.
  std::vector<float> row_amax(static_cast<size_t>(n), 0.0f);
  for_each_row(n, 1, [&](int64_t r, float*) {
    float* row = w.get() + r * k;
    load_row(weight, r, row);
    const uint32_t amax_bits = absmax_bits(row, k);
    if (amax_bits >= 0x7f800000u) {
      bad[static_cast<size_t>(r)] = 1;
      return;
    }
    if (o.channel_scale) {
      const float amax = std::bit_cast<float>(amax_bits);
      // Rounded up to the stored dtype first, so row / scale uses the scale a loader reads.
      if (layer.scale_dtype == DType::F16 && amax > 65504.0f)
        throw Error(tensor + ": row " + std::to_string(r) + " absmax " + std::to_string(amax) +
                    " does not fit an F16 row scale; use --lut-dtype f32");
      const float s = amax > 0 ? round_scale_up(amax, layer.scale_dtype) : 1.0f;
      layer.lut_row_scale[static_cast<size_t>(r)] = s;
      for (int64_t c = 0; c < k; ++c) row[c] /= s;
    }
    if (bf16_keys) {
      bf16_sort_keys(row, k, keys.get() + r * k);
      return;
    }
    const uint32_t scaled_bits = o.channel_scale ? absmax_bits(row, k) : amax_bits;
    if (std::bit_cast<uint32_t>(65504.0f) <= scaled_bits) {
      wide[static_cast<size_t>(r)] = 1;
    } else {
      row_amax[static_cast<size_t>(r)] = std::bit_cast<float>(scaled_bits);
      f16_sort_keys(row, k, keys.get() + r * k);
    }
  });
  if (const auto it = std::find(bad.begin(), bad.end(), 1); it != bad.end()) fail_nonfinite(tensor, weight, it - bad.begin());

  std::vector<float> mids(static_cast<size_t>(tables * (entries - 1)));
  std::atomic<int64_t> collapsed_tables{0};
  for_each_row(tables, 1, [&](int64_t t, float*) {
    const int64_t r0 = t * rows_per_table;
    const float table_amax = *std::max_element(row_amax.begin() + r0, row_amax.begin() + r0 + rows_per_table);
    const bool exact =
        std::any_of(wide.begin() + r0, wide.begin() + r0 + rows_per_table, [](uint8_t v) { return v != 0; }) ||
        (!bf16_keys && table_amax > 0.0f && table_amax < 6.103515625e-05f);
    const float* h = imp.empty() ? nullptr : imp.data();
    const WeightedValues values = exact ? unique_values_16bit(w.get() + r0 * k, rows_per_table, k, bf16_keys, h)
                                        : unique_from_keys(keys.get() + r0 * k, rows_per_table, k, bf16_keys, h);
    ClusterOptions ot = o;
    ot.dkm.threads = tables == 1 ? row_threads() : 1;  // one table: its rounds use the cores
    bool collapsed = false;
    std::vector<float> c = cluster_values(values, ot, &collapsed);
    if (collapsed) collapsed_tables.fetch_add(1, std::memory_order_relaxed);
    round_table(tensor, c, o.lut_dtype, layer.lut_q.empty() ? nullptr : layer.lut_q.data() + t * entries,
                layer.lut_q_scale.empty() ? nullptr : layer.lut_q_scale.data() + t);
    std::copy(c.begin(), c.end(), layer.lut.begin() + t * entries);
    for (int64_t j = 0; j + 1 < entries; ++j)
      mids[static_cast<size_t>(t * (entries - 1) + j)] = 0.5f * (c[static_cast<size_t>(j)] + c[static_cast<size_t>(j + 1)]);
  });

  // Hard assignment: the nearest stored centroid of each exact (scaled) weight.
  for_each_row(n, 1, [&](int64_t r, float*) {
    thread_local std::vector<uint8_t> idx;
    idx.resize(static_cast<size_t>(k));
    const float* mid = mids.data() + (r / rows_per_table) * (entries - 1);
    (avx2 ? nearest_indices_avx2 : nearest_indices_baseline)(w.get() + r * k, k, mid, static_cast<int>(entries - 1),
                                                              idx.data());
    pack_row(idx.data(), k, o.bits, layer.lut_indices.data() + r * rb);
  });
  if (const int64_t bad = collapsed_tables.load(); bad > 0)
    layer.note = "DKM merged centroids in " + std::to_string(bad) + " of " + std::to_string(tables) +
                 " table(s) (--tau " + std::to_string(o.dkm.tau) +
                 " is too high for them); their optimal 1-D start refined by k-means was used instead";
  layer.bias = read_bias(name + ".bias", bias, n);
  return layer;
}

}  // namespace modelpress::quant
