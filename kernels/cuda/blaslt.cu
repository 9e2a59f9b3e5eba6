// cuBLASLt plans: one matmul descriptor, three layouts and the heuristic's algorithm per
// problem, cached, so a repeated shape (every forward pass, every timed run) skips the
// heuristic query on the host.
#include "kernels/cuda/blaslt.h"

#include <cublasLt.h>

#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <tuple>

namespace modelpress::kernels::cuda {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F32: return "f32";
  }
  return "?";
}

namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::F16: return CUDA_R_16F;
    case DType::BF16: return CUDA_R_16BF;
    case DType::F32: return CUDA_R_32F;
  }
  return CUDA_R_32F;
}

// kind: 0 = 16-bit, 1 = int8. Types are part of the key for the 16-bit kind.
// The pointers' alignments are part of the key: the heuristic assumes 256-byte aligned
// operands unless told otherwise, and an algorithm chosen for that fails on a less aligned one.
using PlanKey = std::tuple<int, int, int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, uint32_t, uint32_t,
                           uint32_t>;

// The largest power of two up to 256 that divides the address.
uint32_t alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t al = 256;
  while (al > 1 && a % al) al /= 2;
  return al;
}

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {
    if (d) cublasLtMatrixLayoutDestroy(d);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

// Plans are per thread, as Context is (a cuBLASLt handle is not meant to be shared unguarded).
std::map<PlanKey, Plan>& plans() {
  thread_local std::map<PlanKey, Plan> p;
  return p;
}

// Runs one GEMM with the given algorithm and its workspace size; false if cuBLASLt refuses.
using RunAlgo = std::function<bool(const cublasLtMatmulAlgo_t&, size_t)>;

// Device time of `run` with `algo`: the median of 3 runs after one warm-up, in ms; infinity if
// cuBLASLt refuses it.
float time_algo(Context& ctx, const RunAlgo& run, const cublasLtMatmulAlgo_t& algo, size_t ws) {
  if (!run(algo, ws)) return std::numeric_limits<float>::infinity();
  cudaEvent_t start = nullptr, stop = nullptr;
  MP_CUDA_CHECK(cudaEventCreate(&start));
  if (const cudaError_t e = cudaEventCreate(&stop); e != cudaSuccess) {
    cudaEventDestroy(start);
    MP_CUDA_CHECK(e);
  }
  float times[3] = {0, 0, 0};
  cudaError_t err = cudaSuccess;
  for (float& t : times) {
    if ((err = cudaEventRecord(start, ctx.stream)) != cudaSuccess) break;
    run(algo, ws);
    if ((err = cudaEventRecord(stop, ctx.stream)) != cudaSuccess) break;
    if ((err = cudaEventSynchronize(stop)) != cudaSuccess) break;
    if ((err = cudaEventElapsedTime(&t, start, stop)) != cudaSuccess) break;
  }
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  MP_CUDA_CHECK(err);
  std::sort(times, times + 3);
  return times[1];
}

// Creates the plan: column-major layouts of A = W (K, N) op T, B = X (K, M), D = Y (N, M), and
// the algorithm. The heuristic's first choice is often not the fastest (measured on an H200:
// int8 at 512 x 4096 x 4096 ran slower than f16), so up to kCandidates of its suggestions are
// timed once on the caller's operands and the fastest is kept for the shape.
constexpr int kCandidates = 8;

Plan& make_plan(Context& ctx, const PlanKey& key, cublasComputeType_t compute, cudaDataType_t scale,
                cudaDataType_t ab, cudaDataType_t out, int64_t m, int64_t n, int64_t k, int64_t ldx, int64_t ldw,
                int64_t ldy, const char* what, const RunAlgo& run) {
  auto& all = plans();
  if (auto it = all.find(key); it != all.end()) return it->second;
  Plan& p = all[key];
  try {
    MP_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.op, compute, scale));
    const cublasOperation_t t = CUBLAS_OP_T, nt = CUBLAS_OP_N;
    MP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t));
    MP_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &nt, sizeof nt));
    MP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.a, ab, static_cast<uint64_t>(k), static_cast<uint64_t>(n), ldw));
    MP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.b, ab, static_cast<uint64_t>(k), static_cast<uint64_t>(m), ldx));
    MP_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p.d, out, static_cast<uint64_t>(n), static_cast<uint64_t>(m), ldy));

    cublasLtMatmulPreference_t pref = nullptr;
    MP_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = Context::kLtWorkspaceBytes;
    cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
    int found = 0;
    const cublasStatus_t st = [&] {
      cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                              sizeof ws);
      if (s != CUBLAS_STATUS_SUCCESS) return s;
      const uint32_t al_a = std::get<9>(key), al_b = std::get<10>(key), al_d = std::get<11>(key);
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a);
      if (s != CUBLAS_STATUS_SUCCESS) return s;
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b);
      if (s != CUBLAS_STATUS_SUCCESS) return s;
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d);
      if (s != CUBLAS_STATUS_SUCCESS) return s;
      s = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d);
      if (s != CUBLAS_STATUS_SUCCESS) return s;
      // D is also passed as C (beta = 0), so C's layout is D's.
      return cublasLtMatmulAlgoGetHeuristic(ctx.lt, p.op, p.a, p.b, p.d, p.d, pref, kCandidates, results, &found);
    }();
    cublasLtMatmulPreferenceDestroy(pref);
    MP_CUBLAS_CHECK(st);
    if (found == 0)
      throw CudaError(std::string("cuBLASLt has no algorithm for the ") + what + " GEMM M=" + std::to_string(m) +
                      " N=" + std::to_string(n) + " K=" + std::to_string(k));
    int best = 0;
    if (found > 1) {
      float best_ms = std::numeric_limits<float>::infinity();
      for (int i = 0; i < found; ++i) {
        if (results[i].state != CUBLAS_STATUS_SUCCESS) continue;
        const float ms = time_algo(ctx, run, results[i].algo, results[i].workspaceSize);
        if (ms < best_ms) best_ms = ms, best = i;
      }
    }
    p.algo = results[best].algo;
    p.workspace = results[best].workspaceSize;
  } catch (...) {
    all.erase(key);
    throw;
  }
  return p;
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

