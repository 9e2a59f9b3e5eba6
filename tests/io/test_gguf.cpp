// Tests of the GGUF reader and the ggml block dequantizers, on files built byte by byte here.
// Expected dequantized values come from per-element formulas written out in this file (from
// the block layouts in ggml-common.h and ggml-quants.c), never from the code under test.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "io/error.h"
#include "io/gguf_dequant.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "tests/test_util.h"

namespace modelpress {
namespace {

using testing::TempDir;
using testing::write_file;
namespace gt = ggml_type;

// GGUF metadata value types.
enum : uint32_t { U8 = 0, I8, U16, I16, U32, I32, F32V, BOOL, STRING, ARRAY, U64, I64, F64V };

// f16 bit patterns of the scales used below: sign, 5-bit exponent (bias 15), 10-bit mantissa.
constexpr uint16_t kHalfOne = 0x3c00;       // 1.0   = 2^0  -> exponent 15
constexpr uint16_t kHalfHalf = 0x3800;      // 0.5   = 2^-1 -> exponent 14
constexpr uint16_t kHalfQuarter = 0x3400;   // 0.25  = 2^-2 -> exponent 13
constexpr uint16_t kHalfEighth = 0x3000;    // 0.125 = 2^-3 -> exponent 12
constexpr uint16_t kHalfTwo = 0x4000;       // 2.0   = 2^1  -> exponent 16
constexpr uint16_t kHalfMinusOne = 0xbc00;  // -1.0

template <typename T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}

void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}

template <typename T>
std::string bytes_of(const std::vector<T>& values) {
  std::string s;
  for (T v : values) put<T>(s, v);
  return s;
}

// The encoded value of an array: element type, count, elements.
std::string array_value(uint32_t elem_type, uint64_t count, const std::string& elems) {
  std::string s;
  put<uint32_t>(s, elem_type);
  put<uint64_t>(s, count);
  return s + elems;
}

