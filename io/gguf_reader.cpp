#include "io/gguf_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <unordered_set>

#include "io/error.h"

namespace modelpress {
namespace {

using nlohmann::ordered_json;

// GGUF metadata value types (gguf.md, enum gguf_metadata_value_type).
enum ValueType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};

const char* value_type_name(uint32_t t) {
  static const char* const names[] = {"u8",  "i8",   "u16",    "i16",   "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
  return t <= kF64 ? names[t] : "unknown";
}

// The fewest bytes one value of type t can take, to reject impossible counts before looping
// or allocating: a string is at least its u64 length, an array its u32 type and u64 count.
uint64_t min_value_bytes(uint32_t t) {
  switch (t) {
    case kU8: case kI8: case kBool: return 1;
    case kU16: case kI16: return 2;
    case kU32: case kI32: case kF32: return 4;
    case kU64: case kI64: case kF64: case kString: return 8;
    default: return 12;  // kArray
  }
}

uint64_t mul_saturated(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string range_str(uint64_t begin, uint64_t end) {
  std::string s = "[";  // built by appending: "[" + to_string(...) trips a GCC 12 -Wrestrict false positive
  s += std::to_string(begin) + ", " + std::to_string(end) + ")";
  return s;
}

// Reads the header front to back. Every read is bounds-checked, so a cut or corrupt file
// gives an error naming the offset instead of reading past the mapping. `context` names
// the KV or tensor info being read, for the messages.
class Reader {
 public:
  Reader(const std::string& path, const std::byte* data, uint64_t size) : path_(path), data_(data), size_(size) {}

  uint64_t pos() const { return pos_; }
  void set_context(std::string c) { context_ = std::move(c); }

  [[noreturn]] void fail(uint64_t at, const std::string& message) const {
    fail_file(path_, (context_.empty() ? "" : context_ + " ") + "at byte " + std::to_string(at) + ": " + message);
  }

  void need(uint64_t n, const char* what) const {
    if (n > size_ - pos_)
      fail_file(path_, "truncated at byte " + std::to_string(size_) + " while reading " + what + of_context() + " (" +
                           std::to_string(n) + " bytes at offset " + std::to_string(pos_) + ")");
  }

  // Checks, before anything loops or allocates, that `count` items of at least `item_bytes`
  // each fit in what is left. A count that could not fit even in the whole file is corruption;
  // one that fits the file but not its remainder means the file was cut short.
  void check_count(uint64_t count, uint64_t item_bytes, const char* noun, const char* what, uint64_t at) const {
    const uint64_t bytes = mul_saturated(count, item_bytes);
    if (bytes <= size_ - pos_) return;
    if (bytes > size_)
      fail(at, std::string(noun) + " " + std::to_string(count) + " is larger than the file (" +
                   std::to_string(size_) + " bytes): corrupt or truncated");
    need(bytes, what);
  }

  template <typename T>
  T get(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));  // little-endian hosts only, like the rest of io/
    pos_ += sizeof(T);
    return v;
  }

  std::string string(const char* what) {
    const uint64_t at = pos_;
    const auto len = get<uint64_t>(what);
    check_count(len, 1, "string length", what, at);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
    pos_ += len;
    return s;
  }

 private:
  std::string of_context() const { return context_.empty() ? "" : " of " + context_; }

  const std::string& path_;
  const std::byte* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
  std::string context_;
};

ordered_json read_value(Reader& r, uint32_t type, int depth) {
  switch (type) {
    case kU8: return r.get<uint8_t>("a u8 value");
    case kI8: return r.get<int8_t>("an i8 value");
    case kU16: return r.get<uint16_t>("a u16 value");
    case kI16: return r.get<int16_t>("an i16 value");
    case kU32: return r.get<uint32_t>("a u32 value");
    case kI32: return r.get<int32_t>("an i32 value");
    case kF32: return r.get<float>("an f32 value");
    case kBool: return r.get<uint8_t>("a bool value") != 0;
    case kString: return r.string("a string value");
    case kU64: return r.get<uint64_t>("a u64 value");
    case kI64: return r.get<int64_t>("an i64 value");
    case kF64: return r.get<double>("an f64 value");
    case kArray: break;
    default: r.fail(r.pos() - 4, "unknown value type " + std::to_string(type));
  }
  const uint64_t type_at = r.pos();
  const auto elem = r.get<uint32_t>("an array element type");
  if (elem > kF64) r.fail(type_at, "unknown array element type " + std::to_string(elem));
  // Each level costs only 12 bytes of file but a stack frame here, so bound the depth.
  if (elem == kArray && depth + 1 >= GgufFile::kMaxArrayNesting)
    r.fail(type_at, "arrays nested more than " + std::to_string(GgufFile::kMaxArrayNesting) + " deep");
  const uint64_t count_at = r.pos();
  const auto count = r.get<uint64_t>("an array length");
  r.check_count(count, min_value_bytes(elem), "array length", "the array elements", count_at);
  ordered_json arr = ordered_json::array();
  arr.get_ref<ordered_json::array_t&>().reserve(count);  // bounded by the file size just above
  for (uint64_t i = 0; i < count; ++i) arr.push_back(read_value(r, elem, depth + 1));
  return arr;
}

}  // namespace

