#include "model/tokenizer_pipeline.h"

#include <algorithm>
#include <array>
#include <stdexcept>

#include "model/tokenizer_json.h"
#include "model/unicode_text.h"

namespace modelpress::model {

using nlohmann::json;
namespace u = unicode;

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// ---------------------------------------------------------------------------------------
// Splitting: Pattern::find_matches and NormalizedString::split of `tokenizers`.

struct Match {
  size_t begin, end;
  bool is_match;
};

std::vector<Match> regex_matches(const TokenizerRegex& re, std::string_view s, bool invert) {
  if (s.empty()) return {{0, 0, invert}};
  std::vector<Match> out;
  size_t prev = 0;
  for (const auto& [b, e] : re.find_all(s)) {
    if (prev != b) out.push_back({prev, b, invert});
    out.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != s.size()) out.push_back({prev, s.size(), invert});
  return out;
}

// Every character for which `pred` holds is one match of its own.
template <typename Pred>
std::vector<Match> char_matches(std::string_view s, Pred pred) {
  if (s.empty()) return {{0, 0, false}};
  std::vector<Match> out;
  size_t last = 0, i = 0;
  while (i < s.size()) {
    const size_t b = i;
    const char32_t c = u::next_code_point(s, i);
    if (pred(c)) {
      if (last < b) out.push_back({last, b, false});
      out.push_back({b, i, true});
      last = i;
    }
  }
  if (last < s.size()) out.push_back({last, s.size(), false});
  return out;
}

void apply_split(std::string_view s, const std::vector<Match>& matches, SplitBehavior behavior,
                 std::vector<std::string>& out) {
  struct Part {
    size_t begin, end;
    bool remove;
  };
  std::vector<Part> parts;
  parts.reserve(matches.size());
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (const auto& m : matches) parts.push_back({m.begin, m.end, false});
      break;
    case SplitBehavior::Removed:
      for (const auto& m : matches) parts.push_back({m.begin, m.end, m.is_match});
      break;
    case SplitBehavior::Contiguous: {
      bool previous = false;
      for (const auto& m : matches) {
        if (m.is_match == previous && !parts.empty()) parts.back().end = m.end;
        else parts.push_back({m.begin, m.end, false});
        previous = m.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithPrevious: {
      bool previous = false;
      for (const auto& m : matches) {
        if (m.is_match && !previous && !parts.empty()) parts.back().end = m.end;
        else parts.push_back({m.begin, m.end, false});
        previous = m.is_match;
      }
      break;
    }
    case SplitBehavior::MergedWithNext: {
      bool previous = false;
      for (auto it = matches.rbegin(); it != matches.rend(); ++it) {
        if (it->is_match && !previous && !parts.empty()) parts.back().begin = it->begin;
        else parts.push_back({it->begin, it->end, false});
        previous = it->is_match;
      }
      std::reverse(parts.begin(), parts.end());
      break;
    }
  }
  for (const auto& p : parts)
    if (!p.remove && p.end > p.begin) out.emplace_back(s.substr(p.begin, p.end - p.begin));
}

// ---------------------------------------------------------------------------------------
// Normalizers

class FnNormalizer : public Normalizer {
 public:
  explicit FnNormalizer(std::function<std::string(std::string_view)> fn) : fn_(std::move(fn)) {}
  void normalize(std::string& text) const override { text = fn_(text); }

 private:
  std::function<std::string(std::string_view)> fn_;
};

class BertNormalizer : public Normalizer {
 public:
  BertNormalizer(bool clean_text, bool chinese, bool strip_accents, bool lowercase)
      : clean_text_(clean_text), chinese_(chinese), strip_accents_(strip_accents), lowercase_(lowercase) {}

  void normalize(std::string& text) const override {
    if (clean_text_ || chinese_) {
      std::string out;
      out.reserve(text.size() + 8);
      size_t i = 0;
      while (i < text.size()) {
        char32_t c = u::next_code_point(text, i);
        if (clean_text_) {
          if (c == 0 || c == 0xFFFD || u::is_bert_control(c)) continue;
          if (c == '\t' || c == '\n' || c == '\r' || u::is_whitespace(c)) c = ' ';
        }
        if (chinese_ && u::is_chinese_char(c)) {
          out += ' ';
          u::append_utf8(out, c);
          out += ' ';
        } else {
          u::append_utf8(out, c);
        }
      }
      text = std::move(out);
    }
    if (strip_accents_) {
      const std::string nfd = u::normalize(text, u::NormalForm::NFD);
      std::string out;
      out.reserve(nfd.size());
      size_t i = 0;
      while (i < nfd.size()) {
        const size_t b = i;
        const char32_t c = u::next_code_point(nfd, i);
        if (!u::is_mark_nonspacing_v8(c)) out.append(nfd, b, i - b);
      }
      text = std::move(out);
    }
    if (lowercase_) text = u::lowercase(text);
  }

 private:
  bool clean_text_, chinese_, strip_accents_, lowercase_;
};

class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t begin = 0, end = text.size();
    if (left_) {
      size_t i = 0;
      while (i < text.size()) {
        const size_t b = i;
        if (!u::is_whitespace(u::next_code_point(text, i))) {
          begin = b;
          break;
        }
        begin = i;
      }
    }
    if (right_) {
      size_t i = begin, last_non_space_end = begin;
      while (i < end) {
        if (!u::is_whitespace(u::next_code_point(text, i))) last_non_space_end = i;
      }
      end = last_non_space_end;
    }
    text = text.substr(begin, end - begin);
  }