std::string strings(const std::vector<std::string>& values) {
  std::string s;
  for (const auto& v : values) put_str(s, v);
  return s;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Builds a GGUF file: header, KVs, tensor infos, zero padding to `alignment`, data section.
// `alignment` only drives the padding and automatic offsets; a test that wants the reader to
// use it also adds a general.alignment KV.
struct GgufBuilder {
  std::string magic = "GGUF";
  uint32_t version = 3;
  uint64_t alignment = 32;
  std::string kvs, infos, data;
  uint64_t n_kv = 0, n_tensors = 0;

  template <typename T>
  GgufBuilder& kv(const std::string& key, uint32_t type, T value) {
    put_str(kvs, key);
    put<uint32_t>(kvs, type);
    put<T>(kvs, value);
    ++n_kv;
    return *this;
  }
  GgufBuilder& kv_string(const std::string& key, const std::string& value) {
    put_str(kvs, key);
    put<uint32_t>(kvs, STRING);
    put_str(kvs, value);
    ++n_kv;
    return *this;
  }
  GgufBuilder& kv_raw(const std::string& key, uint32_t type, const std::string& encoded) {
    put_str(kvs, key);
    put<uint32_t>(kvs, type);
    kvs += encoded;
    ++n_kv;
    return *this;
  }
  GgufBuilder& info(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type, uint64_t offset,
                    std::optional<uint32_t> n_dims = std::nullopt) {
    put_str(infos, name);
    put<uint32_t>(infos, n_dims.value_or(static_cast<uint32_t>(ne.size())));
    for (uint64_t d : ne) put<uint64_t>(infos, d);
    put<uint32_t>(infos, type);
    put<uint64_t>(infos, offset);
    ++n_tensors;
    return *this;
  }
  // Appends `bytes` at the next aligned offset of the data section, with its info.
  GgufBuilder& tensor(const std::string& name, const std::vector<uint64_t>& ne, uint32_t type,
                      const std::string& bytes) {
    const uint64_t offset = align_up(data.size(), alignment);
    data.resize(offset, '\0');
    data += bytes;
    return info(name, ne, type, offset);
  }
  std::string header_and_infos() const {
    std::string s = magic;
    put<uint32_t>(s, version);
    put<uint64_t>(s, n_tensors);
    put<uint64_t>(s, n_kv);
    return s + kvs + infos;
  }
  uint64_t data_start() const { return align_up(header_and_infos().size(), alignment); }
  std::string build() const {
    std::string s = header_and_infos();
    s.resize(align_up(s.size(), alignment), '\0');
    return s + data;
  }
};

std::string f32_bytes(const std::vector<float>& v) { return bytes_of(v); }

// open() must throw an Error whose message names the file and contains `phrase`.
void expect_open_error(const std::string& path, const std::string& phrase) {
  try {
    GgufFile::open(path);
    ADD_FAILURE() << "no error; expected one containing '" << phrase << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "expected '" << phrase << "' in: " << msg;
  }
}

std::string write(const TempDir& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir / name;
  write_file(path, bytes);
  return path;
}

// ------------------------------------------------------------------------------------------
// Parsing
// ------------------------------------------------------------------------------------------

TEST(GgufRead, V3MetadataOfEveryTypeAndTensorInfos) {
  TempDir dir;
  GgufBuilder b;
  b.kv_string("general.architecture", "llama")
      .kv<uint8_t>("t.u8", U8, 200)
      .kv<int8_t>("t.i8", I8, -5)
      .kv<uint16_t>("t.u16", U16, 60000)
      .kv<int16_t>("t.i16", I16, -30000)
      .kv<uint32_t>("t.u32", U32, 4000000000u)
      .kv<int32_t>("t.i32", I32, -2000000000)
      .kv<float>("t.f32", F32V, 1.5f)
      .kv<uint8_t>("t.bool", BOOL, 1)
      .kv<uint64_t>("t.u64", U64, uint64_t{1} << 60)
      .kv<int64_t>("t.i64", I64, -(int64_t{1} << 60))
      .kv<double>("t.f64", F64V, 0.1)
      .kv_raw("t.strings", ARRAY, array_value(STRING, 3, strings({"a", "bc", ""})))
      .kv_raw("t.nested", ARRAY,
              array_value(ARRAY, 2,
                          array_value(I32, 2, bytes_of<int32_t>({1, -2})) + array_value(I32, 1, bytes_of<int32_t>({3}))))
      .kv_raw("t.empty", ARRAY, array_value(U8, 0, ""));
  b.tensor("tok", {3, 2}, gt::F32, f32_bytes({1, 2, 3, 4, 5, 6}));
  b.tensor("norm", {4}, gt::F16, bytes_of<uint16_t>({kHalfOne, kHalfTwo, kHalfHalf, kHalfMinusOne}));
  const std::string path = write(dir, "m.gguf", b.build());

  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.data_start(), b.data_start());
  EXPECT_EQ(f.data_start() % 32, 0u);

  const auto& md = f.metadata();
  std::vector<std::string> keys;
  for (const auto& [k, v] : md.items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"general.architecture", "t.u8", "t.i8", "t.u16", "t.i16", "t.u32",
                                            "t.i32", "t.f32", "t.bool", "t.u64", "t.i64", "t.f64", "t.strings",
                                            "t.nested", "t.empty"}));
  EXPECT_EQ(md["general.architecture"], "llama");
  EXPECT_TRUE(md["t.u8"].is_number_unsigned());
  EXPECT_EQ(md["t.u8"].get<int>(), 200);
  EXPECT_EQ(md["t.i8"].get<int>(), -5);
  EXPECT_EQ(md["t.u16"].get<int>(), 60000);
  EXPECT_EQ(md["t.i16"].get<int>(), -30000);
  EXPECT_EQ(md["t.u32"].get<uint64_t>(), 4000000000u);
  EXPECT_EQ(md["t.i32"].get<int64_t>(), -2000000000);
  EXPECT_TRUE(md["t.f32"].is_number_float());
  EXPECT_EQ(md["t.f32"].get<double>(), 1.5);
  EXPECT_TRUE(md["t.bool"].is_boolean());
  EXPECT_EQ(md["t.bool"], true);
  EXPECT_EQ(md["t.u64"].get<uint64_t>(), uint64_t{1} << 60);
  EXPECT_EQ(md["t.i64"].get<int64_t>(), -(int64_t{1} << 60));
  EXPECT_EQ(md["t.f64"].get<double>(), 0.1);
  EXPECT_EQ(md["t.strings"], nlohmann::ordered_json({"a", "bc", ""}));
  EXPECT_EQ(md["t.nested"], nlohmann::ordered_json::parse("[[1, -2], [3]]"));
  EXPECT_TRUE(md["t.empty"].is_array());
  EXPECT_TRUE(md["t.empty"].empty());

  ASSERT_EQ(f.tensors().size(), 2u);
  const GgufTensorInfo& tok = f.tensors()[0];
  EXPECT_EQ(tok.name, "tok");
  EXPECT_EQ(tok.ne, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(tok.type, gt::F32);
  EXPECT_EQ(tok.offset, 0u);
  EXPECT_EQ(tok.nbytes, 24u);
  EXPECT_EQ(tok.shape(), (Shape{2, 3}));  // ne reversed: 2 rows of 3
  const GgufTensorInfo& norm = f.tensors()[1];
  EXPECT_EQ(norm.offset, 32u);  // 24 rounded up to the alignment
  EXPECT_EQ(norm.nbytes, 8u);
  EXPECT_EQ(norm.shape(), (Shape{4}));

  EXPECT_EQ(f.find("norm"), &norm);
  EXPECT_EQ(f.find("missing"), nullptr);
  const auto raw = f.raw(norm);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(raw.data()), raw.size()), b.data.substr(32, 8));

  const Tensor t = f.read_f32(tok);
  EXPECT_EQ(t.dtype(), DType::F32);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_FALSE(t.is_view());
  EXPECT_EQ(t.to_f32(), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(f.read_f32(norm).to_f32(), (std::vector<float>{1.0f, 2.0f, 0.5f, -1.0f}));
}

TEST(GgufRead, Version2ParsesTheSameLayout) {
  TempDir dir;
  GgufBuilder b;
  b.version = 2;
  b.kv_string("general.name", "tiny").kv<uint32_t>("llama.block_count", U32, 2);
  b.tensor("w", {2, 2, 1, 1}, gt::F32, f32_bytes({1, -1, 2, -2}));
  const GgufFile f = GgufFile::open(write(dir, "v2.gguf", b.build()));
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.metadata()["general.name"], "tiny");
  EXPECT_EQ(f.metadata()["llama.block_count"], 2);
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(f.read_f32(f.tensors()[0]).to_f32(), (std::vector<float>{1, -1, 2, -2}));
}

