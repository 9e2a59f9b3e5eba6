#include "io/calibration.h"

#include <cmath>
#include <cstring>

#include "io/error.h"
#include "io/float_convert.h"

namespace modelpress {
namespace {

bool is_activation_dtype(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

// Row indices to keep: all of them, or `keep` spread evenly (floor(i * rows / keep)),
// which is strictly increasing because keep < rows.
std::vector<int64_t> pick_rows(int64_t rows, int64_t keep) {
  std::vector<int64_t> picked;
  if (keep <= 0 || keep >= rows) keep = rows;
  picked.reserve(static_cast<size_t>(keep));
  for (int64_t i = 0; i < keep; ++i) picked.push_back(keep == rows ? i : i * rows / keep);
  return picked;
}

}  // namespace

CalibrationFile CalibrationFile::open(const std::string& path) {
  SafetensorsFile file = SafetensorsFile::open(path);
  const auto& meta = file.metadata();
  const auto format = meta.find("format");
  if (format == meta.end() || format->second != kFormat)
    fail_file(path, "not a calibration file: __metadata__ \"format\" is " +
                        (format == meta.end() ? std::string("missing") : "'" + format->second + "'") + ", expected '" +
                        std::string(kFormat) + "' (tools/record_calibration.py writes one)");
  const auto version = meta.find("version");
  if (version == meta.end() || version->second != kVersion)
    fail_file(path, "unsupported calibration file version " +
                        (version == meta.end() ? std::string("(missing)") : "'" + version->second + "'") +
                        ", this modelpress reads version " + std::string(kVersion));
  return CalibrationFile(std::move(file));
}

std::string CalibrationFile::source() const {
  const auto it = file_.metadata().find("source");
  return it == file_.metadata().end() ? std::string() : it->second;
}

std::vector<std::string> CalibrationFile::layers() const {
  std::vector<std::string> names;
  for (const auto& e : file_.entries()) {
    // A ".step" tensor is a companion only when its layer is in the file too; a module
    // that happens to be called "step" is still a layer.
    bool companion = false;
    for (std::string_view suffix : kCompanionSuffixes)
      companion |= e.name.size() > suffix.size() && e.name.ends_with(suffix) &&
                   file_.find(std::string_view(e.name).substr(0, e.name.size() - suffix.size())) != nullptr;
    if (!companion) names.push_back(e.name);
  }
  return names;
}

bool CalibrationFile::has_layer(std::string_view layer) const { return file_.find(layer) != nullptr; }

CalibrationRows CalibrationFile::read(const std::string& layer, int64_t in_features, int64_t max_rows) const {
  const std::string where = "layer '" + layer + "'";
  const SafetensorsEntry* e = file_.find(layer);
  if (!e)
    fail_file(path(), where + ": no activations recorded for it (record them with tools/record_calibration.py, "
                              "or validate without --calib to use synthetic activations)");
  if (e->shape.size() != 2)
    fail_file(path(), where + ": activations have shape " + shape_to_string(e->shape) + ", expected 2-D [tokens, " +
                          std::to_string(in_features) + "]");
  if (!is_activation_dtype(e->dtype))
    fail_file(path(), where + ": activations have dtype " + std::string(dtype_name(e->dtype)) +
                          ", expected F32, F16 or BF16");
  const int64_t rows = e->shape[0], cols = e->shape[1];
  if (cols != in_features)
    fail_file(path(), where + ": activations have width " + std::to_string(cols) + " but the layer takes " +
                          std::to_string(in_features) + " input features (recorded from a different model?)");
  if (rows == 0) fail_file(path(), where + ": activations have no rows");

  CalibrationRows out;
  out.cols = cols;
  const std::vector<int64_t> picked = pick_rows(rows, max_rows);
  out.rows = static_cast<int64_t>(picked.size());
  out.values.resize(static_cast<size_t>(out.rows * cols));
  const Tensor t = file_.read(*e);
  const size_t row_bytes = static_cast<size_t>(cols) * dtype_size(e->dtype);
  for (size_t i = 0; i < picked.size(); ++i) {
    float* dst = out.values.data() + i * static_cast<size_t>(cols);
    convert_to_f32(e->dtype, t.data() + static_cast<size_t>(picked[i]) * row_bytes, dst, static_cast<size_t>(cols));
    for (int64_t c = 0; c < cols; ++c)
      if (!std::isfinite(dst[c]))
        fail_file(path(), where + ": row " + std::to_string(picked[i]) + " column " + std::to_string(c) +
                              " is not finite");
  }

  const std::string step_name = calibration_step_name(layer);
  if (const SafetensorsEntry* s = file_.find(step_name)) {
    const std::string swhere = "tensor '" + step_name + "'";
    if (s->dtype != DType::I32 && s->dtype != DType::I64)
      fail_file(path(), swhere + ": dtype " + std::string(dtype_name(s->dtype)) + ", expected I32 or I64");
    if (s->shape.size() != 1 || s->shape[0] != rows)
      fail_file(path(), swhere + ": shape " + shape_to_string(s->shape) + ", expected [" + std::to_string(rows) +
                            "] (one step per row of '" + layer + "')");
    const Tensor st = file_.read(*s);
    out.steps.reserve(picked.size());
    for (const int64_t r : picked) {
      // memcpy: views of the mapping may be unaligned.
      if (s->dtype == DType::I32) {
        int32_t v;
        std::memcpy(&v, st.data() + r * 4, 4);
        out.steps.push_back(v);
      } else {
        int64_t v;
        std::memcpy(&v, st.data() + r * 8, 8);
        out.steps.push_back(v);
      }
    }
  }
  return out;
}

}  // namespace modelpress

namespace modelpress {

std::optional<CalibrationStats> CalibrationFile::read_stats(const std::string& layer, int64_t in_features) const {
  const std::string where = "layer '" + layer + "'";
  const std::string names[] = {layer + ".absmax", layer + ".min", layer + ".max", layer + ".gram", layer + ".tokens"};
  int present = 0;
  for (const auto& n : names) present += file_.find(n) != nullptr;
  if (present == 0) return std::nullopt;
  if (present != 5)
    fail_file(path(), where + ": statistics are incomplete (expected .absmax, .min, .max, .gram and .tokens)");
  auto vec = [&](const std::string& name, const Shape& shape) {
    const auto* e = file_.find(name);
    if (e->dtype != DType::F32 || e->shape != shape)
      fail_file(path(), "tensor '" + name + "': " + std::string(dtype_name(e->dtype)) + " " + shape_to_string(e->shape) +
                            ", expected F32 " + shape_to_string(shape));
    std::vector<float> v = file_.read(*e).to_f32();
    for (size_t i = 0; i < v.size(); ++i)
      if (!std::isfinite(v[i])) fail_file(path(), "tensor '" + name + "': element " + std::to_string(i) + " is not finite");
    return v;
  };
  CalibrationStats st;
  st.absmax = vec(names[0], {in_features});
  st.min = vec(names[1], {in_features});
  st.max = vec(names[2], {in_features});
  st.gram = vec(names[3], {in_features, in_features});
  const auto* t = file_.find(names[4]);
  if (t->dtype != DType::I64 || t->shape != Shape{1})
    fail_file(path(), "tensor '" + names[4] + "': expected I64 [1]");
  std::memcpy(&st.tokens, file_.read(*t).data(), sizeof st.tokens);
  if (st.tokens <= 0) fail_file(path(), "tensor '" + names[4] + "': token count must be positive");
  return st;
}

}  // namespace modelpress
