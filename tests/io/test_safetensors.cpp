// Tests of the safetensors reader and writers (io/safetensors_reader.h, io/safetensors_writer.h)
// and of the tensor views they hand out.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/float_convert.h"
#include "io/safetensors_reader.h"
#include "io/safetensors_writer.h"
#include "io/tensor.h"

namespace modelpress {
namespace {

namespace fs = std::filesystem;

const DType kAllDTypes[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3,
                            DType::F8_E5M2, DType::I64, DType::I32, DType::I16, DType::I8,
                            DType::U64, DType::U32, DType::U16, DType::U8, DType::BOOL};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << "cannot read " << path;
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A raw safetensors file: 8-byte little-endian header length, the header text as given
// (no padding added), then the data blob.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  write_bytes(path, le64(header.size()) + header + data);
}

// The header text of a file on disk, read without the library.
std::string header_text(const std::string& path) {
  const std::string bytes = read_bytes(path);
  if (bytes.size() < 8) return {};
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[i])) << (8 * i);
  return bytes.substr(8, n);
}

size_t trailing_spaces(const std::string& s) {
  const size_t last = s.find_last_not_of(' ');
  return last == std::string::npos ? s.size() : s.size() - last - 1;
}

std::vector<std::byte> pattern(size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed * 17 + 7) & 0xff);
  return v;
}

std::vector<std::byte> bytes_of(const Tensor& t) { return {t.data(), t.data() + t.nbytes()}; }

std::string f32_bytes(std::initializer_list<float> values) {
  std::string s;
  for (float f : values) s.append(reinterpret_cast<const char*>(&f), 4);
  return s;
}

// Opening `path` must throw modelpress::Error whose message names the file and contains `phrase`.
void expect_open_fails(const std::string& path, const std::string& phrase) {
  try {
    SafetensorsFile::open(path);
    ADD_FAILURE() << "open succeeded; expected an error containing '" << phrase << "'";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << "message does not name the file: " << what;
    EXPECT_NE(what.find(phrase), std::string::npos) << "message lacks '" << phrase << "': " << what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-modelpress exception: " << e.what();
  }
}

template <typename F>
void expect_error_containing(F&& f, const std::string& phrase) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected an error containing '" << phrase << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(phrase), std::string::npos) << e.what();
  }
}

// Every test gets its own empty folder, removed at teardown.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<unsigned> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("modelpress-test-" + std::string(info->test_suite_name()) + "-" +
                                        info->name() + "-" + std::to_string(getpid()) + "-" +
                                        std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  // Every entry in the folder, hidden ones included, sorted.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

  fs::path dir_;
};

using Strings = std::vector<std::string>;

// The checks every file the writer produces must pass, beyond the reader's own validation.
void expect_well_formed(const SafetensorsFile& f) {
  EXPECT_EQ(f.header_bytes() % 8, 0u) << "header length not a multiple of 8";
  EXPECT_EQ(f.data_start() % 8, 0u) << "data section not 8-byte aligned";
  uint64_t covered = 0;
  for (const auto& e : f.entries()) {
    EXPECT_EQ(e.begin, covered) << e.name;
    covered = e.end;
  }
  EXPECT_EQ(f.data_start() + covered, f.file_size());
}

// ---------------------------------------------------------------------------------------------
// Writer -> reader round trips
// ---------------------------------------------------------------------------------------------

class SafetensorsRoundTrip : public TempDirTest {};

struct Spec {
  std::string name;
  DType dtype;
  Shape shape;
};

void write_specs(SafetensorsWriter& w, const std::vector<Spec>& specs) {
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    const auto bytes = pattern(static_cast<size_t>(shape_numel(s.shape)) * dtype_size(s.dtype), static_cast<unsigned>(i));
    w.append(s.name, s.dtype, s.shape, bytes);
  }
}

void expect_specs(const SafetensorsFile& f, const std::vector<Spec>& specs) {
  ASSERT_EQ(f.entries().size(), specs.size());
  for (size_t i = 0; i < specs.size(); ++i) {
    const auto& s = specs[i];
    SCOPED_TRACE(s.name);
    const SafetensorsEntry* e = f.find(s.name);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->dtype, s.dtype);
    EXPECT_EQ(e->shape, s.shape);
    const size_t n = static_cast<size_t>(shape_numel(s.shape)) * dtype_size(s.dtype);
    EXPECT_EQ(e->end - e->begin, n);
    const Tensor t = f.read(s.name);
    EXPECT_TRUE(t.is_view());
    EXPECT_EQ(t.dtype(), s.dtype);
    EXPECT_EQ(t.shape(), s.shape);
    EXPECT_EQ(t.nbytes(), n);
    EXPECT_EQ(bytes_of(t), pattern(n, static_cast<unsigned>(i)));
  }
}

std::vector<Spec> all_dtype_specs() {
  std::vector<Spec> specs;
  const Shape shapes[] = {{3}, {2, 3}, {1, 2, 3}, {5}, {4, 1}};
  size_t i = 0;
  for (DType t : kAllDTypes) specs.push_back({"t." + std::string(dtype_name(t)), t, shapes[i++ % 5]});
  specs.push_back({"empty_f32", DType::F32, {0, 4}});
  specs.push_back({"empty_bf16", DType::BF16, {5, 0}});
  specs.push_back({"scalar_f64", DType::F64, {}});
  specs.push_back({"scalar_u8", DType::U8, {}});
  specs.push_back({"after_scalar_i16", DType::I16, {7}});
  return specs;
}