TEST(GgufRead, CustomAlignment64) {
  TempDir dir;
  GgufBuilder b;
  b.alignment = 64;
  b.kv<uint32_t>("general.alignment", U32, 64);
  b.tensor("a", {6}, gt::F32, f32_bytes({1, 2, 3, 4, 5, 6}));
  b.tensor("b", {2}, gt::F32, f32_bytes({7, 8}));
  const GgufFile f = GgufFile::open(write(dir, "a64.gguf", b.build()));
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_start(), b.data_start());
  EXPECT_EQ(f.data_start() % 64, 0u);
  EXPECT_EQ(f.metadata()["general.alignment"], 64);
  ASSERT_NE(f.find("b"), nullptr);
  EXPECT_EQ(f.find("b")->offset, 64u);
  EXPECT_EQ(f.read_f32(*f.find("b")).to_f32(), (std::vector<float>{7, 8}));
}

TEST(GgufRead, NoTensorsNoKvs) {
  TempDir dir;
  GgufBuilder b;
  const GgufFile f = GgufFile::open(write(dir, "empty.gguf", b.build()));
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_TRUE(f.metadata().empty());
}

TEST(GgufRead, EmptyTensor) {
  TempDir dir;
  GgufBuilder b;
  b.tensor("empty", {0, 4}, gt::Q4_0, "");
  b.tensor("w", {2}, gt::F32, f32_bytes({1, 2}));
  const GgufFile f = GgufFile::open(write(dir, "e.gguf", b.build()));
  const GgufTensorInfo* e = f.find("empty");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->nbytes, 0u);
  EXPECT_EQ(f.raw(*e).size(), 0u);
  const Tensor t = f.read_f32(*e);
  EXPECT_EQ(t.shape(), (Shape{4, 0}));
  EXPECT_EQ(t.numel(), 0);
}

TEST(GgufRead, QuantizedTensorThroughTheFile) {
  // Q8_0, ne = {64, 2}: two rows of two blocks. Block i has d = 0.5 and q[j] = j - 16 + i.
  std::string bytes;
  std::vector<float> want;
  for (int blk = 0; blk < 4; ++blk) {
    put<uint16_t>(bytes, kHalfHalf);
    for (int j = 0; j < 32; ++j) {
      bytes += static_cast<char>(j - 16 + blk);
      want.push_back(0.5f * static_cast<float>(j - 16 + blk));
    }
  }
  TempDir dir;
  GgufBuilder b;
  b.tensor("q", {64, 2}, gt::Q8_0, bytes);
  b.tensor("k", {256}, gt::IQ2_XXS, std::string(66, '\0'));
  const GgufFile f = GgufFile::open(write(dir, "q.gguf", b.build()));
  const GgufTensorInfo* q = f.find("q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->nbytes, 4u * 34u);
  const Tensor t = f.read_f32(*q);
  EXPECT_EQ(t.shape(), (Shape{2, 64}));
  EXPECT_EQ(t.to_f32(), want);

  // IQ2_XXS is recognised (its size validated) but not dequantized.
  const GgufTensorInfo* k = f.find("k");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->nbytes, 66u);
  try {
    f.read_f32(*k);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.path()), std::string::npos) << msg;
    EXPECT_NE(msg.find("'k'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("IQ2_XXS"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cannot be dequantized"), std::string::npos) << msg;
  }
}

// ------------------------------------------------------------------------------------------
// Type table
// ------------------------------------------------------------------------------------------

TEST(GgufTypes, NamesAndTraits) {
  EXPECT_EQ(ggml_type_name(gt::Q4_0), "Q4_0");
  EXPECT_EQ(ggml_type_name(gt::BF16), "BF16");
  EXPECT_EQ(ggml_type_name(gt::IQ4_XS), "IQ4_XS");
  EXPECT_EQ(ggml_type_name(99), "type 99");
  EXPECT_EQ(ggml_type_name(4), "type 4");  // Q4_2, removed from ggml
  EXPECT_FALSE(ggml_type_traits(99).has_value());
  EXPECT_FALSE(ggml_type_traits(31).has_value());  // Q4_0_4_4, removed from GGUF files

  struct Row {
    uint32_t type, elems, bytes;
    bool deq;
  };
  // Sizes from ggml-common.h's block structs: e.g. Q4_K = 2 f16 + 12 scale bytes + 128 quant
  // bytes = 144; Q6_K = 128 + 64 + 16 + 2 = 210; Q8_K = f32 + 256 + 16 int16 = 292.
  const Row rows[] = {
      {gt::F32, 1, 4, true},       {gt::F16, 1, 2, true},       {gt::BF16, 1, 2, true},
      {gt::F64, 1, 8, true},       {gt::I8, 1, 1, true},        {gt::I16, 1, 2, true},
      {gt::I32, 1, 4, true},       {gt::Q4_0, 32, 18, true},    {gt::Q4_1, 32, 20, true},
      {gt::Q5_0, 32, 22, true},    {gt::Q5_1, 32, 24, true},    {gt::Q8_0, 32, 34, true},
      {gt::Q8_1, 32, 36, false},   {gt::Q2_K, 256, 84, true},   {gt::Q3_K, 256, 110, true},
      {gt::Q4_K, 256, 144, true},  {gt::Q5_K, 256, 176, true},  {gt::Q6_K, 256, 210, true},
      {gt::Q8_K, 256, 292, false}, {gt::IQ2_XXS, 256, 66, false}, {gt::IQ4_NL, 32, 18, true},
      {gt::IQ4_XS, 256, 136, true},
      {gt::IQ1_M, 256, 56, false}, {gt::TQ2_0, 256, 66, false}, {gt::MXFP4, 32, 17, false},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(ggml_type_name(r.type));
    const auto t = ggml_type_traits(r.type);
    ASSERT_TRUE(t.has_value());
    EXPECT_EQ(t->block_elems, r.elems);
    EXPECT_EQ(t->block_bytes, r.bytes);
    EXPECT_EQ(t->dequantizable, r.deq);
  }
}

