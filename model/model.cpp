#include "model/model.h"

namespace modelpress::model {

Model load_model(const std::string& path) {
  Model m{path, Checkpoint::open(path), {}, nullptr, nullptr, nullptr};
  m.config = config_for_checkpoint(m.checkpoint);
  switch (m.config.family) {
    case Family::Bert: m.bert = std::make_unique<BertModel>(m.checkpoint, m.config); break;
    case Family::Vit: m.vit = std::make_unique<VitModel>(m.checkpoint, m.config); break;
    case Family::Decoder: m.decoder = std::make_unique<DecoderModel>(m.checkpoint, m.config); break;
  }
  return m;
}

}  // namespace modelpress::model
