// Each subcommand lives in its own file and registers itself on the app (the micromamba
// `set_install_command(CLI::App*)` pattern). The callbacks throw modelpress::Error for
// anything the user can fix; main() prints it as one line and exits 1.
#pragma once
#include <CLI/CLI.hpp>

namespace modelpress::cli {

void set_inspect_command(CLI::App& app);
void set_convert_command(CLI::App& app);
void set_synth_command(CLI::App& app);
void set_quantize_command(CLI::App& app);
void set_validate_command(CLI::App& app);
void set_cluster_command(CLI::App& app);
void set_decompress_command(CLI::App& app);
void set_merge_command(CLI::App& app);
void set_merge_batch_commands(CLI::App& merge);  // merge --config, merge ties (command_merge_batch.cpp)
void set_bench_command(CLI::App& app);
void set_forward_command(CLI::App& app);
void set_eval_command(CLI::App& app);
void set_calibrate_command(CLI::App& app);
void set_tokenize_command(CLI::App& app);

}  // namespace modelpress::cli
