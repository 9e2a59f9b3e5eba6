// Small typed readers for tokenizer.json fields: a missing or mistyped field is an Error
// naming the file and the JSON location ("model.vocab"), one line. Internal to model/.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "io/error.h"

namespace modelpress::model::tokjson {

using nlohmann::json;

[[noreturn]] inline void fail(const std::string& path, const std::string& where, const std::string& message) {
  fail_file(path, (where.empty() ? "" : where + ": ") + message);
}

inline std::string join(const std::string& where, const std::string& key) {
  return where.empty() ? key : where + "." + key;
}

inline const json& field(const json& j, const char* key, const std::string& path, const std::string& where) {
  if (!j.is_object()) fail(path, where, "expected a JSON object");
  auto it = j.find(key);
  if (it == j.end()) fail(path, where, std::string("missing \"") + key + "\"");
  return *it;
}

// Missing or null -> `def`.
inline bool get_bool(const json& j, const char* key, bool def, const std::string& path, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail(path, join(where, key), "expected true or false");
  return it->get<bool>();
}

inline std::string get_string(const json& j, const char* key, const std::string& path, const std::string& where) {
  const json& v = field(j, key, path, where);
  if (!v.is_string()) fail(path, join(where, key), "expected a string");
  return v.get<std::string>();
}

// Missing or null -> `def`.
inline std::string get_string_or(const json& j, const char* key, const std::string& def, const std::string& path,
                                 const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_string()) fail(path, join(where, key), "expected a string");
  return it->get<std::string>();
}

inline int32_t as_id(const json& v, const std::string& path, const std::string& where) {
  if (!v.is_number_integer()) fail(path, where, "expected a token id (an integer)");
  const auto id = v.get<int64_t>();
  if (id < 0 || id > INT32_MAX) fail(path, where, "token id " + std::to_string(id) + " is out of range");
  return static_cast<int32_t>(id);
}

}  // namespace modelpress::model::tokjson