TEST_F(SafetensorsRoundTrip, AllDTypesZeroSizeAndRankZero) {
  const auto specs = all_dtype_specs();
  const std::map<std::string, std::string> meta = {{"format", "pt"}, {"note", "quotes \" and \\ and h\xc3\xa9llo"}};
  {
    SafetensorsWriter w(path("m.safetensors"), meta, specs.size());
    write_specs(w, specs);
    EXPECT_EQ(w.tensor_count(), specs.size());
    w.finish();
  }
  EXPECT_EQ(listing(), Strings{"m.safetensors"});
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  expect_well_formed(f);
  EXPECT_EQ(f.metadata(), meta);
  expect_specs(f, specs);
  // Written in append order, so the entries (sorted by offset) keep that order; zero-size
  // tensors share an offset with their neighbour, so only the non-empty ones are compared.
  std::vector<std::string> nonempty_written, nonempty_read;
  for (const auto& s : specs)
    if (shape_numel(s.shape) > 0) nonempty_written.push_back(s.name);
  for (const auto& e : f.entries())
    if (e.end > e.begin) nonempty_read.push_back(e.name);
  EXPECT_EQ(nonempty_read, nonempty_written);
  const SafetensorsEntry* s = f.find("scalar_f64");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->shape.empty());
  EXPECT_EQ(f.read("scalar_f64").numel(), 1);
  EXPECT_EQ(f.read("empty_f32").numel(), 0);
  EXPECT_TRUE(f.read("empty_bf16").to_f32().empty());
}

TEST_F(SafetensorsRoundTrip, FewTensorsUseTheReservedHeaderAreaInPlace) {
  const std::vector<Spec> specs = {{"a", DType::F32, {2, 3}}, {"b", DType::U8, {3}}};
  {
    SafetensorsWriter w(path("m.safetensors"));  // default reservation
    write_specs(w, specs);
    w.finish();
  }
  EXPECT_EQ(listing(), Strings{"m.safetensors"});
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  expect_well_formed(f);
  expect_specs(f, specs);
  // In place: the header fills the whole reserved area, padded with many spaces.
  const std::string h = header_text(path("m.safetensors"));
  EXPECT_GE(trailing_spaces(h), 8u) << "expected the padded in-place header, got: " << h;
  EXPECT_TRUE(f.metadata().empty());
}

TEST_F(SafetensorsRoundTrip, ManyTensorsOverflowTheReservedAreaAndAreCopied) {
  std::vector<Spec> specs;
  for (int i = 0; i < 300; ++i)
    specs.push_back({"model.layers." + std::to_string(i) + ".self_attn.q_proj.weight",
                     i % 3 == 0 ? DType::BF16 : (i % 3 == 1 ? DType::U8 : DType::F32), {i % 4 + 1, 3}});
  {
    SafetensorsWriter w(path("m.safetensors"), {{"format", "pt"}}, /*expected_tensors=*/1);
    write_specs(w, specs);
    w.finish();
  }
  EXPECT_EQ(listing(), Strings{"m.safetensors"}) << "temporary files left behind";
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  expect_well_formed(f);
  expect_specs(f, specs);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  // Copied: the header was rewritten at its own size, padded only up to a multiple of 8.
  const std::string h = header_text(path("m.safetensors"));
  EXPECT_LT(trailing_spaces(h), 8u);
}

TEST_F(SafetensorsRoundTrip, ManyTensorsWithAGoodEstimateStayInPlace) {
  std::vector<Spec> specs;
  for (int i = 0; i < 300; ++i) specs.push_back({"w" + std::to_string(i), DType::F16, {2, 2}});
  {
    SafetensorsWriter w(path("m.safetensors"), {}, specs.size());
    write_specs(w, specs);
    w.finish();
  }
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  expect_well_formed(f);
  expect_specs(f, specs);
  EXPECT_GE(trailing_spaces(header_text(path("m.safetensors"))), 8u);
}

TEST_F(SafetensorsRoundTrip, LargeDataSurvivesTheCopyFallback) {
  // Several MiB of data behind an overflowing header: exercises copy_range over many chunks.
  std::vector<Spec> specs;
  for (int i = 0; i < 20; ++i) specs.push_back({"big_tensor_with_a_long_name_" + std::to_string(i), DType::F32, {512, 257}});
  {
    SafetensorsWriter w(path("m.safetensors"));
    write_specs(w, specs);
    w.finish();
  }
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  expect_well_formed(f);
  expect_specs(f, specs);
  EXPECT_LT(trailing_spaces(header_text(path("m.safetensors"))), 8u);
}

TEST_F(SafetensorsRoundTrip, NoTensorsGivesAValidEmptyFile) {
  {
    SafetensorsWriter w(path("empty.safetensors"));
    w.finish();
  }
  const auto f = SafetensorsFile::open(path("empty.safetensors"));
  expect_well_formed(f);
  EXPECT_TRUE(f.entries().empty());
  EXPECT_TRUE(f.metadata().empty());
  EXPECT_EQ(f.file_size(), f.data_start());

  {
    SafetensorsWriter w(path("meta.safetensors"), {{"k", "v"}});
    w.finish();
  }
  const auto g = SafetensorsFile::open(path("meta.safetensors"));
  expect_well_formed(g);
  EXPECT_TRUE(g.entries().empty());
  EXPECT_EQ(g.metadata(), (std::map<std::string, std::string>{{"k", "v"}}));
}

TEST_F(SafetensorsRoundTrip, OnlyZeroSizeTensors) {
  const std::vector<Spec> specs = {{"z1", DType::F32, {0}}, {"z2", DType::I64, {3, 0, 2}}};
  {
    SafetensorsWriter w(path("m.safetensors"));
    write_specs(w, specs);
    w.finish();
  }
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  expect_well_formed(f);
  expect_specs(f, specs);
  EXPECT_EQ(f.file_size(), f.data_start());
}

