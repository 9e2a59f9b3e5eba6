// One linear layer of a model as the forward runs it: the packed layer in the format the
// checkpoint stores it (dense, LLM.int8, W8A8, W4A16, palettized), run through
// kernels::run_linear on the model's backend. The forward reports every layer's input to an
// optional observer: that is how `calibrate` records and how a non-finite activation is
// traced to the first layer that produced it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels/packed_linear.h"
#include "quant/packed_layer.h"

namespace modelpress::model {

// Sees the input rows x (m, k) of the layer `name` before it runs.
using LinearObserver = std::function<void(const std::string& name, const float* x, int64_t m, int64_t k)>;

// What every linear call of one forward shares: backend, scratch memory, observer.
struct RunContext {
  kernels::Backend backend = kernels::Backend::Cpu;
  LinearObserver observer;
  std::vector<std::byte> workspace;  // grown on demand
  // Where the first non-finite value appeared ("model.layers.3.mlp.down_proj", or "input of
  // ..." when it reached a layer from outside the linears); empty while all are finite.
  std::string first_nonfinite;
};

class Linear {
 public:
  Linear() = default;
  explicit Linear(quant::PackedLayer layer);
  // A dense layer over f32 weights owned elsewhere (tied embeddings: the output head reads
  // the embedding table), kept alive by `owner`.
  static Linear dense_view(std::string name, const float* w, int64_t n, int64_t k, std::shared_ptr<const void> owner);

  const std::string& name() const { return name_; }
  int64_t n() const { return view_.n; }
  int64_t k() const { return view_.k; }
  kernels::LinearFormat format() const { return view_.format; }
  // y (m, n) = x (m, k) W^T + b.
  void run(const float* x, int64_t m, float* y, RunContext& ctx) const;

 private:
  std::string name_;
  std::shared_ptr<const quant::PackedLayer> layer_;
  std::shared_ptr<const void> owner_;
  kernels::PackedLinear view_;
};

}  // namespace modelpress::model
