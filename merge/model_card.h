// The README.md written beside a merged checkpoint: what was merged, how, with which
// modelpress version, and the configuration itself, so the folder explains itself on a
// model hub (mergekit writes the same kind of card).
#pragma once
#include <string>

#include "merge/batch_merge.h"

namespace modelpress::merge {

std::string model_card(const MergePlan& plan, const BatchMergeReport& report, const std::string& out,
                       const std::string& version);

}  // namespace modelpress::merge