TEST_F(SafetensorsRoundTrip, AppendTensorObjectsAndFinishUnderAnotherName) {
  const std::vector<float> values = {1.0f, -2.0f, 0.5f, 3.140625f, 0.0f, -0.0f};
  const Tensor bf = Tensor::from_f32(values, DType::BF16, {2, 3});
  const Tensor f32 = Tensor::from_f32(values, DType::F32, {6});
  {
    SafetensorsWriter w(path("placeholder.safetensors"));
    w.append("bf", bf);
    w.append("f32", f32);
    EXPECT_EQ(w.data_bytes(), 12u + 24u);
    w.finish(path("final.safetensors"));
  }
  EXPECT_EQ(listing(), Strings{"final.safetensors"});
  const auto f = SafetensorsFile::open(path("final.safetensors"));
  EXPECT_EQ(f.read("bf").to_f32(), values);
  EXPECT_EQ(f.read("f32").to_f32(), values);
  EXPECT_EQ(bytes_of(f.read("bf")), bytes_of(bf));
}

TEST_F(SafetensorsRoundTrip, ViewsReadFromAFileWriteIntoANewFile) {
  // Source tensors at odd offsets (a 3-byte tensor first), plus zero-size and rank-0 ones.
  const std::vector<Spec> specs = {{"odd", DType::U8, {3}},         {"w", DType::F32, {64, 33}},
                                   {"empty", DType::BF16, {0, 7}},  {"s", DType::F64, {}},
                                   {"h", DType::F16, {5}},          {"last", DType::I8, {1}}};
  {
    SafetensorsWriter w(path("src.safetensors"), {{"format", "pt"}});
    write_specs(w, specs);
    w.finish();
  }
  const auto src = SafetensorsFile::open(path("src.safetensors"));
  // In place (good estimate) and through the copy fallback (estimate too small, long names).
  for (const size_t expected : {specs.size(), size_t{0}}) {
    SCOPED_TRACE("expected_tensors = " + std::to_string(expected));
    const std::string out = path("out" + std::to_string(expected) + ".safetensors");
    {
      SafetensorsWriter w(out, {}, expected);
      for (const auto& e : src.entries()) {
        const std::string name = expected ? e.name : e.name + std::string(60, '_');
        w.append(name, src.read(e));
      }
      w.finish();
    }
    const auto f = SafetensorsFile::open(out);
    expect_well_formed(f);
    ASSERT_EQ(f.entries().size(), specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      const std::string name = expected ? specs[i].name : specs[i].name + std::string(60, '_');
      SCOPED_TRACE(name);
      const Tensor t = f.read(name);
      EXPECT_EQ(t.dtype(), specs[i].dtype);
      EXPECT_EQ(t.shape(), specs[i].shape);
      EXPECT_EQ(bytes_of(t), bytes_of(src.read(specs[i].name)));
    }
  }
  // And through the sharded writer, splitting the views over several shards.
  fs::create_directory(path("sharded"));
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(path("sharded"), 64 * 33 * 4);
    for (const auto& e : src.entries()) w.append(e.name, src.read(e));
    written = w.finish();
  }
  ASSERT_GE(written.size(), 3u);
  size_t seen = 0;
  for (size_t i = 0; i + 1 < written.size(); ++i) {
    const auto f = SafetensorsFile::open(path("sharded/" + written[i]));
    expect_well_formed(f);
    for (const auto& e : f.entries()) {
      EXPECT_EQ(bytes_of(f.read(e)), bytes_of(src.read(e.name))) << e.name;
      ++seen;
    }
  }
  EXPECT_EQ(seen, specs.size());
}

// ---------------------------------------------------------------------------------------------
// Writer behaviour
// ---------------------------------------------------------------------------------------------

class SafetensorsWriterTest : public TempDirTest {};

TEST_F(SafetensorsWriterTest, DestroyedWithoutFinishLeavesNothing) {
  { SafetensorsWriter w(path("a.safetensors")); }
  EXPECT_EQ(listing(), Strings{});
  {
    SafetensorsWriter w(path("b.safetensors"), {{"k", "v"}});
    const auto bytes = pattern(4096, 1);
    for (int i = 0; i < 50; ++i) w.append("t" + std::to_string(i), DType::U8, {4096}, bytes);
    EXPECT_FALSE(listing().empty()) << "the temporary file should exist while writing";
    EXPECT_FALSE(fs::exists(path("b.safetensors"))) << "the final name must not appear before finish()";
  }
  EXPECT_EQ(listing(), Strings{});
}

TEST_F(SafetensorsWriterTest, DuplicateNameThrows) {
  SafetensorsWriter w(path("m.safetensors"));
  const auto bytes = pattern(8, 0);
  w.append("a", DType::F32, {2}, bytes);
  expect_error_containing([&] { w.append("a", DType::F32, {2}, bytes); }, "'a'");
  expect_error_containing([&] { w.append("a", DType::U8, {8}, bytes); }, "appended twice");
  w.finish();
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  EXPECT_EQ(f.entries().size(), 1u);
}

TEST_F(SafetensorsWriterTest, ReservedMetadataNameThrows) {
  SafetensorsWriter w(path("m.safetensors"));
  const auto bytes = pattern(4, 0);
  expect_error_containing([&] { w.append("__metadata__", DType::F32, {1}, bytes); }, "__metadata__");
}

TEST_F(SafetensorsWriterTest, WrongByteCountThrowsAndLeavesTheWriterUsable) {
  SafetensorsWriter w(path("m.safetensors"));
  const auto bytes = pattern(12, 0);
  expect_error_containing([&] { w.append("a", DType::F32, {2}, bytes); }, "needs 8");
  EXPECT_EQ(w.tensor_count(), 0u);
  EXPECT_EQ(w.data_bytes(), 0u);
  // The failed append must not have claimed the name.
  w.append("a", DType::F32, {3}, bytes);
  w.finish();
  const auto f = SafetensorsFile::open(path("m.safetensors"));
  ASSERT_EQ(f.entries().size(), 1u);
  EXPECT_EQ(bytes_of(f.read("a")), bytes);
}

