#include "merge/ewa.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <unordered_map>

#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"

namespace modelpress::merge {
namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// The naming rules, in one place (docs/MERGING.md, "Expert naming").
//   per-expert: <prefix>.experts.<E>.<proj>.<weight|bias>   E = 0, 1, ... or expert_0, ...
//   fused:      <prefix>.experts.<gate_up_proj|down_proj>   (E, ...) expert dim first
const std::regex& per_expert_re() {
  static const std::regex re(R"(^(.*)\.experts\.(expert_)?(\d+)\.(\w+)\.(weight|bias)$)");
  return re;
}
const std::regex& fused_re() {
  static const std::regex re(R"(^(.*)\.experts\.(gate_up_proj|down_proj)(_bias)?$)");
  return re;
}
// Dense FFN weights outside MoE blocks (DeepSeek's first_k_dense_replace layers, Qwen2-MoE's
// mlp_only_layers, Switch's dense layers): padded when the collapsed width is larger.
const std::regex& dense_ffn_re() {
  static const std::regex re(R"(^(.*)\.(gate_proj|up_proj|down_proj|wi|wo)\.weight$)");
  return re;
}
const char* kLookedFor =
    "looked for per-expert tensors <prefix>.experts.<E>.<proj>.weight (Mixtral block_sparse_moe.experts.E.w1/w2/w3; "
    "Qwen2/3-MoE, DeepSeek, OLMoE mlp.experts.E.gate_proj/up_proj/down_proj; Switch mlp.experts.expert_J.wi/wo) "
    "and fused 3-D mlp.experts.gate_up_proj / mlp.experts.down_proj";

// Dense name of an expert projection: Mixtral's w1 (gate), w3 (up), w2 (down) take the
// Mistral names; the others keep theirs.
std::string dense_proj(const std::string& proj) {
  if (proj == "w1") return "gate_proj";
  if (proj == "w3") return "up_proj";
  if (proj == "w2") return "down_proj";
  return proj;
}
// Projections whose output (rows) is the intermediate dimension; the others (down, wo) take
// it as input (columns).
bool is_in_proj(const std::string& dense) { return dense == "gate_proj" || dense == "up_proj" || dense == "wi"; }

int64_t config_expert_count(const nlohmann::json& cfg) {
  if (!cfg.is_object()) return -1;
  for (const char* key : {"num_local_experts", "num_experts", "n_routed_experts"})
    if (cfg.contains(key) && cfg[key].is_number_integer()) return cfg[key].get<int64_t>();
  return -1;
}

std::string model_type(const Checkpoint& ck) {
  return ck.config().is_object() ? ck.config().value("model_type", std::string()) : std::string();
}

// A row-major matrix in f32 with its shape.
struct Mat {
  int64_t rows = 0, cols = 0;
  std::vector<float> v;
};

Mat rows_of(const Mat& a, int64_t begin, int64_t end) {
  Mat r{end - begin, a.cols, {}};
  r.v.assign(a.v.begin() + begin * a.cols, a.v.begin() + end * a.cols);
  return r;
}
Mat stack_rows(const Mat& a, const Mat& b) {
  Mat r{a.rows + b.rows, a.cols, a.v};
  r.v.insert(r.v.end(), b.v.begin(), b.v.end());
  return r;
}
Mat stack_cols(const Mat& a, const Mat& b, float scale_b) {
  Mat r{a.rows, a.cols + b.cols, {}};
  r.v.reserve(static_cast<size_t>(r.rows * r.cols));
  for (int64_t i = 0; i < a.rows; ++i) {
    r.v.insert(r.v.end(), a.v.begin() + i * a.cols, a.v.begin() + (i + 1) * a.cols);
    for (int64_t j = 0; j < b.cols; ++j) r.v.push_back(scale_b * b.v[i * b.cols + j]);
  }
  return r;
}
// Zero rows (in-projections) or columns (out-projections) up to `width`: a unit whose gate,
// up and down weights are all zero adds act(0) * 0 * 0 = 0, so padding changes nothing.
Mat pad_to(const Mat& a, int64_t width, bool in_proj) {
  if (in_proj) {
    if (a.rows >= width) return a;
    Mat r{width, a.cols, a.v};
    r.v.resize(static_cast<size_t>(width * a.cols), 0.0f);
    return r;
  }
  if (a.cols >= width) return a;
  return stack_cols(a, Mat{a.rows, width - a.cols, std::vector<float>(static_cast<size_t>(a.rows * (width - a.cols)), 0.0f)},
                    1.0f);
}

// How the config and names change for each model_type when the MoE collapses.
enum class Target { Dense, DeepseekDense, SingleExpert, SwitchDense };
struct Family {
  Target target;
  std::string type_out;         // model_type afterwards
  std::string arch_from, arch_to;  // substring replaced in "architectures"
  std::vector<const char*> drop;   // config keys that only MoE models have
  const char* width_key = "intermediate_size";
};
std::optional<Family> family_for(const std::string& type) {
  if (type == "mixtral")
    return Family{Target::Dense, "mistral", "Mixtral", "Mistral",
                  {"num_local_experts", "num_experts_per_tok", "router_aux_loss_coef", "output_router_logits",
                   "router_jitter_noise"}};
  if (type == "qwen2_moe" || type == "qwen3_moe") {
    const bool q3 = type == "qwen3_moe";
    return Family{Target::Dense, q3 ? "qwen3" : "qwen2", q3 ? "Qwen3Moe" : "Qwen2Moe", q3 ? "Qwen3" : "Qwen2",
                  {"num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
                   "decoder_sparse_step", "mlp_only_layers", "norm_topk_prob", "output_router_logits",
                   "router_aux_loss_coef"}};
  }
  if (type == "deepseek_v2" || type == "deepseek_v3") return Family{Target::DeepseekDense, type, "", "", {}};
  if (type == "olmoe") return Family{Target::SingleExpert, type, "", "", {}};
  if (type == "switch_transformers")
    return Family{Target::SwitchDense, type, "", "", {"encoder_sparse_step", "decoder_sparse_step"}, "d_ff"};
  return std::nullopt;
}

class Reader {
 public:
  explicit Reader(const Checkpoint& ck) : ck_(ck) {}
  const CheckpointTensor& info(const std::string& name) const {
    const CheckpointTensor* t = ck_.find(name);
    if (!t) throw Error("ewa: tensor " + name + " vanished");
    return *t;
  }
  std::vector<float> f32(const std::string& name) const { return ck_.read(info(name)).to_f32(); }
  Mat mat(const std::string& name) const {
    const auto& t = info(name);
    if (t.shape.size() != 2) throw Error(ck_.folder() + ": tensor " + name + " is not 2-D");
    return Mat{t.shape[0], t.shape[1], f32(name)};
  }

