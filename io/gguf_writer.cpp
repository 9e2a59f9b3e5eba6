#include "io/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "io/error.h"
#include "io/file_util.h"
#include "io/gguf_dequant.h"
#include "io/interrupt.h"

namespace modelpress {
namespace fs = std::filesystem;

namespace {

// GGUF value types (gguf.md, enum gguf_metadata_value_type).
constexpr uint32_t kU32 = 4, kF32 = 6, kString = 8;

template <class T>
void put(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);  // little-endian hosts, as io/
}
void put_string(std::string& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out += s;
}

uint64_t align_up(uint64_t v) { return (v + GgufWriter::kAlignment - 1) / GgufWriter::kAlignment * GgufWriter::kAlignment; }

}  // namespace

GgufWriter::GgufWriter(std::string path, bool overwrite) : path_(std::move(path)), overwrite_(overwrite) {
  std::error_code ec;
  if (fs::exists(path_, ec) && !overwrite_) fail_file(path_, "exists (pass --overwrite to replace it)");
  if (fs::is_directory(path_, ec)) fail_file(path_, "is a folder; a GGUF output is a file");
  const fs::path target(path_);
  const fs::path parent = target.has_parent_path() ? target.parent_path() : fs::path(".");
  if (!fs::exists(parent, ec)) fail_file(path_, "parent folder " + parent.string() + " does not exist");
  temporary_ = temporary_path_for(path_);
  fd_ = ::open(temporary_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail_file(path_, "cannot create " + temporary_ + ": " + std::strerror(errno));
}

GgufWriter::~GgufWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!finished_) std::remove(temporary_.c_str());
}

bool GgufWriter::has_key(const std::string& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

void GgufWriter::add_kv(const std::string& key, uint32_t type, const std::string& value_bytes) {
  std::string record;
  put_string(record, key);
  put<uint32_t>(record, type);
  record += value_bytes;
  add_record(key, std::as_bytes(std::span<const char>(record.data(), record.size())));
}

void GgufWriter::add_u32(const std::string& key, uint32_t value) {
  std::string v;
  put<uint32_t>(v, value);
  add_kv(key, kU32, v);
}

void GgufWriter::add_f32(const std::string& key, float value) {
  std::string v;
  put<float>(v, value);
  add_kv(key, kF32, v);
}

void GgufWriter::add_string(const std::string& key, const std::string& value) {
  std::string v;
  put_string(v, value);
  add_kv(key, kString, v);
}

void GgufWriter::add_record(const std::string& key, std::span<const std::byte> record) {
  if (data_begun_ || !tensors_.empty()) throw Error(path_ + ": metadata added after the tensors");
  if (has_key(key)) throw Error(path_ + ": metadata key '" + key + "' added twice");
  keys_.push_back(key);
  kv_bytes_.append(reinterpret_cast<const char*>(record.data()), record.size());
}

uint64_t GgufWriter::declare_tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type) {
  if (data_begun_) throw Error(path_ + ": tensor '" + name + "' declared after data was written");
  const auto traits = ggml_type_traits(type);
  if (!traits) throw Error(path_ + ": tensor '" + name + "' has unknown ggml type " + std::to_string(type));
  if (ne.empty() || ne.size() > 4 || ne[0] % traits->block_elems != 0)
    throw Error(path_ + ": tensor '" + name + "' cannot be stored as " + ggml_type_name(type) + " (ne[0] must be a multiple of " +
                std::to_string(traits->block_elems) + ")");
  uint64_t count = 1;
  for (uint64_t d : ne) count *= d;
  const uint64_t nbytes = count / traits->block_elems * traits->block_bytes;
  data_size_ = align_up(data_size_);
  tensors_.push_back({name, std::move(ne), type, data_size_, nbytes});
  data_size_ += nbytes;
  return nbytes;
}

void GgufWriter::begin_data() {
  std::string header = "GGUF";
  put<uint32_t>(header, 3);
  put<uint64_t>(header, tensors_.size());
  put<uint64_t>(header, keys_.size());
  header += kv_bytes_;
  for (const Declared& t : tensors_) {
    put_string(header, t.name);
    put<uint32_t>(header, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put<uint64_t>(header, d);
    put<uint32_t>(header, t.type);
    put<uint64_t>(header, t.offset);
  }
  header.resize(align_up(header.size()), '\0');
  write_all(fd_, header.data(), header.size(), temporary_);
  position_ = data_base_ = header.size();
  data_begun_ = true;
}

void GgufWriter::write_tensor(std::span<const std::byte> bytes) {
  if (!data_begun_) begin_data();
  if (next_ >= tensors_.size()) throw Error(path_ + ": more tensors written than declared");
  const Declared& t = tensors_[next_];
  if (bytes.size() != t.nbytes)
    throw Error(path_ + ": tensor '" + t.name + "' has " + std::to_string(bytes.size()) + " bytes, declared " +
                std::to_string(t.nbytes));
  // Zero padding up to the tensor's aligned offset in the data section.
  static const char zeros[GgufWriter::kAlignment] = {};
  const uint64_t target = data_base_ + t.offset;
  if (target > position_) {
    write_all(fd_, zeros, static_cast<size_t>(target - position_), temporary_);
    position_ = target;
  }
  write_all(fd_, bytes.data(), bytes.size(), temporary_);
  position_ += bytes.size();
  ++next_;
}

void GgufWriter::finish() {
  if (finished_) throw Error(path_ + ": finish called twice");
  if (!data_begun_) begin_data();
  if (next_ != tensors_.size())
    throw Error(path_ + ": " + std::to_string(tensors_.size() - next_) + " declared tensors were not written");
  if (::fsync(fd_) != 0) fail_file(path_, std::string("cannot flush: ") + std::strerror(errno));
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  const auto commit = lock_commit();
  if (fs::exists(path_, ec) && !overwrite_) fail_file(path_, "was written by another process meanwhile; not replaced");
  rename_file(temporary_, path_);
  finished_ = true;
}

}  // namespace modelpress
