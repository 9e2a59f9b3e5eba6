// The CUDA runner of `modelpress bench`: the kernels of kernels/cuda on device-resident
// operands, timed with CUDA events on the backend's stream (median of many runs after
// warm-up), inputs rotated through enough copies that L2 cannot hold them between runs.
// Built only with MODELPRESS_CUDA.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <functional>

#include "bench/bench_common.h"
#include "bench/kernel_bench.h"
#include "kernels/cuda/blaslt.h"
#include "kernels/cuda/device_info.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/llm_int8.h"
#include "kernels/cuda/lut_gemv.h"
#include "kernels/cuda/w4_mma_layout.h"
#include "kernels/cuda/w4a16.h"

namespace modelpress::bench {

namespace {

namespace kc = modelpress::kernels::cuda;
using kc::DeviceBuffer;
using kc::DType;

class Events {
 public:
  Events() {
    MP_CUDA_CHECK(cudaEventCreate(&start_));
    const cudaError_t err = cudaEventCreate(&stop_);
    if (err != cudaSuccess) cudaEventDestroy(start_);  // no destructor runs for a throwing constructor
    MP_CUDA_CHECK(err);
  }
  ~Events() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  Events(const Events&) = delete;
  Events& operator=(const Events&) = delete;
  // Device time of f() on `stream`, in microseconds.
  double time_us(cudaStream_t stream, const std::function<void()>& f) {
    MP_CUDA_CHECK(cudaEventRecord(start_, stream));
    f();
    MP_CUDA_CHECK(cudaEventRecord(stop_, stream));
    MP_CUDA_CHECK(cudaEventSynchronize(stop_));
    float ms = 0;
    MP_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
    return 1000.0 * ms;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// Each timed sample is `calls` back-to-back calls between two events, so the GPU's queue stays
// full and the sample measures the device, not the host's launch latency (about 7 us per call
// on the H200 VM measured, a large part of a decode-sized kernel's time): calls is chosen from
// one untimed call so that a sample lasts at least ~200 us. The median of the samples, divided by
// calls, is the time per call. Inputs rotate per call.
BenchRow time_case(const BenchOptions& o, kc::Context& ctx, const std::string& kernel, const BenchShape& s,
                   int rotation, const std::function<void(int)>& f) {
  Events ev;
  for (int i = 0; i < o.warmup; ++i) f(i % rotation);
  ctx.synchronize();
  const double one = ev.time_us(ctx.stream, [&] { f(0); });
  const int calls = static_cast<int>(std::clamp(200.0 / std::max(one, 1e-3), 1.0, 64.0));
  const int runs = o.runs > 0 ? o.runs : 100;
  std::vector<double> us;
  double spent = 0;
  int next = 0;
  for (int i = 0; i < runs; ++i) {
    us.push_back(ev.time_us(ctx.stream, [&] {
                   for (int c = 0; c < calls; ++c) f(next++ % rotation);
                 }) /
                 calls);
    spent += us.back() * calls * 1e-6;
    if (i + 1 >= 5 && spent > o.max_seconds) break;
  }
  BenchRow r;
  r.kernel = kernel;
  r.shape = s;
  r.median_us = detail::median(us);
  r.runs = static_cast<int>(us.size());
  r.rotation = rotation;
  r.calls = calls;
  return r;
}

// R device copies of one host array (uploaded once, then copied on the device).
struct Copies {
  std::vector<DeviceBuffer> bufs;
  // Uninitialized copies of `bytes` each (written by the caller).
  Copies(size_t bytes, int r) {
    for (int i = 0; i < r; ++i) bufs.emplace_back(bytes ? bytes : 1);
  }
  template <class T>
  Copies(kc::Context& ctx, const std::vector<T>& host, int r) {
    const size_t bytes = host.size() * sizeof(T);
    for (int i = 0; i < r; ++i) {
      bufs.emplace_back(bytes ? bytes : 1);
      if (bytes == 0) continue;
      if (i == 0)
        MP_CUDA_CHECK(cudaMemcpyAsync(bufs[0].data(), host.data(), bytes, cudaMemcpyHostToDevice, ctx.stream));
      else
        MP_CUDA_CHECK(cudaMemcpyAsync(bufs[i].data(), bufs[0].data(), bytes, cudaMemcpyDeviceToDevice, ctx.stream));
    }
    ctx.synchronize();  // `host` may go away after the constructor
  }
  template <class T>
  T* at(int i) const {
    return bufs[static_cast<size_t>(i)].as<T>();
  }
};

// f32 host data as R device copies in the 16-bit type dt.
Copies copies_16bit(kc::Context& ctx, const std::vector<float>& host, DType dt, int r) {
  DeviceBuffer staging(host.size() * sizeof(float));
  MP_CUDA_CHECK(cudaMemcpyAsync(staging.data(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice,
                                ctx.stream));
  Copies c(host.size() * 2, r);
  for (int i = 0; i < r; ++i) kc::convert(ctx, DType::F32, staging.data(), dt, c.at<void>(i), static_cast<int64_t>(host.size()));
  ctx.synchronize();
  return c;
}

// A padded (n_pad, k_pad) int8 matrix with zeros outside (rows, cols).
std::vector<int8_t> pad_i8(const std::vector<int8_t>& v, int64_t rows, int64_t cols, int64_t rows_pad, int64_t cols_pad) {
  std::vector<int8_t> p(static_cast<size_t>(rows_pad * cols_pad), 0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) p[r * cols_pad + c] = v[r * cols + c];
  return p;
}

// Device-to-device copy bandwidth (read + write counted), the bandwidth ceiling measured in
// this run. 1 GiB, well past L2.
double copy_bandwidth(kc::Context& ctx, const BenchOptions& o) {
  const size_t bytes = size_t{1} << 30;
  DeviceBuffer a(bytes), b(bytes);
  MP_CUDA_CHECK(cudaMemsetAsync(a.data(), 0x5A, bytes, ctx.stream));
  BenchOptions q = o;
  q.runs = 20;
  const BenchRow r = time_case(q, ctx, "copy", {}, 1, [&](int) {
    MP_CUDA_CHECK(cudaMemcpyAsync(b.data(), a.data(), bytes, cudaMemcpyDeviceToDevice, ctx.stream));
  });
  return 2.0 * static_cast<double>(bytes) / (r.median_us * 1e-6) * 1e-9;
}

BenchRow bench_one(const BenchOptions& o, kc::Context& ctx, DType dt, double budget, const std::string& kernel,
                   const BenchShape& s, std::string* skip) {
  const int64_t m = s.m, n = s.n, k = s.k;
  const uint64_t seed = o.seed;
  const double e = dt == DType::F32 ? 4.0 : 2.0;  // bytes per activation / output element
  bool capped = false;
  const auto rot = [&](double set_bytes) {
    return detail::rotation_count(set_bytes, static_cast<double>(ctx.l2_bytes), budget, &capped);
  };
  DeviceBuffer y(static_cast<size_t>(m * n) * 4);
  BenchRow r;

  if (kernel == "dense") {
    const double set = e * (m * k + n * k);
    const int R = rot(set);
    const Copies x = copies_16bit(ctx, detail::make_x(s, 0, seed, nullptr), dt, R);
    const Copies w = copies_16bit(ctx, detail::make_f32(n * k, 0.02f, seed + 1), dt, R);
    r = time_case(o, ctx, kernel, s, R, [&](int i) {
      kc::gemm_16bit(ctx, dt, dt, x.at<void>(i), k, w.at<void>(i), k, y.data(), n, m, n, k);
    });
    r.bytes = set + e * m * n;
    r.note = std::string("cuBLASLt ") + kc::dtype_name(dt);
  } else if (kernel == "int8-gemm" || kernel == "w8a8" || kernel == "llm-int8") {
    const int64_t np = kc::round_up(n, 16), kp = kc::round_up(k, 16);
    const bool gemm_only = kernel == "int8-gemm", mixed = kernel == "llm-int8";
    const double set = (gemm_only ? 1.0 * m * kp + 4.0 * m : e * m * k) + 1.0 * np * kp + 4.0 * n;
    const int R = rot(set);
    const Copies wq(ctx, pad_i8(detail::make_i8(n * k, seed + 2), n, k, np, kp), R);
    const Copies ws(ctx, detail::make_scales(n, seed + 3), R);
    auto weight = [&](int i) {
      kc::DeviceInt8Weight w;
      w.q = wq.at<int8_t>(i);
      w.scale = ws.at<float>(i);
      w.n = n;
      w.k = k;
      return w;
    };
    if (gemm_only) {
      const Copies xq(ctx, pad_i8(detail::make_i8(m * k, seed), m, k, m, kp), R);
      const Copies rs(ctx, detail::make_scales(m, seed + 1), R);
      DeviceBuffer c(static_cast<size_t>(m * np) * 4);
      r = time_case(o, ctx, kernel, s, R, [&](int i) {
        kc::int8_gemm_dequant(ctx, weight(i), xq.at<int8_t>(i), rs.at<float>(i), nullptr, m, c.as<int32_t>(), dt, y.data());
      });
      r.bytes = set + e * m * n;
      r.note = "cuBLASLt int8 (32I) + epilogue kernel";
    } else {
      int64_t outliers = 0;
      const Copies x = copies_16bit(ctx, detail::make_x(s, mixed ? o.outlier_fraction : 0, seed, &outliers), dt, R);
      DeviceBuffer scratch(kc::llm_int8_scratch_bytes(m, n, k));
      r = time_case(o, ctx, kernel, s, R, [&](int i) {
        kc::llm_int8_linear(ctx, weight(i), nullptr, dt, x.at<void>(i), m, mixed ? o.threshold : 0.0f, dt, y.data(),
                            scratch.data());
      });
      r.bytes = set + e * m * n;
      if (mixed) r.note = std::to_string(kc::llm_int8_outlier_count(ctx, scratch.data(), m, n, k)) + " outlier columns";
    }
  } else if (kernel == "w4a16" || kernel == "w4a16-asym") {
    const bool asym = kernel == "w4a16-asym";
    if (k % 2 || k % o.group || o.group % 2) {
      *skip = "K = " + std::to_string(k) + " is not a multiple of the (even) group " + std::to_string(o.group);
      return r;
    }
    if (dt == DType::F32) {
      *skip = "W4A16 takes 16-bit activations";
      return r;
    }
    const int64_t groups = k / o.group;
    const double set = e * m * k + 0.5 * n * k + 4.0 * n * groups + (asym ? 1.0 * n * groups : 0.0);
    const int R = rot(set);
    const Copies x = copies_16bit(ctx, detail::make_x(s, 0, seed, nullptr), dt, R);
    const Copies packed(ctx, detail::make_u8(n * k / 2, seed + 2), R);
    const Copies scales(ctx, detail::make_scales(n * groups, seed + 3), R);
    const Copies zeros(ctx, detail::make_u8(asym ? n * groups : 0, seed + 4, 16), R);
    auto weight = [&](int i) {
      return kc::DeviceW4Weight{packed.at<uint8_t>(i), scales.at<float>(i), asym ? zeros.at<uint8_t>(i) : nullptr,
                                n, k, o.group};
    };
    // Decode sizes take the tensor-core kernel: its layout is made once per copy, as a model's
    // upload would (not timed).
    const bool mma = m <= 16 && kc::w4a16_mma_supported(weight(0), nullptr);
    Copies layout(mma ? static_cast<size_t>(kc::w4_mma_bytes(n, k)) : 0, mma ? R : 0);
    for (int i = 0; i < (mma ? R : 0); ++i) kc::w4a16_repack_mma(ctx, weight(i), layout.at<uint8_t>(i));
    ctx.synchronize();
    std::string path;
    r = time_case(o, ctx, kernel, s, R, [&](int i) {
      kc::DeviceW4Weight w = weight(i);
      if (mma) w.mma = layout.at<uint8_t>(i);
      path = kc::w4a16_linear(ctx, w, nullptr, dt, x.at<void>(i), m, dt, y.data());
    });
    r.bytes = set + e * m * n;
    r.note = "group " + std::to_string(o.group) + ", " + path;
  } else if (kernel == "lut3" || kernel == "lut4") {
    // Palettized weight (kernels/cuda/lut_gemv.h), one table per tensor; x and y in f32 (the
    // kernel's interface; at decode sizes x is noise next to the weight).
    if (m > 16) {
      *skip = "the LUT kernel is a GEMV (decode, M <= 16); larger M runs but is not what it is for";
      return r;
    }
    const int bits = kernel == "lut3" ? 3 : 4;
    const int64_t rb = (k * bits + 7) / 8;
    const double set = 4.0 * m * k + 1.0 * n * rb + 4.0 * (1 << bits);
    const int R = rot(set);
    const Copies x(ctx, detail::make_x(s, 0, seed, nullptr), R);
    const Copies idx(ctx, detail::make_u8(n * rb, seed + 2), R);
    const Copies lut(ctx, detail::make_f32(int64_t{1} << bits, 0.02f, seed + 3), R);
    r = time_case(o, ctx, kernel, s, R, [&](int i) {
      const kc::DeviceLutWeight w{idx.at<uint8_t>(i), lut.at<float>(i), nullptr, n, k, n, bits};
      kc::lut_linear(ctx, w, nullptr, x.at<float>(i), m, y.as<float>());
    });
    r.bytes = set + 4.0 * m * n;
    r.note = std::to_string(bits) + "-bit, one table, f32 x/y";
  }
  if (capped) r.note += (r.note.empty() ? "" : "; ") + std::string("rotation capped by memory");
  return r;
}

}  // namespace

BenchReport run_cuda_bench(const BenchOptions& o) {
  kc::Context& ctx = kc::context();
  const DType dt = o.dtype == "bf16" ? DType::BF16 : DType::F16;
  BenchReport rep;
  rep.backend = "cuda";
  rep.device = kc::device_description(0);
  size_t free_bytes = 0, total_bytes = 0;
  MP_CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // The rotated inputs of one case: at most a third of free memory (outputs and scratch too).
  const double budget = std::min(8.0 * (1 << 30), static_cast<double>(free_bytes) / 3.0);
  const double copy_gbps = copy_bandwidth(ctx, o);
  const auto shapes = o.shapes.empty() ? default_shapes("cuda") : o.shapes;
  for (const auto& s : shapes) {
    for (const auto& kernel : bench_kernel_names()) {
      if (kernel != "dense" && !detail::wants(o, kernel)) continue;
      std::string skip;
      BenchRow r = bench_one(o, ctx, dt, budget, kernel, s, &skip);
      if (!skip.empty()) {
        rep.notes.push_back(kernel + " " + shape_string(s) + " skipped: " + skip);
        continue;
      }
      detail::finish_row(r);
      if (kernel.rfind("w4a16", 0) == 0 && copy_gbps > 0) {
        char buf[64];
        std::snprintf(buf, sizeof buf, ", %.0f%% of copy bandwidth", 100.0 * r.gbps / copy_gbps);
        r.note += buf;
      }
      rep.rows.push_back(r);
    }
  }
  detail::ratios_to_dense(rep.rows);
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "CUDA: median of CUDA-event times after %d warm-up runs, activations and outputs %s; device-to-device "
                "copy %.0f GB/s (read + write) measured in this run; L2 %zu MiB; inputs rotated through `rot` copies "
                "(at least 2x L2 where memory allows); each timed sample is up to 64 back-to-back calls "
                "(JSON `calls`), so host launch latency is not counted.",
                o.warmup, kc::dtype_name(dt), copy_gbps, ctx.l2_bytes >> 20);
  rep.notes.push_back(buf);
  return rep;
}

}  // namespace modelpress::bench
