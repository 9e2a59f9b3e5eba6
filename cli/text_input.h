// The text `eval` and `calibrate` run the model on: read whole, refused when empty, and
// tokenized with errors that name the file (an invalid UTF-8 byte by its offset).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace modelpress::model {
class Tokenizer;
struct Model;
}

namespace modelpress::cli {

std::string read_text_file(const std::string& path);
std::vector<int32_t> encode_text(const model::Tokenizer& tokenizer, std::string_view text, const std::string& path);
// The non-blank lines of `text`, each tokenized (special tokens included) and cut to
// `max_len` tokens keeping the last one (BERT's [SEP]), until `max_tokens` tokens in all.
// `more` is set when lines were left over.
std::vector<std::vector<int32_t>> encode_lines(const model::Tokenizer& tokenizer, const std::string& text,
                                               const std::string& path, int64_t max_len, int64_t max_tokens,
                                               bool* more);

// Tokens per sentence for an encoder: sentence-transformers' max_seq_length
// (sentence_bert_config.json beside the weights), else the model's positions.
int64_t sentence_length_limit(const model::Model& m);

}  // namespace modelpress::cli
