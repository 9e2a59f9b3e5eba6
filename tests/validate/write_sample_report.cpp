// Writes the sample validation report (tests/validate/sample_report.h) to the path given,
// for render_report.sh, which checks that a real browser renders it.
#include <iostream>

#include "io/error.h"
#include "io/report_file.h"
#include "tests/validate/sample_report.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: write_sample_report OUT.html\n";
    return 2;
  }
  try {
    modelpress::write_validation_report(argv[1], modelpress::testing::sample_report(12));
  } catch (const modelpress::Error& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
