#include "merge/batch_merge.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>

#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "io/float_convert.h"
#include "merge/layer_names.h"
#include "merge/merge_methods.h"
#include "merge/model_card.h"

namespace modelpress::merge {
namespace fs = std::filesystem;
namespace {

// One opened input model and its tensors grouped by layer.
struct Model {
  std::string path;
  Checkpoint ck;
  int64_t layers = 0;
  std::map<int64_t, std::vector<const CheckpointTensor*>> by_layer;
  std::vector<const CheckpointTensor*> outside;  // not in the layer stack, checkpoint order
};

std::unique_ptr<Model> open_model(const std::string& path) {
  auto m = std::make_unique<Model>(Model{path, Checkpoint::open(path), 0, {}, {}});
  int64_t top = -1;
  for (const auto& t : m->ck.tensors()) {
    if (const auto l = layer_of(t.name)) {
      m->by_layer[l->index].push_back(&t);
      top = std::max(top, l->index);
    } else {
      m->outside.push_back(&t);
    }
  }
  m->layers = config_layer_count(m->ck.config()).value_or(top + 1);
  return m;
}

// What an output tensor is made of: the slice it belongs to, each source's input tensor, and
// its position t in the slice (for gradients).
struct Job {
  std::string name;                 // output tensor name
  const Slice* slice = nullptr;
  std::vector<const Model*> models;  // one per slice source
  std::vector<std::string> inputs;   // the tensor's name in each source
  double t = 0;
};

std::string model_family(const Model& m) {
  const auto& c = m.ck.config();
  if (c.is_object() && c.contains("model_type") && c["model_type"].is_string()) return c["model_type"].get<std::string>();
  return m.ck.architecture();
}

class Planner {
 public:
  Planner(const MergePlan& plan) : plan_(plan) {}

  const Model& model(const std::string& path) {
    auto it = models_.find(path);
    if (it == models_.end()) {
      it = models_.emplace(path, open_model(path)).first;
      order_.push_back(path);
    }
    return *it->second;
  }
  const std::vector<std::string>& order() const { return order_; }

  // Every output tensor, in mergekit's order: embeddings, the layers slice by slice, the rest.
  std::vector<Job> jobs(int64_t* out_layers) {
    std::vector<Job> jobs;
    const Slice& first = plan_.slices.front();
    const Slice& last = plan_.slices.back();
    for (const CheckpointTensor* t : model(first.sources[0].model).outside)
      if (t->category == TensorCategory::Embedding) jobs.push_back(outside_job(first, t->name, 0.0));
    int64_t out_layer = 0;
    for (size_t si = 0; si < plan_.slices.size(); ++si) {
      const Slice& slice = plan_.slices[si];
      std::vector<std::pair<int64_t, int64_t>> ranges;  // per source
      for (size_t j = 0; j < slice.sources.size(); ++j) {
        const SliceSource& s = slice.sources[j];
        const Model& m = model(s.model);
        const int64_t end = s.end < 0 ? m.layers : s.end;
        if (end > m.layers)
          throw Error(plan_.source_path + ": slices[" + std::to_string(si) + "]: layer_range [" + std::to_string(s.begin) +
                      ", " + std::to_string(end) + ") is outside " + s.model + ", which has " + std::to_string(m.layers) +
                      " layers");
        ranges.emplace_back(s.begin, end);
      }
      const int64_t len = ranges[0].second - ranges[0].first;
      for (const auto& r : ranges)
        if (r.second - r.first != len)
          throw Error(plan_.source_path + ": the models of one merge have different layer counts (" +
                      std::to_string(len) + " and " + std::to_string(r.second - r.first) + ")");
      const Model& templ = model(slice.sources[0].model);
      for (int64_t k = 0; k < len; ++k, ++out_layer) {
        const auto it = templ.by_layer.find(ranges[0].first + k);
        if (it == templ.by_layer.end()) continue;
        for (const CheckpointTensor* t : it->second) {
          const LayerName ln = *layer_of(t->name);
          Job job;
          job.name = with_layer(t->name, ln, out_layer);
          job.slice = &slice;
          job.t = len > 1 ? static_cast<double>(k) / static_cast<double>(len - 1) : 1.0;
          for (size_t j = 0; j < slice.sources.size(); ++j) {
            job.models.push_back(&model(slice.sources[j].model));
            job.inputs.push_back(with_layer(t->name, ln, ranges[j].first + k));
          }
          jobs.push_back(std::move(job));
        }
      }
    }
    // The tensors after the stack are evaluated at t = 0, as mergekit 0.1 does (its 2024
    // versions used t = 1, the end of the last slice; only gradients see the difference).
    for (const CheckpointTensor* t : model(last.sources[0].model).outside)
      if (t->category != TensorCategory::Embedding) jobs.push_back(outside_job(last, t->name, 0.0));
    *out_layers = out_layer;
    return jobs;
  }

