// Tests of model/tokenizer.h on small tokenizer.json and GGUF files written here, with ids
// worked out by hand from the vocabularies and merge ranks below; bad inputs; and, when the
// default model is in .cache, known sentences of all-MiniLM-L6-v2 (ids from Python
// `tokenizers`).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/gguf_reader.h"
#include "model/tokenizer.h"
#include "model/tokenizer_regex.h"
#include "model/unicode_text.h"
#include "tests/test_util.h"

namespace modelpress::model {
namespace {

using nlohmann::json;
using testing::TempDir;
using testing::write_file;
using Ids = std::vector<int32_t>;

std::string write_json(const TempDir& dir, const std::string& name, const json& j) {
  const std::string path = dir / name;
  write_file(path, j.dump());
  return path;
}

// Expects `fn` to throw modelpress::Error whose one-line message contains every phrase.
template <typename F>
void expect_error(F fn, const std::vector<std::string>& phrases) {
  try {
    fn();
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    for (const auto& p : phrases) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
  }
}

json added(int id, const std::string& content, bool special = true) {
  return {{"id", id},           {"content", content}, {"single_word", false}, {"lstrip", false},
          {"rstrip", false},    {"normalized", !special}, {"special", special}};
}

// ---------------------------------------------------------------------------------------
// WordPiece

json wordpiece_json() {
  json vocab = {{"[PAD]", 0}, {"[UNK]", 1}, {"[CLS]", 2},  {"[SEP]", 3},   {"hello", 4}, {"world", 5},
                {"un", 6},    {"##aff", 7}, {"##able", 8}, {",", 9},       {"!", 10},    {"cafe", 11},
                {"中", 12},   {"国", 13},   {"a", 14},     {"##b", 15},    {"aaaa", 16}};
  return {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", {added(0, "[PAD]"), added(1, "[UNK]"), added(2, "[CLS]"), added(3, "[SEP]")}},
      {"normalizer",
       {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true}, {"strip_accents", nullptr},
        {"lowercase", true}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}}},
        {"pair", json::array()},
        {"special_tokens",
         {{"[CLS]", {{"id", "[CLS]"}, {"ids", {2}}, {"tokens", {"[CLS]"}}}},
          {"[SEP]", {{"id", "[SEP]"}, {"ids", {3}}, {"tokens", {"[SEP]"}}}}}}}},
      {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
      {"model",
       {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
        {"max_input_chars_per_word", 10}, {"vocab", vocab}}},
  };
}

TEST(TokenizerWordPiece, HandWorkedIds) {
  TempDir dir;
  const Tokenizer t = Tokenizer::from_json_file(write_json(dir, "tokenizer.json", wordpiece_json()));
  EXPECT_EQ(t.type(), "WordPiece");
  EXPECT_EQ(t.vocab_size(), 17);
  // Lowercased, punctuation isolated, [CLS] ... [SEP] around.
  EXPECT_EQ(t.encode("Hello, World!", true), (Ids{2, 4, 9, 5, 10, 3}));
  EXPECT_EQ(t.encode("Hello, World!", false), (Ids{4, 9, 5, 10}));
  // Greedy longest match with ## continuations.
  EXPECT_EQ(t.encode("unaffable", false), (Ids{6, 7, 8}));
  EXPECT_EQ(t.encode("ab", false), (Ids{14, 15}));
  // One piece missing -> the whole word is [UNK].
  EXPECT_EQ(t.encode("abc hello", false), (Ids{1, 4}));
  // Accents stripped (strip_accents null follows lowercase), CJK characters split apart.
  EXPECT_EQ(t.encode("CAFÉ 中国", false), (Ids{11, 12, 13}));
  // Longer than max_input_chars_per_word (10) -> [UNK], even though "aaaa" pieces exist.
  EXPECT_EQ(t.encode("aaaaaaaaaaa", false), (Ids{1}));
  // Tabs and newlines are whitespace; control characters are removed.
  EXPECT_EQ(t.encode("hello\tworld\nhello\x01world", false), (Ids{4, 5, 1}));
  // Special tokens written in the text are matched before normalization, never split.
  EXPECT_EQ(t.encode("hello [SEP] world", true), (Ids{2, 4, 3, 5, 3}));
  EXPECT_EQ(t.encode("[sep]", false), (Ids{1, 1, 1}));  // "[", "sep", "]": not the token
  EXPECT_EQ(t.encode("", true), (Ids{2, 3}));
  EXPECT_EQ(t.decode({2, 4, 9, 6, 7, 8, 10, 3}), "[CLS] hello, unaffable! [SEP]");
  EXPECT_EQ(t.token_to_id("##aff"), 7);
  EXPECT_EQ(t.id_to_token(8), "##able");
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_FALSE(t.bos_id().has_value());
}

// ---------------------------------------------------------------------------------------
// Byte-level BPE

// The 256 byte characters of GPT-2's byte-to-unicode map, id = byte value.
json byte_vocab() {
  json v = json::object();
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    std::string s;
    unicode::append_utf8(s, printable ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + n++));
    v[s] = b;
  }
  return v;
}

// Merges by rank and the tokens they make (ids 256...):
//   0 h e -> he 256      3 he ll -> hell 259     6 Ġ w -> Ġw 262
//   1 l l -> ll 257      4 hell o -> hello 260   7 o r -> or 263
//   2 Ġ t -> Ġt 258      5 Ġt he -> Ġthe 261     8 Ġw or -> Ġwor 264
// plus "<|endoftext|>" 265 (special), "Ġworld" 266 (reachable only with ignore_merges) and
// "<|begin_of_text|>" 267.
const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"}, {"l", "l"}, {"Ġ", "t"}, {"he", "ll"}, {"hell", "o"},
    {"Ġt", "he"}, {"Ġ", "w"}, {"o", "r"}, {"Ġw", "or"}};

