// `modelpress eval`: model-level accuracy through modelpress's own forward and kernels.
// Decoders: perplexity over a text and, against a reference, KL divergence and top-1
// agreement (eval/decoder_eval.h); encoders: sentence embeddings and, against a reference,
// cosine per sentence and the Spearman correlation of pairwise similarities
// (eval/encoder_eval.h). docs/EVAL.md explains each number.
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/model_backend.h"
#include "cli/progress.h"
#include "cli/text_input.h"
#include "eval/eval_report.h"
#include "io/error.h"
#include "io/report_file.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace modelpress::cli {
namespace {

struct EvalOptions {
  std::string model, reference, text, report, backend = "auto";
  int64_t ctx = 512, stride = 0, max_tokens = 4096, decode_tokens = 0, images = 32;
  uint64_t image_seed = 0;
  bool json = false;
};

// The model's own tokenizer; a checkpoint without one (a folder that carries no
// tokenizer.json) borrows the reference's, and the report says so.
model::Tokenizer tokenizer_for(const model::Model& m, const model::Model* ref, std::vector<std::string>& notes) {
  try {
    return model::Tokenizer::for_checkpoint(m.checkpoint);
  } catch (const Error& e) {
    if (!ref) throw;
    model::Tokenizer t = model::Tokenizer::for_checkpoint(ref->checkpoint);
    notes.push_back("the model has no tokenizer of its own (" + std::string(e.what()) + "); used the reference's");
    return t;
  }
}

void finish(const EvalOptions& o, eval::EvalReport& report, std::chrono::steady_clock::time_point start);

const char* family_name(const model::Model& m) { return m.bert ? "BERT encoder" : m.vit ? "ViT" : "decoder"; }

void run_eval(const EvalOptions& o) {
  using clock = std::chrono::steady_clock;
  const auto start = clock::now();
  if (!o.report.empty()) (void)report_kind_for(o.report);  // a bad extension fails before any work
  if (o.max_tokens < 2) throw Error("--max-tokens must be at least 2");
  const std::string text = o.text.empty() ? std::string() : read_text_file(o.text);

  eval::EvalReport report;
  report.model = o.model;
  report.reference = o.reference;
  report.text_path = o.text;
  report.text_bytes = text.size();
  const kernels::Backend backend = model_backend(o.backend, &report.backend);

  std::cerr << "eval: loading " << o.model << "\n";
  model::Model m = model::load_model(o.model);
  std::unique_ptr<model::Model> ref;
  if (!o.reference.empty()) {
    std::cerr << "eval: loading reference " << o.reference << "\n";
    ref = std::make_unique<model::Model>(model::load_model(o.reference));
    if (ref->config.family != m.config.family)
      throw Error("--reference " + o.reference + ": a " + family_name(*ref) + ", the model is a " + family_name(m));
  }
  report.architecture = m.config.architecture;
  if (m.vit) {
    report.vit = eval::evaluate_vit(*m.vit, ref ? ref->vit.get() : nullptr, o.images, o.image_seed, backend);
    report.notes.push_back("ViT is evaluated on deterministic synthetic images (no image data set is reachable "
                           "here): the numbers compare the two models, they are not accuracy on real images");
    finish(o, report, start);
    return;
  }
  if (o.text.empty()) throw Error("--text FILE is required for text models (" + m.config.architecture + ")");
  const model::Tokenizer tok = tokenizer_for(m, ref.get(), report.notes);
  report.tokenizer = tok.type();

  if (m.decoder) {
    std::vector<int32_t> ids = encode_text(tok, text, o.text);
    if (static_cast<int64_t>(ids.size()) > o.max_tokens) {
      ids.resize(static_cast<size_t>(o.max_tokens));
      report.notes.push_back("the text was cut to its first " + std::to_string(o.max_tokens) +
                             " tokens (--max-tokens)");
    }
    eval::DecoderEvalOptions d;
    d.ctx = o.ctx;
    d.stride = o.stride;
    d.decode_tokens = o.decode_tokens;
    d.backend = backend;
    auto progress = std::make_shared<std::optional<Progress>>();
    d.on_window = [progress](int64_t, int64_t total) {
      if (!*progress) progress->emplace("eval: windows", static_cast<size_t>(total));
      (*progress)->step("");
    };
    report.decoder = eval::evaluate_decoder(*m.decoder, ref ? ref->decoder.get() : nullptr, ids, d);
  } else {
    bool more = false;
    const auto sentences = encode_lines(tok, text, o.text, sentence_length_limit(m), o.max_tokens, &more);
    if (more)
      report.notes.push_back("embedded the first " + std::to_string(sentences.size()) + " lines (--max-tokens " +
                             std::to_string(o.max_tokens) + ")");
    eval::EncoderEvalOptions e;
    e.backend = backend;
    auto progress = std::make_shared<std::optional<Progress>>();
    e.on_sentence = [progress](int64_t, int64_t all) {
      if (!*progress) progress->emplace("eval: sentences", static_cast<size_t>(all));
      (*progress)->step("");
    };
    report.encoder = eval::evaluate_encoder(*m.bert, ref ? ref->bert.get() : nullptr, sentences, e);
  }
  finish(o, report, start);
}

// Writes the report, prints it, and turns non-finite activations into the command's error.
void finish(const EvalOptions& o, eval::EvalReport& report, std::chrono::steady_clock::time_point start) {
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!o.report.empty()) eval::write_eval_report(o.report, report);
  if (o.json)
    std::cout << eval::eval_report_json(report).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace)
              << "\n";
  else
    std::cout << "eval " << o.model << (o.reference.empty() ? "" : " against " + o.reference) << "\n"
              << eval::eval_report_text(report);
  const std::string nf = report.decoder ? report.decoder->first_nonfinite
                         : report.encoder ? report.encoder->first_nonfinite
                                          : report.vit->first_nonfinite;
  const std::string ref_nf = report.decoder ? report.decoder->reference_first_nonfinite
                             : report.encoder ? report.encoder->reference_first_nonfinite
                                              : report.vit->reference_first_nonfinite;
  if (!nf.empty()) throw Error(o.model + ": non-finite activations, first at " + nf + "; the numbers above are not valid");
  if (!ref_nf.empty())
    throw Error(o.reference + ": non-finite activations, first at " + ref_nf + "; the numbers above are not valid");
}

}  // namespace

