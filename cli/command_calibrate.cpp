// `modelpress calibrate MODEL --text FILE -o CALIB`: runs modelpress's own forward over a
// text and writes, for every linear layer, sampled input rows in the calibration format
// (docs/CALIBRATION.md) plus statistics over all tokens: per-input-channel absmax, min and
// max, and the Gram matrix X^T X. No Python in the loop.
//
// Memory: the statistics of all layers at once can exceed the model itself (a Gram matrix is
// K x K in f64 per layer), so the layers are split into passes whose statistics fit
// --stats-memory; each pass runs the forward over the samples again and appends its layers
// to the file. Peak memory is the model plus one pass's statistics.
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_backend.h"
#include "cli/progress.h"
#include "cli/text_input.h"
#include "io/calibration.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "io/safetensors_writer.h"
#include "model/calibration_recorder.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace modelpress::cli {
namespace {

struct CalibrateOptions {
  std::string model, text, out, backend = "cpu", stats_memory = "512MB";
  int64_t samples = 8, seq_len = 512, rows = 512;
  bool overwrite = false;
};

// Decoders: consecutive windows of seq_len tokens of the text; encoders: its lines.
std::vector<std::vector<int32_t>> make_samples(const model::Model& m, const model::Tokenizer& tok,
                                               const std::string& text, const CalibrateOptions& o) {
  std::vector<std::vector<int32_t>> samples;
  if (m.bert) {
    bool more = false;
    // Every line has at least one token, so samples * seq_len tokens bound the lines needed.
    samples = encode_lines(tok, text, o.text, std::min(o.seq_len, sentence_length_limit(m)), o.samples * o.seq_len,
                           &more);
    if (static_cast<int64_t>(samples.size()) > o.samples) samples.resize(static_cast<size_t>(o.samples));
    return samples;
  }
  if (o.seq_len > m.config.max_positions)
    throw Error("--seq-len " + std::to_string(o.seq_len) + " exceeds the model's maximum position " +
                std::to_string(m.config.max_positions));
  const std::vector<int32_t> ids = encode_text(tok, text, o.text);
  for (size_t begin = 0; begin < ids.size() && static_cast<int64_t>(samples.size()) < o.samples;
       begin += static_cast<size_t>(o.seq_len)) {
    const size_t end = std::min(ids.size(), begin + static_cast<size_t>(o.seq_len));
    samples.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(begin), ids.begin() + static_cast<std::ptrdiff_t>(end));
  }
  return samples;
}

// Runs every sample through the model with `ctx` observing.
void run_samples(const model::Model& m, const std::vector<std::vector<int32_t>>& samples, bool need_logits,
                 model::RunContext& ctx, Progress& progress) {
  std::vector<float> logits;
  if (m.bert) {  // sentences in batches of about 512 tokens, as eval runs them
    for (size_t i = 0; i < samples.size();) {
      std::vector<std::span<const int32_t>> batch;
      size_t tokens = 0;
      for (; i < samples.size() && (batch.empty() || tokens + samples[i].size() <= 512); ++i) {
        batch.emplace_back(samples[i]);
        tokens += samples[i].size();
        progress.step("");
      }
      const std::vector<float> states = m.bert->forward_batch(batch, ctx);
      if (m.bert->has_pooler()) {  // BertModel runs its pooler on each sequence's first token
        const int64_t h = m.config.hidden;
        std::vector<float> first;
        int64_t row = 0;
        for (const auto& s : batch) {
          first.insert(first.end(), states.begin() + row * h, states.begin() + (row + 1) * h);
          row += static_cast<int64_t>(s.size());
        }
        (void)m.bert->pool(first.data(), static_cast<int64_t>(batch.size()), ctx);
      }
    }
    return;
  }
  for (const auto& s : samples) {
    model::KvCache cache = m.decoder->new_cache(static_cast<int64_t>(s.size()));
    const std::vector<float> hidden = m.decoder->forward(s, cache, ctx);
    if (need_logits) {  // only so lm_head sees its inputs
      logits.resize(s.size() * static_cast<size_t>(m.config.vocab));
      m.decoder->logits(hidden.data(), static_cast<int64_t>(s.size()), logits.data(), ctx);
    }
    progress.step("");
  }
}