json bpe_json(const json& pre_tokenizer, bool string_merges = false, bool ignore_merges = false,
              const json& post_processor = nullptr) {
  json vocab = byte_vocab();
  int id = 256;
  for (const auto& [a, b] : kMerges) vocab[a + b] = id++;
  vocab["<|endoftext|>"] = 265;
  vocab["Ġworld"] = 266;
  vocab["<|begin_of_text|>"] = 267;
  json merges = json::array();
  for (const auto& [a, b] : kMerges) {
    if (string_merges) merges.push_back(a + " " + b);
    else merges.push_back({a, b});
  }
  return {
      {"version", "1.0"},
      {"added_tokens", {added(265, "<|endoftext|>"), added(267, "<|begin_of_text|>")}},
      {"normalizer", nullptr},
      {"pre_tokenizer", pre_tokenizer},
      {"post_processor", post_processor},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
        {"ignore_merges", ignore_merges}, {"vocab", vocab}, {"merges", merges}}},
  };
}

json byte_level(bool add_prefix_space, bool use_regex = true) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", true},
          {"use_regex", use_regex}};
}

TEST(TokenizerBpe, Gpt2StyleMergesByRank) {
  TempDir dir;
  const Tokenizer t = Tokenizer::from_json_file(write_json(dir, "tokenizer.json", bpe_json(byte_level(false))));
  EXPECT_EQ(t.type(), "BPE");
  EXPECT_EQ(t.vocab_size(), 268);
  // "hello" | "Ġthe" | "Ġworld" -> hello, Ġthe, Ġwor l d
  EXPECT_EQ(t.encode("hello the world", false), (Ids{260, 261, 264, 'l', 'd'}));
  // A special token in the text is one id and splits the text around it.
  EXPECT_EQ(t.encode("hello<|endoftext|> the", false), (Ids{260, 265, 261}));
  // Whitespace runs: \s+(?!\S) leaves the last space to the word: "Ġ", "Ġthe".
  EXPECT_EQ(t.encode("  the", false), (Ids{32, 261}));
  // No post-processor: nothing added.
  EXPECT_EQ(t.encode("hello", true), (Ids{260}));
  EXPECT_EQ(t.token_to_id("<|endoftext|>"), 265);
  // No tokenizer_config.json: eos falls back to a conventional name in the vocabulary.
  EXPECT_EQ(t.eos_id(), 265);
}

TEST(TokenizerBpe, PrefixSpaceStringMergesAndRoundTrip) {
  TempDir dir;
  const Tokenizer list_form = Tokenizer::from_json_file(write_json(dir, "a.json", bpe_json(byte_level(true))));
  const Tokenizer string_form =
      Tokenizer::from_json_file(write_json(dir, "b.json", bpe_json(byte_level(true), /*string_merges=*/true)));
  // add_prefix_space: "hello" -> "Ġhello" -> Ġ + hello (no merge joins them).
  const Ids expect{32, 260};  // "Ġ" stands for byte 0x20: id 32
  EXPECT_EQ(list_form.encode("hello", false), expect);
  EXPECT_EQ(string_form.encode("hello", false), expect);
  const std::string text = "héllo wörld 🎉\n\t  x\r\n日本語 1234567 don't";
  EXPECT_EQ(list_form.encode(text, false), string_form.encode(text, false));

  const Tokenizer plain = Tokenizer::from_json_file(write_json(dir, "c.json", bpe_json(byte_level(false))));
  EXPECT_EQ(plain.decode(plain.encode(text, false)), text);
  EXPECT_EQ(plain.decode(plain.encode("a<|endoftext|>b", false)), "a<|endoftext|>b");
}

