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

// llama.cpp's GPT-2 regex (without `tokenizers`' final "|\s+").
const char* const kLlamaCppGpt2 = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))";

const std::vector<PreType>& pre_types() {
  // llama.cpp's regex_exprs per LLAMA_VOCAB_PRE_TYPE (src/llama-vocab.cpp).
  static const std::string gpt2 = kLlamaCppGpt2;
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

// The Hugging Face pre-tokenizer doing what a PreType's regexes + ByteLevel do: llama.cpp's
// GPT-2 regex last is ByteLevel's own regex (llama.cpp's lacks the final "|\s+", which
// matches only a lone whitespace character before a non-space, a piece an Isolated split
// leaves by itself anyway); \p{N} alone is Digits(individual_digits) (Rust's
// char::is_numeric is \p{N}); any other regex an Isolated Split. SmolLM2's "smollm" is
// thus the Sequence[Digits, ByteLevel] its tokenizer.json has.
ojson hf_pre_tokenizer(const PreType& pt) {
  ojson stages = ojson::array();
  bool byte_level_regex = false;
  for (size_t i = 0; i < pt.regexes.size(); ++i) {
    const std::string& r = pt.regexes[i];
    if (r == kLlamaCppGpt2 && i + 1 == pt.regexes.size()) {
      byte_level_regex = true;
    } else if (r == R"(\p{N})") {
      stages.push_back({{"type", "Digits"}, {"individual_digits", true}});
    } else {
      stages.push_back({{"type", "Split"}, {"pattern", {{"Regex", r}}}, {"behavior", "Isolated"}, {"invert", false}});
    }
  }
  stages.push_back(
      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", byte_level_regex}});
  return {{"type", "Sequence"}, {"pretokenizers", std::move(stages)}};
}

// TemplateProcessing adding `prefix` / `suffix` ids around each sequence (pairs: both
// sequences wrapped, the second with type_id 1), as `tokenizers` serializes it.
ojson hf_template(const std::vector<int32_t>& prefix, const std::vector<int32_t>& suffix,
                  const std::vector<std::string>& tokens) {
  ojson special = ojson::object();
  auto piece = [&](int32_t id, int type_id) {
    const std::string& t = tokens[static_cast<size_t>(id)];
    special[t] = {{"id", t}, {"ids", {id}}, {"tokens", {t}}};
    return ojson{{"SpecialToken", {{"id", t}, {"type_id", type_id}}}};
  };
  auto sequence = [&](int type_id) {
    ojson out = ojson::array();
    for (int32_t id : prefix) out.push_back(piece(id, type_id));
    out.push_back({{"Sequence", {{"id", type_id == 0 ? "A" : "B"}, {"type_id", type_id}}}});
    for (int32_t id : suffix) out.push_back(piece(id, type_id));
    return out;
  };
  ojson single = sequence(0), pair = sequence(0);
  for (auto& p : sequence(1)) pair.push_back(std::move(p));
  return {{"type", "TemplateProcessing"}, {"single", single}, {"pair", pair}, {"special_tokens", special}};
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
  impl->hf.model = {{"type", "BPE"},           {"dropout", nullptr},  {"unk_token", nullptr},
                    {"continuing_subword_prefix", nullptr},           {"end_of_word_suffix", nullptr},
                    {"fuse_unk", false},       {"byte_fallback", false}, {"ignore_merges", o.ignore_merges}};
  impl->hf.merges = std::move(merges);
  impl->hf.pre_tokenizer = hf_pre_tokenizer(*pt);
  impl->hf.decoder = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};

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
  if (add_bos || add_eos) {
    const std::vector<int32_t> prefix = add_bos ? std::vector<int32_t>{*impl->bos} : std::vector<int32_t>{};
    const std::vector<int32_t> suffix = add_eos ? std::vector<int32_t>{*impl->eos} : std::vector<int32_t>{};
    impl->post_processor = make_wrap_processor(prefix, suffix);
    impl->hf.post_processor = hf_template(prefix, suffix, tokens);
  } else {
    impl->hf.post_processor = {
        {"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  }
  impl->hf.config["add_bos_token"] = add_bos;
  impl->hf.config["add_eos_token"] = add_eos;
  // llama.cpp's BPE never emits an unknown token; the id only names tokenizer_config's unk_token.
  if (auto unk = token_id_key(g, "tokenizer.ggml.unknown_token_id", tokens.size(), path))
    impl->hf.config["unk_token"] = tokens[*unk];
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
  impl->hf.model = {{"type", "WordPiece"},
                    {"unk_token", o.unk_token},
                    {"continuing_subword_prefix", o.continuing_subword_prefix},
                    {"max_input_chars_per_word", o.max_input_chars_per_word}};
  impl->model = make_wordpiece(std::move(vocab), o, path);
  impl->normalizer = make_bert_normalizer(true, true, true, true);
  impl->pre_tokenizer = make_bert_pre_tokenizer();
  impl->hf.normalizer = {{"type", "BertNormalizer"},
                         {"clean_text", true},
                         {"handle_chinese_chars", true},
                         {"strip_accents", true},
                         {"lowercase", true}};
  impl->hf.pre_tokenizer = {{"type", "BertPreTokenizer"}};
  impl->hf.decoder = {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}};
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
  if (cls || sep) {
    const std::vector<int32_t> prefix = cls ? std::vector<int32_t>{*cls} : std::vector<int32_t>{};
    const std::vector<int32_t> suffix = sep ? std::vector<int32_t>{*sep} : std::vector<int32_t>{};
    impl->post_processor = make_wrap_processor(prefix, suffix);
    impl->hf.post_processor = hf_template(prefix, suffix, restored);
    if (cls) impl->hf.config["cls_token"] = restored[*cls];
    if (sep) impl->hf.config["sep_token"] = restored[*sep];
  }
  if (auto mask = token_id_key(g, "tokenizer.ggml.mask_token_id", tokens.size(), path))
    impl->hf.config["mask_token"] = restored[*mask];
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
  auto impl = type == "gpt2" ? build_bpe(gguf, tokens, path) : build_wordpiece(gguf, tokens, path);
  // For tokenizer_config.json: the chat template, and the context length as model_max_length.
  if (const ojson* tmpl = find_key(gguf, "tokenizer.chat_template"); tmpl && tmpl->is_string())
    impl->hf.config["chat_template"] = *tmpl;
  if (const ojson* arch = find_key(gguf, "general.architecture"); arch && arch->is_string()) {
    const std::string key = arch->get<std::string>() + ".context_length";
    if (const ojson* n = find_key(gguf, key.c_str()); n && n->is_number_integer() && n->get<int64_t>() > 0)
      impl->hf.config["model_max_length"] = n->get<int64_t>();
  }
  return Tokenizer(std::move(impl));
}

}  // namespace modelpress::model
