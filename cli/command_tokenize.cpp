// modelpress tokenize MODEL [--text FILE | --string S] [--no-special] [--json]: the token ids
// of a text under the model's tokenizer (tokenizer.json beside the weights, or the GGUF
// file's tokenizer.ggml.* metadata), one line of space-separated ids, or with --json an
// object {"ids": [...], "tokens": [...]}. Without --text or --string the text is read from
// standard input.
#include <fstream>
#include <iostream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "io/error.h"
#include "model/tokenizer.h"
#include "model/unicode_text.h"

namespace modelpress::cli {
namespace {

struct TokenizeOptions {
  std::string model;
  std::string text_file;
  std::string text;
  bool text_given = false;  // --string, possibly empty
  bool no_special = false;
  bool json = false;
};

std::string read_text(const TokenizeOptions& o, std::string& source) {
  if (!o.text_file.empty()) {
    source = o.text_file;
    std::ifstream f(o.text_file, std::ios::binary);
    if (!f) fail_file(o.text_file, "cannot be read");
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }
  if (o.text_given) {
    source = "--string";
    return o.text;
  }
  source = "standard input";
  return {std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>()};
}

}  // namespace

void set_tokenize_command(CLI::App& app) {
  auto opts = std::make_shared<TokenizeOptions>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Print the token ids of a text under a model's tokenizer "
                                                 "(tokenizer.json or GGUF metadata)");
  cmd->add_option("model", opts->model,
                  "Checkpoint folder (with tokenizer.json), a tokenizer.json file, or a .gguf file")
      ->required();
  auto* text_file = cmd->add_option("--text", opts->text_file, "UTF-8 text file to tokenize");
  auto* text = cmd->add_option("--string", opts->text, "Text to tokenize");
  text_file->excludes(text);
  text->excludes(text_file);
  cmd->add_flag("--no-special", opts->no_special,
                "Do not add the tokenizer's special tokens ([CLS] ... [SEP], <|begin_of_text|>, ...)");
  cmd->add_flag("--json", opts->json, "Print {\"ids\": [...], \"tokens\": [...]} instead of the ids alone");
  cmd->callback([opts, text] {
    opts->text_given = text->count() > 0;
    const model::Tokenizer tokenizer = model::Tokenizer::from_path(opts->model);
    std::string source;
    const std::string text = read_text(*opts, source);
    if (const auto bad = model::unicode::find_invalid_utf8(text))
      fail_file(source, "invalid UTF-8 at byte " + std::to_string(*bad));
    const std::vector<int32_t> ids = tokenizer.encode(text, !opts->no_special);
    if (opts->json) {
      nlohmann::ordered_json out;
      out["ids"] = ids;
      nlohmann::ordered_json tokens = nlohmann::ordered_json::array();
      for (int32_t id : ids) tokens.push_back(tokenizer.id_to_token(id).value_or(""));
      out["tokens"] = std::move(tokens);
      // GGUF token strings need not be valid UTF-8.
      std::cout << out.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    } else {
      std::string line;
      for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
      std::cout << line << "\n";
    }
  });
}

}  // namespace modelpress::cli