Shape GgufTensorInfo::shape() const {
  Shape s;
  for (auto it = ne.rbegin(); it != ne.rend(); ++it) s.push_back(static_cast<int64_t>(*it));
  return s;
}

GgufFile GgufFile::open(const std::string& path) {
  GgufFile f;
  f.file_ = MappedFile::open(path);
  const uint64_t size = f.file_->size();
  Reader r(path, f.file_->data(), size);

  // Header. The magic is four bytes, not a number, so it reads "GGUF" in either byte order.
  r.need(4, "the magic");
  const auto* magic = reinterpret_cast<const unsigned char*>(f.file_->data());
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    uint32_t m;
    std::memcpy(&m, magic, 4);
    fail_file(path, "not a GGUF file: bad magic " + hex32(__builtin_bswap32(m)) + " at byte 0 (expected 'GGUF', 0x47475546)");
  }
  r.get<uint32_t>("the magic");
  const auto version = r.get<uint32_t>("the version");
  if (version == 1)
    fail_file(path, "unsupported GGUF version 1 at byte 4 (it used 32-bit counts and was dropped by llama.cpp); "
                    "convert the model again with current tools");
  if (version == __builtin_bswap32(2u) || version == __builtin_bswap32(3u))
    fail_file(path, "big-endian GGUF file (version at byte 4 reads " + hex32(version) + ", a byte-swapped " +
                        std::to_string(__builtin_bswap32(version)) + "); only little-endian files are supported");
  if (version != 2 && version != 3)
    fail_file(path, "unsupported GGUF version " + std::to_string(version) + " at byte 4 (supported: 2, 3)");
  f.version_ = version;

  const uint64_t tensor_count_at = r.pos();
  const auto tensor_count = r.get<uint64_t>("the tensor count");
  const uint64_t kv_count_at = r.pos();
  const auto kv_count = r.get<uint64_t>("the KV count");
  // Smallest KV: u64 key length, u32 type, a 1-byte value. Smallest tensor info: u64 name
  // length, u32 n_dims, one u64 ne, u32 type, u64 offset.
  r.check_count(kv_count, 13, "KV count", "the KVs", kv_count_at);
  r.check_count(tensor_count, 32, "tensor count", "the tensor infos", tensor_count_at);

  // KV pairs. Keys are looked up in a set, and appended to the ordered object's underlying
  // vector directly, because ordered_json finds keys by linear search (quadratic overall).
  std::unordered_set<std::string> keys;
  auto& entries = static_cast<std::vector<std::pair<const std::string, ordered_json>>&>(
      f.metadata_.get_ref<ordered_json::object_t&>());
  for (uint64_t i = 0; i < kv_count; ++i) {
    const uint64_t kv_at = r.pos();
    r.set_context("KV " + std::to_string(i));
    std::string key = r.string("the key");
    r.set_context("KV " + std::to_string(i) + " '" + key + "'");
    if (!keys.insert(key).second) r.fail(kv_at, "duplicate key '" + key + "'");
    const uint64_t type_at = r.pos();
    const auto type = r.get<uint32_t>("the value type");
    ordered_json value = read_value(r, type, 0);

    if (key == "general.alignment") {
      // ggml reads it as a u32; a file giving it any other type is malformed.
      if (type != kU32)
        r.fail(type_at, std::string("general.alignment has type ") + value_type_name(type) + ", expected u32");
      const auto a = value.get<uint32_t>();
      if (a == 0 || (a & (a - 1)) != 0)
        r.fail(kv_at, "general.alignment " + std::to_string(a) + " is not a nonzero power of two");
      f.alignment_ = a;
    }
    f.kv_ranges_.emplace_back(kv_at, r.pos() - kv_at);
    entries.emplace_back(std::move(key), std::move(value));
  }

  // Tensor infos. Everything that does not depend on where the data section starts is
  // checked here, where the offsets in messages point at the info itself.
  for (uint64_t i = 0; i < tensor_count; ++i) {
    const uint64_t info_at = r.pos();
    r.set_context("tensor info " + std::to_string(i));
    GgufTensorInfo t;
    t.name = r.string("the name");
    r.set_context("tensor info " + std::to_string(i) + " '" + t.name + "'");
    if (f.index_.count(t.name)) r.fail(info_at, "duplicate tensor name '" + t.name + "'");

    const uint64_t dims_at = r.pos();
    const auto n_dims = r.get<uint32_t>("n_dims");
    if (n_dims == 0 || n_dims > 4) r.fail(dims_at, "n_dims " + std::to_string(n_dims) + " is outside 1..4");
    uint64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t ne_at = r.pos();
      const auto ne = r.get<uint64_t>("a dimension (ne)");
      numel = mul_saturated(numel, ne);
      if (numel > static_cast<uint64_t>(INT64_MAX))  // also catches a single ne over INT64_MAX
        r.fail(ne_at, "ne[" + std::to_string(d) + "] = " + std::to_string(ne) + " overflows the element count");
      t.ne.push_back(ne);
    }

    const uint64_t type_at = r.pos();
    t.type = r.get<uint32_t>("the type");
    const auto traits = ggml_type_traits(t.type);
    if (!traits) r.fail(type_at, "unknown tensor type id " + std::to_string(t.type));
    if (t.ne[0] % traits->block_elems != 0)
      r.fail(type_at, "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + ggml_type_name(t.type) +
                          " block size " + std::to_string(traits->block_elems));
    // ne[0] holds whole blocks, so numel does too. A saturated (overflowed) byte count is
    // caught by the bounds checks below, which it can never pass.
    t.nbytes = mul_saturated(numel / traits->block_elems, traits->block_bytes);

    const uint64_t offset_at = r.pos();
    t.offset = r.get<uint64_t>("the offset");
    if (t.offset % f.alignment_ != 0)
      r.fail(offset_at, "offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                            std::to_string(f.alignment_));
    f.index_.emplace(t.name, f.tensors_.size());
    f.tensors_.push_back(std::move(t));
  }
  r.set_context("");

  // The data section starts at the first multiple of the alignment after the infos.
  f.data_start_ = (r.pos() + f.alignment_ - 1) / f.alignment_ * f.alignment_;

  // Bounds, then overlaps, both in offset order: in a file cut short, the first tensor
  // found missing is then the one the cut went through, and the error says "truncated".
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : f.tensors_) by_offset.push_back(&t);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
  });
  if (!by_offset.empty() && f.data_start_ > size)
    fail_file(path, "truncated at byte " + std::to_string(size) + ": the data section starts at byte " +
                        std::to_string(f.data_start_));
  uint64_t packed_end = 0;  // where the next tensor would start if the tensors were packed
  for (const GgufTensorInfo* t : by_offset) {
    const std::string where = "tensor '" + t->name + "' (" + ggml_type_name(t->type) + ", " +
                              std::to_string(t->nbytes) + " bytes)";
    if (t->offset > size - f.data_start_) {
      // Writers pack tensors back to back, so one that starts right after its predecessor
      // was lost to a cut; one after a gap has a bad offset.
      if (t->offset <= packed_end)
        fail_file(path, "truncated at byte " + std::to_string(size) + ": " + where + " starts at file offset " +
                            std::to_string(f.data_start_ + t->offset));
      fail_file(path, where + ": offset " + std::to_string(t->offset) + " (file offset " +
                          std::to_string(f.data_start_ + t->offset) + ") is past the end of the file (" +
                          std::to_string(size) + " bytes)");
    }
    const uint64_t begin = f.data_start_ + t->offset;  // <= size, so no overflow
    if (t->nbytes > size - begin)
      fail_file(path, "truncated at byte " + std::to_string(size) + ": " + where +
                          " needs its bytes from file offset " + std::to_string(begin));
    const uint64_t end = t->offset + t->nbytes;  // inside the file, so no overflow
    packed_end = std::max(packed_end, (end + f.alignment_ - 1) / f.alignment_ * f.alignment_);
  }

  // No two tensors may share bytes; empty tensors occupy nothing.
  const GgufTensorInfo* prev = nullptr;
  for (const GgufTensorInfo* cur : by_offset) {
    if (cur->nbytes == 0) continue;
    if (prev && cur->offset < prev->offset + prev->nbytes)
      fail_file(path, "tensor '" + cur->name + "' (data bytes " + range_str(cur->offset, cur->offset + cur->nbytes) +
                          ", file offset " + std::to_string(f.data_start_ + cur->offset) + ") overlaps tensor '" +
                          prev->name + "' (data bytes " + range_str(prev->offset, prev->offset + prev->nbytes) + ")");
    prev = cur;
  }
  return f;
}