// ------------------------------------------------------------------------------------------
// Dequantization of hand-built blocks
// ------------------------------------------------------------------------------------------

// Dequantizes from an odd address, since mapped tensors carry no alignment promise.
std::vector<float> dequant(uint32_t type, const std::string& bytes, int64_t n) {
  std::string buf = "x" + bytes;
  std::vector<float> out(static_cast<size_t>(n) + 1, -999.0f);
  ggml_dequantize(type, reinterpret_cast<const std::byte*>(buf.data() + 1), out.data(), n);
  EXPECT_EQ(out.back(), -999.0f) << "wrote past the end";
  out.pop_back();
  return out;
}

TEST(GgufDequant, PlainTypes) {
  EXPECT_EQ(dequant(gt::F32, f32_bytes({1.5f, -2.0f}), 2), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(dequant(gt::F16, bytes_of<uint16_t>({0x3c00, 0xc000, 0x7bff, 0x0001}), 4),
            (std::vector<float>{1.0f, -2.0f, 65504.0f, 0x1p-24f}));  // max finite, smallest subnormal
  // BF16 is the top half of an f32: 0x3f80 = 1.0, 0xc040 = -3.0, 0x4049 = 3.140625.
  EXPECT_EQ(dequant(gt::BF16, bytes_of<uint16_t>({0x3f80, 0xc040, 0x4049}), 3),
            (std::vector<float>{1.0f, -3.0f, 3.140625f}));
  EXPECT_EQ(dequant(gt::F64, bytes_of<double>({0.25, -8.0}), 2), (std::vector<float>{0.25f, -8.0f}));
  EXPECT_EQ(dequant(gt::I8, bytes_of<int8_t>({-128, 127}), 2), (std::vector<float>{-128.0f, 127.0f}));
  EXPECT_EQ(dequant(gt::I16, bytes_of<int16_t>({-300, 7}), 2), (std::vector<float>{-300.0f, 7.0f}));
  EXPECT_EQ(dequant(gt::I32, bytes_of<int32_t>({-70000, 1}), 2), (std::vector<float>{-70000.0f, 1.0f}));
}

TEST(GgufDequant, Q8_0) {
  // d = 0.5, q[j] = j - 16, but q[31] = -128 to check the sign of the int8.
  std::string blk;
  put<uint16_t>(blk, kHalfHalf);
  for (int j = 0; j < 32; ++j) blk += static_cast<char>(j == 31 ? -128 : j - 16);
  const auto y = dequant(gt::Q8_0, blk, 32);
  for (int j = 0; j < 31; ++j) EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 16)) << j;
  EXPECT_EQ(y[31], -64.0f);
}

// Q4_0 / Q4_1 pack element j (j < 16) in the low nibble of byte j and element j + 16 in its
// high nibble.
std::string pack_nibbles(const std::vector<int>& q) {
  std::string s;
  for (int j = 0; j < 16; ++j) s += static_cast<char>(q[j] | (q[j + 16] << 4));
  return s;
}

TEST(GgufDequant, Q4_0) {
  std::vector<int> q(32);
  for (int e = 0; e < 32; ++e) q[e] = (e * 7 + 3) % 16;
  // Two blocks, d = 0.25 and d = -1, to check the block stride.
  std::string bytes;
  put<uint16_t>(bytes, kHalfQuarter);
  bytes += pack_nibbles(q);
  put<uint16_t>(bytes, kHalfMinusOne);
  bytes += pack_nibbles(q);
  const auto y = dequant(gt::Q4_0, bytes, 64);
  for (int e = 0; e < 32; ++e) {
    EXPECT_EQ(y[e], 0.25f * static_cast<float>(q[e] - 8)) << e;
    EXPECT_EQ(y[32 + e], -1.0f * static_cast<float>(q[e] - 8)) << e;
  }
  // Spot check by hand: byte 0 = 3 | (q[16] = 115 % 16 = 3) << 4 = 0x33; element 0 = (3-8)/4.
  EXPECT_EQ(y[0], -1.25f);
}

TEST(GgufDequant, Q4_1) {
  std::vector<int> q(32);
  for (int e = 0; e < 32; ++e) q[e] = (e * 5 + 1) % 16;
  std::string blk;
  put<uint16_t>(blk, kHalfHalf);      // d = 0.5
  put<uint16_t>(blk, kHalfMinusOne);  // m = -1
  blk += pack_nibbles(q);
  const auto y = dequant(gt::Q4_1, blk, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], 0.5f * static_cast<float>(q[e]) - 1.0f) << e;
}

// Q5_0 / Q5_1: low 4 bits as in Q4_0, the fifth bit of element e is bit e of a u32.
std::string pack_q5(const std::vector<int>& q) {
  uint32_t qh = 0;
  for (int e = 0; e < 32; ++e) qh |= static_cast<uint32_t>(q[e] >> 4) << e;
  std::vector<int> low(32);
  for (int e = 0; e < 32; ++e) low[e] = q[e] & 15;
  std::string s;
  put<uint32_t>(s, qh);
  return s + pack_nibbles(low);
}

