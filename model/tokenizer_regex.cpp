#include "model/tokenizer_regex.h"

#include <unicode/regex.h>
#include <unicode/utext.h>

#include <stdexcept>

#include "io/error.h"

namespace modelpress::model {

std::string translate_onig_pattern(const std::string& pattern) {
  std::string out;
  out.reserve(pattern.size() + 32);
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c != '\\' || i + 1 == pattern.size()) {
      out += c;
      continue;
    }
    const char e = pattern[++i];
    switch (e) {
      case 's': out += "\\p{White_Space}"; break;
      case 'S': out += "\\P{White_Space}"; break;
      case 'h': out += "[0-9a-fA-F]"; break;
      case 'H': out += "[^0-9a-fA-F]"; break;
      default:
        out += '\\';
        out += e;  // every other escape (including "\\\\") is kept as it is
    }
  }
  return out;
}

std::string TokenizerRegex::escape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    const bool plain = u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!plain) {
      if (c == '\n') { out += "\\n"; continue; }
      if (c == '\r') { out += "\\r"; continue; }
      if (c == '\t') { out += "\\t"; continue; }
      if (u < 0x20 || u == 0x7F) {
        static const char* hex = "0123456789ABCDEF";
        out += "\\x";
        out += hex[u >> 4];
        out += hex[u & 15];
        continue;
      }
      out += '\\';  // a backslash before any ASCII non-alphanumeric makes it literal in ICU
    }
    out += c;
  }
  return out;
}

TokenizerRegex::~TokenizerRegex() = default;

std::shared_ptr<const TokenizerRegex> TokenizerRegex::compile(const std::string& pattern, std::string& error) {
  const std::string translated = translate_onig_pattern(pattern);
  UErrorCode status = U_ZERO_ERROR;
  UParseError parse_error{};
  std::unique_ptr<icu::RegexPattern> compiled(icu::RegexPattern::compile(
      icu::UnicodeString::fromUTF8(translated), UREGEX_MULTILINE | UREGEX_UNIX_LINES, parse_error, status));
  if (U_FAILURE(status) || !compiled) {
    error = std::string(u_errorName(status)) + " at offset " + std::to_string(parse_error.offset);
    return nullptr;
  }
  std::shared_ptr<TokenizerRegex> r(new TokenizerRegex());
  r->pattern_ = pattern;
  r->compiled_ = std::move(compiled);
  return r;
}

std::vector<std::pair<size_t, size_t>> TokenizerRegex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> matches;
  if (text.empty()) return matches;
  UErrorCode status = U_ZERO_ERROR;
  // A UTF-8 UText: the matcher's native indices are byte offsets into `text`.
  UText* ut = utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status);
  std::unique_ptr<icu::RegexMatcher> m(compiled_->matcher(status));
  if (U_FAILURE(status) || !m) {
    utext_close(ut);
    throw Error("tokenizer regex '" + pattern_ + "': ICU matcher failed: " + u_errorName(status));
  }
  m->reset(ut);
  while (m->find(status) && U_SUCCESS(status)) {
    const int64_t b = m->start64(status), e = m->end64(status);
    if (U_FAILURE(status)) break;
    matches.emplace_back(static_cast<size_t>(b), static_cast<size_t>(e));
  }
  m.reset();
  utext_close(ut);
  // U_REGEX_STACK_OVERFLOW / U_REGEX_TIME_OUT on pathological input are the only expected ones.
  if (U_FAILURE(status))
    throw Error("tokenizer regex '" + pattern_ + "' failed on a piece of " + std::to_string(text.size()) +
                " bytes: " + u_errorName(status));
  return matches;
}

}  // namespace modelpress::model