TEST_F(SafetensorsWriterTest, AppendOrFinishAfterFinishThrows) {
  SafetensorsWriter w(path("m.safetensors"));
  w.append("a", DType::U8, {1}, pattern(1, 0));
  w.finish();
  EXPECT_THROW(w.append("b", DType::U8, {1}, pattern(1, 0)), Error);
  EXPECT_THROW(w.finish(), Error);
  EXPECT_EQ(SafetensorsFile::open(path("m.safetensors")).entries().size(), 1u);
}

TEST_F(SafetensorsWriterTest, ReplacesAnExistingFileOnlyAtFinish) {
  write_bytes(path("m.safetensors"), "old contents");
  SafetensorsWriter w(path("m.safetensors"));
  w.append("a", DType::U8, {2}, pattern(2, 0));
  EXPECT_EQ(read_bytes(path("m.safetensors")), "old contents");
  w.finish();
  EXPECT_EQ(SafetensorsFile::open(path("m.safetensors")).entries().size(), 1u);
}

TEST_F(SafetensorsWriterTest, CannotCreateInAMissingFolderNamesThePath) {
  const std::string p = path("no/such/dir/m.safetensors");
  try {
    SafetensorsWriter w(p);
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

// ---------------------------------------------------------------------------------------------
// Sharded writer
// ---------------------------------------------------------------------------------------------

class SafetensorsSharded : public TempDirTest {
 protected:
  nlohmann::json read_index() {
    return nlohmann::json::parse(read_bytes(path("model.safetensors.index.json")));
  }
  std::vector<std::string> names_in(const std::string& file) {
    std::vector<std::string> names;
    const auto f = SafetensorsFile::open(path(file));
    for (const auto& e : f.entries()) names.push_back(e.name);
    return names;
  }
};

TEST_F(SafetensorsSharded, SingleShardIsModelSafetensorsOnly) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 1 << 20, {{"format", "pt"}});
    w.append("a", DType::F32, {4}, pattern(16, 1));
    w.append("b", DType::BF16, {2, 2}, pattern(8, 2));
    w.append("c", DType::U8, {0}, {});
    written = w.finish();
  }
  EXPECT_EQ(written, Strings{"model.safetensors"});
  EXPECT_EQ(listing(), Strings{"model.safetensors"});
  const auto f = SafetensorsFile::open(path("model.safetensors"));
  expect_well_formed(f);
  EXPECT_EQ(names_in("model.safetensors"), (Strings{"a", "b", "c"}));
  EXPECT_EQ(bytes_of(f.read("a")), pattern(16, 1));
  EXPECT_EQ(f.metadata().at("format"), "pt");
}

TEST_F(SafetensorsSharded, NoTensorsGivesOneEmptyModelFile) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 100);
    written = w.finish();
  }
  EXPECT_EQ(written, Strings{"model.safetensors"});
  EXPECT_EQ(listing(), Strings{"model.safetensors"});
  EXPECT_TRUE(SafetensorsFile::open(path("model.safetensors")).entries().empty());
}

TEST_F(SafetensorsSharded, SeveralShardsWithIndex) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 100, {{"format", "pt"}});
    // 40 bytes each: two fit in 100, the third would make 120.
    for (int i = 0; i < 5; ++i) w.append("t" + std::to_string(i), DType::F32, {10}, pattern(40, i));
    written = w.finish();
  }
  const Strings shards = {"model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors",
                          "model-00003-of-00003.safetensors"};
  Strings want_written = shards;
  want_written.push_back("model.safetensors.index.json");
  EXPECT_EQ(written, want_written);
  Strings want_listing = want_written;
  std::sort(want_listing.begin(), want_listing.end());
  EXPECT_EQ(listing(), want_listing);

  EXPECT_EQ(names_in(shards[0]), (Strings{"t0", "t1"}));
  EXPECT_EQ(names_in(shards[1]), (Strings{"t2", "t3"}));
  EXPECT_EQ(names_in(shards[2]), (Strings{"t4"}));
  for (int i = 0; i < 5; ++i) {
    const auto f = SafetensorsFile::open(path(shards[i / 2]));
    expect_well_formed(f);
    EXPECT_EQ(bytes_of(f.read("t" + std::to_string(i))), pattern(40, i));
    EXPECT_EQ(f.metadata().at("format"), "pt");
  }

  const auto index = read_index();
  EXPECT_EQ(index.at("metadata").at("total_size").get<uint64_t>(), 200u);
  const nlohmann::json want_map = {{"t0", shards[0]}, {"t1", shards[0]}, {"t2", shards[1]},
                                   {"t3", shards[1]}, {"t4", shards[2]}};
  EXPECT_EQ(index.at("weight_map"), want_map);
}

TEST_F(SafetensorsSharded, ExactlyTheLimitStaysInOneShard) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 100);
    w.append("a", DType::U8, {50}, pattern(50, 0));
    w.append("b", DType::U8, {50}, pattern(50, 1));
    written = w.finish();
  }
  EXPECT_EQ(written, Strings{"model.safetensors"});
  EXPECT_EQ(names_in("model.safetensors"), (Strings{"a", "b"}));
}

TEST_F(SafetensorsSharded, TensorLargerThanTheLimitGetsItsOwnShard) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 100);
    w.append("a", DType::U8, {40}, pattern(40, 0));
    w.append("big", DType::U8, {300}, pattern(300, 1));
    w.append("b", DType::U8, {40}, pattern(40, 2));
    w.append("c", DType::U8, {40}, pattern(40, 3));
    written = w.finish();
  }
  ASSERT_EQ(written.size(), 4u);
  EXPECT_EQ(names_in(written[0]), (Strings{"a"}));
  EXPECT_EQ(names_in(written[1]), (Strings{"big"}));
  EXPECT_EQ(names_in(written[2]), (Strings{"b", "c"}));
  EXPECT_EQ(bytes_of(SafetensorsFile::open(path(written[1])).read("big")), pattern(300, 1));
  const auto index = read_index();
  EXPECT_EQ(index.at("metadata").at("total_size").get<uint64_t>(), 420u);
  EXPECT_EQ(index.at("weight_map").at("big"), "model-00002-of-00003.safetensors");
}

