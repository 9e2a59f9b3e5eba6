// Tokenizer::from_json_file: a Hugging Face tokenizer.json (the `tokenizers` serialization)
// -> the stages of model/tokenizer_impl.h.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "io/error.h"
#include "model/tokenizer.h"
#include "model/tokenizer_impl.h"
#include "model/tokenizer_json.h"

namespace modelpress::model {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kSupportedModels = "WordPiece, BPE";

Vocab parse_vocab(const json& model, const std::string& path) {
  const json& v = tokjson::field(model, "vocab", path, "model");
  if (!v.is_object()) tokjson::fail(path, "model.vocab", "expected an object {token: id}");
  Vocab vocab;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const int32_t id = tokjson::as_id(it.value(), path, "model.vocab");
    // Ids index a table: refuse absurd ones rather than allocate gigabytes for them.
    if (id >= (1 << 24))
      tokjson::fail(path, "model.vocab",
                    "token '" + it.key() + "' has id " + std::to_string(id) + ", beyond any vocabulary (2^24)");
    vocab.add(it.key(), id);
  }
  return vocab;
}

std::vector<std::pair<std::string, std::string>> parse_merges(const json& model, const std::string& path) {
  const json& m = tokjson::field(model, "merges", path, "model");
  if (!m.is_array()) tokjson::fail(path, "model.merges", "expected a list");
  std::vector<std::pair<std::string, std::string>> merges;
  merges.reserve(m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    const json& e = m[i];
    const std::string where = "model.merges[" + std::to_string(i) + "]";
    if (e.is_string()) {
      // The legacy "a b" form: exactly one space (convert_merges_to_hashmap).
      const std::string s = e.get<std::string>();
      if (s.starts_with("#version")) continue;
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        tokjson::fail(path, where, "'" + s + "' is not two tokens separated by one space");
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
    } else {
      tokjson::fail(path, where, "expected \"a b\" or [\"a\", \"b\"]");
    }
  }
  return merges;
}

std::string model_type(const json& model, const std::string& path) {
  if (!model.is_object()) tokjson::fail(path, "model", "expected a JSON object");
  if (model.contains("type")) return tokjson::get_string(model, "type", path, "model");
  // Old files omit the tag; `tokenizers` then tries each model in turn.
  if (model.contains("merges")) return "BPE";
  if (model.contains("vocab") && model["vocab"].is_array()) return "Unigram";
  if (model.contains("max_input_chars_per_word") || model.contains("continuing_subword_prefix")) return "WordPiece";
  return "WordLevel";
}

// `merges_out` receives a BPE's merges (for to_hf_json).
std::unique_ptr<TokenModel> parse_model(const json& model, const std::string& path,
                                        std::vector<std::pair<std::string, std::string>>& merges_out) {
  const std::string type = model_type(model, path);
  if (type == "WordPiece") {
    WordPieceOptions o;
    o.unk_token = tokjson::get_string_or(model, "unk_token", "[UNK]", path, "model");
    o.continuing_subword_prefix = tokjson::get_string_or(model, "continuing_subword_prefix", "##", path, "model");
    if (model.contains("max_input_chars_per_word") && !model["max_input_chars_per_word"].is_null()) {
      const json& m = model["max_input_chars_per_word"];
      if (!m.is_number_unsigned() && !(m.is_number_integer() && m.get<int64_t>() >= 0))
        tokjson::fail(path, "model.max_input_chars_per_word", "expected a non-negative integer");
      o.max_input_chars_per_word = m.get<size_t>();
    }
    return make_wordpiece(parse_vocab(model, path), std::move(o), path);
  }
  if (type == "BPE") {
    if (model.contains("dropout") && !model["dropout"].is_null()) {
      if (!model["dropout"].is_number()) tokjson::fail(path, "model.dropout", "expected a number or null");
      if (model["dropout"].get<double>() > 0.0)
        tokjson::fail(path, "model.dropout",
                      "BPE dropout is not supported (it makes tokenization random; set it to null)");
    }
    BpeOptions o;
    if (model.contains("unk_token") && !model["unk_token"].is_null())
      o.unk_token = tokjson::get_string(model, "unk_token", path, "model");
    o.continuing_subword_prefix = tokjson::get_string_or(model, "continuing_subword_prefix", "", path, "model");
    o.end_of_word_suffix = tokjson::get_string_or(model, "end_of_word_suffix", "", path, "model");
    o.fuse_unk = tokjson::get_bool(model, "fuse_unk", false, path, "model");
    o.byte_fallback = tokjson::get_bool(model, "byte_fallback", false, path, "model");
    o.ignore_merges = tokjson::get_bool(model, "ignore_merges", false, path, "model");
    merges_out = parse_merges(model, path);
    return make_bpe(parse_vocab(model, path), merges_out, std::move(o), path);
  }
  tokjson::fail(path, "model", "unsupported tokenizer model type '" + type + "' (supported: " + kSupportedModels + ")");
}

