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
