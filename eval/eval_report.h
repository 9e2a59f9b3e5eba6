// What `modelpress eval` found, and its writers: JSON (stable keys, for scripts and CI),
// Markdown and a self-contained HTML page with a chart (KLD by position in the window for
// decoders, the cosine of the worst sentences or images for encoders and ViT). The file's extension picks the
// form, as for validate's reports (io/report_file.h).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/decoder_eval.h"
#include "eval/encoder_eval.h"
#include "eval/vit_eval.h"

namespace modelpress::eval {

struct EvalReport {
  std::string model, reference;   // paths; reference empty when none
  std::string architecture;
  std::string backend;
  std::string text_path;
  uint64_t text_bytes = 0;
  std::string tokenizer;          // "BPE", "WordPiece"
  std::optional<DecoderEval> decoder;
  std::optional<EncoderEval> encoder;
  std::optional<VitEval> vit;
  std::vector<std::string> notes;
  double seconds = 0;
};

nlohmann::ordered_json eval_report_json(const EvalReport& report);
std::string eval_report_markdown(const EvalReport& report);
std::string eval_report_html(const EvalReport& report);
// Terminal summary: a few lines a user reads.
std::string eval_report_text(const EvalReport& report);
// Writes the report in the form the extension of `path` asks for (.json, .md, .html),
// through a temporary file and a rename.
void write_eval_report(const std::string& path, const EvalReport& report);

}  // namespace modelpress::eval