std::vector<AddedToken> parse_added_tokens(const json& j, const TokenModel& model, const std::string& path) {
  std::vector<AddedToken> out;
  if (!j.contains("added_tokens") || j["added_tokens"].is_null()) return out;
  const json& list = j["added_tokens"];
  if (!list.is_array()) tokjson::fail(path, "added_tokens", "expected a list");
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    const json& e = list[i];
    AddedToken t;
    t.content = tokjson::get_string(e, "content", path, where);
    t.special = tokjson::get_bool(e, "special", false, path, where);
    t.single_word = tokjson::get_bool(e, "single_word", false, path, where);
    t.lstrip = tokjson::get_bool(e, "lstrip", false, path, where);
    t.rstrip = tokjson::get_bool(e, "rstrip", false, path, where);
    t.normalized = tokjson::get_bool(e, "normalized", !t.special, path, where);
    // A token the model already knows keeps the model's id (AddedVocabulary::add_tokens).
    if (auto id = model.vocab().find(t.content)) t.id = *id;
    else t.id = tokjson::as_id(tokjson::field(e, "id", path, where), path, where + ".id");
    out.push_back(std::move(t));
  }
  return out;
}

DecoderKind decoder_kind(const json& decoder, const Tokenizer::Impl& impl, std::string& prefix, bool& cleanup) {
  if (decoder.is_object() && decoder.contains("type") && decoder["type"].is_string()) {
    const std::string type = decoder["type"].get<std::string>();
    if (type == "ByteLevel") return DecoderKind::ByteLevel;
    if (type == "WordPiece") {
      if (decoder.contains("prefix") && decoder["prefix"].is_string()) prefix = decoder["prefix"].get<std::string>();
      if (decoder.contains("cleanup") && decoder["cleanup"].is_boolean()) cleanup = decoder["cleanup"].get<bool>();
      return DecoderKind::WordPiece;
    }
    if (type == "Sequence" && decoder.contains("decoders") && decoder["decoders"].is_array())
      for (const auto& d : decoder["decoders"])
        if (d.is_object() && d.value("type", "") == "ByteLevel") return DecoderKind::ByteLevel;
  }
  if (impl.pre_tokenizer && impl.pre_tokenizer->byte_level()) return DecoderKind::ByteLevel;
  if (impl.model->type() == "WordPiece") return DecoderKind::WordPiece;
  return DecoderKind::Concatenate;
}

// A token named in tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
std::optional<std::string> config_token(const json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return std::nullopt;
  const json& v = config[key];
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return std::nullopt;
}

