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
#include "io/safetensors_reader.h"
#include "io/safetensors_writer.h"
#include "model/model.h"

namespace modelpress::cli {
namespace {

void append_f32(SafetensorsWriter& w, const std::string& name, const std::vector<float>& v, const Shape& shape) {
  w.append(name, DType::F32, shape, std::as_bytes(std::span<const float>(v)));
}

struct ForwardOptions {
  std::string model, out, backend = "cpu", pixels;
  std::vector<int64_t> ids;
  int64_t prefill = -1;
  int64_t images = 1;
  uint64_t image_seed = 0;
};

// ViT: the images of --pixels (a safetensors file with "pixel_values" [C, H, W] or
// [N, C, H, W], normalized as the model's processor would), or --images synthetic ones.
void run_vit(const model::Model& m, const ForwardOptions& o, model::RunContext& ctx, SafetensorsWriter& w) {
  const auto& c = m.config;
  const int64_t per = c.channels * c.image_size * c.image_size;
  std::vector<std::vector<float>> images;
  if (!o.pixels.empty()) {
    const SafetensorsFile f = SafetensorsFile::open(o.pixels);
    const SafetensorsEntry* e = f.find("pixel_values");
    if (!e) fail_file(o.pixels, "no tensor \"pixel_values\"");
    const Shape want = {c.channels, c.image_size, c.image_size};
    const Shape& s = e->shape;
    const bool single = s == want, batch = s.size() == 4 && Shape(s.begin() + 1, s.end()) == want;
    if (!single && !batch)
      fail_file(o.pixels, "pixel_values has shape " + shape_to_string(s) + ", the model takes " + shape_to_string(want) +
                              " images");
    const std::vector<float> all = f.read(*e).to_f32();
    for (size_t i = 0; i < all.size(); i += static_cast<size_t>(per))
      images.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(i), all.begin() + static_cast<std::ptrdiff_t>(i + per));
  } else {
    images = model::synthetic_images(o.images, c.channels, c.image_size, o.image_seed);
  }
  std::vector<const float*> ptrs;
  for (const auto& img : images) ptrs.push_back(img.data());
  const int64_t n = static_cast<int64_t>(images.size());
  const std::vector<float> states = m.vit->forward(ptrs, ctx);
  append_f32(w, "last_hidden_state", states, {n, m.vit->tokens_per_image(), c.hidden});
  if (m.vit->has_classifier()) append_f32(w, "logits", m.vit->classify(states, n, ctx), {n, m.vit->labels()});
  if (o.pixels.empty()) {
    std::vector<float> all;
    for (const auto& img : images) all.insert(all.end(), img.begin(), img.end());
    append_f32(w, "pixel_values", all, {n, c.channels, c.image_size, c.image_size});
  }
}

void run_forward(const ForwardOptions& o) {
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
  if (m.vit) {
    run_vit(m, o, ctx, w);
    w.finish();
    return;
  }
  if (ids.empty()) throw Error("--ids: give at least one token id (this model reads text)");
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
  cmd->add_option("--ids", o->ids, "Text models: token ids, comma- or space-separated")->delimiter(',');
  cmd->add_option("--pixels", o->pixels, "ViT: safetensors file with pixel_values [C, H, W] or [N, C, H, W]");
  cmd->add_option("--images", o->images, "ViT without --pixels: this many synthetic images (written out as "
                                         "pixel_values)")->check(CLI::Range(1, 4096));
  cmd->add_option("--image-seed", o->image_seed, "ViT: seed of the synthetic images");
  cmd->add_option("-o,--out", o->out, "Output safetensors file (must not exist)")->required();
  cmd->add_option("--prefill", o->prefill,
                  "Decoders: run the first N tokens at once, the rest one by one through the KV cache "
                  "(default: all at once)");
  cmd->add_option("--backend", o->backend, "Where the linear layers run: cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->callback([o] { run_forward(*o); });
}

}  // namespace modelpress::cli