void set_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Model-level accuracy through modelpress's own forward: perplexity, and KL divergence / top-1 agreement "
      "against a reference (decoders); sentence-embedding cosine and Spearman against a reference (encoders); "
      "CLS-feature and logit cosine on synthetic images (ViT)");
  cmd->add_option("model", o->model, "Checkpoint to evaluate: Hugging Face folder (any format modelpress writes) or "
                                     "GGUF file")->required();
  cmd->add_option("--reference", o->reference, "The checkpoint it was compressed from: adds KLD / cosine against it");
  cmd->add_option("--text", o->text, "UTF-8 text to evaluate on (decoders: one stream; encoders: one sentence per "
                                     "line; required for text models); docs/EVAL.md names the default text "
                                     "scripts/fetch_eval_text.sh fetches");
  cmd->add_option("--images", o->images, "ViT: synthetic images to compare on (default 32)")->check(CLI::Range(1, 100000));
  cmd->add_option("--image-seed", o->image_seed, "ViT: seed of the synthetic images (default 0)");
  cmd->add_option("--ctx", o->ctx, "Decoders: window length in tokens (default 512)")->check(CLI::PositiveNumber);
  cmd->add_option("--stride", o->stride, "Decoders: tokens between window starts (default ctx/2)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-tokens", o->max_tokens, "Use at most this many tokens of the text (default 4096)");
  cmd->add_option("--decode-tokens", o->decode_tokens,
                  "Decoders: also time batch-1 prefill of ctx tokens and this many greedy decode steps")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--backend", o->backend, "Where the linear layers run: cpu, cuda, or auto (cuda when usable)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  cmd->add_option("--report", o->report, "Also write the report: .json, .md or .html (with a chart)");
  cmd->add_flag("--json", o->json, "Print the JSON report on stdout instead of the summary");
  cmd->callback([o] { run_eval(*o); });
}

}  // namespace modelpress::cli
