#include "io/tensor_category.h"

#include <regex>
#include <vector>

namespace modelpress {
namespace {

struct Rule {
  TensorCategory category;
  std::regex pattern;    // searched in the full name
  int min_rank, max_rank;  // the rule applies only to tensors of these ranks
};

// Ordered: the first rule that matches wins. Quantization side tensors (bitsandbytes SCB,
// compressed-tensors scales) come first so they never pass for weights; a compressed-tensors
// `weight_packed` is the layer's weight, stored packed.
const std::vector<Rule>& rules() {
  static const std::vector<Rule> table = [] {
    const auto flags = std::regex::ECMAScript | std::regex::optimize;
    auto r = [&](TensorCategory c, const char* re, int lo = 0, int hi = 8) {
      return Rule{c, std::regex(re, flags), lo, hi};
    };
    using C = TensorCategory;
    return std::vector<Rule>{
        r(C::Other, R"(\.(SCB|weight_format|weight_scale|weight_zero_point|weight_shape|weight_g_idx|input_scale|absmax|quant_map|quant_state.*)$)"),
        r(C::Other, R"((rotary_emb\.inv_freq|position_ids|masked_bias|attn\.bias)$)"),
        // MoE routers: Mixtral block_sparse_moe.gate, Qwen/OLMoE/DeepSeek mlp.gate,
        // Switch mlp.router.classifier, Qwen2 shared_expert_gate, GGUF ffn_gate_inp.
        r(C::Router, R"((block_sparse_moe\.gate|mlp\.gate|router(\.classifier)?|shared_expert_gate|ffn_gate_inp(_shexp)?)\.weight$)"),
        // Experts: per-expert modules, fused 3-D experts (transformers v5, gpt-oss), GGUF *_exps.
        r(C::ExpertLinear, R"(\.experts\.[^.]+\.[^.]+\.weight(_packed)?$)", 2, 3),
        r(C::ExpertLinear, R"(\.experts\.(gate_up_proj|gate_proj|up_proj|down_proj)$)", 3, 3),
        r(C::ExpertLinear, R"(ffn_(gate|up|down|gate_up)_exps\.weight$)", 2, 3),
        r(C::Norm, R"((^|\.)(\w*norm\w*|LayerNorm|ln_\w+|ln\d*)\.(weight|bias)$)", 1, 1),
        r(C::Embedding, R"((^|\.)(embed_tokens|wte|wpe|word_embeddings|position_embeddings|token_type_embeddings|token_embd|position_embd|token_types|embed_positions|shared)\.weight$)", 2, 2),
        r(C::LmHead, R"((^|\.)lm_head\.weight(_packed)?$|^output\.weight(_packed)?$)", 2, 2),
        r(C::AttentionLinear, R"((self_attn|attention|attn|cross_attn|self_attention)\.(\w+\.)*(q_proj|k_proj|v_proj|o_proj|qkv_proj|query|key|value|dense|out_proj|c_attn|c_proj|Wqkv|query_key_value|q|k|v|o)\.weight(_packed)?$)", 2, 2),
        r(C::AttentionLinear, R"((^|\.)attn_(q|k|v|qkv|output)\.weight(_packed)?$)", 2, 2),
        r(C::MlpLinear, R"((mlp|feed_forward|ffn|intermediate|shared_expert|shared_experts)\.(\w+\.)*\w+\.weight(_packed)?$)", 2, 2),
        r(C::MlpLinear, R"((^|\.)layer\.\d+\.output\.dense\.weight(_packed)?$)", 2, 2),  // BERT FFN output
        r(C::MlpLinear, R"((^|\.)ffn_(gate|up|down)(_shexp)?\.weight(_packed)?$)", 2, 2),
        r(C::OtherLinear, R"(\.weight(_packed)?$)", 2, 2),
        r(C::Bias, R"(\.bias$)", 1, 1),
    };
  }();
  return table;
}

}  // namespace

std::string_view category_name(TensorCategory c) {
  switch (c) {
    case TensorCategory::AttentionLinear: return "attention_linear";
    case TensorCategory::MlpLinear: return "mlp_linear";
    case TensorCategory::ExpertLinear: return "expert_linear";
    case TensorCategory::Router: return "router";
    case TensorCategory::OtherLinear: return "other_linear";
    case TensorCategory::Embedding: return "embedding";
    case TensorCategory::LmHead: return "lm_head";
    case TensorCategory::Norm: return "norm";
    case TensorCategory::Bias: return "bias";
    case TensorCategory::Other: return "other";
  }
  return "other";
}

TensorCategory classify_tensor(std::string_view name, size_t rank) {
  const std::string s(name);
  for (const Rule& rule : rules()) {
    if (static_cast<int>(rank) < rule.min_rank || static_cast<int>(rank) > rule.max_rank) continue;
    if (std::regex_search(s, rule.pattern)) return rule.category;
  }
  return TensorCategory::Other;
}

bool is_linear(TensorCategory c) {
  return c == TensorCategory::AttentionLinear || c == TensorCategory::MlpLinear ||
         c == TensorCategory::ExpertLinear || c == TensorCategory::OtherLinear ||
         c == TensorCategory::LmHead || c == TensorCategory::Router;
}

}  // namespace modelpress
