// modelpress convert IN -o OUT: reads every tensor of any checkpoint and writes it back as
// Hugging Face safetensors, resharded by --max-shard-size. GGUF block types are
// dequantized to F32 (plain GGUF types keep their dtype) and keep their GGUF names and
// row-major shapes. This is also the path the I/O benchmark measures. With --hf, a GGUF
// LLaMA becomes a Hugging Face checkpoint instead (model/gguf_to_hf.h): transformers' names,
// q/k rows in transformers' order, config.json, and the GGUF's tokenizer as tokenizer.json +
// tokenizer_config.json.
#include <iostream>

#include "cli/commands.h"
#include "cli/progress.h"
#include "io/checkpoint.h"
#include "io/checkpoint_writer.h"
#include "io/error.h"
#include "model/gguf_to_hf.h"
#include "model/tokenizer.h"

namespace modelpress::cli {
namespace {

struct ConvertOptions {
  std::string input, output, max_shard = "5GB";
  bool overwrite = false;
  bool hf = false;
};

}  // namespace

void set_convert_command(CLI::App& app) {
  auto opts = std::make_shared<ConvertOptions>();
  CLI::App* cmd = app.add_subcommand("convert", "Rewrite a checkpoint as (re)sharded safetensors; GGUF block "
                                                "types are dequantized to F32");
  cmd->add_option("input", opts->input, "Checkpoint to read (folder, .safetensors, .gguf)")->required();
  cmd->add_option("-o,--output", opts->output, "Output folder (created; must not exist unless --overwrite)")->required();
  cmd->add_option("--max-shard-size", opts->max_shard, "Largest shard, e.g. 5GB, 500MB, 2GiB")->capture_default_str();
  cmd->add_flag("--overwrite", opts->overwrite, "Replace an existing output folder once the new one is complete");
  cmd->add_flag("--hf", opts->hf,
                "GGUF LLaMA input: write a Hugging Face LlamaForCausalLM checkpoint (transformers' tensor names and "
                "q/k row order, f32, config.json, the GGUF's tokenizer as tokenizer.json) that every modelpress pass "
                "and transformers read");
  cmd->callback([opts] {
    const Checkpoint ck = Checkpoint::open(opts->input);
    CheckpointWriterOptions wo;
    wo.max_shard_bytes = parse_byte_size(opts->max_shard);
    wo.overwrite = opts->overwrite;
    wo.expected_tensors = ck.tensors().size();
    if (opts->hf && ck.format() != CheckpointFormat::Gguf)
      throw Error(opts->input + ": --hf converts GGUF files; this checkpoint already has Hugging Face names");
    CheckpointWriter writer(opts->output, &ck, wo);
    Progress progress("convert", ck.tensors().size());
    uint64_t bytes = 0;
    if (opts->hf) {
      writer.set_config(model::hf_config_for_gguf(ck));
      model::for_each_hf_tensor(ck, [&](const std::string& name, const Tensor& tensor) {
        progress.step(name);
        writer.append(name, tensor);
        bytes += tensor.nbytes();
      });
      // The GGUF's tokenizer as tokenizer.json + tokenizer_config.json (AutoTokenizer and
      // `modelpress tokenize` read the folder); a GGUF without one (or with a kind not
      // supported here) still converts.
      try {
        const model::Tokenizer tok = model::Tokenizer::from_gguf(*ck.gguf(), opts->input);
        std::string tokenizer_json = tok.to_hf_json();
        std::string tokenizer_config = tok.hf_tokenizer_config_json();
        writer.add_text_file("tokenizer.json", std::move(tokenizer_json));
        writer.add_text_file("tokenizer_config.json", std::move(tokenizer_config));
      } catch (const Error& e) {
        std::cerr << "note: no tokenizer written: " << e.what() << "\n";
      }
      writer.finish();
      std::cout << "wrote " << ck.tensors().size() << " tensors (" << format_bytes(bytes) << ") to " << opts->output
                << " with Hugging Face names\n";
      return;
    }
    for (const auto& t : ck.tensors()) {
      progress.step(t.name);
      const Tensor tensor = ck.read(t);  // a view: its pages are released when it goes
      writer.append(t.name, tensor);
      bytes += tensor.nbytes();
    }
    writer.finish();
    std::cout << "wrote " << ck.tensors().size() << " tensors (" << format_bytes(bytes) << ") to " << opts->output
              << "\n";
  });
}

}  // namespace modelpress::cli