 private:
  const Checkpoint& ck_;
};

// The dense FFN of one block: name suffix ("gate_proj") -> matrix, plus averaged biases.
struct DenseFfn {
  std::map<std::string, Mat> weights;
  std::map<std::string, std::vector<float>> biases;
  int64_t width = 0;
};

DenseFfn collapse_block(const MoeBlock& b, const Reader& rd, const std::string& label, bool gated_shared) {
  DenseFfn ffn;
  const size_t e = static_cast<size_t>(b.experts);
  if (b.fused) {
    // transformers v5: gate_up_proj (E, 2I, H) = [gate; up] along dim 1; down_proj (E, H, I).
    const auto& gu = rd.info(b.projections.at("gate_up_proj").at("weight")[0]);
    const auto& dn = rd.info(b.projections.at("down_proj").at("weight")[0]);
    const int64_t two_i = gu.shape[1], h = gu.shape[2];
    if (two_i % 2 != 0 || dn.shape[1] != h || dn.shape[2] != two_i / 2)
      throw Error(label + ": fused experts " + gu.name + " " + shape_to_string(gu.shape) + " and " + dn.name + " " +
                  shape_to_string(dn.shape) + " are not the (E, 2I, H) / (E, H, I) layout of transformers v5");
    auto mean_over_experts = [&](const std::string& name, int64_t per) {
      const std::vector<float> all = rd.f32(name);
      return mean_of(e, [&](size_t i) {
        return std::vector<float>(all.begin() + static_cast<int64_t>(i) * per, all.begin() + static_cast<int64_t>(i + 1) * per);
      });
    };
    Mat gate_up{two_i, h, mean_over_experts(gu.name, two_i * h)};
    ffn.weights["gate_proj"] = rows_of(gate_up, 0, two_i / 2);
    ffn.weights["up_proj"] = rows_of(gate_up, two_i / 2, two_i);
    ffn.weights["down_proj"] = Mat{h, two_i / 2, mean_over_experts(dn.name, h * two_i / 2)};
  } else {
    for (const auto& [proj, params] : b.projections) {
      const std::string dense = dense_proj(proj);
      for (const auto& [param, names] : params) {
        std::vector<float> avg = mean_of(e, [&](size_t i) { return rd.f32(names[i]); });
        const auto& t0 = rd.info(names[0]);
        if (param == "weight") {
          if (t0.shape.size() != 2) throw Error(label + ": expert tensor " + t0.name + " is not 2-D");
          ffn.weights[dense] = Mat{t0.shape[0], t0.shape[1], std::move(avg)};
        } else {
          ffn.biases[dense] = std::move(avg);
        }
      }
    }
  }
  // Shared experts: widened into the same FFN (exact when ungated). Qwen2-MoE's shared
  // expert sits behind a per-token sigmoid gate that no dense FFN can express; it is kept at
  // the gate's value for a zero logit, sigmoid(0) = 1/2 (docs/MERGING.md says why).
  if (!b.shared.empty()) {
    const float c = gated_shared ? 0.5f : 1.0f;
    for (const auto& name : b.shared) {
      const std::string stem = name.substr(0, name.size() - 7);  // strip ".weight"
      const std::string dense = stem.substr(stem.rfind('.') + 1);
      auto it = ffn.weights.find(dense);
      if (it == ffn.weights.end() || !ffn.biases.empty())
        throw Error(label + ": shared expert tensor " + name + " has no matching expert projection (or the experts have biases)");
      const Mat s = rd.mat(name);
      if (is_in_proj(dense)) {
        if (s.cols != it->second.cols) throw Error(label + ": shared expert tensor " + name + " has the wrong input size");
        it->second = stack_rows(it->second, s);
      } else {
        if (s.rows != it->second.rows) throw Error(label + ": shared expert tensor " + name + " has the wrong output size");
        it->second = stack_cols(it->second, s, c);
      }
    }
  }
  for (const auto& [dense, m] : ffn.weights) ffn.width = std::max(ffn.width, is_in_proj(dense) ? m.rows : m.cols);
  return ffn;
}

}  // namespace

