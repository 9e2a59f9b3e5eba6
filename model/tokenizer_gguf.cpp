// Tokenizer::from_gguf: the tokenizer stored in GGUF metadata (llama.cpp's convert script
// writes tokenizer.ggml.*):
//  - "gpt2": byte-level BPE. tokens, merges ("a b"), token_type; tokenizer.ggml.pre names the
//    pre-tokenizer, which becomes the regex splits llama.cpp's llama-vocab.cpp uses for it,
//    then the byte-level mapping (no prefix space). Control and user-defined tokens are added
//    tokens matched in the raw text first (as `tokenizers` does with a tokenizer.json; llama.cpp
//    does it when parse_special is on). add_bos_token / add_eos_token decide what
//    add_special_tokens adds (llama-bpe adds BOS unless the file says otherwise).
//  - "bert": WordPiece. llama.cpp stores BERT vocabularies in "phantom space" form (word-initial
//    tokens "▁word", continuations without "##", [special] tokens as they are); they are
//    turned back into "word" / "##piece". Normalization and pre-tokenization follow
//    `tokenizers`' BertNormalizer (lowercasing, as llama.cpp's WPM tokenizer always does) and
//    BertPreTokenizer; [CLS] ... [SEP] come from cls_token_id / seperator_token_id (or
//    bos / eos).
#include <algorithm>

#include "io/error.h"
#include "io/gguf_reader.h"
#include "model/tokenizer.h"
#include "model/tokenizer_impl.h"

namespace modelpress::model {
namespace {

using ojson = nlohmann::ordered_json;

// GGUF token types (llama.cpp's llama_token_type).
enum : int64_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

const ojson* find_key(const GgufFile& g, const char* key) {
  const auto& md = g.metadata();
  auto it = md.find(key);
  return it == md.end() ? nullptr : &*it;
}

std::vector<std::string> string_array(const GgufFile& g, const char* key, const std::string& path, bool required) {
  const ojson* v = find_key(g, key);
  if (!v) {
    if (required) fail_file(path, std::string("GGUF metadata has no ") + key);
    return {};
  }
  if (!v->is_array()) fail_file(path, std::string(key) + " is not an array of strings");
  std::vector<std::string> out;
  out.reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string())
      fail_file(path, std::string(key) + "[" + std::to_string(i) + "] is not a string");
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

std::optional<int32_t> token_id_key(const GgufFile& g, const char* key, size_t n_tokens, const std::string& path) {
  const ojson* v = find_key(g, key);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) fail_file(path, std::string(key) + " is not an integer");
  const auto id = v->get<int64_t>();
  if (id < 0 || static_cast<uint64_t>(id) >= n_tokens) {
    // llama.cpp writes -1 (or a huge u32) for "none".
    return std::nullopt;
  }
  return static_cast<int32_t>(id);
}

std::optional<bool> bool_key(const GgufFile& g, const char* key, const std::string& path) {
  const ojson* v = find_key(g, key);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) fail_file(path, std::string(key) + " is not a bool");
  return v->get<bool>();
}

struct PreType {
  std::vector<std::string> names;
  std::vector<std::string> regexes;  // applied in order, each an Isolated split
  bool ignore_merges = false;
  bool add_bos = false;
};

const std::vector<PreType>& pre_types() {
  // llama.cpp's regex_exprs per LLAMA_VOCAB_PRE_TYPE (src/llama-vocab.cpp).
  static const std::string gpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";
  static const std::string llama3 =
      R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::string qwen2 =
      R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
  static const std::vector<PreType> types = {
      {{"default", ""}, {R"([\p{P}\$\+<=>\^~\|]+)", gpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}, {llama3}, true, true},
      {{"dbrx", "smaug-bpe"}, {llama3}},
      {{"gpt-2", "gpt2", "phi-2", "mpt", "olmo", "jina-es", "jina-de"}, {gpt2}},
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"}, {R"(\p{N})", gpt2}},
      {{"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez"}, {qwen2}},
      {{"falcon"}, {R"([\p{P}\$\+<=>\^~\|`]+)", gpt2, "[0-9][0-9][0-9]"}},
  };
  return types;
}