TEST(GgufDequant, Q5_0) {
  std::vector<int> q(32);
  for (int e = 0; e < 32; ++e) q[e] = (e * 13 + 5) % 32;
  std::string blk;
  put<uint16_t>(blk, kHalfOne);
  blk += pack_q5(q);
  const auto y = dequant(gt::Q5_0, blk, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], static_cast<float>(q[e] - 16)) << e;
}

TEST(GgufDequant, Q5_1) {
  std::vector<int> q(32);
  for (int e = 0; e < 32; ++e) q[e] = (e * 11 + 30) % 32;
  std::string blk;
  put<uint16_t>(blk, kHalfQuarter);  // d = 0.25
  put<uint16_t>(blk, kHalfTwo);      // m = 2
  blk += pack_q5(q);
  const auto y = dequant(gt::Q5_1, blk, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], 0.25f * static_cast<float>(q[e]) + 2.0f) << e;
}

TEST(GgufDequant, Q4_K) {
  // Eight sub-blocks of 32 with 6-bit scales and mins; values above 15 in sub-blocks 4..7
  // exercise the split storage of their top two bits.
  const int sc[8] = {1, 5, 17, 63, 2, 33, 47, 60};
  const int mn[8] = {0, 3, 63, 8, 31, 32, 1, 50};
  std::string scales(12, '\0');
  for (int s = 0; s < 4; ++s) {
    // Bytes 0-3: scale s in the low 6 bits, top 2 bits of scale s+4 above them.
    scales[s] = static_cast<char>(sc[s] | ((sc[s + 4] >> 4) << 6));
    // Bytes 4-7: min s in the low 6 bits, top 2 bits of min s+4 above them.
    scales[s + 4] = static_cast<char>(mn[s] | ((mn[s + 4] >> 4) << 6));
    // Bytes 8-11: low 4 bits of scale s+4 and, in the high nibble, of min s+4.
    scales[s + 8] = static_cast<char>((sc[s + 4] & 15) | ((mn[s + 4] & 15) << 4));
  }
  std::vector<int> q(256);
  for (int e = 0; e < 256; ++e) q[e] = (e * 5 + e / 32) % 16;
  // Quant bytes: 32 bytes per pair of sub-blocks; the even sub-block in the low nibbles.
  std::string qs(128, '\0');
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32, l = e % 32;
    const int idx = 32 * (s / 2) + l;
    qs[idx] = static_cast<char>(static_cast<uint8_t>(qs[idx]) | (q[e] << (s % 2 ? 4 : 0)));
  }
  std::string blk;
  put<uint16_t>(blk, kHalfHalf);     // d = 0.5
  put<uint16_t>(blk, kHalfQuarter);  // dmin = 0.25
  blk += scales + qs;
  ASSERT_EQ(blk.size(), 144u);
  const auto y = dequant(gt::Q4_K, blk, 256);
  for (int e = 0; e < 256; ++e) {
    const int s = e / 32;
    EXPECT_EQ(y[e], 0.5f * sc[s] * q[e] - 0.25f * mn[s]) << "element " << e;
  }
  // By hand: element 255 is sub-block 7, q = (1275 + 7) % 16 = 2: 0.5*60*2 - 0.25*50 = 47.5.
  EXPECT_EQ(y[255], 47.5f);
}

TEST(GgufDequant, Q6_K) {
  const int sc[16] = {1, -1, 2, -3, 4, -5, 6, -7, 8, -9, 10, -11, 12, -13, 127, -128};
  std::vector<int> q(256);
  for (int e = 0; e < 256; ++e) q[e] = (e * 11 + 7) % 64;
  // Per 128-element half: element l + 32k (l < 32, k < 4) keeps its low 4 bits in
  // ql[l + 32*(k%2)] (low nibble for k < 2, high nibble otherwise) and its top 2 bits in
  // bits 2k..2k+1 of qh[l].
  std::string ql(128, '\0'), qh(64, '\0');
  for (int e = 0; e < 256; ++e) {
    const int half = e / 128, p = e % 128, k = p / 32, l = p % 32;
    const int li = 64 * half + l + 32 * (k % 2);
    ql[li] = static_cast<char>(static_cast<uint8_t>(ql[li]) | ((q[e] & 15) << (k < 2 ? 0 : 4)));
    const int hi = 32 * half + l;
    qh[hi] = static_cast<char>(static_cast<uint8_t>(qh[hi]) | ((q[e] >> 4) << (2 * k)));
  }
  std::string blk = ql + qh;
  for (int s : sc) blk += static_cast<char>(s);
  put<uint16_t>(blk, kHalfEighth);  // d = 0.125
  ASSERT_EQ(blk.size(), 210u);
  const auto y = dequant(gt::Q6_K, blk, 256);
  for (int e = 0; e < 256; ++e)  // 16 sub-blocks of 16 elements, in order
    EXPECT_EQ(y[e], 0.125f * static_cast<float>(sc[e / 16]) * static_cast<float>(q[e] - 32)) << "element " << e;
  // By hand: element 255, scale -128, q = (2805 + 7) % 64 = 60: 0.125 * -128 * 28 = -448.
  EXPECT_EQ(y[255], -448.0f);
}

TEST(GgufDequant, Iq4NlKnownAnswer) {
  // d = 0.5; byte l holds index l (low nibble) and 15 - l (high): element l is
  // 0.5 * kvalues[l], element l + 16 is 0.5 * kvalues[15 - l].
  const int8_t kvalues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
  std::string blk;
  put<uint16_t>(blk, 0x3800);  // 0.5 in f16
  for (int l = 0; l < 16; ++l) blk += static_cast<char>(l | ((15 - l) << 4));
  const auto y = dequant(gt::IQ4_NL, blk, 32);
  for (int l = 0; l < 16; ++l) {
    EXPECT_EQ(y[l], 0.5f * kvalues[l]) << l;
    EXPECT_EQ(y[l + 16], 0.5f * kvalues[15 - l]) << l;
  }
}

