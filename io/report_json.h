// The validation report as JSON with stable keys (documented in docs/VALIDATE.md). Numbers
// that are not finite (an exact layer's SQNR is +inf) are written as null, because JSON
// has no infinity and a large stand-in would read as a measurement.
#pragma once
#include <nlohmann/json.hpp>

#include "io/validation_report.h"

namespace modelpress {

nlohmann::ordered_json validation_report_json(const ValidationReport& report);
// A number for a JSON report: null where it is NaN or infinite (JSON has neither).
nlohmann::ordered_json json_number(double v);

}  // namespace modelpress
