#include "model/tokenizer_added.h"

#include <algorithm>

#include "model/tokenizer_pipeline.h"
#include "model/unicode_text.h"

namespace modelpress::model {
namespace u = unicode;

namespace {

// The last character of s[0, end), or nullopt at the start.
std::optional<char32_t> char_before(std::string_view s, size_t end) {
  if (end == 0) return std::nullopt;
  size_t b = end - 1;
  while (b > 0 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  return u::next_code_point(s, b);
}

}  // namespace

void AddedVocabulary::Matcher::add(std::string_view pattern, int32_t token_index) {
  if (pattern.empty()) return;
  if (terminal.empty()) terminal.push_back(-1);  // the root
  int32_t node = 0;
  for (unsigned char b : pattern) {
    const uint64_t key = (static_cast<uint64_t>(node) << 8) | b;
    auto it = edges.find(key);
    if (it == edges.end()) {
      const auto child = static_cast<int32_t>(terminal.size());
      terminal.push_back(-1);
      it = edges.emplace(key, child).first;
    }
    node = it->second;
  }
  if (terminal[node] < 0) terminal[node] = token_index;  // the first token with this content wins
  first_byte[static_cast<unsigned char>(pattern[0])] = true;
}

std::pair<size_t, int32_t> AddedVocabulary::Matcher::longest_at(std::string_view text, size_t at) const {
  std::pair<size_t, int32_t> best{0, -1};
  if (terminal.empty() || !first_byte[static_cast<unsigned char>(text[at])]) return best;
  int32_t node = 0;
  for (size_t i = at; i < text.size(); ++i) {
    auto it = edges.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(text[i]));
    if (it == edges.end()) break;
    node = it->second;
    if (terminal[node] >= 0) best = {i + 1 - at, terminal[node]};
  }
  return best;
}

void AddedVocabulary::build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
  tokens_.clear();
  raw_ = Matcher();
  normalized_ = Matcher();
  by_content_.clear();
  by_id_.clear();
  for (auto& t : tokens) {
    if (t.content.empty()) continue;  // `tokenizers` ignores empty added tokens
    by_content_.try_emplace(t.content, tokens_.size());
    by_id_.try_emplace(t.id, tokens_.size());
    tokens_.push_back(std::move(t));
  }
  // Special tokens go first in `tokenizers`' tries; with leftmost-longest matching the order
  // only matters between tokens of equal content.
  std::vector<int32_t> order;
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (tokens_[i].special) order.push_back(static_cast<int32_t>(i));
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (!tokens_[i].special) order.push_back(static_cast<int32_t>(i));
  for (int32_t i : order) {
    const AddedToken& t = tokens_[i];
    if (!t.normalized) {
      raw_.add(t.content, i);
    } else {
      std::string pattern = t.content;
      if (normalizer) normalizer->normalize(pattern);
      normalized_.add(pattern, i);
    }
  }
}

void AddedVocabulary::split(std::string_view text, bool normalized_stage, std::vector<TextPiece>& out) const {
  const Matcher& m = normalized_stage ? normalized_ : raw_;
  size_t start_offset = 0;  // end of the previous piece
  size_t pos = 0;           // where the next search starts (the end of the previous match)
  while (pos < text.size()) {
    // The leftmost match, longest among those starting there.
    size_t at = pos;
    std::pair<size_t, int32_t> hit{0, -1};
    for (; at < text.size(); ++at) {
      hit = m.longest_at(text, at);
      if (hit.first > 0) break;
    }
    if (hit.first == 0) break;
    size_t start = at, stop = at + hit.first;
    pos = stop;  // as Aho-Corasick's iterator, even when the match is discarded below
    const AddedToken& t = tokens_[hit.second];
    if (t.single_word) {
      const auto before = char_before(text, start);
      size_t k = stop;
      const bool word_after = stop < text.size() && u::is_word_char(u::next_code_point(text, k));
      if ((before && u::is_word_char(*before)) || word_after) continue;
    }
    if (t.lstrip) {
      size_t s = start;
      while (auto c = char_before(text, s)) {
        if (!u::is_whitespace(*c)) break;
        size_t b = s - 1;
        while (b > 0 && (static_cast<unsigned char>(text[b]) & 0xC0) == 0x80) --b;
        s = b;
      }
      start = std::max(s, start_offset);
    }
    if (t.rstrip) {
      size_t k = stop;
      while (k < text.size()) {
        size_t next = k;
        if (!u::is_whitespace(u::next_code_point(text, next))) break;
        k = next;
      }
      stop = k;
    }
    if (start_offset < start) out.push_back({std::string(text.substr(start_offset, start - start_offset)), -1});
    out.push_back({std::string(text.substr(start, stop - start)), t.id});
    start_offset = stop;
  }
  if (start_offset < text.size()) out.push_back({std::string(text.substr(start_offset)), -1});
}

std::optional<int32_t> AddedVocabulary::find(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace modelpress::model
