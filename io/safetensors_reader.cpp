#include "io/safetensors_reader.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/error.h"

namespace modelpress {
namespace {

using nlohmann::json;

std::string offsets_str(uint64_t b, uint64_t e) {
  return "[" + std::to_string(b) + ", " + std::to_string(e) + "]";
}

// Parses the header and rejects repeated keys in any object: nlohmann keeps the last
// value silently, and a repeated tensor name would hide a tensor.
json parse_header(const std::string& path, std::string_view text) {
  std::vector<std::set<std::string>> keys;
  std::string duplicate;
  auto on_event = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!keys.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {  // parse_error, and out_of_range for a number past double (found by fuzzing)
    fail_file(path, "header is not valid JSON (" + std::string(e.what()) + ")");
  }
  if (!duplicate.empty()) fail_file(path, "duplicate key '" + duplicate + "' in the header");
  if (!header.is_object()) fail_file(path, "header is not a JSON object");
  return header;
}

uint64_t as_u64(const std::string& path, const std::string& what, const json& v) {
  if (!v.is_number_unsigned()) fail_file(path, what + " is not a non-negative integer: " + v.dump());
  return v.get<uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& info) {
  const std::string where = "tensor '" + name + "'";
  if (!info.is_object()) fail_file(path, where + ": header entry is not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!info.contains(field)) fail_file(path, where + ": missing '" + field + "'");
  const json& dt = info["dtype"];
  if (!dt.is_string()) fail_file(path, where + ": dtype is not a string");
  const auto dtype = parse_dtype(dt.get<std::string>());
  if (!dtype) fail_file(path, where + ": unknown dtype '" + dt.get<std::string>() + "'");

  SafetensorsEntry e{name, *dtype, {}, 0, 0};
  const json& shape = info["shape"];
  if (!shape.is_array()) fail_file(path, where + ": shape is not an array");
  for (const json& d : shape) {
    const uint64_t dim = as_u64(path, where + ": shape dimension", d);
    if (dim > static_cast<uint64_t>(INT64_MAX)) fail_file(path, where + ": shape dimension too large");
    e.shape.push_back(static_cast<int64_t>(dim));
  }
  const json& off = info["data_offsets"];
  if (!off.is_array() || off.size() != 2) fail_file(path, where + ": data_offsets is not [begin, end]");
  e.begin = as_u64(path, where + ": data_offsets begin", off[0]);
  e.end = as_u64(path, where + ": data_offsets end", off[1]);
  if (e.end < e.begin) fail_file(path, where + ": data_offsets " + offsets_str(e.begin, e.end) + " end before begin");

  int64_t numel = 0;
  try {
    numel = shape_numel(e.shape);
  } catch (const Error& err) {
    fail_file(path, where + ": " + err.what());
  }
  const uint64_t item = dtype_size(e.dtype);
  if (static_cast<uint64_t>(numel) > UINT64_MAX / item) fail_file(path, where + ": shape too large");
  const uint64_t need = static_cast<uint64_t>(numel) * item;
  if (e.end - e.begin != need)
    fail_file(path, where + ": shape " + shape_to_string(e.shape) + " of " + std::string(dtype_name(e.dtype)) +
                        " needs " + std::to_string(need) + " bytes but data_offsets " +
                        offsets_str(e.begin, e.end) + " span " + std::to_string(e.end - e.begin));
  return e;
}

// Unmaps nothing; hands the pages of one tensor back when its last view dies.
struct PageLease {
  std::shared_ptr<MappedFile> file;
  size_t offset, size;
  ~PageLease() { file->release(offset, size); }
};

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.file_ = MappedFile::open(path);
  const uint64_t size = f.file_->size();
  if (size < 8)
    fail_file(path, "truncated: " + std::to_string(size) + " bytes, but a safetensors file starts with an 8-byte header length");
  uint64_t n = 0;
  std::memcpy(&n, f.file_->data(), 8);  // little-endian on every platform we build for
  if (n > kMaxHeaderBytes)
    fail_file(path, "header length " + std::to_string(n) + " exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes");
  if (n > size - 8)
    fail_file(path, "header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size) + " bytes)");
  f.header_bytes_ = n;

  const json header = parse_header(
      path, std::string_view(reinterpret_cast<const char*>(f.file_->data()) + 8, n));
  const uint64_t data_size = size - 8 - n;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") {
      if (!info.is_object()) fail_file(path, "__metadata__ is not an object");
      for (const auto& [k, v] : info.items()) {
        if (!v.is_string()) fail_file(path, "__metadata__ value for '" + k + "' is not a string");
        f.metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    SafetensorsEntry e = parse_entry(path, name, info);
    if (e.end > data_size)
      fail_file(path, "tensor '" + name + "': data_offsets " + offsets_str(e.begin, e.end) +
                          " run past the end of the data section (" + std::to_string(data_size) +
                          " bytes from file offset " + std::to_string(8 + n) + ")");
    f.entries_.push_back(std::move(e));
  }

  std::stable_sort(f.entries_.begin(), f.entries_.end(), [](const auto& a, const auto& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;  // the data section must be tiled exactly, in offset order
  const SafetensorsEntry* prev = nullptr;
  for (const auto& e : f.entries_) {
    if (e.begin > covered)
      fail_file(path, "hole of " + std::to_string(e.begin - covered) + " bytes in the data section before tensor '" +
                          e.name + "' (data_offsets " + offsets_str(e.begin, e.end) + ")");
    if (e.begin < covered)
      fail_file(path, "tensor '" + e.name + "' (data_offsets " + offsets_str(e.begin, e.end) + ") overlaps tensor '" +
                          prev->name + "' (" + offsets_str(prev->begin, prev->end) + ")");
    covered = e.end;
    prev = &e;
  }
  if (covered != data_size)
    fail_file(path, std::to_string(data_size - covered) + " bytes at the end of the data section belong to no tensor");

  for (size_t i = 0; i < f.entries_.size(); ++i) f.index_[f.entries_[i].name] = i;
  return f;
}

const SafetensorsEntry* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Tensor SafetensorsFile::read(const SafetensorsEntry& e) const {
  const size_t offset = data_start() + e.begin;
  const size_t size = e.end - e.begin;
  // No readahead hint here: many views are never touched (the writer copies them in the
  // kernel), and the kernel's fault-around serves the ones that are.
  // Constructed in place: a temporary PageLease (make_shared copies it) would release the
  // pages as soon as it died.
  std::shared_ptr<const void> lease(new PageLease{file_, offset, size});
  return Tensor::file_view(e.dtype, e.shape, file_->data() + offset, std::move(lease), FileSpan{file_.get(), offset});
}

Tensor SafetensorsFile::read(std::string_view name) const {
  const SafetensorsEntry* e = find(name);
  if (!e) fail_file(path(), "no tensor named '" + std::string(name) + "'");
  return read(*e);
}

}  // namespace modelpress