TEST_F(SafetensorsSharded, OversizedFirstTensorGetsItsOwnShard) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 100);
    w.append("big", DType::U8, {300}, pattern(300, 1));
    w.append("a", DType::U8, {40}, pattern(40, 0));
    written = w.finish();
  }
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(names_in(written[0]), (Strings{"big"}));
  EXPECT_EQ(names_in(written[1]), (Strings{"a"}));
}

TEST_F(SafetensorsSharded, DuplicateNameThrowsWithoutSideEffects) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 100);
    w.append("a", DType::U8, {80}, pattern(80, 0));
    // A second "a" would not fit beside the first; the failed append must not start a shard.
    expect_error_containing([&] { w.append("a", DType::U8, {80}, pattern(80, 0)); }, "appended twice");
    written = w.finish();
  }
  EXPECT_EQ(written, Strings{"model.safetensors"});
  EXPECT_EQ(listing(), Strings{"model.safetensors"});
  EXPECT_EQ(names_in("model.safetensors"), Strings{"a"});
}

TEST_F(SafetensorsSharded, RejectedAppendLeavesNoEmptyShard) {
  std::vector<std::string> written;
  {
    ShardedSafetensorsWriter w(dir_.string(), 100);
    w.append("a", DType::U8, {80}, pattern(80, 0));
    w.append("b", DType::U8, {80}, pattern(80, 1));
    // Would start a third shard, but the byte count is wrong for the shape.
    expect_error_containing([&] { w.append("c", DType::F32, {10}, pattern(80, 2)); }, "needs 40");
    expect_error_containing([&] { w.append("__metadata__", DType::U8, {80}, pattern(80, 2)); }, "reserved");
    written = w.finish();
  }
  ASSERT_EQ(written.size(), 3u);
  EXPECT_EQ(written[0], "model-00001-of-00002.safetensors");
  EXPECT_EQ(written[1], "model-00002-of-00002.safetensors");
  EXPECT_EQ(names_in(written[0]), Strings{"a"});
  EXPECT_EQ(names_in(written[1]), Strings{"b"});
  EXPECT_EQ(read_index().at("metadata").at("total_size").get<uint64_t>(), 160u);
  EXPECT_EQ(listing().size(), 3u);
}

TEST_F(SafetensorsSharded, RejectedAppendDoesNotClaimTheName) {
  ShardedSafetensorsWriter w(dir_.string(), 0);  // 0: no limit
  expect_error_containing([&] { w.append("a", DType::F32, {10}, pattern(8, 0)); }, "needs 40");
  w.append("a", DType::F32, {2}, pattern(8, 0));
  EXPECT_EQ(w.finish(), Strings{"model.safetensors"});
  EXPECT_EQ(names_in("model.safetensors"), Strings{"a"});
}

TEST_F(SafetensorsSharded, DuplicateAcrossShardsThrows) {
  ShardedSafetensorsWriter w(dir_.string(), 100);
  w.append("a", DType::U8, {80}, pattern(80, 0));
  w.append("b", DType::U8, {80}, pattern(80, 1));
  EXPECT_THROW(w.append("a", DType::U8, {10}, pattern(10, 0)), Error);
}

TEST_F(SafetensorsSharded, DestroyedWithoutFinishLeavesNothing) {
  {
    ShardedSafetensorsWriter w(dir_.string(), 100);
    for (int i = 0; i < 5; ++i) w.append("t" + std::to_string(i), DType::U8, {60}, pattern(60, i));
  }
  EXPECT_EQ(listing(), Strings{});
}

TEST_F(SafetensorsSharded, AppendAfterFinishThrows) {
  ShardedSafetensorsWriter w(dir_.string(), 100);
  w.append("a", DType::U8, {1}, pattern(1, 0));
  w.finish();
  EXPECT_THROW(w.append("b", DType::U8, {1}, pattern(1, 0)), Error);
  EXPECT_THROW(w.finish(), Error);
}

// ---------------------------------------------------------------------------------------------
// Reader on good input
// ---------------------------------------------------------------------------------------------

class SafetensorsReader : public TempDirTest {};

// A hand-built file: a 3-byte U8 tensor first, so the F32 one after it is misaligned;
// header entries deliberately not in offset order; header padded with spaces.
void write_handmade(const std::string& p) {
  const std::string header =
      R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[3,11]},)"
      R"("__metadata__":{"format":"pt","x":""},)"
      R"("z":{"dtype":"F16","shape":[0,2],"data_offsets":[11,11]},)"
      R"("a":{"dtype":"U8","shape":[3],"data_offsets":[0,3]}}     )";
  write_raw(p, header, std::string("\x01\x02\xff", 3) + f32_bytes({1.5f, -2.0f}));
}