std::string supported_pre_names() {
  std::string s;
  for (const auto& t : pre_types())
    for (const auto& n : t.names)
      if (!n.empty()) s += (s.empty() ? "" : ", ") + n;
  return s;
}

std::vector<AddedToken> special_tokens(const std::vector<std::string>& tokens, const GgufFile& g,
                                       const std::string& path) {
  std::vector<AddedToken> out;
  const ojson* types = find_key(g, "tokenizer.ggml.token_type");
  if (!types) return out;
  if (!types->is_array() || types->size() != tokens.size())
    fail_file(path, "tokenizer.ggml.token_type does not have one entry per token (" + std::to_string(tokens.size()) +
                        ")");
  for (size_t i = 0; i < tokens.size(); ++i) {
    const ojson& t = (*types)[i];
    if (!t.is_number_integer())
      fail_file(path, "tokenizer.ggml.token_type[" + std::to_string(i) + "] is not an integer");
    const int64_t type = t.get<int64_t>();
    if (type == kControl || type == kUserDefined || type == kUnknown) {
      AddedToken a;
      a.content = tokens[i];
      a.id = static_cast<int32_t>(i);
      a.special = type != kUserDefined;
      a.normalized = false;
      out.push_back(std::move(a));
    }
  }
  return out;
}

std::shared_ptr<Tokenizer::Impl> build_bpe(const GgufFile& g, const std::vector<std::string>& tokens,
                                           const std::string& path) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->path = path;
  const ojson* pre_v = find_key(g, "tokenizer.ggml.pre");
  if (pre_v && !pre_v->is_string()) fail_file(path, "tokenizer.ggml.pre is not a string");
  const std::string pre = pre_v ? pre_v->get<std::string>() : "default";
  const PreType* pt = nullptr;
  for (const auto& t : pre_types())
    if (std::find(t.names.begin(), t.names.end(), pre) != t.names.end()) pt = &t;
  if (!pt)
    fail_file(path, "unsupported GGUF pre-tokenizer '" + pre + "' (tokenizer.ggml.pre; supported: " +
                        supported_pre_names() + ")");

  Vocab vocab;
  for (size_t i = 0; i < tokens.size(); ++i) vocab.add(tokens[i], static_cast<int32_t>(i));
  const std::vector<std::string> merge_strings = string_array(g, "tokenizer.ggml.merges", path, true);
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(merge_strings.size());
  for (size_t i = 0; i < merge_strings.size(); ++i) {
    const std::string& m = merge_strings[i];
    const size_t sp = m.find(' ', 1);  // as llama.cpp: the first space after the first byte
    if (sp == std::string::npos)
      fail_file(path, "tokenizer.ggml.merges[" + std::to_string(i) + "] '" + m +
                          "' is not two tokens separated by a space");
    merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  BpeOptions o;
  o.ignore_merges = pt->ignore_merges;
  impl->model = make_bpe(std::move(vocab), merges, o, path);

  std::vector<std::unique_ptr<PreTokenizer>> stages;
  for (const auto& r : pt->regexes) {
    std::string error;
    auto re = TokenizerRegex::compile(r, error);
    if (!re) throw std::logic_error("llama.cpp pre-tokenizer regex does not compile: " + error);
    stages.push_back(make_regex_split(std::move(re), SplitBehavior::Isolated, false));
  }
  stages.push_back(make_byte_level(/*add_prefix_space=*/false, /*use_regex=*/false));
  impl->pre_tokenizer = make_sequence(std::move(stages));
  impl->added.build(special_tokens(tokens, g, path), nullptr);
  impl->decoder = DecoderKind::ByteLevel;

  impl->bos = token_id_key(g, "tokenizer.ggml.bos_token_id", tokens.size(), path);
  impl->eos = token_id_key(g, "tokenizer.ggml.eos_token_id", tokens.size(), path);
  impl->pad = token_id_key(g, "tokenizer.ggml.padding_token_id", tokens.size(), path);
  const bool add_bos = bool_key(g, "tokenizer.ggml.add_bos_token", path).value_or(pt->add_bos);
  const bool add_eos = bool_key(g, "tokenizer.ggml.add_eos_token", path).value_or(false);
  if (add_bos && !impl->bos) fail_file(path, "tokenizer.ggml.add_bos_token is set but there is no bos_token_id");
  if (add_eos && !impl->eos) fail_file(path, "tokenizer.ggml.add_eos_token is set but there is no eos_token_id");
  if (add_bos || add_eos)
    impl->post_processor = make_wrap_processor(add_bos ? std::vector<int32_t>{*impl->bos} : std::vector<int32_t>{},
                                               add_eos ? std::vector<int32_t>{*impl->eos} : std::vector<int32_t>{});
  return impl;
}