std::vector<float> mean_of(size_t n, const std::function<std::vector<float>(size_t)>& get) {
  std::vector<double> acc;
  for (size_t i = 0; i < n; ++i) {
    const std::vector<float> v = get(i);
    if (i == 0) acc.assign(v.size(), 0.0);
    if (v.size() != acc.size()) throw Error("ewa: experts of different sizes");
    for (size_t j = 0; j < v.size(); ++j) acc[j] += v[j];
  }
  std::vector<float> out(acc.size());
  for (size_t j = 0; j < acc.size(); ++j) out[j] = static_cast<float>(acc[j] / static_cast<double>(n));
  return out;
}

ExpertScan find_experts(const Checkpoint& ck, const std::string& label) {
  std::map<std::string, MoeBlock> blocks;
  std::map<std::string, std::map<std::string, std::map<std::string, std::map<int64_t, std::string>>>> found;
  std::smatch m;
  for (const auto& t : ck.tensors()) {
    if (std::regex_match(t.name, m, per_expert_re())) {
      auto& slot = found[m[1]][m[4]][m[5]];
      slot[std::stoll(m[3])] = t.name;
    } else if (std::regex_match(t.name, m, fused_re())) {
      if (m[3].matched)
        throw Error(label + ": fused expert bias " + t.name + " (gpt-oss layout) has no dense counterpart; not supported");
      if (t.shape.size() != 3) throw Error(label + ": fused expert tensor " + t.name + " is not 3-D (experts first)");
      MoeBlock& b = blocks[m[1]];
      b.fused = true;
      b.projections[m[2]]["weight"] = {t.name};
      if (b.experts && b.experts != t.shape[0])
        throw Error(label + ": fused expert tensor " + t.name + " holds " + std::to_string(t.shape[0]) + " experts, not " +
                    std::to_string(b.experts));
      b.experts = t.shape[0];
    }
  }
  for (auto& [prefix, projs] : found) {
    MoeBlock& b = blocks[prefix];
    if (b.fused) throw Error(label + ": " + prefix + " holds both per-expert and fused expert tensors");
    // E = the highest expert index + 1 over every projection, so that an expert missing from
    // the first projection (in name order) is reported too, not silently dropped.
    int64_t count = 0;
    for (const auto& [proj, params] : projs)
      for (const auto& [param, by_index] : params) count = std::max(count, by_index.rbegin()->first + 1);
    for (auto& [proj, params] : projs) {
      for (auto& [param, by_index] : params) {
        if (static_cast<int64_t>(by_index.size()) != count) {
          for (int64_t i = 0; i < count; ++i)
            if (!by_index.count(i))
              throw Error(label + ": expert " + std::to_string(i) + " of " + prefix + " has no " + proj + "." + param +
                          " (experts must be numbered 0..E-1 with the same projections)");
        }
        std::vector<std::string> names;
        const CheckpointTensor* first = ck.find(by_index.begin()->second);
        for (auto& [i, name] : by_index) {
          const CheckpointTensor* t = ck.find(name);
          if (t->shape != first->shape || t->dtype != first->dtype)
            throw Error(label + ": expert tensor " + name + " is " + std::string(dtype_name(t->dtype)) + " " +
                        shape_to_string(t->shape) + " but " + first->name + " is " + std::string(dtype_name(first->dtype)) +
                        " " + shape_to_string(first->shape));
          names.push_back(name);
        }
        b.projections[proj][param] = std::move(names);
      }
    }
    b.experts = count;
  }
  if (blocks.empty()) throw Error(label + ": no experts found; " + kLookedFor);

  ExpertScan scan;
  const int64_t configured = config_expert_count(ck.config());
  for (auto& [prefix, b] : blocks) {
    b.prefix = prefix;
    b.dense_prefix = ends_with(prefix, ".block_sparse_moe") ? prefix.substr(0, prefix.size() - 17) + ".mlp" : prefix;
    if (configured > 0 && configured != b.experts)
      throw Error(label + ": " + prefix + " has " + std::to_string(b.experts) + " experts but config.json says " +
                  std::to_string(configured));
    std::string family = b.fused ? "fused" : "";
    if (!b.fused) {
      std::set<std::string> projs;
      for (const auto& [p, _] : b.projections) projs.insert(p);
      if (projs == std::set<std::string>{"w1", "w2", "w3"}) family = "mixtral";
      else if (projs == std::set<std::string>{"gate_proj", "up_proj", "down_proj"}) family = "qwen";
      else if (projs == std::set<std::string>{"wi", "wo"}) family = "switch";
      else {
        std::string list;
        for (const auto& p : projs) list += (list.empty() ? "" : ", ") + p;
        throw Error(label + ": experts of " + prefix + " have projections {" + list +
                    "}; known sets are {w1, w2, w3}, {gate_proj, up_proj, down_proj}, {wi, wo}");
      }
    }
    if (!scan.family.empty() && scan.family != family)
      throw Error(label + ": MoE layers of different layouts (" + scan.family + " and " + family + ")");
    scan.family = family;
    // Everything else under the block: routers, shared experts and their gate.
    for (const auto& t : ck.tensors()) {
      if (!starts_with(t.name, prefix + ".") || starts_with(t.name, prefix + ".experts.")) continue;
      const std::string rest = t.name.substr(prefix.size() + 1);
      if (starts_with(rest, "gate.") || starts_with(rest, "router.")) b.routers.push_back(t.name);
      else if (rest == "shared_expert_gate.weight") b.shared_gate = t.name;
      else if ((starts_with(rest, "shared_expert.") || starts_with(rest, "shared_experts.")) && ends_with(rest, ".weight"))
        b.shared.push_back(t.name);
      else
        throw Error(label + ": tensor " + t.name + " in MoE block " + prefix +
                    " is not an expert, router or shared expert; not supported");
    }
    scan.blocks.push_back(std::move(b));
  }
  return scan;
}