 private:
  bool left_, right_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> stages) : stages_(std::move(stages)) {}
  void normalize(std::string& text) const override {
    for (const auto& s : stages_) s->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> stages_;
};

// ---------------------------------------------------------------------------------------
// Pre-tokenizers

template <typename F>
void split_each(std::vector<std::string>& pieces, F&& split_one) {
  std::vector<std::string> out;
  out.reserve(pieces.size() * 2);
  for (const auto& p : pieces) split_one(p, out);
  pieces = std::move(out);
}

class RegexSplit : public PreTokenizer {
 public:
  RegexSplit(std::shared_ptr<const TokenizerRegex> re, SplitBehavior behavior, bool invert)
      : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<std::string>& pieces) const override {
    split_each(pieces, [&](const std::string& p, std::vector<std::string>& out) {
      apply_split(p, regex_matches(*re_, p, invert_), behavior_, out);
    });
  }

 private:
  std::shared_ptr<const TokenizerRegex> re_;
  SplitBehavior behavior_;
  bool invert_;
};

template <typename Pred>
class CharSplit : public PreTokenizer {
 public:
  CharSplit(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(std::vector<std::string>& pieces) const override {
    split_each(pieces, [&](const std::string& p, std::vector<std::string>& out) {
      apply_split(p, char_matches(p, pred_), behavior_, out);
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <typename Pred>
std::unique_ptr<PreTokenizer> make_char_split(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharSplit<Pred>>(pred, behavior);
}

const std::shared_ptr<const TokenizerRegex>& gpt2_regex() {
  static const std::shared_ptr<const TokenizerRegex> re = [] {
    std::string error;
    auto r = TokenizerRegex::compile(kGpt2Pattern, error);
    if (!r) throw std::logic_error("GPT-2 pattern does not compile: " + error);
    return r;
  }();
  return re;
}

class ByteLevelPre : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  bool byte_level() const override { return true; }
  void pre_tokenize(std::vector<std::string>& pieces) const override {
    split_each(pieces, [&](const std::string& p, std::vector<std::string>& out) {
      std::string s = p;
      if (add_prefix_space_ && (s.empty() || s[0] != ' ')) s.insert(s.begin(), ' ');
      std::vector<std::string> parts;
      if (use_regex_) apply_split(s, regex_matches(*gpt2_regex(), s, false), SplitBehavior::Isolated, parts);
      else if (!s.empty()) parts.push_back(std::move(s));
      for (const auto& part : parts) {
        std::string mapped;
        mapped.reserve(part.size() * 2);
        for (char c : part) mapped += byte_level_char(static_cast<uint8_t>(c));
        out.push_back(std::move(mapped));
      }
    });
  }

 private:
  bool add_prefix_space_, use_regex_;
};

class SequencePre : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> stages) : stages_(std::move(stages)) {}
  bool byte_level() const override {
    for (const auto& s : stages_)
      if (s->byte_level()) return true;
    return false;
  }
  void pre_tokenize(std::vector<std::string>& pieces) const override {
    for (const auto& s : stages_) s->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> stages_;
};

class BertPre : public PreTokenizer {
 public:
  void pre_tokenize(std::vector<std::string>& pieces) const override {
    split_each(pieces, [](const std::string& p, std::vector<std::string>& out) {
      std::vector<std::string> words;
      apply_split(p, char_matches(p, u::is_whitespace), SplitBehavior::Removed, words);
      for (const auto& w : words) apply_split(w, char_matches(w, u::is_bert_punctuation), SplitBehavior::Isolated, out);
    });
  }
};

// ---------------------------------------------------------------------------------------
// Post-processors

class TemplateProcessor : public PostProcessor {
 public:
  // Each item: special ids, or nullopt for the sequence itself.
  explicit TemplateProcessor(std::vector<std::optional<std::vector<int32_t>>> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (const auto& item : items_) {
      if (item) out.insert(out.end(), item->begin(), item->end());
      else out.insert(out.end(), ids.begin(), ids.end());
    }
    ids = std::move(out);
  }

 private:
  std::vector<std::optional<std::vector<int32_t>>> items_;
};

class NoOpProcessor : public PostProcessor {
 public:
  void process(std::vector<int32_t>&) const override {}
};

class SequenceProcessor : public PostProcessor {
 public:
  explicit SequenceProcessor(std::vector<std::unique_ptr<PostProcessor>> stages) : stages_(std::move(stages)) {}
  void process(std::vector<int32_t>& ids) const override {
    for (const auto& s : stages_) s->process(ids);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> stages_;
};

// ---------------------------------------------------------------------------------------
// JSON

const char* const kSupportedNormalizers =
    "BertNormalizer, NFC, NFD, NFKC, NFKD, Lowercase, Strip, StripAccents, Sequence";
const char* const kSupportedPreTokenizers =
    "BertPreTokenizer, ByteLevel, Split, Digits, Whitespace, WhitespaceSplit, Punctuation, Sequence";
const char* const kSupportedPostProcessors =
    "TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, Sequence";

std::string type_of(const json& j, const std::string& path, const std::string& where) {
  return tokjson::get_string(j, "type", path, where);
}

SplitBehavior parse_behavior(const json& j, const std::string& path, const std::string& where) {
  const std::string b = tokjson::get_string_or(j, "behavior", "Isolated", path, where);
  if (b == "Removed") return SplitBehavior::Removed;
  if (b == "Isolated") return SplitBehavior::Isolated;
  if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (b == "Contiguous") return SplitBehavior::Contiguous;
  tokjson::fail(path, where + ".behavior",
                "unsupported split behavior '" + b +
                    "' (supported: Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous)");
}

std::shared_ptr<const TokenizerRegex> compile_or_fail(const std::string& pattern, const std::string& path,
                                                      const std::string& where) {
  std::string error;
  auto re = TokenizerRegex::compile(pattern, error);
  if (!re) tokjson::fail(path, where, "the pattern does not compile with ICU (" + error + ")");
  return re;
}

// [token, id] (BertProcessing / RobertaProcessing).
int32_t pair_id(const json& j, const char* key, const std::string& path, const std::string& where) {
  const json& v = tokjson::field(j, key, path, where);
  if (!v.is_array() || v.size() != 2) tokjson::fail(path, tokjson::join(where, key), "expected [token, id]");
  return tokjson::as_id(v[1], path, tokjson::join(where, key));
}

}  // namespace

// ---------------------------------------------------------------------------------------

const std::string& byte_level_char(uint8_t byte) {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t c = printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++);
      u::append_utf8(t[b], c);
    }
    return t;
  }();
  return table[byte];
}

