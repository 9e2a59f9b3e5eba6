// The tokenizer models: a pre-tokenized piece -> ids. WordPiece (BERT) and BPE (GPT-2,
// LLaMA-3, SmolLM2, byte-level or not), each reproducing the `tokenizers` crate's algorithm
// step for step. Internal to model/ (tokenizer.h is the public API).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace modelpress::model {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// token <-> id. Ids need not be dense; id_to_token is "" where no token has the id.
class Vocab {
 public:
  // Adds or replaces the token (a later duplicate wins, as in a JSON object).
  void add(std::string token, int32_t id) {
    if (id < 0) return;
    auto [it, inserted] = to_id_.try_emplace(token, id);
    if (!inserted) it->second = id;
    if (static_cast<size_t>(id) >= to_token_.size()) {
      to_token_.resize(static_cast<size_t>(id) + 1);
      has_.resize(static_cast<size_t>(id) + 1, false);
    }
    to_token_[id] = std::move(token);
    has_[id] = true;
  }
  std::optional<int32_t> find(std::string_view token) const {
    auto it = to_id_.find(token);
    if (it == to_id_.end()) return std::nullopt;
    return it->second;
  }
  const std::string* token(int32_t id) const {
    if (id < 0 || static_cast<size_t>(id) >= to_token_.size() || !has_[id]) return nullptr;
    return &to_token_[id];
  }
  size_t size() const { return to_id_.size(); }

 private:
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> to_id_;
  std::vector<std::string> to_token_;
  std::vector<bool> has_;
};

class TokenModel {
 public:
  virtual ~TokenModel() = default;
  virtual std::string type() const = 0;  // "WordPiece", "BPE"
  // Appends the ids of one pre-tokenized piece.
  virtual void tokenize(const std::string& piece, std::vector<int32_t>& ids) const = 0;
  const Vocab& vocab() const { return vocab_; }

 protected:
  explicit TokenModel(Vocab vocab) : vocab_(std::move(vocab)) {}
  Vocab vocab_;
};

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  size_t max_input_chars_per_word = 100;
};

// Greedy longest-match-first; a word with a piece not in the vocabulary, or longer than
// max_input_chars_per_word characters, is the single unk token.
std::unique_ptr<TokenModel> make_wordpiece(Vocab vocab, WordPieceOptions options, const std::string& path);

struct BpeOptions {
  std::optional<std::string> unk_token;
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;  // characters missing from the vocabulary -> <0xXX> tokens
  bool ignore_merges = false;  // a piece that is a whole token is that token (LLaMA-3)
};

// `merges` in rank order (rank = position). Throws Error naming `path` when a merge uses a
// token that is not in the vocabulary (as `tokenizers` refuses such a file).
std::unique_ptr<TokenModel> make_bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                                     BpeOptions options, const std::string& path);

}  // namespace modelpress::model
