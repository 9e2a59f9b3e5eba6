// modelpress: the command-line entry point. Exit status: 0 success, 1 an error in the
// input or the work (one line on stderr naming the file and the problem), 2 a usage error.
#include <CLI/CLI.hpp>
#include <iostream>

#include "cli/commands.h"
#include "io/error.h"
#include "io/interrupt.h"
#include "kernels/backend.h"

namespace {

std::string version_text() {
  std::string text = std::string("modelpress ") + MODELPRESS_VERSION;
  for (const auto& b : modelpress::kernels::list_backends())
    text += "\n  backend " + b.name + ": " + (b.usable ? "available" : "unavailable") + " (" + b.detail + ")";
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  // Before any thread starts: SIGINT / SIGTERM remove unfinished outputs (io/interrupt.h).
  modelpress::install_interrupt_cleanup();
  CLI::App app{"modelpress: compress model checkpoints (quantize, cluster, prune, merge) and prove the result.\n"
               "Inputs: a Hugging Face folder (safetensors, single or sharded), a .safetensors file, or a GGUF file."};
  app.set_version_flag("--version", version_text);
  app.require_subcommand(1);
  modelpress::cli::set_inspect_command(app);
  modelpress::cli::set_convert_command(app);
  modelpress::cli::set_synth_command(app);
  modelpress::cli::set_quantize_command(app);
  modelpress::cli::set_validate_command(app);
  modelpress::cli::set_cluster_command(app);
  modelpress::cli::set_decompress_command(app);
  modelpress::cli::set_merge_command(app);
  modelpress::cli::set_bench_command(app);
  modelpress::cli::set_forward_command(app);
  modelpress::cli::set_eval_command(app);
  modelpress::cli::set_calibrate_command(app);
  modelpress::cli::set_tokenize_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const modelpress::Error& e) {
    std::cerr << "modelpress: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "modelpress: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