void run_calibrate(const CalibrateOptions& o) {
  if (o.samples < 1 || o.seq_len < 2 || o.rows < 1) throw Error("--samples, --rows must be >= 1 and --seq-len >= 2");
  const uint64_t budget = parse_byte_size(o.stats_memory);
  if (std::filesystem::exists(o.out) && !o.overwrite)
    throw Error(o.out + ": exists; pass --overwrite to replace it");
  model::Model m = model::load_model(o.model);
  std::vector<std::vector<int32_t>> samples;
  std::vector<std::vector<float>> images;  // ViT: synthetic images (no image data set is reachable here)
  int64_t tokens = 0;
  if (m.vit) {
    images = model::synthetic_images(o.samples, m.config.channels, m.config.image_size, 0);
    tokens = o.samples * m.vit->tokens_per_image();
  } else {
    if (o.text.empty()) throw Error("--text FILE is required for text models (" + m.config.architecture + ")");
    const std::string text = read_text_file(o.text);
    const model::Tokenizer tok = model::Tokenizer::for_checkpoint(m.checkpoint);
    samples = make_samples(m, tok, text, o);
    if (samples.empty()) throw Error(o.text + ": the text gives no sample");
    for (const auto& s : samples) tokens += static_cast<int64_t>(s.size());
  }

  // Layers in forward order, split into passes that fit the memory budget.
  std::vector<std::vector<model::CalibrationRecorder::Layer>> passes(1);
  for (const model::Linear* l : m.linears()) {
    auto& cur = passes.back();
    cur.push_back({l->name(), l->k()});
    if (cur.size() > 1 && model::CalibrationRecorder::bytes_for(cur, o.rows) > budget) {
      cur.pop_back();
      passes.push_back({{l->name(), l->k()}});
    }
  }
  const nlohmann::json source = {{"tool", "modelpress calibrate"},
                                 {"model", o.model},
                                 {"text", m.vit ? "synthetic images (seed 0)" : o.text},
                                 {"samples", m.vit ? images.size() : samples.size()},
                                 {"tokens", tokens},
                                 {"seq_len", o.seq_len}};
  SafetensorsWriter writer(o.out, {{"format", std::string(CalibrationFile::kFormat)},
                                   {"version", std::string(CalibrationFile::kVersion)},
                                   {"source", source.dump()}},
                           m.linears().size() * 6);
  model::RunContext ctx;
  ctx.backend = model_backend(o.backend);
  for (size_t p = 0; p < passes.size(); ++p) {
    model::CalibrationRecorder recorder(passes[p], o.rows, tokens);
    ctx.observer = recorder.observer();
    bool need_logits = false;
    for (const auto& l : passes[p]) need_logits |= l.name == "lm_head";
    {
      Progress progress("calibrate: pass " + std::to_string(p + 1) + "/" + std::to_string(passes.size()),
                        m.vit ? (images.size() + 7) / 8 : samples.size());
      if (m.vit) {
        for (size_t i = 0; i < images.size(); i += 8) {  // batches of 8 images, as eval runs them
          std::vector<const float*> batch;
          for (size_t j = i; j < std::min(images.size(), i + 8); ++j) batch.push_back(images[j].data());
          const std::vector<float> states = m.vit->forward(batch, ctx);
          if (m.vit->has_classifier()) (void)m.vit->classify(states, static_cast<int64_t>(batch.size()), ctx);
          progress.step("");
        }
      } else {
        run_samples(m, samples, need_logits, ctx, progress);
      }
    }
    if (!ctx.first_nonfinite.empty())
      throw Error(o.model + ": non-finite activations, first at " + ctx.first_nonfinite + "; nothing was written");
    recorder.write(writer);
  }
  writer.finish();
  std::cout << "recorded " << m.linears().size() << " layers over " << (m.vit ? images.size() : samples.size())
            << (m.vit ? " synthetic images (" : " samples (") << tokens
            << " tokens) in " << passes.size() << " pass(es) to " << o.out << "\n";
}

}  // namespace

void set_calibrate_command(CLI::App& app) {
  auto o = std::make_shared<CalibrateOptions>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Record calibration data with modelpress's own forward: every linear layer's sampled input rows, and over all "
      "tokens its per-channel absmax/min/max and Gram matrix X^T X (docs/CALIBRATION.md)");
  cmd->add_option("model", o->model, "Checkpoint: Hugging Face folder (with tokenizer.json) or GGUF file")->required();
  cmd->add_option("--text", o->text, "UTF-8 text to run (decoders: one stream cut into --seq-len windows; "
                                     "encoders: one sentence per line); ViT models run --samples synthetic images");
  cmd->add_option("-o,--out", o->out, "Calibration file to write (.safetensors)")->required();
  cmd->add_option("--samples", o->samples, "Sequences to run (decoders: windows; encoders: lines); default 8");
  cmd->add_option("--seq-len", o->seq_len, "Tokens per sequence (default 512; encoders also stop at their "
                                           "max_seq_length)");
  cmd->add_option("--rows", o->rows, "Input rows kept per layer, spread evenly over all tokens (default 512)");
  cmd->add_option("--stats-memory", o->stats_memory,
                  "Memory for statistics per pass, e.g. 512MB; more layers than fit run in further passes")
      ->capture_default_str();
  cmd->add_option("--backend", o->backend, "Where the linear layers run: cpu, cuda or auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_flag("--overwrite", o->overwrite, "Replace an existing output file (written under a temporary name first)");
  cmd->callback([o] { run_calibrate(*o); });
}

}  // namespace modelpress::cli