std::optional<uint8_t> byte_level_byte(char32_t c) {
  static const std::array<int, 324> inverse = [] {
    std::array<int, 324> inv;
    inv.fill(-1);
    for (int b = 0; b < 256; ++b) {
      const std::string& s = byte_level_char(static_cast<uint8_t>(b));
      size_t i = 0;
      inv[u::next_code_point(s, i)] = b;
    }
    return inv;
  }();
  if (c >= inverse.size() || inverse[c] < 0) return std::nullopt;
  return static_cast<uint8_t>(inverse[c]);
}

std::unique_ptr<PreTokenizer> make_regex_split(std::shared_ptr<const TokenizerRegex> regex, SplitBehavior behavior,
                                               bool invert) {
  return std::make_unique<RegexSplit>(std::move(regex), behavior, invert);
}
std::unique_ptr<PreTokenizer> make_byte_level(bool add_prefix_space, bool use_regex) {
  return std::make_unique<ByteLevelPre>(add_prefix_space, use_regex);
}
std::unique_ptr<PreTokenizer> make_bert_pre_tokenizer() { return std::make_unique<BertPre>(); }
std::unique_ptr<PreTokenizer> make_sequence(std::vector<std::unique_ptr<PreTokenizer>> stages) {
  return std::make_unique<SequencePre>(std::move(stages));
}
std::unique_ptr<Normalizer> make_bert_normalizer(bool clean_text, bool handle_chinese_chars, bool strip_accents,
                                                 bool lowercase) {
  return std::make_unique<BertNormalizer>(clean_text, handle_chinese_chars, strip_accents, lowercase);
}
std::unique_ptr<PostProcessor> make_wrap_processor(std::vector<int32_t> prefix, std::vector<int32_t> suffix) {
  std::vector<std::optional<std::vector<int32_t>>> items;
  if (!prefix.empty()) items.emplace_back(std::move(prefix));
  items.emplace_back(std::nullopt);
  if (!suffix.empty()) items.emplace_back(std::move(suffix));
  return std::make_unique<TemplateProcessor>(std::move(items));
}

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const std::string& path, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, path, where);
  if (type == "BertNormalizer") {
    const bool lowercase = tokjson::get_bool(j, "lowercase", true, path, where);
    return make_bert_normalizer(tokjson::get_bool(j, "clean_text", true, path, where),
                                tokjson::get_bool(j, "handle_chinese_chars", true, path, where),
                                // strip_accents: null follows lowercase
                                tokjson::get_bool(j, "strip_accents", lowercase, path, where), lowercase);
  }
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    const u::NormalForm f = type == "NFC"    ? u::NormalForm::NFC
                            : type == "NFD"  ? u::NormalForm::NFD
                            : type == "NFKC" ? u::NormalForm::NFKC
                                             : u::NormalForm::NFKD;
    return std::make_unique<FnNormalizer>([f](std::string_view s) { return u::normalize(s, f); });
  }
  if (type == "Lowercase") return std::make_unique<FnNormalizer>([](std::string_view s) { return u::lowercase(s); });
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(tokjson::get_bool(j, "strip_left", true, path, where),
                                             tokjson::get_bool(j, "strip_right", true, path, where));
  if (type == "StripAccents") {
    // `tokenizers` filters unicode_normalization_alignments' is_combining_mark: any mark
    // of Unicode 9.0 (see unicode_text.h). No decomposition here: NFD comes before it.
    return std::make_unique<FnNormalizer>([](std::string_view s) {
      std::string out;
      size_t i = 0;
      while (i < s.size()) {
        const size_t b = i;
        if (!u::is_combining_mark(u::next_code_point(s, i))) out.append(s.substr(b, i - b));
      }
      return out;
    });
  }
  if (type == "Sequence") {
    const json& list = tokjson::field(j, "normalizers", path, where);
    if (!list.is_array()) tokjson::fail(path, where + ".normalizers", "expected a list");
    std::vector<std::unique_ptr<Normalizer>> stages;
    for (size_t i = 0; i < list.size(); ++i) {
      auto s = parse_normalizer(list[i], path, where + ".normalizers[" + std::to_string(i) + "]");
      if (s) stages.push_back(std::move(s));
    }
    return std::make_unique<SequenceNormalizer>(std::move(stages));
  }
  tokjson::fail(path, where, "unsupported normalizer type '" + type + "' (supported: " + kSupportedNormalizers + ")");
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const std::string& path, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, path, where);
  if (type == "BertPreTokenizer") return make_bert_pre_tokenizer();
  if (type == "ByteLevel")
    return make_byte_level(tokjson::get_bool(j, "add_prefix_space", true, path, where),
                           tokjson::get_bool(j, "use_regex", true, path, where));
  if (type == "Split") {
    const json& pattern = tokjson::field(j, "pattern", path, where);
    std::string regex;
    if (pattern.is_object() && pattern.contains("Regex") && pattern["Regex"].is_string())
      regex = pattern["Regex"].get<std::string>();
    else if (pattern.is_object() && pattern.contains("String") && pattern["String"].is_string())
      regex = TokenizerRegex::escape(pattern["String"].get<std::string>());
    else
      tokjson::fail(path, where + ".pattern", "expected {\"Regex\": ...} or {\"String\": ...}");
    return make_regex_split(compile_or_fail(regex, path, where + ".pattern"), parse_behavior(j, path, where),
                            tokjson::get_bool(j, "invert", false, path, where));
  }
  if (type == "Digits")
    return make_char_split(u::is_numeric, tokjson::get_bool(j, "individual_digits", false, path, where)
                                              ? SplitBehavior::Isolated
                                              : SplitBehavior::Contiguous);
  if (type == "Whitespace") {
    static const auto re = compile_or_fail(R"(\w+|[^\w\s]+)", "", "");
    return make_regex_split(re, SplitBehavior::Removed, /*invert=*/true);
  }
  if (type == "WhitespaceSplit") return make_char_split(u::is_whitespace, SplitBehavior::Removed);
  if (type == "Punctuation") return make_char_split(u::is_bert_punctuation, parse_behavior(j, path, where));
  if (type == "Sequence") {
    const json& list = tokjson::field(j, "pretokenizers", path, where);
    if (!list.is_array()) tokjson::fail(path, where + ".pretokenizers", "expected a list");
    std::vector<std::unique_ptr<PreTokenizer>> stages;
    for (size_t i = 0; i < list.size(); ++i) {
      auto s = parse_pre_tokenizer(list[i], path, where + ".pretokenizers[" + std::to_string(i) + "]");
      if (s) stages.push_back(std::move(s));
    }
    return make_sequence(std::move(stages));
  }
  tokjson::fail(path, where,
                "unsupported pre-tokenizer type '" + type + "' (supported: " + kSupportedPreTokenizers + ")");
}

