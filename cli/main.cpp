#include <CLI/CLI.hpp>
#include <iostream>

#include "io/error.h"

int main(int argc, char** argv) {
  CLI::App app{"modelpress: compress model checkpoints and prove the result"};
  app.set_version_flag("--version", std::string("modelpress ") + MODELPRESS_VERSION);
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return 0;
}
