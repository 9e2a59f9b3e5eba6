// `modelpress eval` and `modelpress calibrate` as a user runs them, on a tiny synthetic LLaMA
// with a small WordPiece tokenizer written here: the happy paths (a model against itself has
// KLD 0; a quantized one a positive KLD; JSON keys are stable; calibrate writes a file that
// validate reads), and every bad input of the issue: one line naming the problem, exit 1, no
// output file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/cli_runner.h"
#include "tests/model/tiny_vit.h"

namespace modelpress::testing {
namespace {

// A WordPiece tokenizer whose 48 tokens fit the synthetic model's vocabulary of 64: the
// special tokens, every letter, every letter as a continuation, and a period.
void write_tokenizer(const std::string& folder) {
  nlohmann::json vocab = nlohmann::json::object();
  int id = 0;
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "."}) vocab[t] = id++;
  for (char c = 'a'; c <= 'z'; ++c) vocab[std::string(1, c)] = id++;
  for (char c = 'a'; c <= 'z'; ++c) {
    if (id >= 64) break;
    vocab["##" + std::string(1, c)] = id++;
  }
  const nlohmann::json tok = {
      {"version", "1.0"},
      {"added_tokens", nlohmann::json::array()},
      {"normalizer", {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                      {"strip_accents", nullptr}, {"lowercase", true}}},
      {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
      {"post_processor", nullptr},
      {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                 {"max_input_chars_per_word", 100}, {"vocab", vocab}}},
  };
  std::ofstream(folder + "/tokenizer.json") << tok.dump();
}

void write_model(const std::string& folder, int vocab = 64) {
  SyntheticOptions o;
  o.layers = 2;
  o.hidden = 32;
  o.intermediate = 48;
  o.heads = 4;
  o.kv_heads = 2;
  o.vocab = vocab;
  o.dtype = DType::F32;
  write_synthetic_checkpoint(folder, o);
  write_tokenizer(folder);
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

const std::string kText =
    "Tom appeared on the sidewalk with a bucket of whitewash and a long-handled brush.\n"
    "He surveyed the fence, and all gladness left him and a deep melancholy settled down upon his spirit.\n"
    "Thirty yards of board fence nine feet high. Life to him seemed hollow, and existence but a burden.\n";

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    write_model(dir / "m");
    write_text(dir / "text.txt", kText);
  }
  TempDir dir;
};

