// Number formatting shared by the Markdown and HTML reports, so both show a layer the same
// way. Non-finite values print as "inf", "-inf" or "n/a" (NaN: the kernel produced NaN).
#pragma once
#include <string>

namespace modelpress::report_text {

std::string relative_error(double v);  // "0.00431", "3.10e-05"
std::string sqnr_db(double v);         // "47.3", "inf"
std::string cosine(double v);          // "0.999987"
std::string max_abs(double v);         // "0.0213", "1.2e+03"
std::string microseconds(double us);   // "123.4", "1,234"
std::string ratio(double v);           // "3.97x"
std::string percent(double share);     // "0.52%"
std::string fixed(double v, int decimals);

}  // namespace modelpress::report_text
