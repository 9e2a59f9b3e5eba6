#include "model/linear.h"

#include <cmath>
#include <stdexcept>

#include "io/error.h"

namespace modelpress::model {

Linear::Linear(quant::PackedLayer layer)
    : name_(layer.name), layer_(std::make_shared<const quant::PackedLayer>(std::move(layer))) {
  view_ = layer_->view();
}

Linear Linear::dense_view(std::string name, const float* w, int64_t n, int64_t k, std::shared_ptr<const void> owner) {
  Linear l;
  l.name_ = std::move(name);
  l.owner_ = std::move(owner);
  l.view_.format = kernels::LinearFormat::DenseF32;
  l.view_.n = n;
  l.view_.k = k;
  l.view_.dense = w;
  return l;
}

namespace {
bool all_finite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}
}  // namespace

void Linear::run(const float* x, int64_t m, float* y, RunContext& ctx) const {
  if (ctx.observer) ctx.observer(name_, x, m, view_.k);
  // The scans cost m * (k + n) reads against the product's m * n * k multiply-adds.
  const bool watch = ctx.first_nonfinite.empty();
  if (watch && !all_finite(x, m * view_.k)) ctx.first_nonfinite = "input of " + name_;
  const size_t bytes = kernels::linear_workspace_bytes(view_, m);
  if (ctx.workspace.size() < bytes) ctx.workspace.resize(bytes);
  try {
    kernels::run_linear(view_, x, m, y, ctx.backend, ctx.workspace.data());
  } catch (const std::invalid_argument& e) {
    // The kernels speak of formats; the user needs the layer.
    throw Error(name_ + ": " + e.what());
  }
  if (watch && ctx.first_nonfinite.empty() && !all_finite(y, m * view_.n)) ctx.first_nonfinite = name_;
}

}  // namespace modelpress::model