TEST_F(SafetensorsReader, ViewHasTheFileBytes) {
  write_handmade(path("h.safetensors"));
  const auto f = SafetensorsFile::open(path("h.safetensors"));
  EXPECT_EQ(f.path(), path("h.safetensors"));
  ASSERT_EQ(f.entries().size(), 3u);
  EXPECT_EQ(f.entries()[0].name, "a");  // sorted by offset
  EXPECT_EQ(f.entries()[1].name, "b");
  EXPECT_EQ(f.entries()[2].name, "z");
  EXPECT_EQ(f.metadata(), (std::map<std::string, std::string>{{"format", "pt"}, {"x", ""}}));

  const Tensor a = f.read("a");
  EXPECT_TRUE(a.is_view());
  EXPECT_EQ(a.dtype(), DType::U8);
  EXPECT_EQ(a.shape(), Shape{3});
  ASSERT_EQ(a.nbytes(), 3u);
  EXPECT_EQ(std::memcmp(a.data(), "\x01\x02\xff", 3), 0);
  EXPECT_EQ(a.to_f32(), (std::vector<float>{1.0f, 2.0f, 255.0f}));

  const Tensor b = f.read("b");
  EXPECT_EQ(b.data(), a.data() + 3);  // a view into the mapping, no copy
  EXPECT_EQ(b.to_f32(), (std::vector<float>{1.5f, -2.0f}));  // misaligned F32
  EXPECT_EQ(f.read("z").numel(), 0);
  EXPECT_TRUE(f.read("z").to_f32().empty());

  Tensor copy = a;
  EXPECT_THROW(copy.mutable_data(), Error);
}

TEST_F(SafetensorsReader, ViewsOutliveTheFileObject) {
  write_handmade(path("h.safetensors"));
  Tensor b;
  {
    const auto f = SafetensorsFile::open(path("h.safetensors"));
    b = f.read("b");
  }
  EXPECT_EQ(b.to_f32(), (std::vector<float>{1.5f, -2.0f}));
}

TEST_F(SafetensorsReader, FindAndReadOfAMissingName) {
  write_handmade(path("h.safetensors"));
  const auto f = SafetensorsFile::open(path("h.safetensors"));
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_EQ(f.find("__metadata__"), nullptr);
  try {
    f.read("nope");
    ADD_FAILURE() << "no exception";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path("h.safetensors")), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no tensor named 'nope'"), std::string::npos) << e.what();
  }
}

TEST_F(SafetensorsReader, BF16ViewToF32) {
  // BF16 patterns by hand: 1.0 = 0x3f80, -2.0 = 0xc000, 3.140625 = 0x4049 (1.5703125*2),
  // 2^-133 = 0x0001 (smallest subnormal), -0 = 0x8000.
  const uint16_t raw[] = {0x3f80, 0xc000, 0x4049, 0x0001, 0x8000, 0x7f80};
  std::string data(reinterpret_cast<const char*>(raw), sizeof raw);
  write_raw(path("bf.safetensors"),
            R"({"pad":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[1,13]}})",
            std::string("\x00", 1) + data);
  const auto f = SafetensorsFile::open(path("bf.safetensors"));
  const Tensor w = f.read("w");
  EXPECT_EQ(w.dtype(), DType::BF16);
  const auto v = w.to_f32();
  ASSERT_EQ(v.size(), 6u);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.0f);
  EXPECT_EQ(v[2], 3.140625f);
  EXPECT_EQ(v[3], std::ldexp(1.0f, -133));
  EXPECT_EQ(std::bit_cast<uint32_t>(v[4]), 0x80000000u);
  EXPECT_TRUE(std::isinf(v[5]));
}

TEST_F(SafetensorsReader, NeverModifiesItsInput) {
  {
    SafetensorsWriter w(path("m.safetensors"), {{"format", "pt"}});
    for (int i = 0; i < 8; ++i) w.append("t" + std::to_string(i), DType::BF16, {1000, 3}, pattern(6000, i));
    w.finish();
  }
  write_handmade(path("h.safetensors"));
  for (const std::string name : {"m.safetensors", "h.safetensors"}) {
    SCOPED_TRACE(name);
    const std::string p = path(name);
    // An old mtime makes any write visible even on coarse-grained clocks.
    const auto old_time = fs::file_time_type::clock::now() - std::chrono::hours(1);
    fs::last_write_time(p, old_time);
    const std::string before = read_bytes(p);
    const auto time_before = fs::last_write_time(p);
    struct stat st_before {};
    ASSERT_EQ(stat(p.c_str(), &st_before), 0);
    {
      const auto f = SafetensorsFile::open(p);
      std::vector<Tensor> views;
      for (const auto& e : f.entries()) {
        views.push_back(f.read(e));
        (void)views.back().to_f32();
      }
      const auto again = SafetensorsFile::open(p);
      for (const auto& e : again.entries()) (void)again.read(e).to_f32();  // views released at once
    }
    struct stat st_after {};
    ASSERT_EQ(stat(p.c_str(), &st_after), 0);
    EXPECT_EQ(read_bytes(p), before);
    EXPECT_EQ(st_after.st_size, st_before.st_size);
    EXPECT_EQ(st_after.st_mtim.tv_sec, st_before.st_mtim.tv_sec);
    EXPECT_EQ(st_after.st_mtim.tv_nsec, st_before.st_mtim.tv_nsec);
    EXPECT_EQ(fs::last_write_time(p), time_before);
  }
}

TEST_F(SafetensorsReader, EmptyObjectHeaderAndNoData) {
  write_raw(path("e.safetensors"), "{}", "");
  const auto f = SafetensorsFile::open(path("e.safetensors"));
  EXPECT_TRUE(f.entries().empty());
  EXPECT_EQ(f.header_bytes(), 2u);
  EXPECT_EQ(f.data_start(), 10u);
}

TEST_F(SafetensorsReader, MissingFileAndFolderAreErrors) {
  expect_open_fails(path("absent.safetensors"), "cannot open");
  fs::create_directory(path("folder"));
  expect_open_fails(path("folder"), "not a regular file");
}

// ---------------------------------------------------------------------------------------------
// Reader on bad input: each a separate test, the message names the file and the problem.
// ---------------------------------------------------------------------------------------------

class SafetensorsBadInput : public TempDirTest {
 protected:
  std::string bad(const std::string& header, const std::string& data = "") {
    const std::string p = path("bad.safetensors");
    write_raw(p, header, data);
    return p;
  }
  std::string raw(const std::string& bytes) {
    const std::string p = path("bad.safetensors");
    write_bytes(p, bytes);
    return p;
  }
};

