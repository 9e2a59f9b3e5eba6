// Unicode helpers for the tokenizers, on UTF-8 text, with the character classes the Hugging
// Face `tokenizers` crate uses (backed by ICU). Several of that crate's classes come from
// crates whose tables are frozen at an old Unicode version (`unicode_categories`: 8.0, for
// BERT's punctuation, control characters and accents; unicode-normalization-alignments: 9.0,
// for StripAccents); those are reproduced here by restricting ICU's general category to the
// characters assigned by that version (u_charAge), so that, for example, U+2E43 (Po, Unicode
// 9) is not punctuation for BERT, exactly as in `tokenizers` (checked against it in
// tests/interop/test_tokenizer_interop.py). Classes that come from Rust's std
// (char::is_whitespace, char::is_numeric, char::to_lowercase) and NFC/NFD use ICU's current
// tables (Unicode 15 for ICU 72), which can differ from the Rust release and
// unicode-normalization version `tokenizers` was built with only for characters assigned
// after one of them.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace modelpress::model::unicode {

// Byte offset of the first byte that does not start a valid UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are invalid, as in Rust's str), or nullopt.
std::optional<size_t> find_invalid_utf8(std::string_view s);

// Decodes the code point starting at s[i] and advances i past it. `s` must be valid UTF-8.
char32_t next_code_point(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t c);
size_t count_code_points(std::string_view s);

// Rust char::is_whitespace: the White_Space property.
bool is_whitespace(char32_t c);
// Rust char::is_numeric: general category Nd, Nl or No.
bool is_numeric(char32_t c);
// Rust char::is_ascii_punctuation.
bool is_ascii_punctuation(char32_t c);
// `tokenizers`' BERT punctuation (BertPreTokenizer, Punctuation): ASCII punctuation or a
// Unicode 8.0 P* character.
bool is_bert_punctuation(char32_t c);
// BertNormalizer's is_control: Cc, Cf, Co or Cs at Unicode 8.0, but not \t \n \r.
bool is_bert_control(char32_t c);
// Mn at Unicode 8.0 (BertNormalizer's strip_accents filter).
bool is_mark_nonspacing_v8(char32_t c);
// Any mark (Mn, Mc, Me) at Unicode 9.0: the StripAccents normalizer's filter
// (unicode-normalization-alignments' is_combining_mark, whose tables are Unicode 9.0).
bool is_combining_mark(char32_t c);
// BertNormalizer's "Chinese character": the CJK ideograph blocks it lists.
bool is_chinese_char(char32_t c);
// The Rust `regex` crate's \w: Alphabetic, marks, Nd, Pc, Join_Control.
bool is_word_char(char32_t c);

// Rust char::to_lowercase on every character independently (full, context-free mappings:
// 'İ' -> "i̇", 'Σ' -> 'σ' even at the end of a word), as NormalizedString::lowercase does.
std::string lowercase(std::string_view s);

enum class NormalForm { NFC, NFD, NFKC, NFKD };
std::string normalize(std::string_view s, NormalForm form);

}  // namespace modelpress::model::unicode