EwaReport ewa_checkpoint(const Checkpoint& in, const std::string& out, const EwaOptions& options,
                         const EwaProgress& progress) {
  const std::string label = in.folder().empty() ? std::string("input") : in.folder();
  const bool share = options.share_rate >= 0;
  if (share && !(options.share_rate <= 1)) throw Error("merge ewa: --share-rate must lie in [0, 1]");
  const ExpertScan scan = find_experts(in, label);
  const Reader rd(in);
  EwaReport report;
  report.family = scan.family;
  report.moe_layers = scan.blocks.size();
  report.experts = static_cast<size_t>(scan.blocks.front().experts);
  report.architecture_in = in.architecture();
  report.tensors_in = in.tensors().size();
  const std::string type = model_type(in);

  // Which block each tensor belongs to, and the first tensor of each block in file order
  // (where its dense FFN is written).
  std::unordered_map<std::string, size_t> owner;
  for (size_t bi = 0; bi < scan.blocks.size(); ++bi) {
    const MoeBlock& b = scan.blocks[bi];
    for (const auto& [p, params] : b.projections)
      for (const auto& [q, names] : params)
        for (const auto& n : names) owner[n] = bi;
    for (const auto& n : b.routers) owner[n] = bi;
    for (const auto& n : b.shared) owner[n] = bi;
    if (!b.shared_gate.empty()) owner[b.shared_gate] = bi;
  }

  CheckpointWriterOptions wo;
  wo.max_shard_bytes = options.max_shard_bytes;
  wo.overwrite = options.overwrite;
  wo.expected_tensors = in.tensors().size();
  std::optional<Family> fam;
  int64_t width = 0;
  if (!share) {
    fam = family_for(type);
    if (!fam)
      throw Error(label + ": collapsing to a dense model needs a known architecture (config.json model_type mixtral, "
                          "qwen2_moe, qwen3_moe, deepseek_v2, deepseek_v3, olmoe or switch_transformers; this one is '" +
                  type + "'); --share-rate keeps the MoE and works for any of them");
    // The dense width: every collapsed FFN (plus its shared expert) and every dense FFN
    // already in the model share one intermediate_size; narrower ones are zero-padded.
    for (const auto& b : scan.blocks) {
      int64_t w = 0;
      if (b.fused) w = rd.info(b.projections.at("gate_up_proj").at("weight")[0]).shape[1] / 2;
      else {
        const auto& [proj, params] = *b.projections.begin();
        const auto& t = rd.info(params.at("weight")[0]);
        w = is_in_proj(dense_proj(proj)) ? t.shape[0] : t.shape[1];
      }
      for (const auto& n : b.shared) {
        const std::string stem = n.substr(0, n.size() - 7), dense = stem.substr(stem.rfind('.') + 1);
        if (dense == "up_proj" || dense == "wi") w += rd.info(n).shape[0];
      }
      width = std::max(width, w);
    }
    for (const auto& t : in.tensors()) {
      std::smatch m;
      if (owner.count(t.name) || !std::regex_match(t.name, m, dense_ffn_re()) || t.shape.size() != 2) continue;
      width = std::max(width, is_in_proj(m[2]) ? t.shape[0] : t.shape[1]);
    }
    report.intermediate_size = width;
  }

  CheckpointWriter writer(out, &in, wo);
  std::vector<bool> written(scan.blocks.size(), false);
  const size_t total = in.tensors().size();
  // Share-rate mode: the means of the current block's projections, each computed once for
  // its E experts. Checkpoints interleave projections (experts.0.w1, experts.0.w2, ...), so
  // one cached mean would be recomputed for every expert tensor (E times the reads); the
  // cache holds one mean per projection of one block and is dropped when the block changes.
  std::string mean_block;
  std::map<std::string, std::vector<float>> means;
  for (size_t i = 0; i < total; ++i) {
    const CheckpointTensor& t = in.tensors()[i];
    if (progress) progress(i, total, t.name);
    auto own = owner.find(t.name);
    if (own == owner.end()) {
      std::smatch m;
      if (!share && std::regex_match(t.name, m, dense_ffn_re()) && t.shape.size() == 2 &&
          (is_in_proj(m[2]) ? t.shape[0] : t.shape[1]) < width) {
        const Mat padded = pad_to(rd.mat(t.name), width, is_in_proj(m[2]));
        writer.append(t.name, Tensor::from_f32(padded.v, t.dtype, {padded.rows, padded.cols}));
        report.notes.push_back(t.name + " zero-padded to width " + std::to_string(width));
      } else {
        writer.append(t.name, in.read(t));
      }
      ++report.tensors_out;
      continue;
    }
    const MoeBlock& b = scan.blocks[own->second];
    if (share) {
      // W_i <- (1 - B) W_i + B mean_j W_j on every expert tensor; routers and shared
      // experts are not experts of the average and stay as they are.
      bool expert = false;
      for (const auto& [p, params] : b.projections)
        for (const auto& [q, names] : params) {
          const auto it = std::find(names.begin(), names.end(), t.name);
          if (it == names.end()) continue;
          expert = true;
          const double beta = options.share_rate;
          std::vector<float> w = rd.f32(t.name);
          if (b.fused) {
            const size_t per = w.size() / static_cast<size_t>(b.experts);
            const std::vector<float> avg = mean_of(static_cast<size_t>(b.experts), [&](size_t e) {
              return std::vector<float>(w.begin() + static_cast<int64_t>(e * per), w.begin() + static_cast<int64_t>((e + 1) * per));
            });
            ++report.expert_means;
            for (size_t k = 0; k < w.size(); ++k) w[k] = static_cast<float>((1 - beta) * w[k] + beta * avg[k % per]);
          } else {
            if (mean_block != b.prefix) {
              means.clear();
              mean_block = b.prefix;
            }
            const std::string key = p + "|" + q;
            auto m = means.find(key);
            if (m == means.end()) {
              m = means.emplace(key, mean_of(names.size(), [&](size_t e) { return rd.f32(names[e]); })).first;
              ++report.expert_means;
            }
            const std::vector<float>& mean = m->second;
            for (size_t k = 0; k < w.size(); ++k) w[k] = static_cast<float>((1 - beta) * w[k] + beta * mean[k]);
          }
          writer.append(t.name, Tensor::from_f32(w, t.dtype, t.shape));
        }
      if (!expert) writer.append(t.name, in.read(t));
      ++report.tensors_out;
      continue;
    }
    if (std::find(b.routers.begin(), b.routers.end(), t.name) != b.routers.end() || t.name == b.shared_gate) ++report.dropped;
    if (written[own->second]) continue;
    written[own->second] = true;
    DenseFfn ffn = collapse_block(b, rd, label, !b.shared_gate.empty());
    if (!b.shared.empty())
      report.notes.push_back(b.prefix + ": shared expert widened into the dense FFN" +
                             std::string(b.shared_gate.empty() ? " (ungated: exact)" : " at gate sigmoid(0) = 1/2"));
    const std::string& any = b.fused ? b.projections.at("gate_up_proj").at("weight")[0]
                                     : b.projections.begin()->second.at("weight")[0];
    const DType dtype = rd.info(any).dtype;
    const bool single = fam->target == Target::SingleExpert;
    const std::string base = single ? b.prefix + ".experts.0." : b.dense_prefix + ".";
    for (auto& [dense, m] : ffn.weights) {
      const Mat p = pad_to(m, width, is_in_proj(dense));
      writer.append(base + dense + ".weight", Tensor::from_f32(p.v, dtype, {p.rows, p.cols}));
      ++report.tensors_out;
    }
    for (auto& [dense, v] : ffn.biases) {
      if (is_in_proj(dense)) v.resize(static_cast<size_t>(width), 0.0f);
      writer.append(base + dense + ".bias", Tensor::from_f32(v, dtype, {static_cast<int64_t>(v.size())}));
      ++report.tensors_out;
    }
    if (single) {
      // OLMoE as a one-expert MoE: softmax over one logit is 1, so the block is exactly the
      // dense FFN; its router is a zero [1, hidden] weight.
      const auto& [first, any] = *ffn.weights.begin();
      const int64_t h = is_in_proj(first) ? any.cols : any.rows;  // the hidden size
      writer.append(b.prefix + ".gate.weight", Tensor::zeros(dtype, {1, h}));
      ++report.tensors_out;
    }
  }

  if (!share) {
    nlohmann::json cfg = in.config();
    if (cfg.is_object()) {
      for (const char* k : fam->drop) cfg.erase(k);
      cfg["model_type"] = fam->type_out;
      if (cfg.contains("architectures") && cfg["architectures"].is_array() && !fam->arch_from.empty())
        for (auto& a : cfg["architectures"]) {
          std::string s = a.get<std::string>();
          const auto pos = s.find(fam->arch_from);
          if (pos != std::string::npos) s.replace(pos, fam->arch_from.size(), fam->arch_to);
          a = s;
        }
      cfg[fam->width_key] = width;
      switch (fam->target) {
        case Target::Dense: break;
        case Target::DeepseekDense:
          // DeepSeek builds a dense MLP of intermediate_size below first_k_dense_replace.
          cfg["first_k_dense_replace"] = cfg.value("num_hidden_layers", static_cast<int64_t>(scan.blocks.size()) + 1);
          break;
        case Target::SingleExpert:
          cfg["num_experts"] = 1;
          cfg["num_experts_per_tok"] = 1;
          break;
        case Target::SwitchDense: {
          // transformers derives sparse_step = num_layers // num_sparse_layers and makes layer i
          // sparse when i % sparse_step == 1, or never when sparse_step is 0. Its "0 sparse
          // layers" setting (step = num_layers) still makes layer 1 sparse, so ask for more
          // sparse layers than there are layers: the step becomes 0 and no layer is sparse.
          const int64_t enc = cfg.value("num_layers", static_cast<int64_t>(12));
          const int64_t dec = cfg.contains("num_decoder_layers") && cfg["num_decoder_layers"].is_number_integer()
                                  ? cfg["num_decoder_layers"].get<int64_t>()
                                  : enc;
          cfg["num_sparse_encoder_layers"] = enc + 1;
          cfg["num_sparse_decoder_layers"] = dec + 1;
          break;
        }
      }
      cfg["modelpress_ewa"] = {{"from", type}, {"experts", report.experts}, {"moe_layers", report.moe_layers}};
      writer.set_config(cfg);
    }
    report.architecture_out = cfg.is_object() && cfg.contains("architectures") && cfg["architectures"].is_array() &&
                                      !cfg["architectures"].empty()
                                  ? cfg["architectures"][0].get<std::string>()
                                  : fam->type_out;
  } else {
    report.architecture_out = report.architecture_in;
  }
  writer.finish();
  return report;
}

}  // namespace modelpress::merge