TEST(TokenizerBpe, DigitsSequenceAndSplit) {
  TempDir dir;
  const json digits = {{"type", "Sequence"},
                       {"pretokenizers",
                        {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(false)}}};
  const Tokenizer t = Tokenizer::from_json_file(write_json(dir, "d.json", bpe_json(digits)));
  EXPECT_EQ(t.encode("a123", false), (Ids{'a', '1', '2', '3'}));
  const json contiguous = {{"type", "Digits"}, {"individual_digits", false}};
  const json seq2 = {{"type", "Sequence"}, {"pretokenizers", {contiguous, byte_level(false, false)}}};
  // Without the regex, " the" stays one piece with the digits split off: "Ġthe", "12".
  const Tokenizer t2 = Tokenizer::from_json_file(write_json(dir, "e.json", bpe_json(seq2)));
  EXPECT_EQ(t2.encode(" the12", false), (Ids{261, '1', '2'}));
  // Split on a literal with behavior Removed.
  const json split = {{"type", "Sequence"},
                      {"pretokenizers",
                       {{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", "Removed"}, {"invert", false}},
                        byte_level(false, false)}}};
  const Tokenizer t3 = Tokenizer::from_json_file(write_json(dir, "f.json", bpe_json(split)));
  EXPECT_EQ(t3.encode("hello-hello--he", false), (Ids{260, 260, 256}));
}

TEST(TokenizerBpe, Llama3StyleIgnoreMergesAndTemplate) {
  TempDir dir;
  const json pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern",
          {{"Regex",
            R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|)"
            R"(\s*[\r\n]+|\s+(?!\S)|\s+)"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        byte_level(false, false)}}};
  const json post = {
      {"type", "Sequence"},
      {"processors",
       {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
        {{"type", "TemplateProcessing"},
         {"single",
          {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
           {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
         {"pair", json::array()},
         {"special_tokens",
          {{"<|begin_of_text|>",
            {{"id", "<|begin_of_text|>"}, {"ids", {267}}, {"tokens", {"<|begin_of_text|>"}}}}}}}}}};
  const Tokenizer with = Tokenizer::from_json_file(write_json(dir, "g.json", bpe_json(pre, false, true, post)));
  const Tokenizer without = Tokenizer::from_json_file(write_json(dir, "h.json", bpe_json(pre, false, false, post)));
  // "Ġworld" is a whole token: ignore_merges takes it as it is.
  EXPECT_EQ(with.encode("hello world", true), (Ids{267, 260, 266}));
  EXPECT_EQ(without.encode("hello world", true), (Ids{267, 260, 264, 'l', 'd'}));
  EXPECT_EQ(with.encode("hello world", false), (Ids{260, 266}));
  // \p{N}{1,3}: digits in groups of three.
  EXPECT_EQ(with.encode("1234", false), (Ids{'1', '2', '3', '4'}));
  EXPECT_EQ(with.bos_id(), 267);
}

TEST(TokenizerBpe, AddedTokenOptions) {
  TempDir dir;
  json j = bpe_json(byte_level(false));
  json eot = added(265, "<|endoftext|>");
  eot["lstrip"] = true;
  eot["rstrip"] = true;
  json bot = added(267, "<|begin_of_text|>");
  bot["single_word"] = true;
  j["added_tokens"] = {eot, bot};
  const Tokenizer t = Tokenizer::from_json_file(write_json(dir, "i.json", j));
  // lstrip/rstrip swallow the spaces around the token.
  EXPECT_EQ(t.encode("hello  <|endoftext|>  hello", false), (Ids{260, 265, 260}));
  // single_word: matched only between non-word characters.
  EXPECT_EQ(t.encode("hello <|begin_of_text|> hello", false), (Ids{260, 32, 267, 32, 260}));
  const Ids glued = t.encode("hello<|begin_of_text|>", false);
  EXPECT_EQ(std::count(glued.begin(), glued.end(), 267), 0);
}

// ---------------------------------------------------------------------------------------
// GGUF

enum : uint32_t { kU32 = 4, kI32 = 5, kBool = 7, kString = 8, kArray = 9 };

struct GgufKvs {
  std::string kvs;
  uint64_t n = 0;
  template <typename T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    kvs.append(b, sizeof(T));
  }
  void put_str(const std::string& s) {
    put<uint64_t>(s.size());
    kvs += s;
  }
  void key(const std::string& k, uint32_t type) {
    put_str(k);
    put<uint32_t>(type);
    ++n;
  }
  void str(const std::string& k, const std::string& v) {
    key(k, kString);
    put_str(v);
  }
  void u32(const std::string& k, uint32_t v) {
    key(k, kU32);
    put<uint32_t>(v);
  }
  void boolean(const std::string& k, bool v) {
    key(k, kBool);
    put<uint8_t>(v ? 1 : 0);
  }
  void strings(const std::string& k, const std::vector<std::string>& v) {
    key(k, kArray);
    put<uint32_t>(kString);
    put<uint64_t>(v.size());
    for (const auto& s : v) put_str(s);
  }
  void i32s(const std::string& k, const std::vector<int32_t>& v) {
    key(k, kArray);
    put<uint32_t>(kI32);
    put<uint64_t>(v.size());
    for (int32_t x : v) put<int32_t>(x);
  }
  std::string build() const {
    std::string s = "GGUF";
    auto p = [&](auto v) {
      char b[sizeof(v)];
      std::memcpy(b, &v, sizeof(v));
      s.append(b, sizeof(v));
    };
    p(uint32_t{3});
    p(uint64_t{0});
    p(n);
    s += kvs;
    s.resize((s.size() + 31) / 32 * 32, '\0');
    return s;
  }
};

TEST(TokenizerGguf, Gpt2SmollmPreTokenizer) {
  TempDir dir;
  std::vector<std::string> tokens(268);
  const json bv = byte_vocab();
  for (auto it = bv.begin(); it != bv.end(); ++it) tokens[it.value().get<int>()] = it.key();
  int id = 256;
  std::vector<std::string> merges;
  for (const auto& [a, b] : kMerges) {
    tokens[id++] = a + b;
    merges.push_back(a + " " + b);
  }
  tokens[265] = "<|endoftext|>";
  tokens[266] = "Ġworld";
  tokens[267] = "<|im_start|>";
  std::vector<int32_t> types(268, 1);
  types[265] = types[267] = 3;  // control
  GgufKvs g;
  g.str("general.architecture", "llama");
  g.str("tokenizer.ggml.model", "gpt2");
  g.str("tokenizer.ggml.pre", "smollm");
  g.strings("tokenizer.ggml.tokens", tokens);
  g.i32s("tokenizer.ggml.token_type", types);
  g.strings("tokenizer.ggml.merges", merges);
  g.u32("tokenizer.ggml.bos_token_id", 267);
  g.u32("tokenizer.ggml.eos_token_id", 265);
  g.boolean("tokenizer.ggml.add_bos_token", false);
  const std::string path = dir / "tiny.gguf";
  write_file(path, g.build());
  const Tokenizer t = Tokenizer::from_gguf(GgufFile::open(path), path);
  EXPECT_EQ(t.type(), "BPE");
  EXPECT_EQ(t.vocab_size(), 268);
  // \p{N} isolated first, then the GPT-2 regex: "hello", "Ġ", "1", "2", "3".
  EXPECT_EQ(t.encode("hello 123", true), (Ids{260, 32, '1', '2', '3'}));
  EXPECT_EQ(t.encode("<|im_start|>hello the", false), (Ids{267, 260, 261}));
  EXPECT_EQ(t.bos_id(), 267);
  EXPECT_EQ(t.eos_id(), 265);
  EXPECT_EQ(t.decode(t.encode("héllo wörld\n", false)), "héllo wörld\n");
  // from_path takes the .gguf directly.
  EXPECT_EQ(Tokenizer::from_path(path).encode("hello", false), (Ids{260}));
}

TEST(TokenizerGguf, BertPhantomSpaceVocabulary) {
  TempDir dir;
  GgufKvs g;
  g.str("tokenizer.ggml.model", "bert");
  g.strings("tokenizer.ggml.tokens",
            {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xE2\x96\x81hello", "\xE2\x96\x81world", "\xE2\x96\x81un", "aff",
             "able"});
  g.i32s("tokenizer.ggml.token_type", {3, 3, 3, 3, 1, 1, 1, 1, 1});
  g.u32("tokenizer.ggml.unknown_token_id", 1);
  g.u32("tokenizer.ggml.cls_token_id", 2);
  g.u32("tokenizer.ggml.seperator_token_id", 3);
  const std::string path = dir / "bert.gguf";
  write_file(path, g.build());
  const Tokenizer t = Tokenizer::from_gguf(GgufFile::open(path), path);
  EXPECT_EQ(t.type(), "WordPiece");
  EXPECT_EQ(t.encode("Hello unaffable WORLD", true), (Ids{2, 4, 6, 7, 8, 5, 3}));
  EXPECT_EQ(t.encode("hello zzz", false), (Ids{4, 1}));
}

TEST(TokenizerGguf, Errors) {
  TempDir dir;
  GgufKvs g;
  g.str("tokenizer.ggml.model", "llama");
  g.strings("tokenizer.ggml.tokens", {"a"});
  const std::string path = dir / "spm.gguf";
  write_file(path, g.build());
  expect_error([&] { Tokenizer::from_gguf(GgufFile::open(path), path); }, {path, "'llama'", "supported: gpt2"});
  GgufKvs none;
  none.str("general.architecture", "llama");
  const std::string path2 = dir / "none.gguf";
  write_file(path2, none.build());
  expect_error([&] { Tokenizer::from_gguf(GgufFile::open(path2), path2); }, {path2, "tokenizer.ggml.model"});
  GgufKvs pre;
  pre.str("tokenizer.ggml.model", "gpt2");
  pre.str("tokenizer.ggml.pre", "mystery");
  pre.strings("tokenizer.ggml.tokens", {"a"});
  pre.strings("tokenizer.ggml.merges", {});
  const std::string path3 = dir / "pre.gguf";
  write_file(path3, pre.build());
  expect_error([&] { Tokenizer::from_gguf(GgufFile::open(path3), path3); },
               {path3, "'mystery'", "smollm", "llama-bpe"});
}

// ---------------------------------------------------------------------------------------
// to_hf_json / hf_tokenizer_config_json: written back as a tokenizer.json, reloaded, the same
// ids (Python `tokenizers` on these files: tests/interop/test_tokenizer_interop.py)

const std::vector<std::string> kRoundTripTexts = {
    "Hello, world! hello the world",
    "héllo wörld CAFÉ naïve 東京は日本の首都です。 🎉👩‍👩‍👧 ½ ٣٤٥",
    "Numbers 1234567 3.14 -42 and\ttabs\n\n newlines   spaces  \r\n end  ",
    "don't I'M we've <|endoftext|> hello<|endoftext|>the [SEP] [CLS]x <|im_start|>user\nhi",
    "hello  <|endoftext|>  hello <|begin_of_text|> hello<|begin_of_text|> unaffable",
    "",
    "   ",
};

// Writes `t` as a folder (tokenizer.json + tokenizer_config.json), reloads it, and expects
// the same ids on every text, with and without special tokens; returns the written JSON.
json expect_hf_round_trip(const Tokenizer& t, const TempDir& dir, const std::string& name) {
  std::filesystem::create_directories(dir.path() / name);
  const std::string path = dir / (name + "/tokenizer.json");
  const std::string text = t.to_hf_json();
  write_file(path, text);
  write_file(dir / (name + "/tokenizer_config.json"), t.hf_tokenizer_config_json());
  const Tokenizer back = Tokenizer::from_json_file(path);
  EXPECT_EQ(back.type(), t.type()) << name;
  EXPECT_EQ(back.vocab_size(), t.vocab_size()) << name;
  EXPECT_EQ(back.bos_id(), t.bos_id()) << name;
  EXPECT_EQ(back.eos_id(), t.eos_id()) << name;
  EXPECT_EQ(back.pad_id(), t.pad_id()) << name;
  for (const auto& s : kRoundTripTexts)
    for (bool special : {true, false}) {
      const Ids want = t.encode(s, special);
      EXPECT_EQ(back.encode(s, special), want) << name << ": '" << s << "' special=" << special;
      EXPECT_EQ(back.decode(want), t.decode(want)) << name << ": '" << s << "'";
    }
  // Reading it back from the folder (as `modelpress tokenize OUT` does) gives the same again.
  EXPECT_EQ(Tokenizer::from_path((dir.path() / name).string()).encode(kRoundTripTexts[3], true),
            t.encode(kRoundTripTexts[3], true))
      << name;
  const json j = json::parse(text);
  EXPECT_EQ(j["version"], "1.0");
  EXPECT_TRUE(j["model"]["vocab"].is_object());
  return j;
}

TEST(TokenizerHfExport, TokenizerJsonRoundTrip) {
  TempDir dir;
  // WordPiece with BertNormalizer, template [CLS] ... [SEP], max_input_chars_per_word 10.
  const json wp = expect_hf_round_trip(
      Tokenizer::from_json_file(write_json(dir, "wp.json", wordpiece_json())), dir, "wp");
  EXPECT_EQ(wp["model"]["max_input_chars_per_word"], 10);
  EXPECT_EQ(wp["model"]["vocab"].size(), 17u);
  EXPECT_EQ(wp["normalizer"]["type"], "BertNormalizer");
  EXPECT_FALSE(wp["model"].contains("merges"));

  // Byte-level BPE: with and without prefix space, legacy "a b" merges (written back as
  // pairs), Digits, Split, ignore_merges + TemplateProcessing.
  const json gpt2 = expect_hf_round_trip(
      Tokenizer::from_json_file(write_json(dir, "gpt2.json", bpe_json(byte_level(false)))), dir, "gpt2");
  EXPECT_EQ(gpt2["model"]["merges"].size(), kMerges.size());
  EXPECT_EQ(gpt2["model"]["merges"][0], json::array({"h", "e"}));
  EXPECT_EQ(gpt2["model"]["vocab"]["Ġworld"], 266);
  ASSERT_EQ(gpt2["added_tokens"].size(), 2u);
  EXPECT_EQ(gpt2["added_tokens"][0]["content"], "<|endoftext|>");
  EXPECT_EQ(gpt2["added_tokens"][0]["special"], true);
  expect_hf_round_trip(Tokenizer::from_json_file(write_json(dir, "prefix.json", bpe_json(byte_level(true), true))),
                       dir, "prefix");
  const json digits = {{"type", "Sequence"},
                       {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, byte_level(false)}}};
  json nfc = bpe_json(digits);
  nfc["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}}}};
  expect_hf_round_trip(Tokenizer::from_json_file(write_json(dir, "digits.json", nfc)), dir, "digits");
  const json split = {{"type", "Sequence"},
                      {"pretokenizers",
                       {{{"type", "Split"},
                         {"pattern", {{"Regex", R"(\p{N}{1,3}| ?\p{L}+|\s+)"}}},
                         {"behavior", "Isolated"},
                         {"invert", false}},
                        byte_level(false, false)}}};
  const json post = {{"type", "TemplateProcessing"},
                     {"single",
                      {{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                       {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
                     {"pair", json::array()},
                     {"special_tokens",
                      {{"<|begin_of_text|>",
                        {{"id", "<|begin_of_text|>"}, {"ids", {267}}, {"tokens", {"<|begin_of_text|>"}}}}}}};
  const Tokenizer llama3 =
      Tokenizer::from_json_file(write_json(dir, "llama3.json", bpe_json(split, false, true, post)));
  EXPECT_EQ(llama3.encode("hello world", true), (Ids{267, 260, 266}));
  const json l3 = expect_hf_round_trip(llama3, dir, "llama3");
  EXPECT_EQ(l3["model"]["ignore_merges"], true);
  EXPECT_EQ(l3["post_processor"]["type"], "TemplateProcessing");

  // Added tokens with lstrip / rstrip / single_word, and a normalized one under Lowercase.
  json opts = bpe_json(byte_level(false));
  json eot = added(265, "<|endoftext|>");
  eot["lstrip"] = eot["rstrip"] = true;
  json bot = added(267, "<|begin_of_text|>");
  bot["single_word"] = true;
  opts["added_tokens"] = {eot, bot, added(268, "HeLLo", false)};
  opts["normalizer"] = {{"type", "Lowercase"}};
  const Tokenizer with_added = Tokenizer::from_json_file(write_json(dir, "added.json", opts));
  EXPECT_EQ(with_added.encode("HELLO", false), (Ids{268}));
  const json a = expect_hf_round_trip(with_added, dir, "added");
  ASSERT_EQ(a["added_tokens"].size(), 3u);
  EXPECT_EQ(a["added_tokens"][0]["lstrip"], true);
  EXPECT_EQ(a["added_tokens"][1]["single_word"], true);
  EXPECT_EQ(a["added_tokens"][2]["normalized"], true);
  EXPECT_EQ(a["added_tokens"][2]["id"], 268);

  // tokenizer_config.json: the special tokens by name; a chat template beside the source is kept.
  std::filesystem::create_directories(dir.path() / "src");
  write_file(dir / "src/tokenizer.json", bpe_json(byte_level(false)).dump());
  write_file(dir / "src/tokenizer_config.json",
             json{{"bos_token", "<|begin_of_text|>"}, {"chat_template", "{{ messages }}"}}.dump());
  const json c = json::parse(Tokenizer::from_path((dir.path() / "src").string()).hf_tokenizer_config_json());
  EXPECT_EQ(c["tokenizer_class"], "PreTrainedTokenizerFast");
  EXPECT_EQ(c["bos_token"], "<|begin_of_text|>");
  EXPECT_EQ(c["eos_token"], "<|endoftext|>");
  EXPECT_EQ(c["chat_template"], "{{ messages }}");
  EXPECT_FALSE(c.contains("pad_token"));
}

// A byte-level BPE GGUF over byte_vocab() and kMerges (ids as in bpe_json), <|endoftext|>
// 265 and <|im_start|> 267 control tokens.
std::string write_bpe_gguf(const TempDir& dir, const std::string& name, const std::string& pre,
                           std::optional<bool> add_bos, const std::vector<std::string>& extra_tokens = {}) {
  std::vector<std::string> tokens(268);
  const json bv = byte_vocab();
  for (auto it = bv.begin(); it != bv.end(); ++it) tokens[it.value().get<int>()] = it.key();
  int id = 256;
  std::vector<std::string> merges;
  for (const auto& [a, b] : kMerges) {
    tokens[id++] = a + b;
    merges.push_back(a + " " + b);
  }
  tokens[265] = "<|endoftext|>";
  tokens[266] = "Ġworld";
  tokens[267] = "<|im_start|>";
  for (const auto& t : extra_tokens) tokens.push_back(t);
  std::vector<int32_t> types(tokens.size(), 1);
  types[265] = types[267] = 3;  // control
  GgufKvs g;
  g.str("general.architecture", "llama");
  g.u32("llama.context_length", 2048);
  g.str("tokenizer.ggml.model", "gpt2");
  g.str("tokenizer.ggml.pre", pre);
  g.strings("tokenizer.ggml.tokens", tokens);
  g.i32s("tokenizer.ggml.token_type", types);
  g.strings("tokenizer.ggml.merges", merges);
  g.u32("tokenizer.ggml.bos_token_id", 267);
  g.u32("tokenizer.ggml.eos_token_id", 265);
  g.u32("tokenizer.ggml.unknown_token_id", 265);
  if (add_bos) g.boolean("tokenizer.ggml.add_bos_token", *add_bos);
  g.str("tokenizer.chat_template", "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}");
  const std::string path = dir / name;
  write_file(path, g.build());
  return path;
}

TEST(TokenizerHfExport, GgufBpeRoundTrip) {
  TempDir dir;
  // "smollm": \p{N} then llama.cpp's GPT-2 regex = SmolLM2's Digits + ByteLevel(use_regex).
  const std::string smol_path = write_bpe_gguf(dir, "smol.gguf", "smollm", false);
  const Tokenizer smol = Tokenizer::from_gguf(GgufFile::open(smol_path), smol_path);
  const json s = expect_hf_round_trip(smol, dir, "smol");
  const json want_pre = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Digits"}, {"individual_digits", true}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}}}};
  EXPECT_EQ(s["pre_tokenizer"], want_pre);
  EXPECT_EQ(s["decoder"]["type"], "ByteLevel");
  EXPECT_EQ(s["model"]["merges"].size(), kMerges.size());
  EXPECT_EQ(s["model"]["ignore_merges"], false);
  ASSERT_EQ(s["added_tokens"].size(), 2u);
  EXPECT_EQ(s["added_tokens"][1]["content"], "<|im_start|>");
  EXPECT_EQ(s["added_tokens"][1]["id"], 267);
  EXPECT_EQ(s["added_tokens"][1]["special"], true);
  EXPECT_EQ(s["added_tokens"][1]["normalized"], false);
  const json c = json::parse(smol.hf_tokenizer_config_json());
  EXPECT_EQ(c["bos_token"], "<|im_start|>");
  EXPECT_EQ(c["eos_token"], "<|endoftext|>");
  EXPECT_EQ(c["unk_token"], "<|endoftext|>");
  EXPECT_EQ(c["add_bos_token"], false);
  EXPECT_EQ(c["add_eos_token"], false);
  EXPECT_EQ(c["model_max_length"], 2048);
  EXPECT_EQ(c["chat_template"], "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}");
  EXPECT_EQ(c["tokenizer_class"], "PreTrainedTokenizerFast");

  // "llama-bpe": its regex as a Split, ByteLevel without regex, ignore_merges, BOS added by
  // default as a TemplateProcessing.
  const std::string l_path = write_bpe_gguf(dir, "llama.gguf", "llama-bpe", std::nullopt);
  const Tokenizer llama = Tokenizer::from_gguf(GgufFile::open(l_path), l_path);
  EXPECT_EQ(llama.encode("hello world", true), (Ids{267, 260, 266}));
  const json l = expect_hf_round_trip(llama, dir, "llama");
  ASSERT_EQ(l["pre_tokenizer"]["pretokenizers"].size(), 2u);
  EXPECT_EQ(l["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
  EXPECT_EQ(l["pre_tokenizer"]["pretokenizers"][1]["use_regex"], false);
  EXPECT_EQ(l["model"]["ignore_merges"], true);
  EXPECT_EQ(l["post_processor"]["type"], "TemplateProcessing");
  EXPECT_EQ(l["post_processor"]["special_tokens"]["<|im_start|>"]["ids"], json::array({267}));
  EXPECT_EQ(json::parse(llama.hf_tokenizer_config_json())["add_bos_token"], true);

  // "default": several regexes, the GPT-2 one not last (a Split like the others).
  const std::string d_path = write_bpe_gguf(dir, "default.gguf", "default", true);
  const json d = expect_hf_round_trip(Tokenizer::from_gguf(GgufFile::open(d_path), d_path), dir, "default");
  EXPECT_EQ(d["pre_tokenizer"]["pretokenizers"].size(), 5u);

  // A token that is not UTF-8 cannot go into a JSON file: one line naming the GGUF.
  const std::string bad_path = write_bpe_gguf(dir, "bad.gguf", "gpt2", false, {"\xFF\xFE"});
  const Tokenizer bad = Tokenizer::from_gguf(GgufFile::open(bad_path), bad_path);
  expect_error([&] { bad.to_hf_json(); }, {bad_path, "tokenizer.json"});
}

TEST(TokenizerHfExport, GgufBertRoundTrip) {
  TempDir dir;
  GgufKvs g;
  g.str("tokenizer.ggml.model", "bert");
  g.strings("tokenizer.ggml.tokens",
            {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "\xE2\x96\x81hello", "\xE2\x96\x81world", "\xE2\x96\x81un", "aff",
             "able", "[MASK]", "\xE2\x96\x81,", "\xE2\x96\x81" "cafe"});
  g.i32s("tokenizer.ggml.token_type", {3, 3, 3, 3, 1, 1, 1, 1, 1, 3, 1, 1});
  g.u32("tokenizer.ggml.unknown_token_id", 1);
  g.u32("tokenizer.ggml.cls_token_id", 2);
  g.u32("tokenizer.ggml.seperator_token_id", 3);
  g.u32("tokenizer.ggml.padding_token_id", 0);
  g.u32("tokenizer.ggml.mask_token_id", 9);
  const std::string path = dir / "bert.gguf";
  write_file(path, g.build());
  const Tokenizer t = Tokenizer::from_gguf(GgufFile::open(path), path);
  EXPECT_EQ(t.encode("Hello, unaffable CAFÉ [MASK]", true), (Ids{2, 4, 10, 6, 7, 8, 11, 9, 3}));
  const json j = expect_hf_round_trip(t, dir, "bert");
  EXPECT_EQ(j["model"]["type"], "WordPiece");
  EXPECT_EQ(j["model"]["unk_token"], "[UNK]");
  EXPECT_EQ(j["model"]["vocab"]["##aff"], 7);
  EXPECT_EQ(j["model"]["vocab"]["hello"], 4);
  EXPECT_EQ(j["normalizer"]["type"], "BertNormalizer");
  EXPECT_EQ(j["pre_tokenizer"]["type"], "BertPreTokenizer");
  EXPECT_EQ(j["decoder"]["type"], "WordPiece");
  const json c = json::parse(t.hf_tokenizer_config_json());
  EXPECT_EQ(c["cls_token"], "[CLS]");
  EXPECT_EQ(c["sep_token"], "[SEP]");
  EXPECT_EQ(c["mask_token"], "[MASK]");
  EXPECT_EQ(c["pad_token"], "[PAD]");
  EXPECT_EQ(c["unk_token"], "[UNK]");
}

TEST(TokenizerHfExport, SmolLM2GgufRoundTrip) {
  const std::string path = std::string(MODELPRESS_SOURCE_DIR) + "/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path;
  TempDir dir;
  const Tokenizer t = Tokenizer::from_gguf(GgufFile::open(path), path);
  const json j = expect_hf_round_trip(t, dir, "smollm2");
  EXPECT_EQ(j["model"]["vocab"].size(), 49152u);
  EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Digits");
  // Ids published for SmolLM2's tokenizer.
  const Tokenizer back = Tokenizer::from_json_file(dir / "smollm2/tokenizer.json");
  EXPECT_EQ(back.encode("Hello, we can use", true), (Ids{19556, 28, 392, 416, 722}));
  EXPECT_EQ(back.encode("Hello world! 123", true), (Ids{19556, 905, 17, 216, 33, 34, 35}));
}

// ---------------------------------------------------------------------------------------
// Bad inputs

TEST(TokenizerErrors, UnsupportedAndMalformedFiles) {
  TempDir dir;
  json unigram = wordpiece_json();
  unigram["model"] = {{"type", "Unigram"}, {"unk_id", 0}, {"vocab", {{"a", 0.0}}}};
  const std::string p1 = write_json(dir, "unigram.json", unigram);
  expect_error([&] { Tokenizer::from_json_file(p1); }, {p1, "'Unigram'", "supported: WordPiece, BPE"});

  json wordlevel = wordpiece_json();
  wordlevel["model"] = {{"type", "WordLevel"}, {"unk_token", "[UNK]"}, {"vocab", {{"a", 0}}}};
  const std::string p2 = write_json(dir, "wordlevel.json", wordlevel);
  expect_error([&] { Tokenizer::from_json_file(p2); }, {p2, "'WordLevel'"});

  json metaspace = wordpiece_json();
  metaspace["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", "▁"}};
  const std::string p3 = write_json(dir, "metaspace.json", metaspace);
  expect_error([&] { Tokenizer::from_json_file(p3); }, {p3, "pre_tokenizer", "'Metaspace'", "ByteLevel"});

  json precompiled = wordpiece_json();
  precompiled["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", ""}};
  const std::string p4 = write_json(dir, "precompiled.json", precompiled);
  expect_error([&] { Tokenizer::from_json_file(p4); }, {p4, "normalizer", "'Precompiled'", "BertNormalizer"});

  const std::string missing = dir / "nope/tokenizer.json";
  expect_error([&] { Tokenizer::from_json_file(missing); }, {missing});

  const std::string broken = dir / "broken.json";
  write_file(broken, "{\"model\": {\"type\": \"BPE\", ");
  expect_error([&] { Tokenizer::from_json_file(broken); }, {broken, "malformed"});

  json bad_merge = bpe_json(byte_level(false));
  bad_merge["model"]["merges"].push_back({"x", "nothere"});
  const std::string p5 = write_json(dir, "badmerge.json", bad_merge);
  expect_error([&] { Tokenizer::from_json_file(p5); }, {p5, "model.merges[9]", "nothere"});

  json no_vocab = wordpiece_json();
  no_vocab["model"].erase("vocab");
  const std::string p6 = write_json(dir, "novocab.json", no_vocab);
  expect_error([&] { Tokenizer::from_json_file(p6); }, {p6, "vocab"});

  // A folder without tokenizer.json or weights.
  expect_error([&] { Tokenizer::from_path(dir.path().string()); }, {dir.path().string()});
}

TEST(TokenizerErrors, InvalidUtf8NamesTheByteOffset) {
  TempDir dir;
  const Tokenizer t = Tokenizer::from_json_file(write_json(dir, "tokenizer.json", wordpiece_json()));
  expect_error([&] { t.encode("hello\xFFworld", false); }, {"invalid UTF-8", "byte 5"});
  expect_error([&] { t.encode("ab\xC3", false); }, {"byte 2"});                      // truncated
  expect_error([&] { t.encode("\xED\xA0\x80", false); }, {"byte 0"});                // a surrogate
  expect_error([&] { t.encode("ok \xC0\xAF", false); }, {"byte 3"});                 // overlong
  EXPECT_EQ(unicode::find_invalid_utf8("h\xC3\xA9llo \xF0\x9F\x8E\x89"), std::nullopt);
}

// ---------------------------------------------------------------------------------------
// Unicode classes and the regex translation

TEST(TokenizerUnicode, ClassesFollowTokenizers) {
  // unicode_categories (Unicode 8.0) decides BERT punctuation and control characters.
  EXPECT_TRUE(unicode::is_bert_punctuation(U'$'));    // ASCII punctuation includes symbols
  EXPECT_TRUE(unicode::is_bert_punctuation(U'§'));
  EXPECT_FALSE(unicode::is_bert_punctuation(0x2E52));  // Po, but added in Unicode 13
  EXPECT_TRUE(unicode::is_bert_control(0x0085));
  EXPECT_FALSE(unicode::is_bert_control(0x0378));      // unassigned is not "other" there
  EXPECT_FALSE(unicode::is_bert_control(0x0890));      // Cf added in Unicode 14
  EXPECT_TRUE(unicode::is_whitespace(0x0085));
  EXPECT_TRUE(unicode::is_whitespace(0x3000));
  EXPECT_FALSE(unicode::is_whitespace(0x200B));
  EXPECT_EQ(unicode::lowercase("İΣ ÀB"), "i\xCC\x87σ àb");
  EXPECT_EQ(translate_onig_pattern(R"([^\s\p{L}]\S\\s)"), R"([^\p{White_Space}\p{L}]\P{White_Space}\\s)");
  std::string error;
  auto re = TokenizerRegex::compile(R"(\s+)", error);
  ASSERT_TRUE(re) << error;
  // U+000B and U+0085 are \s for Oniguruma and here (not for ICU's own \s).
  const auto m = re->find_all("a\x0B\xC2\x85z");
  ASSERT_EQ(m.size(), 1u);
  EXPECT_EQ(m[0], (std::pair<size_t, size_t>{1, 4}));
}

// ---------------------------------------------------------------------------------------
// all-MiniLM-L6-v2 (skipped without the default model)

TEST(TokenizerMiniLM, KnownSentences) {
  const std::string dir = std::string(MODELPRESS_SOURCE_DIR) + "/.cache/models/all-MiniLM-L6-v2";
  if (!std::filesystem::exists(dir + "/tokenizer.json")) GTEST_SKIP() << "no " << dir << "/tokenizer.json";
  const Tokenizer t = Tokenizer::from_path(dir);
  EXPECT_EQ(t.type(), "WordPiece");
  EXPECT_EQ(t.vocab_size(), 30522);
  EXPECT_EQ(t.encode("Hello, world!", true), (Ids{101, 7592, 1010, 2088, 999, 102}));
  EXPECT_EQ(t.encode("The quick brown fox jumps over the lazy dog.", true),
            (Ids{101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102}));
  EXPECT_EQ(t.encode("Café naïve résumé", true), (Ids{101, 7668, 15743, 13746, 102}));
  EXPECT_EQ(t.encode("unaffable tokenization", true), (Ids{101, 14477, 20961, 3468, 19204, 3989, 102}));
  EXPECT_EQ(t.encode("東京は日本の首都です。", true),
            (Ids{101, 1879, 1755, 1672, 1864, 1876, 1671, 100, 1961, 1665, 30184, 1636, 102}));
  EXPECT_EQ(t.encode("I can't [SEP] stop", true), (Ids{101, 1045, 2064, 1005, 1056, 102, 2644, 102}));
  EXPECT_EQ(t.encode("", true), (Ids{101, 102}));
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.token_to_id("[CLS]"), 101);
  // The checkpoint route: the tokenizer.json beside model.safetensors.
  const Tokenizer c = Tokenizer::for_checkpoint(Checkpoint::open(dir));
  EXPECT_EQ(c.encode("Hello, world!", false), (Ids{7592, 1010, 2088, 999}));
}

}  // namespace
}  // namespace modelpress::model