 private:
  Job outside_job(const Slice& slice, const std::string& name, double t) {
    Job job;
    job.name = name;
    job.slice = &slice;
    job.t = t;
    for (const auto& s : slice.sources) {
      job.models.push_back(&model(s.model));
      job.inputs.push_back(name);
    }
    return job;
  }

  const MergePlan& plan_;
  std::map<std::string, std::unique_ptr<Model>> models_;
  std::vector<std::string> order_;
};

// Conversions run in chunks on all cores: each element converts on its own, so the result
// does not depend on the thread count.
constexpr size_t kChunk = size_t{1} << 16;

// Reads a source's tensor as f32, first rounded to the plan's dtype (mergekit casts on load).
// Sets *finite to false when it holds NaN or Inf.
std::vector<float> load(const Model& m, const CheckpointTensor& t, const std::optional<DType>& dtype, bool* finite) {
  const Tensor x = m.ck.read(t);
  const size_t n = static_cast<size_t>(x.numel()), in_size = dtype_size(x.dtype());
  const bool recast = dtype && x.dtype() != *dtype;
  std::vector<float> out(n);
  const std::byte* src = x.data();
  const auto chunks = static_cast<std::ptrdiff_t>((n + kChunk - 1) / kChunk);
  bool bad = false;
#pragma omp parallel for schedule(static) reduction(|| : bad)
  for (std::ptrdiff_t c = 0; c < chunks; ++c) {
    const size_t at = static_cast<size_t>(c) * kChunk, len = std::min(kChunk, n - at);
    float* dst = out.data() + at;
    convert_to_f32(x.dtype(), src + at * in_size, dst, len);
    if (recast) {
      std::vector<std::byte> narrow(len * dtype_size(*dtype));
      convert_from_f32(*dtype, dst, narrow.data(), len);
      convert_to_f32(*dtype, narrow.data(), dst, len);
    }
    for (size_t i = 0; i < len; ++i) bad = bad || !std::isfinite(dst[i]);
  }
  *finite = !bad;
  return out;
}

Tensor store(const std::vector<float>& v, DType dtype, const Shape& shape) {
  Tensor t = Tensor::zeros(dtype, shape);
  std::byte* dst = t.mutable_data();
  const size_t n = v.size(), size = dtype_size(dtype);
  const auto chunks = static_cast<std::ptrdiff_t>((n + kChunk - 1) / kChunk);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t c = 0; c < chunks; ++c) {
    const size_t at = static_cast<size_t>(c) * kChunk;
    convert_from_f32(dtype, v.data() + at, dst + at * size, std::min(kChunk, n - at));
  }
  return t;
}

struct Resolved {
  const MergePlan& plan;
  const Job& job;
  std::string where() const { return plan.source_path + ": tensor " + job.name; }
  // A per-model parameter of source j, looked up with the source's own tensor name.
  std::optional<double> model_param(size_t j, const std::string& name) const {
    return lookup_parameter(plan, *job.slice, &job.slice->sources[j], name, job.inputs[j], job.t);
  }
  double global(const std::string& name, double fallback) const {
    return lookup_parameter(plan, *job.slice, nullptr, name, job.name, job.t).value_or(fallback);
  }
  double required(size_t j, const std::string& name) const {
    const auto v = model_param(j, name);
    if (!v) throw Error(where() + ": no '" + name + "' parameter for " + job.slice->sources[j].model);
    return *v;
  }
};

std::vector<float> merge_job(const MergePlan& plan, const Job& job, std::vector<std::vector<float>> x,
                             const BatchMergeOptions& options) {
  const Resolved r{plan, job};
  const std::string& m = plan.method;
  const auto& sources = job.slice->sources;
  size_t base = sources.size();
  for (size_t j = 0; j < sources.size(); ++j)
    if (!plan.base_model.empty() && sources[j].model == plan.base_model) {
      base = j;
      break;
    }
  const bool has_base = base < sources.size();

  if (m == "passthrough") {
    if (x.size() != 1)
      throw Error(plan.source_path + ": passthrough takes one source per slice (tensor " + job.name + " has " +
                  std::to_string(x.size()) + ")");
    if (const auto s = r.model_param(0, "scale"))
      for (float& v : x[0]) v = static_cast<float>(v * *s);
    return std::move(x[0]);
  }
  if (m == "linear") {
    std::vector<std::vector<float>> ts;
    std::vector<double> w;
    for (size_t j = 0; j < x.size(); ++j) {
      if (sources[j].implicit_base) continue;  // not listed under models: no weight, not averaged
      w.push_back(r.required(j, "weight"));
      ts.push_back(std::move(x[j]));
    }
    if (r.global("normalize", 1) != 0) {
      double sum = 0;
      for (double v : w) sum += v;
      if (std::fabs(sum) < 1e-8) throw Error(r.where() + ": the weights sum to zero, so their weighted mean is undefined");
    }
    return linear_merge(ts, w, r.global("normalize", 1) != 0);
  }
  if (!has_base) throw Error(plan.source_path + ": merge_method " + m + " needs a base_model");
  if (m == "slerp") {
    if (x.size() != 2)
      throw Error(plan.source_path + ": slerp merges exactly two models, the base and one other (tensor " + job.name +
                  " has " + std::to_string(x.size()) + ")");
    const auto t = lookup_parameter(plan, *job.slice, nullptr, "t", job.name, job.t);
    if (!t) throw Error(r.where() + ": slerp needs the parameter t");
    if (!(*t >= 0 && *t <= 1)) throw Error(r.where() + ": t = " + std::to_string(*t) + " is outside [0, 1]");
    return slerp_merge(*t, x[base], x[1 - base]);
  }
  std::vector<std::vector<float>> others;
  std::vector<size_t> index;
  for (size_t j = 0; j < x.size(); ++j)
    if (j != base) {
      others.push_back(std::move(x[j]));
      index.push_back(j);
    }
  if (m == "model_stock") {
    if (others.size() < 2) throw Error(plan.source_path + ": model_stock needs at least two models besides the base");
    const int64_t rows = static_cast<int64_t>(job.models[base]->ck.find(job.inputs[base])->shape.empty()
                                                  ? 1
                                                  : job.models[base]->ck.find(job.inputs[base])->shape[0]);
    const bool filter_wise = r.global("filter_wise", 0) != 0;
    // A vector is one row whatever filter_wise says (mergekit unsqueezes it).
    const size_t dims = job.models[base]->ck.find(job.inputs[base])->shape.size();
    return model_stock_merge(x[base], others, filter_wise && dims > 1, filter_wise && dims > 1 ? rows : 1);
  }
  // The task-vector family.
  TaskArithmeticOptions o;
  o.sparsify = m == "ties" ? Sparsify::Magnitude : (m == "dare_ties" || m == "dare_linear") ? Sparsify::Random : Sparsify::None;
  o.consensus = m == "ties" || m == "dare_ties";
  o.normalize = r.global("normalize", m == "ties" ? 1 : 0) != 0;
  o.rescale = r.global("rescale", o.sparsify == Sparsify::Random ? 1 : 0) != 0;
  o.lambda = r.global("lambda", 1);
  o.seed = options.seed;
  std::vector<double> weights, densities;
  for (size_t k = 0; k < others.size(); ++k) {
    weights.push_back(r.required(index[k], "weight"));
    const double d = r.model_param(index[k], "density").value_or(1.0);
    if (!(d > 0 && d <= 1))
      throw Error(r.where() + ": density " + std::to_string(d) + " for " + sources[index[k]].model +
                  " is outside (0, 1] (a fraction of the entries kept, not a percent)");
    densities.push_back(d);
    float* delta = others[k].data();
    const float* b = x[base].data();
    const auto n = static_cast<std::ptrdiff_t>(others[k].size());
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t e = 0; e < n; ++e) delta[e] -= b[e];
  }
  if (others.empty()) return std::move(x[base]);
  return task_arithmetic_merge(std::move(x[base]), others, weights, densities, o, job.name);
}

}  // namespace

