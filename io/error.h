// The one error type the library throws for anything a user can cause (bad files, bad
// options). Its message is already the single line the CLI prints: it names the file,
// tensor or byte offset and says what is wrong.
#pragma once
#include <stdexcept>
#include <string>

namespace modelpress {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// "path: message", the shape every file-related error takes.
[[noreturn]] inline void fail_file(const std::string& path, const std::string& message) {
  throw Error(path + ": " + message);
}

}  // namespace modelpress