std::shared_ptr<Tokenizer::Impl> build_wordpiece(const GgufFile& g, const std::vector<std::string>& tokens,
                                                 const std::string& path) {
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->path = path;
  static const std::string kPhantom = "\xE2\x96\x81";  // U+2581
  const bool phantom =
      std::any_of(tokens.begin(), tokens.end(), [](const std::string& t) { return t.starts_with(kPhantom); });
  std::vector<std::string> restored = tokens;
  if (phantom) {
    for (auto& t : restored) {
      if (t.size() >= 2 && t.front() == '[' && t.back() == ']') continue;
      if (t.starts_with(kPhantom)) t.erase(0, kPhantom.size());
      else t = "##" + t;
    }
  }
  Vocab vocab;
  for (size_t i = 0; i < restored.size(); ++i) vocab.add(restored[i], static_cast<int32_t>(i));
  WordPieceOptions o;
  if (auto unk = token_id_key(g, "tokenizer.ggml.unknown_token_id", tokens.size(), path)) o.unk_token = restored[*unk];
  impl->model = make_wordpiece(std::move(vocab), o, path);
  impl->normalizer = make_bert_normalizer(true, true, true, true);
  impl->pre_tokenizer = make_bert_pre_tokenizer();
  std::vector<AddedToken> specials = special_tokens(tokens, g, path);
  for (auto& s : specials) s.content = restored[s.id];
  impl->added.build(std::move(specials), impl->normalizer.get());
  impl->decoder = DecoderKind::WordPiece;

  impl->bos = token_id_key(g, "tokenizer.ggml.bos_token_id", tokens.size(), path);
  impl->eos = token_id_key(g, "tokenizer.ggml.eos_token_id", tokens.size(), path);
  impl->pad = token_id_key(g, "tokenizer.ggml.padding_token_id", tokens.size(), path);
  auto cls = token_id_key(g, "tokenizer.ggml.cls_token_id", tokens.size(), path);
  auto sep = token_id_key(g, "tokenizer.ggml.seperator_token_id", tokens.size(), path);  // sic, llama.cpp's key
  if (!cls) cls = impl->bos ? impl->bos : impl->model->vocab().find("[CLS]");
  if (!sep) sep = impl->eos ? impl->eos : impl->model->vocab().find("[SEP]");
  if (cls || sep)
    impl->post_processor = make_wrap_processor(cls ? std::vector<int32_t>{*cls} : std::vector<int32_t>{},
                                               sep ? std::vector<int32_t>{*sep} : std::vector<int32_t>{});
  return impl;
}

}  // namespace

Tokenizer Tokenizer::from_gguf(const GgufFile& gguf, const std::string& path) {
  const ojson* model = find_key(gguf, "tokenizer.ggml.model");
  if (!model) fail_file(path, "no tokenizer in the GGUF metadata (tokenizer.ggml.model is missing)");
  if (!model->is_string()) fail_file(path, "tokenizer.ggml.model is not a string");
  const std::string type = model->get<std::string>();
  if (type != "gpt2" && type != "bert")
    fail_file(path, "unsupported GGUF tokenizer model '" + type +
                        "' (tokenizer.ggml.model; supported: gpt2 (byte-level BPE), bert (WordPiece))");
  const std::vector<std::string> tokens = string_array(gguf, "tokenizer.ggml.tokens", path, true);
  if (tokens.empty()) fail_file(path, "tokenizer.ggml.tokens is empty");
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) fail_file(path, "tokenizer.ggml.tokens has too many tokens");
  return Tokenizer(type == "gpt2" ? build_bpe(gguf, tokens, path) : build_wordpiece(gguf, tokens, path));
}

}  // namespace modelpress::model