BatchMergeReport run_batch_merge(const MergePlan& plan, const std::string& out, const BatchMergeOptions& options,
                                 const BatchMergeProgress& progress) {
  if (plan.slices.empty()) throw Error(plan.source_path + ": nothing to merge");
  Planner planner(plan);
  // Open every model up front: a bad path fails before any work.
  if (!plan.base_model.empty()) planner.model(plan.base_model);
  for (const auto& slice : plan.slices)
    for (const auto& s : slice.sources) planner.model(s.model);
  const Model& reference = planner.model(plan.base_model.empty() ? plan.slices[0].sources[0].model : plan.base_model);
  for (const auto& path : planner.order()) {
    const Model& m = planner.model(path);
    std::error_code ec;
    if (fs::exists(out, ec) && fs::equivalent(out, path, ec)) throw Error(out + ": is an input model; write the merge elsewhere");
    if (model_family(m) != model_family(reference))
      throw Error(path + ": is a " + model_family(m) + " model but " + reference.path + " is a " + model_family(reference) +
                  "; models of different architectures cannot be merged");
  }

  BatchMergeReport report;
  report.method = plan.method;
  report.base = plan.base_model;
  for (const auto& path : planner.order())
    if (path != plan.base_model) report.models.push_back(path);
  const std::vector<Job> jobs = planner.jobs(&report.layers);

  // The donor of the side files (tokenizer, generation config): tokenizer_source, else the base, else the first model.
  std::string donor = reference.path;
  if (!plan.tokenizer_source.empty() && plan.tokenizer_source != "base") donor = plan.tokenizer_source;
  const Model& donor_model = planner.model(donor);
  CheckpointWriterOptions wo;
  wo.max_shard_bytes = options.max_shard_bytes;
  wo.overwrite = options.overwrite;
  wo.expected_tensors = jobs.size();
  CheckpointWriter writer(out, &donor_model.ck, wo);

  const std::optional<DType> out_dtype = plan.out_dtype ? plan.out_dtype : plan.dtype;
  report.out_dtype = out_dtype ? std::string(dtype_name(*out_dtype)) : "as stored";
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& job = jobs[i];
    if (progress) progress(i, jobs.size(), job.name);
    const CheckpointTensor* first = nullptr;
    std::vector<std::vector<float>> x;
    for (size_t j = 0; j < job.models.size(); ++j) {
      const CheckpointTensor* t = job.models[j]->ck.find(job.inputs[j]);
      if (!t)
        throw Error(job.models[j]->path + ": has no tensor " + job.inputs[j] + " (needed for " + job.name + ")");
      if (!first) {
        first = t;
      } else if (t->shape != first->shape) {
        throw Error(job.models[j]->path + ": tensor " + t->name + " has shape " + shape_to_string(t->shape) + " but " +
                    job.models[0]->path + "'s " + first->name + " is " + shape_to_string(first->shape));
      }
      if (!dtype_is_float(t->dtype)) break;  // integer buffers are copied from the first source
      bool finite = true;
      x.push_back(load(*job.models[j], *t, plan.dtype, &finite));
      if (!finite) throw Error(job.models[j]->path + ": tensor " + t->name + " holds NaN or Inf");
    }
    if (!dtype_is_float(first->dtype)) {
      writer.append(job.name, job.models[0]->ck.read(*first));
      continue;
    }
    const std::vector<float> merged = merge_job(plan, job, std::move(x), options);
    writer.append(job.name, store(merged, out_dtype.value_or(first->dtype), first->shape));
  }
  report.tensors = jobs.size();

  nlohmann::json config = reference.ck.config();
  if (config.is_object()) {
    std::string key;
    if (plan.from_slices && config_layer_count(config, &key)) config[key] = report.layers;
    if (out_dtype) {
      const char* name = *out_dtype == DType::BF16 ? "bfloat16" : *out_dtype == DType::F16 ? "float16" : "float32";
      config[config.contains("dtype") && !config.contains("torch_dtype") ? "dtype" : "torch_dtype"] = name;
    }
    writer.set_config(config);
  }
  writer.add_text_file("mergekit_config.yml", plan.source_text);
  writer.add_text_file("README.md", model_card(plan, report, out, options.version));
  writer.finish();
  return report;
}

}  // namespace modelpress::merge
