#include "merge/ties.h"

#include <algorithm>
#include <cmath>

#include "io/error.h"

namespace modelpress::merge {

void ties_trim(std::span<float> v, double keep) {
  const size_t d = v.size();
  if (d == 0) return;
  const size_t kept = static_cast<size_t>(std::floor(static_cast<double>(d) * keep));
  if (kept >= d) return;
  const size_t kth = d - kept;  // 1-based rank of the threshold among |v| ascending
  std::vector<float> mag(d);
  for (size_t i = 0; i < d; ++i) mag[i] = std::fabs(v[i]);
  std::nth_element(mag.begin(), mag.begin() + static_cast<std::ptrdiff_t>(kth - 1), mag.end());
  const float threshold = mag[kth - 1];
  for (auto& x : v)
    if (std::fabs(x) < threshold) x = 0.0f;
}

std::vector<float> ties_merge(std::span<const float> a, std::span<const float> b, double keep) {
  if (a.size() != b.size()) throw Error("ties_merge: task vectors of different sizes");
  std::vector<float> ta(a.begin(), a.end()), tb(b.begin(), b.end());
  ties_trim(ta, keep);
  ties_trim(tb, keep);
  const size_t d = ta.size();
  // Elected sign per entry; zeros take the majority sign, computed over the whole vector.
  std::vector<float> sign(d);
  double sign_sum = 0;
  for (size_t i = 0; i < d; ++i) {
    const float s = ta[i] + tb[i];
    sign[i] = s > 0 ? 1.0f : (s < 0 ? -1.0f : 0.0f);
    sign_sum += sign[i];
  }
  const float majority = sign_sum > 0 ? 1.0f : (sign_sum < 0 ? -1.0f : 0.0f);
  std::vector<float> out(d);
  for (size_t i = 0; i < d; ++i) {
    const float s = sign[i] == 0.0f ? majority : sign[i];
    float sum = 0;
    int count = 0;
    for (float x : {ta[i], tb[i]}) {
      // As fusion_bench: a non-positive elected sign keeps the negative entries.
      if ((s > 0 && x > 0) || (s <= 0 && x < 0)) {
        sum += x;
        ++count;
      }
    }
    out[i] = count ? sum / static_cast<float>(count) : 0.0f;
  }
  return out;
}

}  // namespace modelpress::merge
