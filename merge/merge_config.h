// A merge described the way mergekit users keep their merges: its YAML configuration
// (mergekit/config.py), read into a plan the batch merger (batch_merge.h) runs. Stricter than
// mergekit where mergekit is silent: an unknown key, method or parameter is an error naming
// it (pydantic's default drops misspelled keys, so `desnity: 0.5` would merge at density 1).
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/dtype.h"

namespace modelpress::merge {

// A parameter's value: one number, or a gradient (several numbers interpolated over a
// slice's layers, mergekit's evaluate_setting).
struct ParameterValue {
  std::vector<double> values;  // size 1: a scalar
  double at(double t) const;   // the gradient at t in [0, 1]; the scalar whatever t
};

// One entry of a parameter: applies to tensors whose name contains `filter` (empty or "*":
// all). A parameter is a list of them; the first that matches wins.
struct ConditionalValue {
  std::string filter;
  ParameterValue value;
};
using Parameter = std::vector<ConditionalValue>;
using Parameters = std::map<std::string, Parameter>;

struct SliceSource {
  std::string model;           // a local checkpoint folder or file
  int64_t begin = 0, end = -1; // layer_range [begin, end); end -1: all the model's layers
  Parameters parameters;       // per-model parameters (weight, density, ...)
  bool implicit_base = false;  // the base model, added because `models:` did not list it
};

struct Slice {
  std::vector<SliceSource> sources;
  Parameters parameters;  // the slice's own parameters (after the source's, before the global ones)
};

struct MergePlan {
  std::string method;        // mergekit's name: task_arithmetic, ties, dare_ties, ...
  std::string base_model;    // empty: none
  std::vector<Slice> slices; // the `models:` form becomes one slice over all layers
  bool from_slices = false;  // the YAML used `slices:` (the layer count in config.json changes)
  Parameters parameters;     // top-level parameters
  std::optional<DType> dtype, out_dtype;
  std::string tokenizer_source;  // empty, "base" or a model path
  std::string source_text;       // the YAML as read, written beside the output
  std::string source_path;       // for messages
};

// The methods a plan may name, mergekit's and modelpress's own (opcm, ewa run elsewhere).
const std::vector<std::string>& batch_method_names();

// The parameter names each method reads (everything else in `parameters` is an error).
// per_model: weight, density, ... looked up with the model; the rest are global.
struct MethodParameters {
  std::vector<std::string> per_model, global;
};
MethodParameters method_parameters(const std::string& method);

// Parses mergekit YAML. Throws Error "<path>: <what>" naming the key or entry for invalid
// YAML, an unknown key or method, a missing model path, a bad layer_range, or parameters
// the method does not read.
MergePlan read_merge_config(const std::string& path);
MergePlan parse_merge_config(const std::string& text, const std::string& path);

// mergekit's lookup for one tensor: the source's parameters, then the slice's, then the
// top-level ones; nullopt when no level has a matching entry. `tensor` is the name filters
// are matched against; t the tensor's position in its slice (0 for embeddings).
std::optional<double> lookup_parameter(const MergePlan& plan, const Slice& slice, const SliceSource* source,
                                       const std::string& name, const std::string& tensor, double t);

}  // namespace modelpress::merge
