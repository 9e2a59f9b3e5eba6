// Tokenizer: the encode pipeline (added tokens, normalizer, pre-tokenizer, model,
// post-processor, in `tokenizers`' order), decode, and picking the source for a path.
#include "model/tokenizer.h"

#include <filesystem>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/gguf_reader.h"
#include "model/tokenizer_impl.h"
#include "model/unicode_text.h"

namespace modelpress::model {
namespace fs = std::filesystem;

namespace {

// String::from_utf8_lossy: each maximal invalid subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t pos = 0;
  while (pos < bytes.size()) {
    const auto bad = unicode::find_invalid_utf8(bytes.substr(pos));
    if (!bad) {
      out.append(bytes.substr(pos));
      break;
    }
    out.append(bytes.substr(pos, *bad));
    pos += *bad;
    // The invalid subsequence: the lead byte plus the continuation bytes that still fit.
    const auto b = static_cast<unsigned char>(bytes[pos]);
    size_t need = 1;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) need = 2;
    else if (b >= 0xE0 && b <= 0xEF) need = 3, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4) need = 4, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    size_t k = 1;
    while (k < need && pos + k < bytes.size()) {
      const auto c = static_cast<unsigned char>(bytes[pos + k]);
      if (k == 1 ? (c < lo || c > hi) : (c & 0xC0) != 0x80) break;
      ++k;
    }
    out += "\xEF\xBF\xBD";
    pos += k;
  }
  return out;
}

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  size_t at = 0;
  while ((at = s.find(from, at)) != std::string::npos) {
    s.replace(at, from.size(), to);
    at += to.size();
  }
  return s;
}

// `tokenizers`' decoders::wordpiece::cleanup.
std::string cleanup_wordpiece_text(std::string s) {
  s = replace_all(std::move(s), " .", ".");
  s = replace_all(std::move(s), " ?", "?");
  s = replace_all(std::move(s), " !", "!");
  s = replace_all(std::move(s), " ,", ",");
  s = replace_all(std::move(s), " ' ", "'");
  s = replace_all(std::move(s), " n't", "n't");
  s = replace_all(std::move(s), " 'm", "'m");
  s = replace_all(std::move(s), " do not", " don't");
  s = replace_all(std::move(s), " 's", "'s");
  s = replace_all(std::move(s), " 've", "'ve");
  s = replace_all(std::move(s), " 're", "'re");
  return s;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

using ojson = nlohmann::ordered_json;

// Appends a key known to be new to an ordered object without ordered_map's linear lookup
// (a vocabulary has tens of thousands of keys).
void append_new_key(ojson& object, const std::string& key, ojson value) {
  object.get_ref<ojson::object_t&>().push_back({key, std::move(value)});
}

std::string dump_or_fail(const ojson& j, const std::string& path, const char* what) {
  try {
    return j.dump(2) + "\n";
  } catch (const nlohmann::json::exception& e) {
    // Strict UTF-8: a GGUF token string need not be valid UTF-8, a JSON string must.
    fail_file(path, std::string("cannot write ") + what + ": " + e.what());
  }
}

}  // namespace

std::vector<int32_t> Tokenizer::Impl::encode(std::string_view text, bool add_special_tokens) const {
  if (const auto bad = unicode::find_invalid_utf8(text))
    throw Error("text to tokenize: invalid UTF-8 at byte " + std::to_string(*bad));
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  std::vector<TextPiece> raw, normalized;
  std::vector<std::string> pieces;
  added.split(text, /*normalized_stage=*/false, raw);
  for (auto& segment : raw) {
    if (segment.id >= 0) {
      ids.push_back(segment.id);
      continue;
    }
    std::string s = std::move(segment.text);
    if (normalizer) normalizer->normalize(s);
    if (s.empty()) continue;
    normalized.clear();
    added.split(s, /*normalized_stage=*/true, normalized);
    for (auto& piece : normalized) {
      if (piece.id >= 0) {
        ids.push_back(piece.id);
        continue;
      }
      if (piece.text.empty()) continue;
      pieces.clear();
      pieces.push_back(std::move(piece.text));
      if (pre_tokenizer) pre_tokenizer->pre_tokenize(pieces);
      for (const auto& p : pieces) model->tokenize(p, ids);
    }
  }
  if (add_special_tokens && post_processor) post_processor->process(ids);
  return ids;
}

std::optional<std::string> Tokenizer::Impl::id_to_token(int32_t id) const {
  if (const AddedToken* t = added.by_id(id)) return t->content;
  if (const std::string* t = model->vocab().token(id)) return *t;
  return std::nullopt;
}

std::optional<int32_t> Tokenizer::Impl::token_to_id(std::string_view token) const {
  if (auto id = added.find(token)) return id;
  return model->vocab().find(token);
}

std::string Tokenizer::Impl::decode(const std::vector<int32_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids)
    if (auto t = id_to_token(id)) tokens.push_back(std::move(*t));  // unknown ids are skipped, as in `tokenizers`
  switch (decoder) {
    case DecoderKind::ByteLevel: {
      std::string bytes;
      for (const auto& t : tokens) {
        std::string mapped;
        bool all = !unicode::find_invalid_utf8(t);  // GGUF token strings need not be UTF-8
        size_t i = 0;
        while (all && i < t.size()) {
          if (auto b = byte_level_byte(unicode::next_code_point(t, i))) mapped += static_cast<char>(*b);
          else all = false;
        }
        bytes += all ? mapped : t;  // a token outside the byte alphabet (an added token) as it is
      }
      return utf8_lossy(bytes);
    }
    case DecoderKind::WordPiece: {
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string t = tokens[i];
        if (i != 0) {
          if (t.starts_with(wordpiece_prefix)) t.erase(0, wordpiece_prefix.size());
          else t.insert(t.begin(), ' ');
        }
        out += wordpiece_cleanup ? cleanup_wordpiece_text(std::move(t)) : t;
      }
      return out;
    }
    case DecoderKind::Concatenate: break;
  }
  std::string out;
  for (const auto& t : tokens) out += t;
  return utf8_lossy(out);
}

