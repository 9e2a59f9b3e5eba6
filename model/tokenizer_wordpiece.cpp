// WordPiece as `tokenizers`' models/wordpiece does it: for each position, the longest
// vocabulary entry starting there (with continuing_subword_prefix after the first piece),
// shrinking one character at a time; any failure makes the whole word unk_token.
#include "io/error.h"
#include "model/tokenizer_models.h"
#include "model/unicode_text.h"

namespace modelpress::model {

namespace {

class WordPiece : public TokenModel {
 public:
  WordPiece(Vocab vocab, WordPieceOptions o, const std::string& path)
      : TokenModel(std::move(vocab)), o_(std::move(o)), path_(path), unk_id_(vocab_.find(o_.unk_token)) {}

  std::string type() const override { return "WordPiece"; }

  void tokenize(const std::string& word, std::vector<int32_t>& ids) const override {
    if (word.empty()) return;
    if (unicode::count_code_points(word) > o_.max_input_chars_per_word) {
      ids.push_back(unk());
      return;
    }
    // Character boundaries, to shrink the candidate one character at a time.
    std::vector<size_t> bounds;
    for (size_t i = 0; i < word.size(); ++i)
      if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) bounds.push_back(i);
    bounds.push_back(word.size());

    const size_t first = ids.size();
    std::string candidate;
    size_t start_k = 0;  // index into bounds
    while (bounds[start_k] < word.size()) {
      const size_t start = bounds[start_k];
      std::optional<int32_t> found;
      size_t end_k = bounds.size() - 1;
      while (end_k > start_k) {
        const std::string_view piece(word.data() + start, bounds[end_k] - start);
        if (start > 0) {
          candidate.assign(o_.continuing_subword_prefix);
          candidate.append(piece);
          found = vocab_.find(candidate);
        } else {
          found = vocab_.find(piece);
        }
        if (found) break;
        --end_k;
      }
      if (!found) {
        ids.resize(first);
        ids.push_back(unk());
        return;
      }
      ids.push_back(*found);
      start_k = end_k;
    }
  }

 private:
  // Like `tokenizers`, a missing unk token is an error only when a word needs it.
  int32_t unk() const {
    if (!unk_id_) fail_file(path_, "model.unk_token '" + o_.unk_token + "' is not in the WordPiece vocabulary");
    return *unk_id_;
  }

  WordPieceOptions o_;
  std::string path_;
  std::optional<int32_t> unk_id_;
};

}  // namespace

std::unique_ptr<TokenModel> make_wordpiece(Vocab vocab, WordPieceOptions options, const std::string& path) {
  return std::make_unique<WordPiece>(std::move(vocab), std::move(options), path);
}

}  // namespace modelpress::model
