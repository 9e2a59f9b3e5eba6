// A model ready to run: the checkpoint, its config and the forward for its family.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "model/bert.h"
#include "model/config.h"
#include "model/decoder.h"
#include "model/vit.h"

namespace modelpress::model {

struct Model {
  std::string path;
  Checkpoint checkpoint;  // kept open: weights may be views into it
  ModelConfig config;
  std::unique_ptr<DecoderModel> decoder;  // Family::Decoder
  std::unique_ptr<BertModel> bert;        // Family::Bert
  std::unique_ptr<VitModel> vit;          // Family::Vit

  std::vector<const Linear*> linears() const {
    return decoder ? decoder->linears() : bert ? bert->linears() : vit->linears();
  }
};

// Opens `path` (HF folder, sharded or not, or a GGUF file) and reads every weight.
Model load_model(const std::string& path);

}  // namespace modelpress::model
