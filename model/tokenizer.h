// Text -> token ids exactly as Hugging Face's `tokenizers` package computes them, for the
// two families the models here use:
//  - WordPiece as BERT has it (all-MiniLM-L6-v2): BertNormalizer, BertPreTokenizer,
//    WordPiece, [CLS] ... [SEP];
//  - byte-level BPE (GPT-2, LLaMA-3, SmolLM2, Qwen2): ByteLevel / Split / Digits
//    pre-tokenizers, BPE merges by rank, ignore_merges, added (special) tokens matched in the
//    raw text first, TemplateProcessing (LLaMA-3's <|begin_of_text|>).
// Sources: a tokenizer.json (Hugging Face folder), or GGUF metadata (tokenizer.ggml.model
// "gpt2" or "bert"; tokenizer.ggml.pre picks the pre-tokenizer regexes llama.cpp uses).
// Unicode classes and regexes run on ICU; where ICU and `tokenizers` (Oniguruma, Rust std)
// could disagree is documented in model/unicode_text.h and model/tokenizer_regex.h, and the
// stages supported per tokenizer.json section in model/tokenizer_pipeline.h.
//
// Not applied: tokenizer.json "truncation" and "padding" (the caller chooses lengths), BPE
// dropout (an Error when set above 0), pair templates (encode takes one sequence).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelpress {
class Checkpoint;
class GgufFile;
}  // namespace modelpress

namespace modelpress::model {

class Tokenizer {
 public:
  // A tokenizer.json. A missing or malformed file, or a model / normalizer / pre-tokenizer /
  // post-processor type not supported here, is an Error naming the file (one line).
  // bos / eos / pad come from tokenizer_config.json beside it when present.
  static Tokenizer from_json_file(const std::string& path);
  // GGUF metadata tokenizer.ggml.*; `path_for_errors` names the file in errors.
  static Tokenizer from_gguf(const GgufFile& gguf, const std::string& path_for_errors);
  // What a model checkpoint path gives: the GGUF file's own metadata, or the tokenizer.json
  // beside the safetensors weights.
  static Tokenizer for_checkpoint(const Checkpoint& checkpoint);
  // A tokenizer.json file, a folder holding one (no weights needed), a .gguf file, or any
  // other checkpoint path (for_checkpoint). What `modelpress tokenize MODEL` accepts.
  static Tokenizer from_path(const std::string& path);

  // Token ids of UTF-8 text; add_special_tokens applies the post-processor ([CLS] ... [SEP],
  // <|begin_of_text|> ...). Invalid UTF-8 is an Error naming the byte offset.
  std::vector<int32_t> encode(std::string_view utf8_text, bool add_special_tokens) const;
  // Ids -> text, keeping special tokens (skip_special_tokens=False). Byte-level BPE
  // round-trips: decode(encode(t, false)) == t when there is no normalizer and no prefix space.
  std::string decode(const std::vector<int32_t>& ids) const;

  std::string type() const;      // "WordPiece" or "BPE"
  int64_t vocab_size() const;    // distinct tokens, added tokens included (len(tokenizer) in Python)
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  std::optional<int32_t> pad_id() const;

  // This tokenizer as a Hugging Face tokenizer.json (version "1.0": added_tokens, normalizer,
  // pre_tokenizer, post_processor, decoder, model with vocab and merges), however it was
  // loaded: from_json_file and Python's `tokenizers` give the same ids on the written file as
  // this tokenizer does. A tokenizer.json source keeps its own sections (truncation and
  // padding are written as null); a GGUF one gets the equivalent pipeline (e.g. SmolLM2's
  // "smollm": Digits(individual_digits) + ByteLevel(use_regex); other llama.cpp regexes as
  // Split(Regex, Isolated) + ByteLevel(use_regex=false)). Throws Error when a token is not
  // valid UTF-8 (a JSON file cannot hold it).
  std::string to_hf_json() const;
  // A tokenizer_config.json for the same folder (tokenizer_class PreTrainedTokenizerFast,
  // bos / eos / pad / unk tokens, add_bos_token / add_eos_token and chat_template where
  // known, model_max_length from the GGUF context length), so that transformers'
  // AutoTokenizer loads the folder.
  std::string hf_tokenizer_config_json() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;  // immutable once built (the BPE cache locks itself)
};

}  // namespace modelpress::model
