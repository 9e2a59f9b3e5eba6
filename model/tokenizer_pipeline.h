// The stages of a Hugging Face tokenizer around its model, each reproducing the `tokenizers`
// crate: normalizers (text -> text), pre-tokenizers (a piece -> smaller pieces) and
// post-processors (the special tokens added around a sequence). Only ids matter here, so no
// offsets or alignments are tracked. Internal to model/ (tokenizer.h is the public API).
//
// Supported tokenizer.json types (anything else is an Error naming the file and the type):
//   normalizer:     BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Sequence
//   pre_tokenizer:  BertPreTokenizer, ByteLevel, Split, Digits, Whitespace, WhitespaceSplit,
//                   Punctuation, Sequence
//   post_processor: TemplateProcessing (single-sequence template), BertProcessing,
//                   RobertaProcessing, ByteLevel (no-op for ids), Sequence
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer_regex.h"

namespace modelpress::model {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces every piece by its splits, in order; empty pieces are dropped (as
  // PreTokenizedString::split does).
  virtual void pre_tokenize(std::vector<std::string>& pieces) const = 0;
  // Whether this stage maps bytes to GPT-2's printable characters (ByteLevel somewhere inside).
  virtual bool byte_level() const { return false; }
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  // Adds the special tokens of a single sequence (called only when add_special_tokens is set).
  virtual void process(std::vector<int32_t>& ids) const = 0;
};

// SplitDelimiterBehavior of `tokenizers`.
enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// GPT-2's pre-tokenizer regex (ByteLevel with use_regex).
extern const char* const kGpt2Pattern;

// GPT-2's bytes_to_unicode: the printable character (as UTF-8) each byte maps to.
const std::string& byte_level_char(uint8_t byte);
// The inverse: the byte a mapped character stands for, or nullopt.
std::optional<uint8_t> byte_level_byte(char32_t c);

// Builders used for GGUF tokenizers (tokenizer.ggml.pre), which have no tokenizer.json.
std::unique_ptr<PreTokenizer> make_regex_split(std::shared_ptr<const TokenizerRegex> regex, SplitBehavior behavior,
                                               bool invert);
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex);
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer();
std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> stages);
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents,
                                                 bool lowercase);
// [prefix...] sequence [suffix...]
std::unique_ptr<PostProcessor> make_wrap_processor(std::vector<int32_t> prefix, std::vector<int32_t> suffix);

// From tokenizer.json sections; `j` may be null (no stage: nullptr). `path` names the file in
// errors, `where` the JSON location ("pre_tokenizer.pretokenizers[1]").
std::unique_ptr<Normalizer> parse_normalizer(const nlohmann::json& j, const std::string& path,
                                             const std::string& where);
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const nlohmann::json& j, const std::string& path,
                                                  const std::string& where);
std::unique_ptr<PostProcessor> parse_post_processor(const nlohmann::json& j, const std::string& path,
                                                    const std::string& where);

}  // namespace modelpress::model
