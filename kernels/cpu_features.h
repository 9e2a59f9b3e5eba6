// Which instruction sets the fast CPU kernels may use on this machine. Fast paths are
// compiled with per-function target attributes (never a global -mavx2), so one binary runs
// on any x86-64 and picks its kernels here at run time.
#pragma once

namespace modelpress::kernels {

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 + FMA + F16C: the int8, W4A16 and activation fast paths
  bool avx512_vnni = false;  // AVX-512 F/BW/VNNI: the vpdpbusd int8 GEMM
  bool avx512 = false;       // AVX-512 F/BW/VL/DQ: the W4A16 and LUT GEMVs (vpermps on zmm),
                             // and (with avx2_fma's FMA) the AVX-512 Eigen build of DenseF32
};

// Detected once. MODELPRESS_KERNEL_ISA=baseline (or =avx2) caps what is used, so the
// reference fallbacks (and their log lines) can be exercised on a machine that has more.
const CpuFeatures& cpu_features();

}  // namespace modelpress::kernels
