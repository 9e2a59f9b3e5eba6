// The regular expressions of tokenizer.json pre-tokenizers (and of llama.cpp's GGUF
// pre-tokenizer types), run with ICU's RegexMatcher on UTF-8 text.
//
// `tokenizers` compiles these patterns with Oniguruma (Ruby syntax). ICU agrees on what the
// patterns in use need (\p{L}, \p{N}, [^...] classes, (?!...) lookahead, (?i:...), {m,n},
// possessive and lazy quantifiers, leftmost-first alternation), and the translation below
// removes the differences that matter for them:
//  - \s / \S: Oniguruma's \s is the White_Space property (it includes U+000B and U+0085);
//    ICU's is [\t\n\f\r\p{Z}]. Both are rewritten to \p{White_Space} / \P{White_Space}.
//  - \h / \H: a hexadecimal digit in Oniguruma, horizontal space in ICU: rewritten to
//    [0-9a-fA-F] / [^0-9a-fA-F].
//  - ^ and $ are line anchors in Ruby syntax: compiled with UREGEX_MULTILINE and
//    UREGEX_UNIX_LINES (only \n ends a line, as in Oniguruma).
// Known remaining differences (no tokenizer we target uses them): (?m) means "dot matches
// newline" in Ruby but "multi-line anchors" in ICU; ICU reads `--` and `&&` inside [...] as
// set operations; case-insensitive (?i) matching uses each library's own case-folding data,
// so exotic folds (U+017F ſ, U+212A Kelvin) may differ; \p{...} classes follow each
// library's Unicode version (ICU 72: Unicode 15).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unicode/uversion.h>

U_NAMESPACE_BEGIN
class RegexPattern;
U_NAMESPACE_END

namespace modelpress::model {

class TokenizerRegex {
 public:
  // Compiles an Oniguruma-syntax pattern; on a syntax error, returns nullptr and sets `error`.
  static std::shared_ptr<const TokenizerRegex> compile(const std::string& pattern, std::string& error);
  // A pattern matching `literal` exactly (Split's {"String": ...} form).
  static std::string escape(std::string_view literal);

  ~TokenizerRegex();
  TokenizerRegex(const TokenizerRegex&) = delete;
  TokenizerRegex& operator=(const TokenizerRegex&) = delete;

  // Every non-overlapping match in `text` (valid UTF-8), leftmost first, as byte ranges
  // [begin, end). Thread-safe: each call uses its own matcher.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  TokenizerRegex() = default;
  std::string pattern_;
  std::unique_ptr<U_ICU_NAMESPACE::RegexPattern> compiled_;
};

// Oniguruma pattern -> ICU pattern (the rewrites listed above). Exposed for tests.
std::string translate_onig_pattern(const std::string& pattern);

}  // namespace modelpress::model
