// The parts of a Tokenizer, shared by its tokenizer.json and GGUF builders. Internal to model/.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/tokenizer.h"
#include "model/tokenizer_added.h"
#include "model/tokenizer_models.h"
#include "model/tokenizer_pipeline.h"

namespace modelpress::model {

enum class DecoderKind { Concatenate, ByteLevel, WordPiece };

// What Tokenizer::to_hf_json / hf_tokenizer_config_json write back, filled by each builder:
// the tokenizer.json sections as read (tokenizer.json), or their Hugging Face equivalents
// (GGUF). The vocabulary and added tokens come from the built model and AddedVocabulary.
struct HfExport {
  nlohmann::ordered_json model;  // the model's settings ("type", options), without vocab / merges
  std::vector<std::pair<std::string, std::string>> merges;  // BPE merges in rank order
  nlohmann::ordered_json normalizer, pre_tokenizer, post_processor, decoder;  // null: none
  // tokenizer_config.json fields beyond the special tokens (add_bos_token, chat_template,
  // model_max_length, ...).
  nlohmann::ordered_json config = nlohmann::ordered_json::object();
};

struct Tokenizer::Impl {
  std::string path;  // names the source in errors
  std::unique_ptr<Normalizer> normalizer;        // may be null
  std::unique_ptr<PreTokenizer> pre_tokenizer;   // may be null
  std::unique_ptr<TokenModel> model;
  AddedVocabulary added;
  std::unique_ptr<PostProcessor> post_processor;  // may be null
  DecoderKind decoder = DecoderKind::Concatenate;
  std::string wordpiece_prefix = "##";
  bool wordpiece_cleanup = true;
  std::optional<int32_t> bos, eos, pad;
  HfExport hf;

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
};

}  // namespace modelpress::model
