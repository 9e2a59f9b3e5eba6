// Model-level accuracy of a ViT image encoder. No image data set is reachable here, so the
// images are deterministic synthetic ones (model/vit.h synthetic_images) and every report
// says so. Against a reference: the cosine of each image's CLS feature (final-norm hidden
// state of the CLS token) to the reference's, and with a classification head the cosine of
// the logits and the top-1 agreement of the predicted labels.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/packed_linear.h"

namespace modelpress::model {
class VitModel;
}

namespace modelpress::eval {

struct VitEval {
  int64_t images = 0;
  uint64_t seed = 0;
  double images_per_s = 0;
  bool has_reference = false, has_logits = false;
  std::vector<double> cls_cosine, logit_cosine;  // per image
  double cls_cosine_mean = 0, cls_cosine_min = 0, logit_cosine_mean = 0, logit_cosine_min = 0;
  double top1_agreement = 0;
  std::string first_nonfinite, reference_first_nonfinite;
};

VitEval evaluate_vit(const model::VitModel& model, const model::VitModel* reference, int64_t images, uint64_t seed,
                     kernels::Backend backend);

}  // namespace modelpress::eval
