// `modelpress bench`: per kernel and shape, the median latency after warm-up, effective
// bandwidth and operations per second, and the ratio to the dense baseline measured in the same
// run. Inputs rotate among several copies so that the caches (the CPU's last level, the GPU's
// L2) do not hold them between runs.
//
// Kernels (the same names on both backends):
//   dense       the baseline: CPU Eigen f32 GEMM; CUDA cuBLASLt f16/bf16 GEMM (f32 accumulation)
//   int8-gemm   int8 GEMM of already-quantized activations + the dequantization epilogue
//               (row scale x column scale) to the output type (CPU f32, CUDA f16/bf16)
//   w8a8        the whole W8A8 layer: per-row activation quantization, int8 GEMM, epilogue
//   llm-int8    the whole LLM.int8() layer, threshold 6, with outlier columns in x
//   w4a16       group-wise 4-bit weight (symmetric), activations in 16 bits on the GPU, f32 on CPU
//   w4a16-asym  the same with zero points
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace modelpress::bench {

struct BenchShape {
  int64_t m = 0, n = 0, k = 0;  // x (M, K), W (N, K), y (M, N)
};
std::string shape_string(const BenchShape& s);  // "MxNxK"
// Parses "MxNxK"; false with the reason in `why`.
bool parse_shape(const std::string& text, BenchShape* out, std::string* why);

const std::vector<std::string>& bench_kernel_names();
std::vector<BenchShape> default_shapes(const std::string& backend);

struct BenchOptions {
  std::string backend = "cpu";       // "cpu" or "cuda" (already resolved)
  std::vector<std::string> kernels;  // empty: all
  std::vector<BenchShape> shapes;    // empty: default_shapes(backend)
  int warmup = 3;
  int runs = 0;                      // timed runs per case; 0: 10 on CPU, 100 on CUDA
  double max_seconds = 3.0;          // per case: stop early (after 5 runs) past this
  int64_t group = 128;               // W4A16 group size
  float threshold = 6.0f;            // LLM.int8 outlier threshold
  double outlier_fraction = 0.005;   // LLM.int8: share of x's columns that hold outliers
  std::string dtype = "f16";         // CUDA activations and outputs: f16 or bf16
  uint64_t seed = 1;
};

struct BenchRow {
  std::string kernel;
  BenchShape shape;
  double median_us = 0;
  int runs = 0;
  int rotation = 0;       // input sets rotated through
  int calls = 1;          // back-to-back calls per timed sample (CUDA)
  double bytes = 0;       // the fewest bytes the kernel must move (inputs once, output once)
  double ops = 0;         // 2 M N K
  double gbps = 0;        // bytes / median
  double tops = 0;        // ops / median, in 10^12 per second
  double vs_dense = 0;    // dense median / this median (> 1: faster than the baseline)
  std::string note;
};

struct BenchReport {
  std::string backend, device;
  std::vector<BenchRow> rows;
  std::vector<std::string> notes;
};

BenchReport run_cpu_bench(const BenchOptions& o);
#ifdef MODELPRESS_HAVE_CUDA
BenchReport run_cuda_bench(const BenchOptions& o);
#endif

// The report as a Markdown table with a header line, and as JSON (stable keys).
std::string bench_report_markdown(const BenchReport& r);
std::string bench_report_json(const BenchReport& r);

}  // namespace modelpress::bench