TEST(GgufDequant, Q3KHighBitSetMeansNoOffset) {
  // Every 6-bit scale stored as 33 = 0b10'0001 (low nibble 1, top bits 0b10): scale 33 - 32 = 1.
  // Every 2-bit code 3; the high mask set for the first 32 elements only: they decode to
  // d * 1 * 3, the rest to d * 1 * (3 - 4).
  std::string blk(110, '\0');
  for (int l = 0; l < 32; ++l) blk[static_cast<size_t>(l)] = '\x01';              // bit 0: elements 0..31
  for (int i = 0; i < 64; ++i) blk[static_cast<size_t>(32 + i)] = '\xFF';         // every 2-bit code 3
  for (int i = 0; i < 8; ++i) blk[static_cast<size_t>(96 + i)] = '\x11';          // low nibbles 1
  for (int i = 0; i < 4; ++i) blk[static_cast<size_t>(104 + i)] = '\xAA';         // top bits 0b10 each
  blk[108] = '\x00';
  blk[109] = '\x40';  // d = 2.0 in f16
  const auto y = dequant(gt::Q3_K, blk, 256);
  for (int e = 0; e < 256; ++e) EXPECT_EQ(y[e], e < 32 ? 6.0f : -2.0f) << "element " << e;
}

TEST(GgufDequant, RejectsUnsupportedTypesAndPartialBlocks) {
  const std::string zeros(300, '\0');
  std::vector<float> out(256);
  const auto* src = reinterpret_cast<const std::byte*>(zeros.data());
  EXPECT_THROW(ggml_dequantize(gt::Q8_K, src, out.data(), 256), Error);
  EXPECT_THROW(ggml_dequantize(gt::IQ2_XXS, src, out.data(), 256), Error);
  EXPECT_THROW(ggml_dequantize(99, src, out.data(), 32), Error);
  EXPECT_THROW(ggml_dequantize(gt::Q4_0, src, out.data(), 31), Error);
  EXPECT_NO_THROW(ggml_dequantize(gt::Q4_0, src, out.data(), 0));
}

// ------------------------------------------------------------------------------------------
// Bad files
// ------------------------------------------------------------------------------------------

// A valid file with KVs, a string value, two tensor infos and data, to cut or corrupt.
GgufBuilder sample() {
  GgufBuilder b;
  b.kv_string("general.architecture", "llama")
      .kv<uint32_t>("llama.context_length", U32, 4096)
      .kv_string("general.name", "a-model-name-to-cut")
      .kv<float>("llama.rope.freq_base", F32V, 10000.0f);
  b.tensor("blk.0.attn_q.weight", {8, 2}, gt::F32, f32_bytes(std::vector<float>(16, 1.0f)));
  b.tensor("blk.0.ffn_up.weight", {32, 2}, gt::F32, f32_bytes(std::vector<float>(64, 2.0f)));
  return b;
}

TEST(GgufBad, SampleIsValid) {
  TempDir dir;
  EXPECT_NO_THROW(GgufFile::open(write(dir, "ok.gguf", sample().build())));
}

TEST(GgufBad, BadMagic) {
  TempDir dir;
  GgufBuilder b = sample();
  b.magic = "GGML";
  expect_open_error(write(dir, "magic.gguf", b.build()), "bad magic");
}

TEST(GgufBad, Version1) {
  TempDir dir;
  GgufBuilder b = sample();
  b.version = 1;
  expect_open_error(write(dir, "v1.gguf", b.build()), "unsupported GGUF version 1");
}

TEST(GgufBad, Version4) {
  TempDir dir;
  GgufBuilder b = sample();
  b.version = 4;
  expect_open_error(write(dir, "v4.gguf", b.build()), "unsupported GGUF version 4");
}

TEST(GgufBad, BigEndian) {
  TempDir dir;
  GgufBuilder b = sample();
  b.version = 0x03000000;  // 3 written big-endian reads as this little-endian
  expect_open_error(write(dir, "be.gguf", b.build()), "big-endian");
}

TEST(GgufBad, TruncatedInsideHeader) {
  TempDir dir;
  expect_open_error(write(dir, "t0.gguf", ""), "truncated at byte 0 while reading the magic");
  expect_open_error(write(dir, "t10.gguf", sample().build().substr(0, 10)),
                    "truncated at byte 10 while reading the tensor count");
}

TEST(GgufBad, TruncatedInsideKvString) {
  TempDir dir;
  const std::string bytes = sample().build();
  const size_t cut = bytes.find("a-model-name") + 5;
  expect_open_error(write(dir, "tkv.gguf", bytes.substr(0, cut)),
                    "truncated at byte " + std::to_string(cut) + " while reading a string value of KV 2 'general.name'");
}

TEST(GgufBad, TruncatedInsideTensorInfos) {
  TempDir dir;
  const std::string bytes = sample().build();
  const std::string name = "blk.0.ffn_up.weight";
  const size_t cut = bytes.find(name) + name.size() + 4 + 3;  // past n_dims, inside ne[0]
  expect_open_error(write(dir, "tti.gguf", bytes.substr(0, cut)),
                    "truncated at byte " + std::to_string(cut) + " while reading a dimension (ne) of tensor info 1 '" +
                        name + "'");
}

