// Times merge::svd_thin (LAPACK sgesdd via LAPACKE on OpenBLAS) on a row-major f32 matrix read
// from a raw file, so bench/svd_vs_numpy.py can time NumPy on the very same bytes in the same
// run. Prints one JSON line: routine, shape, median seconds over the repeats, and the
// largest singular value (a check that both sides decomposed the same matrix).
//
//   bench_svd FILE ROWS COLS [REPEATS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "merge/svd.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_svd FILE ROWS COLS [REPEATS]\n");
    return 2;
  }
  const int64_t m = std::stoll(argv[2]), n = std::stoll(argv[3]);
  const int repeats = argc > 4 ? std::stoi(argv[4]) : 3;
  std::vector<float> a(static_cast<size_t>(m * n));
  std::ifstream f(argv[1], std::ios::binary);
  if (!f.read(reinterpret_cast<char*>(a.data()), static_cast<std::streamsize>(a.size() * sizeof(float)))) {
    std::fprintf(stderr, "bench_svd: cannot read %lld x %lld floats from %s\n", static_cast<long long>(m),
                 static_cast<long long>(n), argv[1]);
    return 1;
  }
  std::vector<double> times;
  float s0 = 0;
  for (int r = 0; r < repeats + 1; ++r) {  // the first run warms up (page faults, thread pool)
    const auto start = std::chrono::steady_clock::now();
    const modelpress::merge::Svd svd = modelpress::merge::svd_thin(a, m, n);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (r > 0) times.push_back(t);
    s0 = svd.s[0];
  }
  std::sort(times.begin(), times.end());
  std::printf("{\"routine\": \"%s\", \"rows\": %lld, \"cols\": %lld, \"median_s\": %.6f, \"s0\": %.6g}\n",
              modelpress::merge::svd_routine().c_str(), static_cast<long long>(m), static_cast<long long>(n),
              times[times.size() / 2], s0);
  return 0;
}