void resolve_special_ids(Tokenizer::Impl& impl, const json& j, const std::string& path) {
  json config;
  const fs::path config_path = fs::path(path).parent_path() / "tokenizer_config.json";
  std::error_code ec;
  if (fs::is_regular_file(config_path, ec)) {
    std::ifstream f(config_path, std::ios::binary);
    // tokenizer_config.json only refines bos / eos / pad: a malformed one is ignored.
    config = json::parse(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>(), nullptr, false);
  }
  auto pick = [&](const char* key, std::initializer_list<const char*> fallbacks) -> std::optional<int32_t> {
    if (auto name = config_token(config, key)) return impl.token_to_id(*name);
    for (const char* name : fallbacks)
      if (auto id = impl.token_to_id(name)) return id;
    return std::nullopt;
  };
  // Carried into hf_tokenizer_config_json (add_bos_token / add_eos_token are not: the
  // tokenizer.json post-processor is what decides here).
  if (config.is_object())
    for (const char* key : {"chat_template", "model_max_length"})
      if (config.contains(key) && !config[key].is_null()) impl.hf.config[key] = nlohmann::ordered_json(config[key]);
  impl.bos = pick("bos_token", {"<s>", "<|begin_of_text|>", "<|startoftext|>", "<bos>"});
  impl.eos = pick("eos_token", {"</s>", "<|end_of_text|>", "<|endoftext|>", "<eos>"});
  impl.pad = pick("pad_token", {});
  if (!impl.pad && j.contains("padding") && j["padding"].is_object() && j["padding"].contains("pad_id") &&
      j["padding"]["pad_id"].is_number_integer())
    impl.pad = j["padding"]["pad_id"].get<int32_t>();
  if (!impl.pad)
    for (const char* name : {"[PAD]", "<pad>", "<|pad|>"})
      if ((impl.pad = impl.token_to_id(name))) break;
}

std::shared_ptr<Tokenizer::Impl> build(const json& j, const std::string& path) {
  if (!j.is_object()) tokjson::fail(path, "", "expected a JSON object (a Hugging Face tokenizer.json)");
  auto impl = std::make_shared<Tokenizer::Impl>();
  impl->path = path;
  const json& model = tokjson::field(j, "model", path, "");
  impl->model = parse_model(model, path, impl->hf.merges);
  // The sections as read, for to_hf_json (the model's settings without vocab and merges).
  impl->hf.model = nlohmann::ordered_json::object();
  impl->hf.model["type"] = impl->model->type();
  for (auto it = model.begin(); it != model.end(); ++it)
    if (it.key() != "type" && it.key() != "vocab" && it.key() != "merges")
      impl->hf.model[it.key()] = nlohmann::ordered_json(it.value());
  const std::pair<const char*, nlohmann::ordered_json*> sections[] = {{"normalizer", &impl->hf.normalizer},
                                                                      {"pre_tokenizer", &impl->hf.pre_tokenizer},
                                                                      {"post_processor", &impl->hf.post_processor},
                                                                      {"decoder", &impl->hf.decoder}};
  for (const auto& [key, out] : sections)
    if (j.contains(key)) *out = nlohmann::ordered_json(j[key]);
  impl->normalizer = parse_normalizer(j.value("normalizer", json()), path, "normalizer");
  impl->pre_tokenizer = parse_pre_tokenizer(j.value("pre_tokenizer", json()), path, "pre_tokenizer");
  impl->post_processor = parse_post_processor(j.value("post_processor", json()), path, "post_processor");
  impl->added.build(parse_added_tokens(j, *impl->model, path), impl->normalizer.get());
  impl->decoder = decoder_kind(j.value("decoder", json()), *impl, impl->wordpiece_prefix, impl->wordpiece_cleanup);
  resolve_special_ids(*impl, j, path);
  return impl;
}

}  // namespace

Tokenizer Tokenizer::from_json_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_file(path, "no such file (expected a Hugging Face tokenizer.json)");
  if (fs::is_directory(path, ec)) fail_file(path, "is a folder (expected a Hugging Face tokenizer.json file)");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail_file(path, "cannot be read");
  const std::string text{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  try {
    const json j = json::parse(text);
    return Tokenizer(build(j, path));
  } catch (const json::exception& e) {
    fail_file(path, std::string("malformed tokenizer.json: ") + e.what());
  }
}

}  // namespace modelpress::model