TEST(GgufBad, TruncatedInsideData) {
  TempDir dir;
  const std::string bytes = sample().build();
  const size_t cut = bytes.size() - 10;
  expect_open_error(write(dir, "td.gguf", bytes.substr(0, cut)),
                    "truncated at byte " + std::to_string(cut) + ": tensor 'blk.0.ffn_up.weight'");
}

TEST(GgufBad, TruncatedInsidePaddingBetweenTensors) {
  // The first tensor's 24 bytes are padded to 32; a cut in that padding loses the second
  // tensor entirely, which must still read as truncation rather than a bad offset.
  TempDir dir;
  GgufBuilder b;
  b.tensor("a", {6}, gt::F32, f32_bytes({1, 2, 3, 4, 5, 6}));
  b.tensor("b", {8}, gt::F32, f32_bytes(std::vector<float>(8, 1.0f)));
  const size_t cut = b.data_start() + 28;
  expect_open_error(write(dir, "tp.gguf", b.build().substr(0, cut)),
                    "truncated at byte " + std::to_string(cut) + ": tensor 'b'");
}

TEST(GgufBad, TruncatedAtEveryByteNeverCrashes) {
  // Each prefix must give an Error (never a crash or a different exception); the sanitizer
  // build checks nothing reads past the mapping.
  TempDir dir;
  const std::string bytes = sample().build();
  const std::string path = dir / "prefix.gguf";
  for (size_t n = 0; n < bytes.size(); ++n) {
    write_file(path, bytes.substr(0, n));
    try {
      GgufFile::open(path);
      ADD_FAILURE() << "prefix of " << n << " bytes opened";
    } catch (const Error& e) {
      // A cut so early that a count cannot fit even the whole file reads as corruption.
      const std::string msg = e.what();
      const bool named = msg.find("truncated at byte " + std::to_string(n)) != std::string::npos ||
                         msg.find("larger than the file (" + std::to_string(n) + " bytes)") != std::string::npos;
      EXPECT_TRUE(named) << msg;
    }
  }
}

TEST(GgufBad, AlignmentZero) {
  TempDir dir;
  GgufBuilder b = sample();
  b.kv<uint32_t>("general.alignment", U32, 0);
  expect_open_error(write(dir, "a0.gguf", b.build()), "general.alignment 0 is not a nonzero power of two");
}

TEST(GgufBad, AlignmentNotPowerOfTwo) {
  TempDir dir;
  GgufBuilder b = sample();
  b.kv<uint32_t>("general.alignment", U32, 48);
  expect_open_error(write(dir, "a48.gguf", b.build()), "general.alignment 48 is not a nonzero power of two");
}

TEST(GgufBad, AlignmentOfWrongType) {
  TempDir dir;
  GgufBuilder b = sample();
  b.kv<uint64_t>("general.alignment", U64, 32);
  expect_open_error(write(dir, "a64t.gguf", b.build()), "general.alignment has type u64, expected u32");
}

TEST(GgufBad, TensorOffsetNotAligned) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("late", {4}, gt::F32, 200);
  expect_open_error(write(dir, "unaligned.gguf", b.build()), "offset 200 is not a multiple of the alignment 32");
}

TEST(GgufBad, TensorOffsetPastEndOfFile) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("far", {4}, gt::F32, uint64_t{1} << 40);
  expect_open_error(write(dir, "far.gguf", b.build()), "offset 1099511627776");
  expect_open_error(write(dir, "far.gguf", b.build()), "is past the end of the file");
}

TEST(GgufBad, OverlappingTensors) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("overlap", {8}, gt::F32, 64);  // [64, 96) lies inside blk.0.ffn_up.weight [64, 320)
  expect_open_error(write(dir, "overlap.gguf", b.build()), "overlaps tensor");
}

TEST(GgufBad, DuplicateTensorName) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("blk.0.attn_q.weight", {8}, gt::F32, 0);
  expect_open_error(write(dir, "dup.gguf", b.build()), "duplicate tensor name 'blk.0.attn_q.weight'");
}

TEST(GgufBad, DuplicateKey) {
  TempDir dir;
  GgufBuilder b = sample();
  b.kv<uint32_t>("llama.context_length", U32, 8);
  expect_open_error(write(dir, "dupkey.gguf", b.build()), "duplicate key 'llama.context_length'");
}

TEST(GgufBad, UnknownTensorType) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("odd", {4}, 99, 0);
  const std::string bytes = b.build();
  // The message points at the type field: after the name, n_dims and one ne.
  const size_t type_at = bytes.find("odd") + 3 + 4 + 8;
  expect_open_error(write(dir, "type.gguf", bytes),
                    "tensor info 2 'odd' at byte " + std::to_string(type_at) + ": unknown tensor type id 99");
}

TEST(GgufBad, RowNotWholeBlocks) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("q", {48}, gt::Q4_0, 0);
  expect_open_error(write(dir, "rows.gguf", b.build()), "ne[0] = 48 is not a multiple of the Q4_0 block size 32");
}

TEST(GgufBad, NDimsZero) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("scalar", {}, gt::F32, 0, 0);
  expect_open_error(write(dir, "nd0.gguf", b.build()), "n_dims 0 is outside 1..4");
}

TEST(GgufBad, NDimsFive) {
  TempDir dir;
  GgufBuilder b = sample();
  b.info("five", {1, 1, 1, 1, 1}, gt::F32, 0);
  expect_open_error(write(dir, "nd5.gguf", b.build()), "n_dims 5 is outside 1..4");
}

