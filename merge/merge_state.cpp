#include "merge/merge_state.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "io/checkpoint.h"
#include "io/error.h"

namespace modelpress::merge {
namespace {

// FNV-1a, 64-bit: simple, stable across machines and builds, and fast enough for the few
// kilobytes per tensor the fingerprint hashes.
struct Fnv {
  uint64_t h = 1469598103934665603ull;
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  void add(const std::string& s) {
    add(s.data(), s.size());
    add("\0", 1);  // separates consecutive fields
  }
};

}  // namespace

nlohmann::ordered_json state_to_json(const MergeState& s) {
  nlohmann::ordered_json j;
  j["format"] = "modelpress-merge-state";
  j["version"] = 2;
  j["method"] = s.method;
  j["base"] = {{"path", s.base_path}, {"fingerprint", s.base_fingerprint}};
  j["models"] = s.models;
  j["model_fingerprints"] = s.model_fingerprints;
  j["count"] = s.models.size();
  if (s.method == "opcm") {
    double sum = 0;
    for (double v : s.task_vector_norms) sum += v;
    j["task_vector_norms"] = s.task_vector_norms;
    j["task_vector_norm_sum"] = sum;
    j["lambda"] = s.lambda;
    j["alpha"] = s.alpha;
  }
  if (s.method != "opcm") j["weights"] = s.weights;
  if (s.method == "continual-ties") j["density"] = s.density;
  return j;
}

MergeState read_merge_state(const std::string& dir) {
  const std::string path = (std::filesystem::path(dir) / kStateFile).string();
  std::ifstream f(path);
  if (!f) fail_file(dir, std::string("is not a merge state folder (no ") + kStateFile + "; pass a previous merge's output folder)");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    fail_file(path, std::string("is not valid JSON: ") + e.what());
  }
  try {
    if (j.value("format", "") != "modelpress-merge-state") fail_file(path, "is not a modelpress merge state");
    const int version = j.value("version", 0);
    if (version != 1 && version != 2) fail_file(path, "has an unsupported version");
    MergeState s;
    s.method = j.at("method").get<std::string>();
    if (version == 1 && s.method == "ties") s.method = "continual-ties";
    s.base_path = j.at("base").at("path").get<std::string>();
    s.base_fingerprint = j.at("base").at("fingerprint").get<std::string>();
    s.models = j.at("models").get<std::vector<std::string>>();
    if (s.models.empty()) fail_file(path, "lists no merged models");
    if (s.method == "opcm") {
      s.task_vector_norms = j.at("task_vector_norms").get<std::vector<double>>();
      s.lambda = j.at("lambda").get<double>();
      s.alpha = j.value("alpha", 0.5);
      if (s.task_vector_norms.size() != s.models.size() || !(s.lambda > 0))
        fail_file(path, "has inconsistent OPCM scalars (task_vector_norms must list one norm per model, lambda > 0)");
    }
    if (version == 1) {
      s.model_fingerprints.assign(s.models.size(), "");
      if (s.method != "opcm") s.weights.assign(s.models.size(), s.method == "average" ? 1.0 : j.value("scale", 0.0));
      s.density = j.value("top_k", 0.0);
    } else {
      s.model_fingerprints = j.at("model_fingerprints").get<std::vector<std::string>>();
      if (s.method != "opcm") s.weights = j.at("weights").get<std::vector<double>>();
      s.density = j.value("density", 0.0);
    }
    if (s.model_fingerprints.size() != s.models.size() || (s.method != "opcm" && s.weights.size() != s.models.size()))
      fail_file(path, "must list one fingerprint and one weight per merged model");
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail_file(path, std::string("is missing a field or has one of the wrong type: ") + e.what());
  }
}

std::string checkpoint_fingerprint(const Checkpoint& ck) {
  Fnv fnv;
  for (const auto& t : ck.tensors()) {
    fnv.add(t.name);
    fnv.add(std::string(dtype_name(t.dtype)));
    fnv.add(shape_to_string(t.shape));
    const Tensor v = ck.read(t);
    const size_t n = v.nbytes();
    constexpr size_t kSample = 64, kSamples = 16;
    if (n <= 4096) {
      fnv.add(v.data(), n);
    } else {
      for (size_t i = 0; i < kSamples; ++i) fnv.add(v.data() + (n - kSample) * i / (kSamples - 1), kSample);
    }
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv.h));
  return buf;
}

}  // namespace modelpress::merge
