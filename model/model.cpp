#include "model/model.h"

namespace modelpress::model {

Model load_model(const std::string& path) {
  Model m{path, Checkpoint::open(path), {}, nullptr, nullptr};
  m.config = config_for_checkpoint(m.checkpoint);
  if (m.config.family == Family::Bert) m.bert = std::make_unique<BertModel>(m.checkpoint, m.config);
  else m.decoder = std::make_unique<DecoderModel>(m.checkpoint, m.config);
  return m;
}

}  // namespace modelpress::model
