// One-line progress on stderr while long commands work, only when stderr is a terminal, so
// logs and pipes stay clean.
#pragma once
#include <string>

namespace modelpress::cli {

class Progress {
 public:
  Progress(std::string what, size_t total);
  ~Progress();  // ends the line
  void step(const std::string& item);  // one more item done (or started)

 private:
  std::string what_;
  size_t total_, done_ = 0;
  bool active_;
};

}  // namespace modelpress::cli
