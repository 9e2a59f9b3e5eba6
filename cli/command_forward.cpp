// `modelpress forward`: runs a model on token ids and writes what it computes (decoder
// logits, encoder hidden states and the sentence embedding) to a safetensors file, so
// other tools can compare their numbers with modelpress's forward (tests/interop does).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/model_backend.h"
#include "io/error.h"
#include "io/safetensors_writer.h"
#include "model/model.h"

namespace modelpress::cli {
namespace {

struct ForwardOptions {
  std::string model, out, backend = "cpu";
  std::vector<int64_t> ids;
  int64_t prefill = -1;
};

void append_f32(SafetensorsWriter& w, const std::string& name, const std::vector<float>& v, const Shape& shape) {
  w.append(name, DType::F32, shape, std::as_bytes(std::span<const float>(v)));
}

void run_forward(const ForwardOptions& o) {
  if (o.ids.empty()) throw Error("--ids: give at least one token id");
  std::vector<int32_t> ids;
  for (int64_t id : o.ids) {
    if (id < 0 || id > INT32_MAX) throw Error("--ids: token id " + std::to_string(id) + " is out of range");
    ids.push_back(static_cast<int32_t>(id));
  }
  if (std::filesystem::exists(o.out)) throw Error(o.out + ": exists; remove it or choose another -o");
  model::Model m = model::load_model(o.model);
  model::RunContext ctx;
  ctx.backend = model_backend(o.backend);
  const int64_t t = static_cast<int64_t>(ids.size());
  SafetensorsWriter w(o.out, {{"model", o.model}});
  if (m.bert) {
    append_f32(w, "last_hidden_state", m.bert->forward(ids, ctx), {t, m.config.hidden});
    append_f32(w, "sentence_embedding", m.bert->sentence_embedding(ids, ctx), {m.config.hidden});
  } else {
    // --prefill N: the first N tokens in one pass, then one token at a time through the KV
    // cache, as decoding runs; the logits must not depend on the split.
    const int64_t first = o.prefill < 0 ? t : std::min(o.prefill, t);
    model::KvCache cache = m.decoder->new_cache(t);
    const int64_t v = m.config.vocab;
    std::vector<float> logits(static_cast<size_t>(t * v));
    auto run = [&](int64_t begin, int64_t count) {
      const std::vector<float> hidden =
          m.decoder->forward(std::span<const int32_t>(ids).subspan(begin, count), cache, ctx);
      m.decoder->logits(hidden.data(), count, logits.data() + begin * v, ctx);
    };
    if (first > 0) run(0, first);
    for (int64_t i = first; i < t; ++i) run(i, 1);
    append_f32(w, "logits", logits, {t, v});
  }
  w.finish();
}

}  // namespace

void set_forward_command(CLI::App& app) {
  auto o = std::make_shared<ForwardOptions>();
  CLI::App* cmd = app.add_subcommand("forward", "Run a model on token ids and write its logits (decoders) or hidden "
                                                "states and sentence embedding (encoders) to a safetensors file");
  cmd->add_option("model", o->model, "Checkpoint: Hugging Face folder or GGUF file")->required();
  cmd->add_option("--ids", o->ids, "Token ids, comma- or space-separated")->required()->delimiter(',');
  cmd->add_option("-o,--out", o->out, "Output safetensors file (must not exist)")->required();
  cmd->add_option("--prefill", o->prefill,
                  "Decoders: run the first N tokens at once, the rest one by one through the KV cache "
                  "(default: all at once)");
  cmd->add_option("--backend", o->backend, "Where the linear layers run: cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->callback([o] { run_forward(*o); });
}

}  // namespace modelpress::cli