TEST(GgufBad, StringLengthLargerThanFile) {
  TempDir dir;
  GgufBuilder b = sample();
  std::string value;
  put<uint64_t>(value, uint64_t{1} << 40);  // a string length, then no bytes
  b.kv_raw("general.huge", STRING, value);
  expect_open_error(write(dir, "str.gguf", b.build()), "string length 1099511627776 is larger than the file");
}

TEST(GgufBad, ArrayLengthLargerThanFile) {
  TempDir dir;
  GgufBuilder b = sample();
  b.kv_raw("tokenizer.ggml.scores", ARRAY, array_value(F32V, uint64_t{1} << 62, ""));
  expect_open_error(write(dir, "arr.gguf", b.build()), "array length 4611686018427387904 is larger than the file");
}

TEST(GgufBad, UnknownValueType) {
  TempDir dir;
  GgufBuilder b = sample();
  b.kv<uint32_t>("general.weird", 13, 0);
  expect_open_error(write(dir, "vt.gguf", b.build()), "unknown value type 13");
}

TEST(GgufBad, ArraysNestedTooDeep) {
  TempDir dir;
  GgufBuilder b = sample();
  std::string v = array_value(U8, 0, "");
  for (int i = 0; i < 40; ++i) v = array_value(ARRAY, 1, v);
  b.kv_raw("general.deep", ARRAY, v);
  expect_open_error(write(dir, "deep.gguf", b.build()), "arrays nested more than");
}

TEST(GgufBad, AbsurdTensorCount) {
  TempDir dir;
  std::string s = "GGUF";
  put<uint32_t>(s, 3);
  put<uint64_t>(s, uint64_t{1} << 50);
  put<uint64_t>(s, 0);
  expect_open_error(write(dir, "count.gguf", s), "tensor count 1125899906842624 is larger than the file");
}

// ------------------------------------------------------------------------------------------
// Writer
// ------------------------------------------------------------------------------------------

std::span<const std::byte> bytes_of(const std::vector<float>& v) { return std::as_bytes(std::span<const float>(v)); }

TEST(GgufWriter, RoundTripsThroughTheReaderWithCarriedRecords) {
  TempDir dir;
  const std::vector<float> a = {1, 2, 3, 4, 5, 6}, b = {-1, 0.5f};
  {
    GgufWriter w(dir / "m.gguf", false);
    w.add_string("general.architecture", "llama");
    w.add_u32("llama.block_count", 2);
    w.add_f32("llama.rope.freq_base", 10000.0f);
    EXPECT_THROW(w.add_u32("llama.block_count", 3), Error);
    EXPECT_EQ(w.declare_tensor("a.weight", {3, 2}, ggml_type::F32), 24u);
    EXPECT_EQ(w.declare_tensor("b", {2}, ggml_type::F32), 8u);
    EXPECT_THROW(w.declare_tensor("q", {33}, ggml_type::Q4_0), Error);  // not whole blocks
    w.write_tensor(bytes_of(a));
    EXPECT_THROW(w.write_tensor(bytes_of(a)), Error);  // b has 8 bytes, not 24
    w.write_tensor(bytes_of(b));
    w.finish();
  }
  const GgufFile f = GgufFile::open(dir / "m.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.metadata()["general.architecture"], "llama");
  EXPECT_EQ(f.metadata()["llama.block_count"], 2);
  EXPECT_EQ(f.metadata()["llama.rope.freq_base"], 10000.0f);
  ASSERT_EQ(f.tensors().size(), 2u);
  EXPECT_EQ(f.tensors()[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(f.read_f32(f.tensors()[0]).to_f32(), a);
  EXPECT_EQ(f.read_f32(f.tensors()[1]).to_f32(), b);
  for (const auto& t : f.tensors()) EXPECT_EQ((f.data_start() + t.offset) % 32, 0u) << t.name;

  // Records carried into a second file come back with the same values and types.
  {
    GgufWriter w(dir / "copy.gguf", false);
    for (const auto& r : f.kv_records()) w.add_record(r.key, r.bytes);
    w.declare_tensor("b", {2}, ggml_type::F32);
    w.write_tensor(bytes_of(b));
    w.finish();
  }
  const GgufFile copy = GgufFile::open(dir / "copy.gguf");
  EXPECT_EQ(copy.metadata(), f.metadata());
  ASSERT_EQ(copy.kv_records().size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const auto x = f.kv_records()[i].bytes, y = copy.kv_records()[i].bytes;
    EXPECT_TRUE(std::equal(x.begin(), x.end(), y.begin(), y.end())) << f.kv_records()[i].key;
  }
}

TEST(GgufWriter, NothingAppearsUnlessFinishedAndExistingFilesNeedOverwrite) {
  TempDir dir;
  {
    GgufWriter w(dir / "m.gguf", false);
    w.declare_tensor("a", {4}, ggml_type::F32);
    // Dropped before the tensor is written (an error mid-run): no file, no temporary.
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  write(dir, "m.gguf", "old");
  EXPECT_THROW(GgufWriter(dir / "m.gguf", false), Error);
  {
    GgufWriter w(dir / "m.gguf", true);
    w.declare_tensor("a", {1}, ggml_type::F32);
    w.write_tensor(bytes_of(std::vector<float>{7}));
    w.finish();
  }
  EXPECT_EQ(GgufFile::open(dir / "m.gguf").tensors().size(), 1u);
  EXPECT_THROW(GgufWriter(dir / "nowhere/m.gguf", false), Error);
}

}  // namespace
}  // namespace modelpress