TEST_F(SafetensorsBadInput, EmptyFile) { expect_open_fails(raw(""), "truncated: 0 bytes"); }

TEST_F(SafetensorsBadInput, ShorterThanTheLengthField) { expect_open_fails(raw(std::string("\x02\0\0\0\0", 5)), "truncated: 5 bytes"); }

TEST_F(SafetensorsBadInput, HeaderLengthLargerThanTheFile) {
  expect_open_fails(raw(le64(100) + "{}"), "runs past the end of the file");
}

TEST_F(SafetensorsBadInput, HeaderLengthLargerThanTheFileByOne) {
  expect_open_fails(raw(le64(3) + "{}"), "runs past the end of the file");
}

TEST_F(SafetensorsBadInput, HeaderLengthOverTheLimit) {
  expect_open_fails(raw(le64(100'000'001) + "{}"), "exceeds the limit of 100000000 bytes");
}

TEST_F(SafetensorsBadInput, HeaderLengthHuge) {
  expect_open_fails(raw(le64(UINT64_MAX) + "{}"), "exceeds the limit");
}

TEST_F(SafetensorsBadInput, HeaderNotJson) { expect_open_fails(bad("{\"a\": nope"), "header is not valid JSON"); }

// Found by fuzz/fuzz_gguf.cpp (fuzz/regressions/safetensors/number-past-double): a number
// past double's range is nlohmann's out_of_range, not a parse_error, and escaped the reader.
TEST_F(SafetensorsBadInput, HeaderNumberPastDouble) {
  expect_open_fails(bad("{\"a\": 3333333333e33300000000000000000072945}"), "header is not valid JSON");
}
TEST_F(SafetensorsBadInput, HeaderEmpty) { expect_open_fails(bad(""), "header is not valid JSON"); }

TEST_F(SafetensorsBadInput, HeaderJsonArray) {
  expect_open_fails(bad(R"([{"dtype":"F32","shape":[1],"data_offsets":[0,4]}])", "abcd"),
                    "header is not a JSON object");
}

TEST_F(SafetensorsBadInput, HeaderJsonString) { expect_open_fails(bad(R"("hello")"), "header is not a JSON object"); }

TEST_F(SafetensorsBadInput, UnknownDtype) {
  expect_open_fails(bad(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", "x"),
                    "tensor 'w': unknown dtype 'F4'");
}

TEST_F(SafetensorsBadInput, DtypeNotAString) {
  expect_open_fails(bad(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", "abcd"), "dtype is not a string");
}

TEST_F(SafetensorsBadInput, NegativeShapeDimension) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})"),
                    "shape dimension is not a non-negative integer: -1");
}

TEST_F(SafetensorsBadInput, NegativeShapeDimensionAfterAPositiveOne) {
  expect_open_fails(bad(R"({"ok":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                        R"("w":{"dtype":"U8","shape":[2,-3],"data_offsets":[1,1]}})",
                        "x"),
                    "tensor 'w': shape dimension is not a non-negative integer: -3");
}

TEST_F(SafetensorsBadInput, ShapeDimensionBelowInt64Min) {
  // Too negative for int64: nlohmann reads it as a double, still not a non-negative integer.
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[-9223372036854775809],"data_offsets":[0,0]}})"),
                    "tensor 'w': shape dimension is not a non-negative integer");
}

TEST_F(SafetensorsBadInput, ShapeDimensionTooLarge) {
  // 2^63 and 2^64 - 1 fit in uint64 but not in the int64 of a Shape: refused before the cast
  // (which would make them negative) rather than reported as a size mismatch.
  for (const char* dim : {"9223372036854775808", "18446744073709551615"}) {
    expect_open_fails(bad(std::string(R"({"w":{"dtype":"U8","shape":[1,)") + dim + R"(],"data_offsets":[0,0]}})"),
                      "tensor 'w': shape dimension too large");
  }
  // Past uint64 it is a double to nlohmann: the not-an-integer message, still naming the tensor.
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[18446744073709551616],"data_offsets":[0,0]}})"),
                    "tensor 'w': shape dimension is not a non-negative integer");
  // The largest dimension that fits is a size problem, not a shape-parse one.
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[9223372036854775807],"data_offsets":[0,0]}})"),
                    "tensor 'w': shape [9223372036854775807] of U8 needs 9223372036854775807 bytes");
}

TEST_F(SafetensorsBadInput, FractionalShapeDimension) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[1.5],"data_offsets":[0,1]}})", "x"),
                    "shape dimension is not a non-negative integer");
}

TEST_F(SafetensorsBadInput, ShapeNotAnArray) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":3,"data_offsets":[0,3]}})", "xyz"), "shape is not an array");
}

TEST_F(SafetensorsBadInput, MissingDataOffsets) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[1]}})", "x"), "tensor 'w': missing 'data_offsets'");
}

TEST_F(SafetensorsBadInput, MissingDtype) {
  expect_open_fails(bad(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", "x"), "missing 'dtype'");
}

TEST_F(SafetensorsBadInput, MissingShape) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", "x"), "missing 'shape'");
}

TEST_F(SafetensorsBadInput, EntryNotAnObject) {
  expect_open_fails(bad(R"({"w":[1,2,3]})"), "header entry is not an object");
}

TEST_F(SafetensorsBadInput, DataOffsetsWrongArity) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1,2]}})", "x"),
                    "data_offsets is not [begin, end]");
}

TEST_F(SafetensorsBadInput, NegativeDataOffset) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}})", "x"),
                    "data_offsets begin is not a non-negative integer");
}

TEST_F(SafetensorsBadInput, OffsetsPastTheDataSection) {
  expect_open_fails(bad(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "abcd"),
                    "tensor 'w': data_offsets [0, 8] run past the end of the data section (4 bytes");
}