std::unique_ptr<PostProcessor> parse_post_processor(const json& j, const std::string& path, const std::string& where) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, path, where);
  if (type == "ByteLevel") return std::make_unique<NoOpProcessor>();
  if (type == "BertProcessing" || type == "RobertaProcessing")
    return make_wrap_processor({pair_id(j, "cls", path, where)}, {pair_id(j, "sep", path, where)});
  if (type == "TemplateProcessing") {
    const json& single = tokjson::field(j, "single", path, where);
    if (!single.is_array()) tokjson::fail(path, where + ".single", "expected a list of template pieces");
    const json& specials = j.contains("special_tokens") ? j["special_tokens"] : json::object();
    std::vector<std::optional<std::vector<int32_t>>> items;
    for (size_t i = 0; i < single.size(); ++i) {
      const std::string at = where + ".single[" + std::to_string(i) + "]";
      const json& item = single[i];
      if (item.is_object() && item.contains("Sequence")) {
        items.emplace_back(std::nullopt);
      } else if (item.is_object() && item.contains("SpecialToken")) {
        const std::string name = tokjson::get_string(item["SpecialToken"], "id", path, at + ".SpecialToken");
        if (!specials.is_object() || !specials.contains(name))
          tokjson::fail(path, at, "special token '" + name + "' is not in " + where + ".special_tokens");
        const json& ids = tokjson::field(specials[name], "ids", path, where + ".special_tokens." + name);
        if (!ids.is_array()) tokjson::fail(path, where + ".special_tokens." + name + ".ids", "expected a list of ids");
        std::vector<int32_t> v;
        for (const auto& id : ids) v.push_back(tokjson::as_id(id, path, where + ".special_tokens." + name + ".ids"));
        items.emplace_back(std::move(v));
      } else {
        tokjson::fail(path, at, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      }
    }
    return std::make_unique<TemplateProcessor>(std::move(items));
  }
  if (type == "Sequence") {
    const json& list = tokjson::field(j, "processors", path, where);
    if (!list.is_array()) tokjson::fail(path, where + ".processors", "expected a list");
    std::vector<std::unique_ptr<PostProcessor>> stages;
    for (size_t i = 0; i < list.size(); ++i) {
      auto s = parse_post_processor(list[i], path, where + ".processors[" + std::to_string(i) + "]");
      if (s) stages.push_back(std::move(s));
    }
    return std::make_unique<SequenceProcessor>(std::move(stages));
  }
  tokjson::fail(path, where,
                "unsupported post-processor type '" + type + "' (supported: " + kSupportedPostProcessors + ")");
}

}  // namespace modelpress::model
