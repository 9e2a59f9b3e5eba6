#include "io/report_text.h"

#include <cmath>
#include <cstdio>

namespace modelpress::report_text {
namespace {

// The text for a value printf cannot show usefully, or "" when it can.
std::string special(double v) {
  if (std::isnan(v)) return "n/a";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return {};
}

std::string print(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

std::string fixed(double v, int decimals) {
  if (auto s = special(v); !s.empty()) return s;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// Three significant digits either way; scientific below 1e-3 so small errors stay readable.
std::string relative_error(double v) {
  if (auto s = special(v); !s.empty()) return s;
  if (v == 0) return "0";
  return std::abs(v) < 1e-3 ? print("%.2e", v) : print("%.3g", v);
}

std::string sqnr_db(double v) { return fixed(v, 1); }

std::string cosine(double v) { return fixed(v, 6); }

std::string max_abs(double v) {
  if (auto s = special(v); !s.empty()) return s;
  return print("%.3g", v);
}

std::string microseconds(double us) {
  if (auto s = special(us); !s.empty()) return s;
  return us < 100 ? fixed(us, 2) : us < 10000 ? fixed(us, 1) : fixed(us, 0);
}

std::string ratio(double v) {
  if (auto s = special(v); !s.empty()) return s;
  return fixed(v, 2) + "x";
}

std::string percent(double share) {
  if (auto s = special(share); !s.empty()) return s;
  return fixed(100.0 * share, 2) + "%";
}

}  // namespace modelpress::report_text
