// BPE as `tokenizers`' models/bpe does it (model.rs merge_word, word.rs merge_all): one
// symbol per character, then repeatedly the applicable merge of lowest rank (leftmost among
// equal ranks), through a priority queue, so a word costs O(n log n), not a scan of all
// merges. Results are cached per piece: running text repeats its words.
#include <queue>

#include "io/error.h"
#include "model/tokenizer_models.h"
#include "model/unicode_text.h"

namespace modelpress::model {
namespace {

struct MergeInfo {
  uint32_t rank;
  int32_t new_id;
};

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

class Bpe : public TokenModel {
 public:
  Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions o,
      const std::string& path)
      : TokenModel(std::move(vocab)), o_(std::move(o)), path_(path) {
    merges_.reserve(merges.size() * 2);
    const size_t prefix_len = o_.continuing_subword_prefix.size();
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const auto& [a, b] = merges[rank];
      const std::string where = "model.merges[" + std::to_string(rank) + "] ('" + a + "' '" + b + "')";
      const auto a_id = vocab_.find(a), b_id = vocab_.find(b);
      if (!a_id) fail_file(path, where + ": token '" + a + "' is not in the vocabulary");
      if (!b_id) fail_file(path, where + ": token '" + b + "' is not in the vocabulary");
      if (b.size() < prefix_len) fail_file(path, where + ": '" + b + "' is shorter than the continuing_subword_prefix");
      const std::string merged = a + b.substr(prefix_len);
      const auto new_id = vocab_.find(merged);
      if (!new_id) fail_file(path, where + ": the merged token '" + merged + "' is not in the vocabulary");
      merges_.insert_or_assign(pair_key(*a_id, *b_id), MergeInfo{static_cast<uint32_t>(rank), *new_id});
    }
    if (o_.unk_token) unk_id_ = vocab_.find(*o_.unk_token);
  }

  std::string type() const override { return "BPE"; }

  void tokenize(const std::string& piece, std::vector<int32_t>& ids) const override {
    if (piece.empty()) return;
    if (o_.ignore_merges) {
      if (auto id = vocab_.find(piece)) {
        ids.push_back(*id);
        return;
      }
    }
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      auto it = cache_.find(piece);
      if (it != cache_.end()) {
        ids.insert(ids.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> word = merge_word(piece);
    ids.insert(ids.end(), word.begin(), word.end());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity) cache_.emplace(piece, std::move(word));
  }

 private:
  static constexpr size_t kCacheCapacity = 200000;

  struct Symbol {
    int32_t c;
    int64_t prev, next;
    size_t len;  // bytes; 0 once merged into its left neighbour
  };

  struct Word {
    std::vector<Symbol> symbols;
    void add(int32_t c, size_t byte_len) {
      const auto n = static_cast<int64_t>(symbols.size());
      if (!symbols.empty()) symbols.back().next = n;
      symbols.push_back({c, n - 1, -1, byte_len});
    }
  };

  int32_t unk_id() const {
    if (!unk_id_) fail_file(path_, "model.unk_token '" + *o_.unk_token + "' is not in the BPE vocabulary");
    return *unk_id_;
  }

  std::vector<int32_t> merge_word(const std::string& w) const {
    Word word;
    word.symbols.reserve(w.size());
    // A pending unk token (id and byte length), fused with the next one when fuse_unk is set.
    bool has_unk = false;
    int32_t unk_pending = 0;
    size_t unk_len = 0;
    std::string s;
    size_t i = 0;
    while (i < w.size()) {
      const size_t begin = i;
      unicode::next_code_point(w, i);
      const size_t byte_len = i - begin;
      s.clear();
      if (begin > 0) s += o_.continuing_subword_prefix;
      s.append(w, begin, byte_len);
      if (i == w.size()) s += o_.end_of_word_suffix;

      if (auto id = vocab_.find(s)) {
        if (has_unk) {
          word.add(unk_pending, unk_len);
          has_unk = false;
        }
        word.add(*id, byte_len);
        continue;
      }
      if (o_.byte_fallback) {
        std::vector<int32_t> bytes;
        for (unsigned char b : s) {
          static const char* hex = "0123456789ABCDEF";
          const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
          auto id = vocab_.find(std::string_view(name, 6));
          if (!id) break;
          bytes.push_back(*id);
        }
        if (bytes.size() == s.size()) {
          for (int32_t id : bytes) word.add(id, 1);
          continue;
        }
      }
      if (o_.unk_token) {
        if (has_unk && o_.fuse_unk) {
          unk_len += byte_len;
        } else {
          if (has_unk) word.add(unk_pending, unk_len);
          has_unk = true;
          unk_pending = unk_id();
          unk_len = byte_len;
        }
      }
      // Without an unk token, a character missing from the vocabulary is dropped (as in
      // `tokenizers`); byte-level vocabularies hold all 256 byte characters.
    }
    if (has_unk) word.add(unk_pending, unk_len);
    merge_all(word);
    std::vector<int32_t> out;
    out.reserve(word.symbols.size());
    for (const auto& sym : word.symbols)
      if (sym.len != 0) out.push_back(sym.c);
    return out;
  }

  void merge_all(Word& word) const {
    struct Merge {
      size_t pos;
      uint32_t rank;
      int32_t new_id;
    };
    // Lowest rank first, then leftmost (word.rs's Ord for Merge).
    auto later = [](const Merge& a, const Merge& b) { return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos; };
    std::priority_queue<Merge, std::vector<Merge>, decltype(later)> queue(later);
    auto& sy = word.symbols;
    for (size_t k = 0; k + 1 < sy.size(); ++k) {
      auto it = merges_.find(pair_key(sy[k].c, sy[k + 1].c));
      if (it != merges_.end()) queue.push({k, it->second.rank, it->second.new_id});
    }
    while (!queue.empty()) {
      const Merge top = queue.top();
      queue.pop();
      Symbol& cur = sy[top.pos];
      if (cur.len == 0 || cur.next == -1) continue;
      const auto next_pos = static_cast<size_t>(cur.next);
      const Symbol right = sy[next_pos];
      // Skip stale entries: the pair at this position changed since it was queued.
      auto it = merges_.find(pair_key(cur.c, right.c));
      if (it == merges_.end() || it->second.new_id != top.new_id) continue;
      cur.c = top.new_id;
      cur.len += right.len;
      cur.next = right.next;
      sy[next_pos].len = 0;
      if (right.next > -1 && static_cast<size_t>(right.next) < sy.size())
        sy[right.next].prev = static_cast<int64_t>(top.pos);
      if (cur.prev >= 0) {
        const Symbol& prev = sy[cur.prev];
        auto m = merges_.find(pair_key(prev.c, cur.c));
        if (m != merges_.end()) queue.push({static_cast<size_t>(cur.prev), m->second.rank, m->second.new_id});
      }
      if (cur.next >= 0 && static_cast<size_t>(cur.next) < sy.size()) {
        const Symbol& next = sy[cur.next];
        auto m = merges_.find(pair_key(cur.c, next.c));
        if (m != merges_.end()) queue.push({top.pos, m->second.rank, m->second.new_id});
      }
    }
  }

  BpeOptions o_;
  std::string path_;
  std::optional<int32_t> unk_id_;
  std::unordered_map<uint64_t, MergeInfo> merges_;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace

std::unique_ptr<TokenModel> make_bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges,
                                     BpeOptions options, const std::string& path) {
  return std::make_unique<Bpe>(std::move(vocab), merges, std::move(options), path);
}

}  // namespace modelpress::model
