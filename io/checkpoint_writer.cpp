#include "io/checkpoint_writer.h"

#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "io/checkpoint.h"
#include "io/error.h"
#include "io/file_util.h"
#include "io/interrupt.h"

namespace modelpress {
namespace fs = std::filesystem;

CheckpointWriter::CheckpointWriter(std::string target, const Checkpoint* source, CheckpointWriterOptions options)
    : target_(std::move(target)), source_(source), options_(options) {
  std::error_code ec;
  while (target_.size() > 1 && target_.back() == '/') target_.pop_back();
  const fs::path target_path(target_);
  if (fs::exists(target_path, ec)) {
    if (!fs::is_directory(target_path)) fail_file(target_, "exists and is not a folder");
    if (!options_.overwrite && !fs::is_empty(target_path, ec))
      fail_file(target_, "exists and is not empty (pass --overwrite to replace it)");
  }
  if (source_) {
    const fs::path src = fs::weakly_canonical(source_->folder(), ec);
    if (fs::exists(target_path) && fs::equivalent(src, target_path, ec))
      fail_file(target_, "is the input checkpoint's folder; write the output somewhere else");
    for (const auto& f : source_->files())
      if (fs::weakly_canonical(fs::path(f).parent_path(), ec) == fs::weakly_canonical(target_path, ec))
        fail_file(target_, "holds the input's weight files; write the output somewhere else");
    config_ = source_->config();
  }
  // A name ending in .gguf promises a GGUF file; this writes a folder (a silent folder named
  // x.gguf is what users got before).
  if (target_.ends_with(".gguf"))
    fail_file(target_, "ends in .gguf, but this command writes a Hugging Face folder; GGUF output is "
                       "`modelpress quantize IN.gguf -o OUT.gguf --method q8_0|q4_0|q4_1`");
  const fs::path parent = target_path.has_parent_path() ? target_path.parent_path() : fs::path(".");
  if (!fs::exists(parent, ec)) fail_file(target_, "parent folder " + parent.string() + " does not exist");
  staging_ = temporary_path_for(target_);
  if (!fs::create_directory(staging_, ec)) fail_file(target_, "cannot create staging folder " + staging_ + ": " + ec.message());
  // transformers refuses safetensors whose metadata lacks format "pt"; other keys carry over.
  std::map<std::string, std::string> metadata;
  if (source_) metadata = source_->metadata();
  metadata["format"] = "pt";
  weights_ = std::make_unique<ShardedSafetensorsWriter>(staging_, options_.max_shard_bytes, metadata,
                                                        options_.expected_tensors);
}

CheckpointWriter::~CheckpointWriter() {
  if (finished_) return;
  weights_.reset();  // removes its own temporary shards first
  std::error_code ec;
  fs::remove_all(staging_, ec);
}

void CheckpointWriter::append(const std::string& name, const Tensor& tensor) {
  if (finished_) throw Error(target_ + ": append after finish");
  weights_->append(name, tensor);
}

void CheckpointWriter::finish() {
  if (finished_) throw Error(target_ + ": finish called twice");
  weights_->finish();
  const fs::path staging(staging_);
  if (source_) {
    for (const auto& rel : source_->carried_files()) {
      if (rel == "config.json") continue;  // written below, possibly updated
      const fs::path to = staging / rel;
      fs::create_directories(to.parent_path());
      std::error_code ec;
      fs::copy_file(fs::path(source_->folder()) / rel, to, fs::copy_options::overwrite_existing, ec);
      if (ec) fail_file((fs::path(source_->folder()) / rel).string(), "cannot copy into the output: " + ec.message());
    }
  }
  if (!config_.is_null()) write_text_file((staging / "config.json").string(), config_.dump(2) + "\n");
  for (const auto& [rel, text] : extra_files_) write_text_file((staging / rel).string(), text);

  // Move into place. An existing target (allowed by --overwrite) is set aside first and
  // deleted only once the new folder is in place.
  std::error_code ec;
  std::string old;
  {
    // Both renames happen, or an interrupt waits for them (io/interrupt.h).
    const auto commit = lock_commit();
    if (fs::exists(target_)) {
      // The constructor refused an existing target without --overwrite: this one appeared
      // meanwhile (another run writing the same output). Its output stays; this one goes.
      if (!options_.overwrite && !fs::is_empty(target_, ec))
        fail_file(target_, "was written by another process while this run was writing it; not replaced "
                           "(use --overwrite to replace it)");
      old = previous_path_for(target_);
      rename_file(target_, old);
    }
    try {
      rename_file(staging_, target_);
    } catch (...) {
      if (!old.empty()) std::rename(old.c_str(), target_.c_str());
      throw;
    }
    finished_ = true;
  }
  if (!old.empty()) fs::remove_all(old, ec);
}

uint64_t parse_byte_size(const std::string& text) {
  size_t pos = 0;
  double value = 0;
  try {
    value = std::stod(text, &pos);
  } catch (...) {
    throw Error("'" + text + "' is not a size (examples: 5GB, 500MB, 2GiB, 1048576)");
  }
  std::string unit = text.substr(pos);
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double scale = 0;
  if (unit.empty() || unit == "B") scale = 1;
  else if (unit == "KB") scale = 1e3;
  else if (unit == "MB") scale = 1e6;
  else if (unit == "GB") scale = 1e9;
  else if (unit == "TB") scale = 1e12;
  else if (unit == "KIB") scale = 1024.0;
  else if (unit == "MIB") scale = 1024.0 * 1024;
  else if (unit == "GIB") scale = 1024.0 * 1024 * 1024;
  if (scale == 0 || value < 0 || !std::isfinite(value))
    throw Error("'" + text + "' is not a size (examples: 5GB, 500MB, 2GiB, 1048576)");
  return static_cast<uint64_t>(std::llround(value * scale));
}

std::string format_bytes(uint64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (b >= 1e9) std::snprintf(buf, sizeof buf, "%.2f GB", b / 1e9);
  else if (b >= 1e6) std::snprintf(buf, sizeof buf, "%.2f MB", b / 1e6);
  else if (b >= 1e3) std::snprintf(buf, sizeof buf, "%.2f kB", b / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  return buf;
}

}  // namespace modelpress
