// Added tokens (tokenizer.json "added_tokens", GGUF control / user-defined tokens), found in
// the text before anything else runs and never split, as `tokenizers`' AddedVocabulary does:
//  - tokens with normalized=false are matched in the raw text; the rest of the text is then
//    normalized, and tokens with normalized=true are matched (in their normalized form) in
//    the normalized pieces;
//  - matching is leftmost-longest and non-overlapping (Aho-Corasick LeftmostLongest);
//  - single_word: a match touching a word character (the `regex` crate's \w) on either side
//    is skipped; lstrip / rstrip: the match also swallows the whitespace before / after it.
// Internal to model/ (tokenizer.h is the public API).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace modelpress::model {

class Normalizer;

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool single_word = false;
  bool lstrip = false;
  bool rstrip = false;
  bool normalized = false;
};

// A piece of text; id >= 0 when it is an added token (and must not be split or tokenized).
struct TextPiece {
  std::string text;
  int32_t id = -1;
};

class AddedVocabulary {
 public:
  // `normalizer` (may be null) gives the form normalized=true tokens are matched in.
  void build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

  // Splits `text` around the added tokens of one stage (normalized == false: the raw text).
  void split(std::string_view text, bool normalized_stage, std::vector<TextPiece>& out) const;

  std::optional<int32_t> find(std::string_view content) const;
  const AddedToken* by_id(int32_t id) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }
  bool empty() const { return tokens_.empty(); }

 private:
  // A byte trie over one stage's patterns.
  struct Matcher {
    std::vector<int32_t> terminal;                    // node -> index into tokens_, or -1
    std::unordered_map<uint64_t, int32_t> edges;      // (node << 8 | byte) -> child node
    bool first_byte[256] = {};
    void add(std::string_view pattern, int32_t token_index);
    // Longest pattern starting at `at`: (length, token index), or length 0.
    std::pair<size_t, int32_t> longest_at(std::string_view text, size_t at) const;
  };

  std::vector<AddedToken> tokens_;
  std::unordered_map<std::string, size_t> by_content_;
  std::unordered_map<int32_t, size_t> by_id_;
  Matcher raw_, normalized_;
};

}  // namespace modelpress::model
