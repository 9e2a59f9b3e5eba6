// Fuzz target: a mergekit YAML merge configuration parsed into a plan, and every parameter
// it sets looked up for a few tensor names and positions.
#include <string>

#include "io/error.h"
#include "merge/merge_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const modelpress::merge::MergePlan plan = modelpress::merge::parse_merge_config(text, "fuzz.yml");
    for (const auto& slice : plan.slices)
      for (const auto& source : slice.sources)
        for (const char* name : {"weight", "density", "t", "normalize"})
          for (const double t : {0.0, 0.5, 1.0})
            (void)modelpress::merge::lookup_parameter(plan, slice, &source, name, "model.layers.3.mlp.up_proj.weight", t);
  } catch (const modelpress::Error&) {
  }
  return 0;
}