// ---------------------------------------------------------------------------------------

std::vector<int32_t> Tokenizer::encode(std::string_view utf8_text, bool add_special_tokens) const {
  return impl_->encode(utf8_text, add_special_tokens);
}
std::string Tokenizer::decode(const std::vector<int32_t>& ids) const { return impl_->decode(ids); }
std::string Tokenizer::type() const { return impl_->model->type(); }

int64_t Tokenizer::vocab_size() const {
  int64_t n = static_cast<int64_t>(impl_->model->vocab().size());
  for (const auto& t : impl_->added.tokens())
    if (!impl_->model->vocab().find(t.content)) ++n;
  return n;
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const { return impl_->token_to_id(token); }
std::optional<std::string> Tokenizer::id_to_token(int32_t id) const { return impl_->id_to_token(id); }
std::optional<int32_t> Tokenizer::bos_id() const { return impl_->bos; }
std::optional<int32_t> Tokenizer::eos_id() const { return impl_->eos; }
std::optional<int32_t> Tokenizer::pad_id() const { return impl_->pad; }

std::string Tokenizer::to_hf_json() const {
  const Impl& m = *impl_;
  ojson j = ojson::object();
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  ojson added = ojson::array();
  for (const AddedToken& t : m.added.tokens())
    added.push_back({{"id", t.id},
                     {"content", t.content},
                     {"single_word", t.single_word},
                     {"lstrip", t.lstrip},
                     {"rstrip", t.rstrip},
                     {"normalized", t.normalized},
                     {"special", t.special}});
  j["added_tokens"] = std::move(added);
  j["normalizer"] = m.hf.normalizer;
  j["pre_tokenizer"] = m.hf.pre_tokenizer;
  j["post_processor"] = m.hf.post_processor;
  j["decoder"] = m.hf.decoder;

  ojson model = m.hf.model.is_object() ? m.hf.model : ojson::object();
  if (!model.contains("type")) model["type"] = m.model->type();
  // The vocabulary by id. A token string stored under two ids (possible in GGUF) keeps the
  // id lookups give it, the one a JSON object can hold.
  const Vocab& v = m.model->vocab();
  ojson vocab = ojson::object();
  size_t emitted = 0;
  for (int64_t id = 0; emitted < v.size() && id <= INT32_MAX; ++id) {
    const std::string* t = v.token(static_cast<int32_t>(id));
    if (!t || v.find(*t) != id) continue;
    append_new_key(vocab, *t, id);
    ++emitted;
  }
  model["vocab"] = std::move(vocab);
  if (m.model->type() == "BPE") {
    ojson merges = ojson::array();
    for (const auto& [a, b] : m.hf.merges) merges.push_back({a, b});
    model["merges"] = std::move(merges);
  }
  j["model"] = std::move(model);
  return dump_or_fail(j, m.path, "the tokenizer as a tokenizer.json");
}

std::string Tokenizer::hf_tokenizer_config_json() const {
  const Impl& m = *impl_;
  ojson c = ojson::object();
  auto token = [&](const char* key, std::optional<int32_t> id) {
    if (!id) return;
    if (auto t = m.id_to_token(*id)) c[key] = *t;
  };
  for (const char* key : {"add_bos_token", "add_eos_token"})
    if (m.hf.config.contains(key)) c[key] = m.hf.config[key];
  token("bos_token", m.bos);
  token("eos_token", m.eos);
  token("pad_token", m.pad);
  if (m.hf.model.is_object() && m.hf.model.contains("unk_token") && m.hf.model["unk_token"].is_string())
    token("unk_token", m.token_to_id(m.hf.model["unk_token"].get<std::string>()));
  for (const auto& [key, value] : m.hf.config.items())
    if (!c.contains(key)) c[key] = value;
  // WordPiece decoding joins "##" pieces and tidies spaces before punctuation, as BERT's
  // tokenizer_config does; byte-level BPE decodes exactly.
  c["clean_up_tokenization_spaces"] = m.model->type() == "WordPiece";
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  return dump_or_fail(c, m.path, "tokenizer_config.json");
}

Tokenizer Tokenizer::for_checkpoint(const Checkpoint& checkpoint) {
  if (checkpoint.format() == CheckpointFormat::Gguf && checkpoint.gguf())
    return from_gguf(*checkpoint.gguf(), checkpoint.files().empty() ? checkpoint.folder() : checkpoint.files()[0]);
  const fs::path json_path = fs::path(checkpoint.folder()) / "tokenizer.json";
  std::error_code ec;
  if (!fs::is_regular_file(json_path, ec))
    fail_file(checkpoint.folder(), "no tokenizer.json beside the weights (a safetensors checkpoint's tokenizer is "
                                   "read from the Hugging Face tokenizer.json in its folder)");
  return from_json_file(json_path.string());
}

Tokenizer Tokenizer::from_path(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) fail_file(path, "no such file or folder");
  if (fs::is_directory(path, ec)) {
    const fs::path json_path = fs::path(path) / "tokenizer.json";
    if (fs::is_regular_file(json_path, ec)) return from_json_file(json_path.string());
    return for_checkpoint(Checkpoint::open(path));
  }
  if (ends_with(path, ".gguf")) return from_gguf(GgufFile::open(path), path);
  if (ends_with(path, ".json") && !ends_with(path, ".index.json")) return from_json_file(path);
  return for_checkpoint(Checkpoint::open(path));
}

}  // namespace modelpress::model
