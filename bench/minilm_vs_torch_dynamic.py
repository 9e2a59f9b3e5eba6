"""all-MiniLM-L6-v2 int8: modelpress LLM.int8 / W8A8 against PyTorch's dynamic int8 quantization
(torch.ao.quantization.quantize_dynamic on every nn.Linear: per-tensor int8 weights, activations
quantized per tensor at run time: what a PyTorch user shipping a BERT on CPU reaches for), on
the same sentences, with the same metrics as `modelpress eval` (sentence-embedding cosine to the
f32 model, Spearman of all pairwise similarities).

    python3 bench/minilm_vs_torch_dynamic.py [--max-tokens 8192] [--build build]

Needs torch and transformers. Sentences: the non-blank lines of the evaluation text, cut to
max_seq_length 256 keeping [SEP], until --max-tokens tokens, as `modelpress eval` takes them.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--max-tokens", type=int, default=8192)
    p.add_argument("--build", default="build")
    args = p.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    model = subprocess.run(["scripts/fetch_default_model.sh"], capture_output=True, text=True, check=True).stdout.strip()
    text = subprocess.run(["scripts/fetch_eval_text.sh"], capture_output=True, text=True, check=True).stdout.strip()
    import torch
    import transformers
    torch.set_num_threads(os.cpu_count())
    tok = transformers.AutoTokenizer.from_pretrained(model)
    sentences, total = [], 0
    for line in open(text, encoding="utf-8"):
        if not line.strip(" \t\r\n"):
            continue
        if total >= args.max_tokens:
            break
        ids = tok(line.rstrip("\n"), truncation=True, max_length=256)["input_ids"]
        sentences.append(ids)
        total += len(ids)

    def embed(m):
        out = []
        with torch.no_grad():
            for ids in sentences:
                h = m(torch.tensor([ids])).last_hidden_state[0].mean(0)
                out.append((h / h.norm().clamp_min(1e-12)).numpy())
        return np.stack(out)

    def ranks_spearman(a, b):  # Spearman with average ranks for ties, as eval/encoder_eval.cpp
        def ranks(v):
            order = np.argsort(v, kind="stable")
            r = np.empty(len(v))
            r[order] = np.arange(1, len(v) + 1)
            sv = np.sort(v)
            for value in np.unique(sv[1:][np.diff(sv) == 0]):  # tied values
                r[v == value] = r[v == value].mean()
            return r
        return np.corrcoef(ranks(a), ranks(b))[0, 1]

    f32 = transformers.AutoModel.from_pretrained(model).eval()
    ref = embed(f32)
    dyn = torch.ao.quantization.quantize_dynamic(f32, {torch.nn.Linear}, dtype=torch.qint8)
    got = embed(dyn)
    iu = np.triu_indices(len(sentences), 1)
    cos = (got * ref).sum(1)
    print("| tool | format | cosine mean / min | Spearman |")
    print("|---|---|---|---|")
    print(f"| PyTorch {torch.__version__} quantize_dynamic | int8 weights (per tensor) + dynamic int8 activations | "
          f"{cos.mean():.5f} / {cos.min():.5f} | {ranks_spearman((ref @ ref.T)[iu], (got @ got.T)[iu]):.5f} |")
    binary = os.path.join(args.build, "cli/modelpress")
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("llm-int8", "w8a8"):
            subprocess.run([binary, "quantize", model, "-o", f"{tmp}/{method}", "--method", method], check=True,
                           capture_output=True)
            r = subprocess.run([binary, "eval", f"{tmp}/{method}", "--reference", model, "--text", text,
                                "--max-tokens", str(args.max_tokens), "--json"], check=True, capture_output=True,
                               text=True)
            e = json.loads(r.stdout)["encoder"]
            assert e["sentences"] == len(sentences), (e["sentences"], len(sentences))
            print(f"| modelpress | {method} | {e['cosine']['mean']:.5f} / {e['cosine']['min']:.5f} | {e['spearman']:.5f} |")


if __name__ == "__main__":
    sys.exit(main())
