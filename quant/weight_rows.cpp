#include "quant/weight_rows.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include "io/error.h"
#include "io/float_convert.h"

namespace modelpress::quant {

void check_weight(const std::string& tensor, const Tensor& weight) {
  if (weight.shape().size() != 2)
    throw Error(tensor + ": a linear weight must be 2-D (out, in), this one has shape " +
                shape_to_string(weight.shape()));
  if (!dtype_is_float(weight.dtype()))
    throw Error(tensor + ": dtype " + std::string(dtype_name(weight.dtype())) +
                " is not a float dtype; only F32, F16, BF16, F64 and F8 weights can be quantized");
  if (weight.numel() == 0) throw Error(tensor + ": weight of shape " + shape_to_string(weight.shape()) + " is empty");
}

std::vector<float> read_bias(const std::string& tensor, const Tensor* bias, int64_t n) {
  if (!bias) return {};
  if (bias->shape().size() != 1 || bias->shape()[0] != n)
    throw Error(tensor + ": bias of shape " + shape_to_string(bias->shape()) + " does not match " +
                std::to_string(n) + " output rows");
  if (!dtype_is_float(bias->dtype()))
    throw Error(tensor + ": bias dtype " + std::string(dtype_name(bias->dtype())) + " is not a float dtype");
  std::vector<float> b = bias->to_f32();
  if (const int64_t i = first_nonfinite(b.data(), n); i >= 0)
    throw Error(tensor + ": bias holds " + describe_nonfinite(b[static_cast<size_t>(i)]) + " at [" + std::to_string(i) + "]");
  return b;
}

void load_row(const Tensor& weight, int64_t row, float* out) {
  const int64_t k = weight.shape()[1];
  const size_t item = dtype_size(weight.dtype());
  convert_to_f32(weight.dtype(), weight.data() + static_cast<size_t>(row * k) * item, out, static_cast<size_t>(k));
}

uint32_t absmax_bits(const float* x, int64_t n) {
  // Masked bits are < 2^31, so a signed compare orders them; SSE2 has no unsigned max.
  int32_t m = 0;
  for (int64_t i = 0; i < n; ++i) {
    uint32_t b;
    std::memcpy(&b, x + i, 4);
    const auto v = static_cast<int32_t>(b & 0x7fffffffu);
    m = v > m ? v : m;
  }
  return static_cast<uint32_t>(m);
}

int64_t first_nonfinite(const float* x, int64_t n) {
  if (absmax_bits(x, n) < 0x7f800000u) return -1;  // the common case: one vector pass
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

std::string describe_nonfinite(float v) {
  if (std::isnan(v)) return "NaN";
  return v > 0 ? "+Inf" : "-Inf";
}

std::string index_text(int64_t row, int64_t col) {
  std::string s = "[";  // appended step by step: GCC 12 warns (-Wrestrict) on "[" + to_string(...)
  s += std::to_string(row);
  s += ", ";
  s += std::to_string(col);
  s += "]";
  return s;
}

void fail_nonfinite(const std::string& tensor, const Tensor& weight, int64_t first_bad_row) {
  const int64_t n = weight.shape()[0], k = weight.shape()[1];
  std::vector<float> row(static_cast<size_t>(k));
  for (int64_t r = first_bad_row; r < n; ++r) {
    load_row(weight, r, row.data());
    if (const int64_t c = first_nonfinite(row.data(), k); c >= 0) {
      // F64 values past the f32 range read as Inf; say so rather than blame the file.
      const bool overflow = weight.dtype() == DType::F64 && !std::isnan(row[static_cast<size_t>(c)]);
      throw Error(tensor + ": " + describe_nonfinite(row[static_cast<size_t>(c)]) + " at " + index_text(r, c) +
                  " (element " + std::to_string(r * k + c) + ")" +
                  (overflow ? ", a value beyond the f32 range" : "") +
                  "; quantization needs finite weights");
    }
  }
  throw Error(tensor + ": non-finite weight reported but not found (internal error)");
}

int row_threads() {
  // MODELPRESS_THREADS overrides the core count (benchmarks, or a machine shared on purpose).
  if (const char* env = std::getenv("MODELPRESS_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

void for_each_row(int64_t n, int64_t k, const std::function<void(int64_t, float*)>& fn) {
  // Plain threads, forked and joined per layer, not OpenMP: libgomp's idle threads spin
  // between parallel regions, and on a machine whose cores are shared (CI, the development
  // machine) that spinning took the CPU the writer thread needed: 2 threads ran slower
  // than 1 (docs/PERFORMANCE.md). A fork costs ~50 us a layer; these threads block.
  //
  // Rows are handed out in chunks of ~64k weights on demand, so a thread the OS parks
  // holds up one chunk, not half the layer. An exception is kept for the lowest row that
  // threw and rethrown after every row has run: the error a serial loop would raise.
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 16) / std::max<int64_t>(k, 1));
  const int64_t chunks = (n + chunk - 1) / chunk;
  const int threads = static_cast<int>(std::min<int64_t>(row_threads(), chunks));
  std::atomic<int64_t> next{0};
  std::exception_ptr error;
  int64_t error_row = n;
  std::mutex error_mutex;
  auto work = [&] {
    std::vector<float> scratch(static_cast<size_t>(k));
    for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < chunks;) {
      for (int64_t r = c * chunk, end = std::min(n, r + chunk); r < end; ++r) {
        try {
          fn(r, scratch.data());
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          if (r < error_row) error_row = r, error = std::current_exception();
        }
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();  // the calling thread takes chunks too
  for (auto& t : pool) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace modelpress::quant