TEST_F(SafetensorsBadInput, OffsetsFarPastTheDataSection) {
  expect_open_fails(
      bad(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[18446744073709551610,18446744073709551614]}})", "abcd"),
      "run past the end of the data section");
}

TEST_F(SafetensorsBadInput, OverlappingOffsets) {
  expect_open_fails(bad(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                        std::string(12, 'x')),
                    "tensor 'b' (data_offsets [4, 12]) overlaps tensor 'a' ([0, 8])");
}

TEST_F(SafetensorsBadInput, SameOffsetsTwice) {
  expect_open_fails(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                        std::string(4, 'x')),
                    "overlaps");
}

TEST_F(SafetensorsBadInput, HoleBetweenTensors) {
  expect_open_fails(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                        std::string(12, 'x')),
                    "hole of 4 bytes in the data section before tensor 'b'");
}

TEST_F(SafetensorsBadInput, HoleAtTheStart) {
  expect_open_fails(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, 'x')),
                    "hole of 4 bytes");
}

TEST_F(SafetensorsBadInput, TrailingBytesAfterTheLastTensor) {
  expect_open_fails(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", std::string(7, 'x')),
                    "3 bytes at the end of the data section belong to no tensor");
}

TEST_F(SafetensorsBadInput, DataButNoTensors) {
  expect_open_fails(bad("{}", "xyz"), "3 bytes at the end of the data section belong to no tensor");
}

TEST_F(SafetensorsBadInput, ShapeTimesItemsizeIsNotTheSpan) {
  expect_open_fails(bad(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, 'x')),
                    "tensor 'w': shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8");
}

TEST_F(SafetensorsBadInput, ZeroSizeShapeWithNonEmptySpan) {
  expect_open_fails(bad(R"({"w":{"dtype":"F32","shape":[0,3],"data_offsets":[0,4]}})", std::string(4, 'x')),
                    "needs 0 bytes");
}

TEST_F(SafetensorsBadInput, ShapeElementCountOverflows) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"),
                    "too many elements");
}

TEST_F(SafetensorsBadInput, ShapeByteCountOverflows) {
  // 2^62 elements fit in int64, but 2^62 * 4 bytes does not fit in uint64.
  expect_open_fails(bad(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})"),
                    "shape too large");
}

TEST_F(SafetensorsBadInput, DuplicateTensorNames) {
  expect_open_fails(bad(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                        R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        std::string(8, 'x')),
                    "duplicate key 'a' in the header");
}

TEST_F(SafetensorsBadInput, DuplicateMetadataKeys) {
  expect_open_fails(bad(R"({"__metadata__":{"k":"1","k":"2"}})"), "duplicate key 'k'");
}

TEST_F(SafetensorsBadInput, MetadataValueNotAString) {
  expect_open_fails(bad(R"({"__metadata__":{"format":"pt","k":1}})"), "__metadata__ value for 'k' is not a string");
}

TEST_F(SafetensorsBadInput, MetadataNotAnObject) {
  expect_open_fails(bad(R"({"__metadata__":["pt"]})"), "__metadata__ is not an object");
}

TEST_F(SafetensorsBadInput, EndBeforeBegin) {
  expect_open_fails(bad(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[8,4]}})", std::string(8, 'x')),
                    "tensor 'w': data_offsets [8, 4] end before begin");
}

// ---------------------------------------------------------------------------------------------
// Tensor basics the reader and writer rely on
// ---------------------------------------------------------------------------------------------

TEST(SafetensorsTensor, ShapeHelpers) {
  EXPECT_EQ(shape_numel({}), 1);
  EXPECT_EQ(shape_numel({0, 5}), 0);
  EXPECT_EQ(shape_numel({2, 3, 4}), 24);
  EXPECT_EQ(shape_to_string({4096, 11008}), "[4096, 11008]");
  EXPECT_EQ(shape_to_string({}), "[]");
  EXPECT_THROW(shape_numel({2, -1}), Error);
  EXPECT_THROW(shape_numel({int64_t{1} << 40, int64_t{1} << 40}), Error);
  EXPECT_EQ(shape_numel({0, int64_t{1} << 40, int64_t{1} << 40}), 0);
}

TEST(SafetensorsTensor, ZerosFromF32AndToF32) {
  Tensor z = Tensor::zeros(DType::I32, {2, 2});
  EXPECT_FALSE(z.is_view());
  EXPECT_EQ(z.nbytes(), 16u);
  EXPECT_EQ(z.to_f32(), std::vector<float>(4, 0.0f));
  const int32_t v = -7;
  std::memcpy(z.mutable_data() + 4, &v, 4);
  EXPECT_EQ(z.to_f32(), (std::vector<float>{0, -7, 0, 0}));

  const std::vector<float> values = {1.0f, 0x1.002p0f, -65520.0f};
  const Tensor h = Tensor::from_f32(values, DType::F16, {3});
  EXPECT_EQ(h.to_f32(), (std::vector<float>{1.0f, 1.0f, -std::numeric_limits<float>::infinity()}));
  EXPECT_THROW(Tensor::from_f32(values, DType::F16, {2}), Error);
  EXPECT_THROW(Tensor::from_f32(values, DType::I8, {3}), Error);

  // Zero-element tensors convert to nothing.
  EXPECT_TRUE(Tensor::zeros(DType::F32, {0, 3}).to_f32().empty());
  EXPECT_TRUE(Tensor::zeros(DType::BF16, {0}).to_f32().empty());
  EXPECT_TRUE(Tensor().to_f32().empty());
  EXPECT_EQ(Tensor::from_f32({}, DType::F32, {0}).nbytes(), 0u);
  EXPECT_EQ(Tensor::from_f32({}, DType::F16, {2, 0}).numel(), 0);
}

}  // namespace
}  // namespace modelpress
