#include <gtest/gtest.h>

#include "io/tensor_category.h"

namespace modelpress {
namespace {

struct Case {
  const char* name;
  size_t rank;
  TensorCategory expected;
};

// Real names from the families modelpress meets, one row each.
const Case kCases[] = {
    // LLaMA / Mistral / Qwen
    {"model.embed_tokens.weight", 2, TensorCategory::Embedding},
    {"model.layers.0.self_attn.q_proj.weight", 2, TensorCategory::AttentionLinear},
    {"model.layers.31.self_attn.o_proj.weight", 2, TensorCategory::AttentionLinear},
    {"model.layers.0.self_attn.q_proj.bias", 1, TensorCategory::Bias},
    {"model.layers.0.self_attn.q_norm.weight", 1, TensorCategory::Norm},
    {"model.layers.0.mlp.gate_proj.weight", 2, TensorCategory::MlpLinear},
    {"model.layers.0.mlp.down_proj.weight", 2, TensorCategory::MlpLinear},
    {"model.layers.0.input_layernorm.weight", 1, TensorCategory::Norm},
    {"model.norm.weight", 1, TensorCategory::Norm},
    {"lm_head.weight", 2, TensorCategory::LmHead},
    {"model.layers.0.self_attn.rotary_emb.inv_freq", 1, TensorCategory::Other},
    // BERT
    {"embeddings.word_embeddings.weight", 2, TensorCategory::Embedding},
    {"embeddings.position_embeddings.weight", 2, TensorCategory::Embedding},
    {"embeddings.LayerNorm.weight", 1, TensorCategory::Norm},
    {"encoder.layer.0.attention.self.query.weight", 2, TensorCategory::AttentionLinear},
    {"encoder.layer.0.attention.output.dense.weight", 2, TensorCategory::AttentionLinear},
    {"encoder.layer.0.attention.output.LayerNorm.bias", 1, TensorCategory::Norm},
    {"encoder.layer.0.intermediate.dense.weight", 2, TensorCategory::MlpLinear},
    {"encoder.layer.0.output.dense.weight", 2, TensorCategory::MlpLinear},
    {"encoder.layer.0.output.dense.bias", 1, TensorCategory::Bias},
    {"pooler.dense.weight", 2, TensorCategory::OtherLinear},
    {"embeddings.position_ids", 2, TensorCategory::Other},
    // GPT-2
    {"h.0.attn.c_attn.weight", 2, TensorCategory::AttentionLinear},
    {"h.0.mlp.c_fc.weight", 2, TensorCategory::MlpLinear},
    {"h.0.ln_1.weight", 1, TensorCategory::Norm},
    {"ln_f.bias", 1, TensorCategory::Norm},
    {"wte.weight", 2, TensorCategory::Embedding},
    // MoE
    {"model.layers.0.block_sparse_moe.gate.weight", 2, TensorCategory::Router},
    {"model.layers.0.block_sparse_moe.experts.7.w2.weight", 2, TensorCategory::ExpertLinear},
    {"model.layers.0.mlp.gate.weight", 2, TensorCategory::Router},
    {"model.layers.0.mlp.experts.12.up_proj.weight", 2, TensorCategory::ExpertLinear},
    {"model.layers.0.mlp.shared_expert.gate_proj.weight", 2, TensorCategory::MlpLinear},
    {"model.layers.0.mlp.shared_expert_gate.weight", 2, TensorCategory::Router},
    {"model.layers.3.mlp.shared_experts.down_proj.weight", 2, TensorCategory::MlpLinear},
    {"encoder.block.1.layer.1.mlp.experts.expert_3.wi.weight", 2, TensorCategory::ExpertLinear},
    {"encoder.block.1.layer.1.mlp.router.classifier.weight", 2, TensorCategory::Router},
    {"model.layers.0.mlp.experts.gate_up_proj", 3, TensorCategory::ExpertLinear},
    {"model.layers.0.mlp.experts.down_proj", 3, TensorCategory::ExpertLinear},
    // GGUF
    {"token_embd.weight", 2, TensorCategory::Embedding},
    {"blk.0.attn_q.weight", 2, TensorCategory::AttentionLinear},
    {"blk.0.attn_output.weight", 2, TensorCategory::AttentionLinear},
    {"blk.0.ffn_down.weight", 2, TensorCategory::MlpLinear},
    {"blk.0.ffn_gate_exps.weight", 3, TensorCategory::ExpertLinear},
    {"blk.0.ffn_gate_inp.weight", 2, TensorCategory::Router},
    {"blk.0.attn_norm.weight", 1, TensorCategory::Norm},
    {"output_norm.weight", 1, TensorCategory::Norm},
    {"output.weight", 2, TensorCategory::LmHead},
    // GGUF BERT (llama.cpp's convert_hf_to_gguf.py names): the position and token-type
    // embeddings are tables, not linear layers, as in the safetensors original.
    {"position_embd.weight", 2, TensorCategory::Embedding},
    {"token_types.weight", 2, TensorCategory::Embedding},
    {"token_embd_norm.weight", 1, TensorCategory::Norm},
    {"blk.0.attn_output_norm.bias", 1, TensorCategory::Norm},
    {"blk.0.layer_output_norm.weight", 1, TensorCategory::Norm},
    // Already-quantized checkpoints: side tensors are never weights.
    {"model.layers.0.self_attn.q_proj.SCB", 1, TensorCategory::Other},
    {"model.layers.0.self_attn.q_proj.weight_scale", 2, TensorCategory::Other},
    {"model.layers.0.self_attn.q_proj.weight_packed", 2, TensorCategory::AttentionLinear},
    {"model.layers.0.mlp.down_proj.weight_packed", 2, TensorCategory::MlpLinear},
};

TEST(TensorCategory, ClassifiesKnownNames) {
  for (const Case& c : kCases)
    EXPECT_EQ(category_name(classify_tensor(c.name, c.rank)), category_name(c.expected)) << c.name;
}

TEST(TensorCategory, RankDecidesBetweenWeightAndScalar) {
  // A 1-D "weight" under an attention module is not a linear weight.
  EXPECT_NE(classify_tensor("model.layers.0.self_attn.q_proj.weight", 1), TensorCategory::AttentionLinear);
  EXPECT_EQ(classify_tensor("something.weird", 0), TensorCategory::Other);
}

}  // namespace
}  // namespace modelpress
