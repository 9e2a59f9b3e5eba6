#include "cli/text_input.h"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>
#include <sstream>

#include "io/error.h"
#include "model/model.h"
#include "model/tokenizer.h"

namespace modelpress::cli {

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_file(path, "cannot open the text file");
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail_file(path, "the text is empty");
  return text;
}

std::vector<int32_t> encode_text(const model::Tokenizer& tokenizer, std::string_view text, const std::string& path) {
  try {
    return tokenizer.encode(text, /*add_special_tokens=*/true);
  } catch (const Error& e) {
    fail_file(path, e.what());  // invalid UTF-8: the tokenizer names the byte offset
  }
}

std::vector<std::vector<int32_t>> encode_lines(const model::Tokenizer& tokenizer, const std::string& text,
                                               const std::string& path, int64_t max_len, int64_t max_tokens,
                                               bool* more) {
  std::vector<std::vector<int32_t>> out;
  int64_t total = 0;
  std::istringstream lines(text);
  std::string line;
  *more = false;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (total >= max_tokens) {
      *more = true;
      break;
    }
    std::vector<int32_t> ids = encode_text(tokenizer, line, path);
    if (static_cast<int64_t>(ids.size()) > max_len) {
      const int32_t last = ids.back();
      ids.resize(static_cast<size_t>(max_len));
      ids.back() = last;
    }
    total += static_cast<int64_t>(ids.size());
    out.push_back(std::move(ids));
  }
  return out;
}

// sentence-transformers truncates to max_seq_length (sentence_bert_config.json), keeping the
// final [SEP]; without that file, to the model's positions.
int64_t sentence_length_limit(const model::Model& m) {
  std::ifstream in(m.checkpoint.folder() + "/sentence_bert_config.json");
  if (in) {
    try {
      const auto j = nlohmann::json::parse(in);
      if (j.contains("max_seq_length") && j["max_seq_length"].is_number_integer())
        return std::min<int64_t>(j["max_seq_length"].get<int64_t>(), m.config.max_positions);
    } catch (const nlohmann::json::exception&) {
    }
  }
  return m.config.max_positions;
}

}  // namespace modelpress::cli