TEST_F(EvalCli, ModelAgainstItselfHasZeroKldAndStableJsonKeys) {
  const auto r = run(dir, "eval '" + dir / "m" + "' --reference '" + dir / "m" + "' --text '" + dir / "text.txt" +
                              "' --ctx 64 --stride 32 --json --report '" + dir / "r.html" + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const char* key : {"model", "reference", "architecture", "backend", "text", "decoder", "nonfinite", "notes"})
    EXPECT_TRUE(j.contains(key)) << key;
  const auto& d = j["decoder"];
  EXPECT_GT(d["scored_tokens"].get<int>(), 100);
  EXPECT_NEAR(d["kld"]["mean"].get<double>(), 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(d["top1_agreement"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(d["perplexity"].get<double>(), d["reference_perplexity"].get<double>());
  EXPECT_NE(read_file(dir / "r.html").find("<svg"), std::string::npos);
}

TEST_F(EvalCli, QuantizedModelHasPositiveKld) {
  ASSERT_EQ(run(dir, "quantize '" + dir / "m" + "' -o '" + dir / "q" + "' --method w4a16 --group-size 16").status, 0);
  const auto r = run(dir, "eval '" + dir / "q" + "' --reference '" + dir / "m" + "' --text '" + dir / "text.txt" +
                              "' --ctx 64 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["decoder"]["kld"]["mean"].get<double>(), 0.0);
}

TEST_F(EvalCli, CalibrateWritesAFileValidateReads) {
  auto r = run(dir, "calibrate '" + dir / "m" + "' --text '" + dir / "text.txt" + "' -o '" + dir / "c.safetensors" +
                        "' --seq-len 32 --samples 4 --rows 16 --stats-memory 1KB");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("pass(es)"), std::string::npos);
  ASSERT_EQ(run(dir, "quantize '" + dir / "m" + "' -o '" + dir / "q" + "' --method llm-int8").status, 0);
  r = run(dir, "validate --original '" + dir / "m" + "' --compressed '" + dir / "q" + "' --calib '" +
                   dir / "c.safetensors" + "' --json");
  EXPECT_EQ(r.status, 0) << r.err;
}

void expect_error(const CommandResult& r, const std::string& needle) {
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(needle), std::string::npos) << r.err;
  EXPECT_EQ(lines(r.err), 1u) << r.err;  // "eval: loading" lines go before; see below
}

// Errors must be one line: run with the loading messages filtered out.
CommandResult eval(const TempDir& dir, const std::string& args) {
  CommandResult r = run(dir, "eval " + args);
  std::string kept;
  size_t pos = 0;
  while (pos < r.err.size()) {
    const size_t end = r.err.find('\n', pos);
    const std::string line = r.err.substr(pos, end == std::string::npos ? std::string::npos : end - pos + 1);
    if (line.rfind("eval: loading", 0) != 0) kept += line;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  r.err = kept;
  return r;
}

TEST_F(EvalCli, EmptyTextIsRefused) {
  write_text(dir / "empty.txt", " \n\t\n");
  expect_error(eval(dir, "'" + dir / "m" + "' --text '" + dir / "empty.txt" + "'"), "the text is empty");
}

TEST_F(EvalCli, NonUtf8TextNamesTheByteOffset) {
  write_text(dir / "bad.txt", "abc def \xff ghi\n");
  const auto r = eval(dir, "'" + dir / "m" + "' --text '" + dir / "bad.txt" + "'");
  expect_error(r, "bad.txt");
  EXPECT_NE(r.err.find("8"), std::string::npos) << r.err;
}

TEST_F(EvalCli, CtxAboveTheModelsPositionsIsRefused) {
  expect_error(eval(dir, "'" + dir / "m" + "' --text '" + dir / "text.txt" + "' --ctx 4096"), "maximum position 2048");
}

TEST_F(EvalCli, ReferenceOfAnotherVocabularyIsRefused) {
  write_model(dir / "other", 80);
  expect_error(eval(dir, "'" + dir / "m" + "' --reference '" + dir / "other" + "' --text '" + dir / "text.txt" + "'"),
               "vocabulary");
}

TEST_F(EvalCli, MissingTokenizerIsNamed) {
  std::filesystem::remove(dir / "m/tokenizer.json");
  expect_error(eval(dir, "'" + dir / "m" + "' --text '" + dir / "text.txt" + "'"), "tokenizer.json");
}

TEST_F(EvalCli, UnsupportedTokenizerTypeIsNamed) {
  std::ofstream(dir / "m/tokenizer.json") << R"({"model": {"type": "Unigram", "vocab": []}})";
  expect_error(eval(dir, "'" + dir / "m" + "' --text '" + dir / "text.txt" + "'"), "Unigram");
}

TEST_F(EvalCli, UnknownArchitectureListsTheSupportedOnes) {
  auto j = nlohmann::json::parse(std::ifstream(dir / "m/config.json"));
  j["architectures"] = {"FalconForCausalLM"};
  std::ofstream(dir / "m/config.json") << j.dump();
  const auto r = eval(dir, "'" + dir / "m" + "' --text '" + dir / "text.txt" + "'");
  expect_error(r, "FalconForCausalLM");
  EXPECT_NE(r.err.find("LlamaForCausalLM"), std::string::npos);
}

TEST_F(EvalCli, MissingTensorIsNamed) {
  // A folder whose config asks for a third layer the weights do not have.
  auto j = nlohmann::json::parse(std::ifstream(dir / "m/config.json"));
  j["num_hidden_layers"] = 3;
  std::ofstream(dir / "m/config.json") << j.dump();
  expect_error(eval(dir, "'" + dir / "m" + "' --text '" + dir / "text.txt" + "'"), "model.layers.2.");
}

TEST_F(EvalCli, NonFiniteActivationsNameTheFirstLayerAndStillReport) {
  // An input norm weight of inf makes the first attention projections see inf.
  ASSERT_EQ(run(dir, "convert '" + dir / "m" + "' -o '" + dir / "copy" + "'").status, 0);
  const std::string st = dir / "copy/model.safetensors";
  // Patch the first element of model.layers.0.input_layernorm.weight to +inf in place.
  std::fstream f(st, std::ios::in | std::ios::out | std::ios::binary);
  uint64_t header_len = 0;
  f.read(reinterpret_cast<char*>(&header_len), 8);
  std::string header(header_len, '\0');
  f.read(header.data(), static_cast<std::streamsize>(header_len));
  const auto h = nlohmann::json::parse(header);
  const uint64_t off = h["model.layers.0.input_layernorm.weight"]["data_offsets"][0].get<uint64_t>();
  f.seekp(static_cast<std::streamoff>(8 + header_len + off));
  const float inf = INFINITY;
  f.write(reinterpret_cast<const char*>(&inf), 4);
  f.close();
  write_tokenizer(dir / "copy");
  const auto r = eval(dir, "'" + dir / "copy" + "' --text '" + dir / "text.txt" + "' --report '" + dir / "nf.json" + "'");
  expect_error(r, "model.layers.0.self_attn.q_proj");
  const auto j = nlohmann::json::parse(std::ifstream(dir / "nf.json"));
  EXPECT_NE(j["nonfinite"].get<std::string>().find("model.layers.0.self_attn.q_proj"), std::string::npos);
}

TEST_F(EvalCli, CalibrateRefusesAnExistingOutputAndLeavesNothingOnError) {
  write_text(dir / "empty.txt", "\n");
  auto r = run(dir, "calibrate '" + dir / "m" + "' --text '" + dir / "empty.txt" + "' -o '" + dir / "c.safetensors" + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_FALSE(std::filesystem::exists(dir / "c.safetensors"));
  write_text(dir / "c.safetensors", "x");
  r = run(dir, "calibrate '" + dir / "m" + "' --text '" + dir / "text.txt" + "' -o '" + dir / "c.safetensors" + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--overwrite"), std::string::npos) << r.err;
}

TEST(EvalCliVit, SyntheticImagesAgainstItselfAndQuantized) {
  TempDir dir;
  write_tiny_vit(dir / "vit", /*labels=*/6);
  auto r = run(dir, "eval '" + dir / "vit" + "' --reference '" + dir / "vit" + "' --images 5 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["vit"]["synthetic"].get<bool>());
  EXPECT_EQ(j["vit"]["images"].get<int>(), 5);
  EXPECT_NEAR(j["vit"]["cls_cosine"]["min"].get<double>(), 1.0, 1e-12);
  EXPECT_DOUBLE_EQ(j["vit"]["top1_agreement"].get<double>(), 1.0);
  ASSERT_EQ(run(dir, "quantize '" + dir / "vit" + "' -o '" + dir / "q" + "' --method w8a8").status, 0);
  r = run(dir, "eval '" + dir / "q" + "' --reference '" + dir / "vit" + "' --images 5 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  j = nlohmann::json::parse(r.out);
  const double cos = j["vit"]["cls_cosine"]["mean"].get<double>();
  EXPECT_LT(cos, 1.0);
  EXPECT_GT(cos, 0.99);
  // calibrate runs synthetic images through it, and validate reads the file.
  r = run(dir, "calibrate '" + dir / "vit" + "' -o '" + dir / "c.safetensors" + "' --samples 4");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(run(dir, "validate --original '" + dir / "vit" + "' --compressed '" + dir / "q" + "' --calib '" +
                         dir / "c.safetensors" + "' --json").status, 0);
}

TEST(EvalCliVit, TextModelsStillNeedText) {
  TempDir dir;
  write_model(dir / "m");
  const auto r = run(dir, "eval '" + dir / "m" + "'");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("--text FILE is required"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace modelpress::testing
