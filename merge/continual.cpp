#include "merge/continual.h"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>

#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "io/file_util.h"
#include "merge/opcm.h"
#include "merge/svd.h"
#include "merge/ties.h"

namespace modelpress::merge {
namespace fs = std::filesystem;
namespace {

// Every tensor of `other` must be the base's tensor of the same name, shape and dtype, and
// the other way round: a task vector is only defined between identical architectures.
void check_compatible(const Checkpoint& base, const std::string& base_label, const Checkpoint& other,
                      const std::string& label) {
  for (const auto& t : base.tensors()) {
    const CheckpointTensor* o = other.find(t.name);
    if (!o) throw Error(label + ": tensor " + t.name + " is missing (the base " + base_label + " has it)");
    if (o->shape != t.shape)
      throw Error(label + ": tensor " + t.name + " has shape " + shape_to_string(o->shape) + " but the base's is " +
                  shape_to_string(t.shape));
    if (o->dtype != t.dtype)
      throw Error(label + ": tensor " + t.name + " is " + std::string(dtype_name(o->dtype)) + " but the base's is " +
                  std::string(dtype_name(t.dtype)));
  }
  for (const auto& o : other.tensors())
    if (!base.find(o.name)) throw Error(label + ": tensor " + o.name + " is not in the base " + base_label);
}

// OPCM projects the 2-D linear weights (fusion_bench: every nn.Linear weight); embeddings,
// norms, biases and fused 3-D expert stacks are added unprojected.
bool projected(const CheckpointTensor& t) { return is_linear(t.category) && t.shape.size() == 2; }

// splitmix64: a seeded order that is the same on every machine and standard library.
uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<float> read_f32(const Checkpoint& ck, const CheckpointTensor& t) { return ck.read(*ck.find(t.name)).to_f32(); }

// theta - theta_0 in place (the model's values are not needed afterwards: one buffer less
// per tensor at peak), refusing NaN/Inf.
std::vector<float> task_vector(std::vector<float> model, const std::vector<float>& base, const std::string& label,
                               const std::string& tensor) {
  for (size_t i = 0; i < model.size(); ++i) {
    model[i] -= base[i];
    if (!std::isfinite(model[i])) throw Error(label + ": tensor " + tensor + " holds NaN or Inf");
  }
  return model;
}

double sum_squares(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return s;
}

// Unscaled merged task vectors between OPCM's two passes: raw f32, one tensor after the
// other, in a hidden file beside the output that is removed whatever happens.
class ScratchFile {
 public:
  // Beside the output folder, never inside it: "out/" (a trailing slash) names the same
  // folder, whose hidden scratch file would otherwise land in a folder not yet created.
  explicit ScratchFile(std::string out) {
    while (out.size() > 1 && out.back() == '/') out.pop_back();
    path_ = temporary_path_for(out) + ".opcm-scratch";
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) fail_file(path_, std::string("cannot create scratch file: ") + std::strerror(errno));
  }
  ~ScratchFile() {
    ::close(fd_);
    ::unlink(path_.c_str());
  }
  uint64_t write(const std::vector<float>& v) {
    const uint64_t at = size_;
    pwrite_all(fd_, v.data(), v.size() * sizeof(float), at, path_);
    size_ += v.size() * sizeof(float);
    return at;
  }
  std::vector<float> read(uint64_t at, size_t n) const {
    std::vector<float> v(n);
    auto* p = reinterpret_cast<char*>(v.data());
    size_t left = n * sizeof(float);
    uint64_t off = at;
    while (left > 0) {
      const ssize_t r = ::pread(fd_, p, left, static_cast<off_t>(off));
      if (r <= 0) fail_file(path_, "cannot read back the scratch file");
      p += r;
      off += static_cast<uint64_t>(r);
      left -= static_cast<size_t>(r);
    }
    return v;
  }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace

std::string method_name(MergeMethod m) {
  switch (m) {
    case MergeMethod::Opcm: return "opcm";
    case MergeMethod::Average: return "average";
    case MergeMethod::TaskArithmetic: return "task-arithmetic";
    case MergeMethod::ContinualTies: return "continual-ties";
  }
  return "opcm";
}

ContinualReport merge_continual(const std::string& base_path, const std::vector<std::string>& model_paths,
                                const std::string& state_dir, const std::string& out, const ContinualOptions& options,
                                const ContinualProgress& progress) {
  const std::string method = method_name(options.method);
  const bool average = options.method == MergeMethod::Average;
  if (model_paths.empty()) throw Error("merge " + method + ": no model to add (--add MODEL ...)");
  if (!(options.alpha >= 0 && options.alpha <= 1)) throw Error("merge opcm: --alpha must lie in [0, 1]");
  if (!(options.density > 0 && options.density <= 1))
    throw Error("merge continual-ties: --density must lie in (0, 1] (a fraction: 0.2 keeps 20%)");
  if (options.scale && !std::isfinite(*options.scale)) throw Error("merge " + method + ": --scale must be a finite number");
  if (base_path.empty() && !average) throw Error("merge " + method + ": --base is required");
  // Each model's weight: --weight, else --scale, else the method's default. A negative
  // scale (task negation) is a legitimate choice; NaN and infinity are not.
  const double scale = options.scale.value_or(options.method == MergeMethod::ContinualTies ? 0.5 : 0.3);
  std::vector<double> weights = options.weights;
  if (!weights.empty() && weights.size() != model_paths.size())
    throw Error("merge " + method + ": give one --weight per --add model (" + std::to_string(model_paths.size()) + ")");
  if (!weights.empty() && options.method != MergeMethod::TaskArithmetic && !average)
    throw Error("merge " + method + ": per-model weights are not defined for this method");
  for (double w : weights) {
    if (!std::isfinite(w)) throw Error("merge " + method + ": --weight must be finite numbers");
    if (average && !(w > 0)) throw Error("merge average: --weight must be positive (weights of a mean)");
  }
  if (weights.empty() && options.method != MergeMethod::Opcm) weights.assign(model_paths.size(), average ? 1.0 : scale);

  // Average needs no base; its models are then checked against the first one (or the state).
  const std::string reference_path = !base_path.empty() ? base_path : !state_dir.empty() ? state_dir : model_paths[0];
  const Checkpoint base = Checkpoint::open(reference_path);
  const std::string fingerprint = base_path.empty() ? "" : checkpoint_fingerprint(base);
  MergeState state;
  std::optional<Checkpoint> previous;
  std::error_code ec;
  if (!state_dir.empty()) {
    state = read_merge_state(state_dir);
    if (state.method != method)
      fail_file(state_dir, "holds a " + state.method + " merge; continue it with `modelpress merge " + state.method + "`");
    if (!fingerprint.empty() && !state.base_fingerprint.empty() && state.base_fingerprint != fingerprint)
      fail_file(state_dir, "was merged from a different base (fingerprint " + state.base_fingerprint + ", " + base_path +
                               " has " + fingerprint + "); pass the base the merge started from");
    previous.emplace(Checkpoint::open(state_dir));
    check_compatible(base, reference_path, *previous, state_dir);
    if (fs::exists(out, ec) && fs::equivalent(out, state_dir, ec))
      fail_file(out, "is the state folder being continued; write the continued merge to a new folder");
  } else {
    state.method = method;
    state.base_path = base_path;
    state.base_fingerprint = fingerprint;
  }

  // --shuffle permutes the models, and their weights with them.
  std::vector<size_t> perm(model_paths.size());
  for (size_t i = 0; i < perm.size(); ++i) perm[i] = i;
  if (options.shuffle) {
    uint64_t x = options.seed;
    for (size_t i = perm.size(); i > 1; --i) std::swap(perm[i - 1], perm[splitmix(x) % i]);
  }
  std::vector<std::string> order;
  std::vector<double> ordered_weights;
  for (size_t i : perm) {
    order.push_back(model_paths[i]);
    if (!weights.empty()) ordered_weights.push_back(weights[i]);
  }
  weights = ordered_weights;
  std::vector<Checkpoint> models;
  std::vector<std::string> fingerprints;
  models.reserve(order.size());
  for (const auto& p : order) {
    models.push_back(Checkpoint::open(p));
    check_compatible(base, reference_path, models.back(), p);
    if (fs::exists(out, ec) && fs::equivalent(out, p, ec)) fail_file(out, "is an input model; write the merge elsewhere");
    fingerprints.push_back(checkpoint_fingerprint(models.back()));
    if (options.allow_repeat) continue;
    // Merging the same model twice weighs it double; almost always a mistake in a script.
    for (size_t i = 0; i < state.models.size(); ++i)
      if (state.model_fingerprints[i] == fingerprints.back())
        fail_file(p, "is already in the merge at " + state_dir + " (as " + state.models[i] +
                         "); pass --allow-repeat to merge it again");
    for (size_t i = 0; i + 1 < fingerprints.size(); ++i)
      if (fingerprints[i] == fingerprints.back())
        fail_file(p, "is given twice (same fingerprint as " + order[i] + "); pass --allow-repeat to merge it twice");
  }

  ContinualReport report;
  report.method = method;
  report.added = order;
  report.task_vector_norms.assign(order.size(), 0.0);
  const size_t merged_before = state.models.size();
  const bool opcm = options.method == MergeMethod::Opcm;
  double previous_weight = 0;  // average: the weight already in the state's mean
  for (double w : state.weights) previous_weight += w;
  const auto& tensors = base.tensors();
  const size_t total = tensors.size() * (opcm ? 2 : 1);
  report.tensors = tensors.size();

  CheckpointWriterOptions wo;
  wo.max_shard_bytes = options.max_shard_bytes;
  wo.overwrite = options.overwrite;
  wo.expected_tensors = tensors.size();
  CheckpointWriter writer(out, &base, wo);

  std::unique_ptr<ScratchFile> scratch;
  if (opcm) scratch = std::make_unique<ScratchFile>(out);
  std::vector<uint64_t> scratch_at(tensors.size(), 0);
  std::vector<double> norm2(order.size(), 0.0);
  double merged_norm2 = 0;

  for (size_t ti = 0; ti < tensors.size(); ++ti) {
    const CheckpointTensor& t = tensors[ti];
    if (progress) progress(ti, total, t.name);
    if (!dtype_is_float(t.dtype)) {
      // Integer buffers (position ids, masks) are not weights: the base's, unchanged.
      if (!opcm) writer.append(t.name, base.read(t));
      continue;
    }
    const std::vector<float> b = base.read(t).to_f32();
    // Checked here so that a non-finite base is named as such, not blamed on every task model.
    for (float v : b)
      if (!std::isfinite(v))
        throw Error(reference_path + ": tensor " + t.name + (base_path.empty() ? "" : " of the base") + " holds NaN or Inf");
    std::vector<float> cur;  // running merged tensor (continual TIES) or S_t (OPCM)
    bool have = false;
    if (previous) {
      cur = read_f32(*previous, t);
      if (opcm) {
        // S_{t-1} = lambda_{t-1} (merged - base): the unscaled sum the state's merged model came from.
        for (size_t i = 0; i < cur.size(); ++i) cur[i] = static_cast<float>(state.lambda * (cur[i] - b[i]));
      }
      have = true;
    } else if (options.method == MergeMethod::ContinualTies) {
      cur = b;  // continual TIES starts from the base
      have = true;
    }
    // Task arithmetic and averaging sum this run's models in double and round once.
    std::vector<double> acc;
    if (options.method == MergeMethod::TaskArithmetic) acc.assign(b.size(), 0.0);
    if (average) {
      acc.assign(b.size(), 0.0);
      if (previous)
        for (size_t i = 0; i < acc.size(); ++i) acc[i] = previous_weight * cur[i];
    }
    const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 0, cols = t.shape.size() == 2 ? t.shape[1] : 0;
    for (size_t j = 0; j < models.size(); ++j) {
      std::vector<float> x = read_f32(models[j], t);
      if (average) {
        // The mean needs the model's values, not a task vector; the norm is against the reference.
        double d2 = 0;
        for (size_t i = 0; i < x.size(); ++i) {
          if (!std::isfinite(x[i])) throw Error(order[j] + ": tensor " + t.name + " holds NaN or Inf");
          d2 += static_cast<double>(x[i] - b[i]) * (x[i] - b[i]);
          acc[i] += weights[j] * x[i];
        }
        norm2[j] += d2;
        continue;
      }
      std::vector<float> tau = task_vector(std::move(x), b, order[j], t.name);
      norm2[j] += sum_squares(tau);
      const size_t count = merged_before + j;  // models merged before this one
      switch (options.method) {
        case MergeMethod::Opcm:
          if (!have) {
            cur = std::move(tau);  // the first model is the merge: S_1 = tau_1, lambda_1 = 1
            have = true;
          } else if (projected(t)) {
            const auto start = std::chrono::steady_clock::now();
            const Svd svd = svd_thin(cur, rows, cols, t.name);
            report.svd_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const std::vector<float> cleaned = opcm_project(svd, split_rank(svd.s, options.alpha), tau);
            for (size_t i = 0; i < cur.size(); ++i) cur[i] += cleaned[i];
          } else {
            for (size_t i = 0; i < cur.size(); ++i) cur[i] += tau[i];
          }
          break;
        case MergeMethod::TaskArithmetic:
          for (size_t i = 0; i < acc.size(); ++i) acc[i] += weights[j] * tau[i];
          break;
        case MergeMethod::ContinualTies: {
          // fusion_bench's continual TIES: the first task vector as is, later ones TIES-merged
          // with the merged task vector; the result, scaled, is added to the merged model.
          std::vector<float> tv = std::move(tau);
          if (count > 0) {
            std::vector<float> merged_tv(cur.size());
            for (size_t i = 0; i < cur.size(); ++i) merged_tv[i] = cur[i] - b[i];
            tv = ties_merge(merged_tv, tv, options.density);
          }
          for (size_t i = 0; i < cur.size(); ++i) cur[i] += static_cast<float>(weights[j]) * tv[i];
          break;
        }
        case MergeMethod::Average: break;
      }
    }
    if (options.method == MergeMethod::TaskArithmetic) {
      const std::vector<float>& start = previous ? cur : b;
      std::vector<float> merged(acc.size());
      for (size_t i = 0; i < acc.size(); ++i) merged[i] = static_cast<float>(start[i] + acc[i]);
      cur = std::move(merged);
    } else if (average) {
      double wsum = previous_weight;
      for (double w : weights) wsum += w;
      cur.resize(acc.size());
      for (size_t i = 0; i < acc.size(); ++i) cur[i] = static_cast<float>(acc[i] / wsum);
    }
    if (opcm) {
      if (projected(t)) ++report.projected;
      merged_norm2 += sum_squares(cur);
      scratch_at[ti] = scratch->write(cur);
    } else {
      double d2 = 0;
      for (size_t i = 0; i < cur.size(); ++i) d2 += static_cast<double>(cur[i] - b[i]) * (cur[i] - b[i]);
      merged_norm2 += d2;
      writer.append(t.name, Tensor::from_f32(cur, t.dtype, t.shape));
    }
  }

  for (size_t j = 0; j < order.size(); ++j) report.task_vector_norms[j] = std::sqrt(norm2[j]);
  state.models.insert(state.models.end(), order.begin(), order.end());
  state.model_fingerprints.insert(state.model_fingerprints.end(), fingerprints.begin(), fingerprints.end());
  state.weights.insert(state.weights.end(), weights.begin(), weights.end());
  report.models_total = state.models.size();
  if (opcm) {
    state.task_vector_norms.insert(state.task_vector_norms.end(), report.task_vector_norms.begin(),
                                   report.task_vector_norms.end());
    double sum = 0;
    for (double v : state.task_vector_norms) sum += v;
    const double mean = sum / static_cast<double>(state.task_vector_norms.size());
    const double s_norm = std::sqrt(merged_norm2);
    // Adaptive scaling: ||S_t / lambda_t|| = mean task-vector norm. A zero S (every task
    // model equal to the base) or zero mean leaves lambda at 1 rather than 0/0.
    const double lambda = (s_norm > 0 && mean > 0) ? s_norm / mean : 1.0;
    state.lambda = lambda;
    state.alpha = options.alpha;
    report.lambda = lambda;
    report.mean_norm = mean;
    report.merged_norm = s_norm / lambda;
    for (size_t ti = 0; ti < tensors.size(); ++ti) {
      const CheckpointTensor& t = tensors[ti];
      if (progress) progress(tensors.size() + ti, total, t.name);
      if (!dtype_is_float(t.dtype)) {
        writer.append(t.name, base.read(t));
        continue;
      }
      std::vector<float> v = base.read(t).to_f32();
      const std::vector<float> s = scratch->read(scratch_at[ti], v.size());
      for (size_t i = 0; i < v.size(); ++i) v[i] += static_cast<float>(s[i] / lambda);
      writer.append(t.name, Tensor::from_f32(v, t.dtype, t.shape));
    }
  } else {
    report.merged_norm = std::sqrt(merged_norm2);
    if (options.method == MergeMethod::ContinualTies) state.density = options.density;
  }
  report.state = state;
  writer.add_text_file(kStateFile, state_to_json(state).dump(2) + "\n");
  writer.finish();
  return report;
}

}  // namespace modelpress::merge