void gemm_16bit(Context& ctx, DType ab, DType out, const void* x, int64_t ldx, const void* w, int64_t ldw, void* y,
                int64_t ldy, int64_t m, int64_t n, int64_t k) {
  if (ab == DType::F32 || (out != DType::F32 && out != ab))
    throw CudaError(std::string("gemm_16bit: unsupported types ") + dtype_name(ab) + " -> " + dtype_name(out));
  if (m <= 0 || n <= 0) return;
  const PlanKey key{0, static_cast<int>(ab), static_cast<int>(out), m, n, k, ldx, ldw, ldy, alignment(w), alignment(x),
                    alignment(y)};
  const float alpha = 1.0f, beta = 0.0f;
  // Timing candidates (make_plan) runs the GEMM on the caller's operands with the plan being made.
  const RunAlgo run = [&](const cublasLtMatmulAlgo_t& algo, size_t ws) {
    const Plan& plan = plans()[key];
    return cublasLtMatmul(ctx.lt, plan.op, &alpha, w, plan.a, x, plan.b, &beta, y, plan.d, y, plan.d, &algo,
                          ctx.lt_workspace.data(), ws, ctx.stream) == CUBLAS_STATUS_SUCCESS;
  };
  Plan& p = make_plan(ctx, key, CUBLAS_COMPUTE_32F, CUDA_R_32F, cuda_type(ab), cuda_type(out), m, n, k, ldx, ldw, ldy,
                      "16-bit", run);
  MP_CUBLAS_CHECK(cublasLtMatmul(ctx.lt, p.op, &alpha, w, p.a, x, p.b, &beta, y, p.d, y, p.d, &p.algo,
                                 ctx.lt_workspace.data(), p.workspace, ctx.stream));
}

void gemm_int8(Context& ctx, const int8_t* xq, int64_t ldx, const int8_t* wq, int64_t ldw, int32_t* c, int64_t ldc,
               int64_t m, int64_t n, int64_t k) {
  if (n % 4 || k % 4 || ldx % 4 || ldw % 4 || ldc % 4 || !aligned16(xq) || !aligned16(wq) || !aligned16(c))
    throw CudaError("gemm_int8: cuBLASLt int8 needs N, K and leading dimensions divisible by 4 and 16-byte aligned "
                    "pointers (N=" + std::to_string(n) + " K=" + std::to_string(k) + ")");
  if (m <= 0 || n <= 0) return;
  const PlanKey key{1, 0, 0, m, n, k, ldx, ldw, ldc, alignment(wq), alignment(xq), alignment(c)};
  // CUBLAS_COMPUTE_32I needs an int32 scale type; the output is CUDA_R_32I (exact).
  const int32_t alpha = 1, beta = 0;
  const RunAlgo run = [&](const cublasLtMatmulAlgo_t& algo, size_t ws) {
    const Plan& plan = plans()[key];
    return cublasLtMatmul(ctx.lt, plan.op, &alpha, wq, plan.a, xq, plan.b, &beta, c, plan.d, c, plan.d, &algo,
                          ctx.lt_workspace.data(), ws, ctx.stream) == CUBLAS_STATUS_SUCCESS;
  };
  Plan& p = make_plan(ctx, key, CUBLAS_COMPUTE_32I, CUDA_R_32I, CUDA_R_8I, CUDA_R_32I, m, n, k, ldx, ldw, ldc, "int8",
                      run);
  MP_CUBLAS_CHECK(cublasLtMatmul(ctx.lt, p.op, &alpha, wq, p.a, xq, p.b, &beta, c, p.d, c, p.d, &p.algo,
                                 ctx.lt_workspace.data(), p.workspace, ctx.stream));
}

}  // namespace modelpress::kernels::cuda