const GgufTensorInfo* GgufFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

std::vector<GgufFile::KvRecord> GgufFile::kv_records() const {
  std::vector<KvRecord> out;
  size_t i = 0;
  for (const auto& [key, value] : metadata_.items()) {
    const auto [offset, size] = kv_ranges_[i++];
    out.push_back({key, {file_->data() + offset, static_cast<size_t>(size)}});
  }
  return out;
}

std::span<const std::byte> GgufFile::raw(const GgufTensorInfo& t) const {
  return {file_->data() + data_start_ + t.offset, static_cast<size_t>(t.nbytes)};
}

Tensor GgufFile::read_f32(const GgufTensorInfo& t) const {
  const auto traits = ggml_type_traits(t.type);
  if (!traits || !traits->dequantizable)
    fail_file(path(), "tensor '" + t.name + "' has type " + ggml_type_name(t.type) +
                          ", which cannot be dequantized (supported: F32, F16, BF16, F64, I8, I16, I32, I64, "
                          "Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_NL, IQ4_XS)");
  Tensor out = Tensor::zeros(DType::F32, t.shape());
  const size_t offset = data_start_ + t.offset;
  file_->will_need(offset, t.nbytes);
  ggml_dequantize(t.type, raw(t).data(), reinterpret_cast<float*>(out.mutable_data()), out.numel());
  // The f32 copy is all the caller keeps; give the source pages back, as the readers do for
  // views, so walking a large file stays near one tensor of resident memory.
  file_->release(offset, t.nbytes);
  return out;
}

}  // namespace modelpress
