// Records what calibrated passes need from the forward, for a chosen set of linear layers:
// sampled input rows (the calibration format of docs/CALIBRATION.md) and statistics over
// every token: per-input-channel absmax, min and max, and the Gram matrix X^T X.
//
// It is the forward's observer (model/linear.h). Rows: `rows_per_layer` rows spread evenly
// over the `expected_tokens` the layer will see (token floor(i * expected / rows) for
// i = 0..rows-1), so a long text is represented from start to end, not only its head.
// Gram: each call's X^T X is computed in f32 (at most one sequence of rows, so rounding stays
// at f32 level) and added to an f64 accumulator; stored as f32.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/linear.h"

namespace modelpress {
class SafetensorsWriter;
}

namespace modelpress::model {

class CalibrationRecorder {
 public:
  struct Layer {
    std::string name;
    int64_t k = 0;
  };
  CalibrationRecorder(std::vector<Layer> layers, int64_t rows_per_layer, int64_t expected_tokens);

  // The observer to put in RunContext::observer; layers not in the set are ignored.
  LinearObserver observer();
  // Appends every recorded layer, in the order given: <layer> (rows, K) f32, and
  // <layer>.absmax / .min / .max (K) f32, <layer>.gram (K, K) f32, <layer>.tokens (1) i64.
  void write(SafetensorsWriter& writer) const;
  // Bytes the recorder holds at most for `layers` (to split a model into passes).
  static uint64_t bytes_for(const std::vector<Layer>& layers, int64_t rows_per_layer);

 private:
  struct State {
    Layer layer;
    int64_t seen = 0;       // tokens so far
    int64_t next_row = 0;   // index of the next row to keep
    std::vector<float> rows, absmax, min, max;
    std::vector<double> gram;  // (K, K); only the lower triangle is accumulated
  };
  void observe(const std::string& name, const float* x, int64_t m, int64_t k);
  void add_gram(State& s, const float* x, int64_t m);

  std::map<std::string, State> layers_;
  std::vector<std::string> order_;
  int64_t rows_per_layer_, expected_tokens_;
  // q, k and v (and gate, up) read the same input: the Gram of consecutive calls on the same
  // rows is computed once. Safe because a linear never writes its own input, so consecutive
  // observer calls with the same pointer and shape see the same values.
  const float* last_x_ = nullptr;
  int64_t last_m_ = 0, last_k_ = 0;
  std::vector<float> last_gram_;
};

}  // namespace modelpress::model
