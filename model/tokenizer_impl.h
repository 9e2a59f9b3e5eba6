// The parts of a Tokenizer, shared by its tokenizer.json and GGUF builders. Internal to model/.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "model/tokenizer.h"
#include "model/tokenizer_added.h"
#include "model/tokenizer_models.h"
#include "model/tokenizer_pipeline.h"

namespace modelpress::model {

enum class DecoderKind { Concatenate, ByteLevel, WordPiece };

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

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  std::string decode(const std::vector<int32_t>& ids) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  std::optional<int32_t> token_to_id(std::string_view token) const;
};

}  // namespace modelpress::model
