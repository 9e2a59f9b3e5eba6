#!/usr/bin/env python3
"""Record a modelpress calibration file: the input activations of every nn.Linear of a
PyTorch / transformers model, run on real text.

The file is what `modelpress validate --calib FILE` (and data-driven passes) read; its
format is in docs/CALIBRATION.md:

    <module name>        [tokens, in_features]  f16 (default), bf16 or f32
    <module name>.step   [tokens]  int64        with --step prompt: the prompt index of each row
    __metadata__         {"format": "modelpress-calibration", "version": "1", "source": ...}

Module names are the model's own (named_modules), which match the checkpoint's tensor
prefixes when the model is loaded with the class the checkpoint was saved from
(config.json "architectures"; this script does that).

Needs torch, transformers and safetensors (pip install torch transformers safetensors);
--help works without them.

Examples:
    python3 tools/record_calibration.py .cache/models/all-MiniLM-L6-v2 --text corpus.txt -o calib.safetensors
    python3 tools/record_calibration.py MODEL --prompt "The capital of France is" --max-tokens 256 -o c.safetensors
"""

import argparse
import json
import os
import sys
import tempfile

FORMAT = "modelpress-calibration"
VERSION = "1"
F16_MAX = 65504.0


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Record the inputs of every nn.Linear of a transformers model into a modelpress "
        "calibration file (safetensors).",
        epilog="Needs torch, transformers and safetensors. Format: docs/CALIBRATION.md.",
    )
    p.add_argument("model", help="model folder (or Hugging Face id) loadable by transformers")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", metavar="FILE", help="UTF-8 text file; each non-empty paragraph is one prompt")
    src.add_argument("--prompt", action="append", metavar="TEXT", help="a prompt (repeat for more)")
    p.add_argument("-o", "--output", required=True, help="calibration file to write (.safetensors)")
    p.add_argument("--max-tokens", type=int, default=512,
                   help="rows to record per layer: tokens over all prompts (default 512)")
    p.add_argument("--seq-len", type=int, default=256,
                   help="longest sequence fed at once; longer prompts are cut into pieces (default 256)")
    p.add_argument("--dtype", choices=["f16", "bf16", "f32"], default="f16",
                   help="storage dtype (default f16; a layer whose values exceed the f16 range is stored as f32)")
    p.add_argument("--step", choices=["none", "prompt"], default="none",
                   help="write <layer>.step: 'prompt' stores the index of the prompt each row came from")
    p.add_argument("--device", default="cpu", help="torch device to run on (default cpu)")
    p.add_argument("--include", metavar="SUBSTRING", action="append",
                   help="record only modules whose name contains SUBSTRING (repeatable)")
    args = p.parse_args(argv)
    if args.max_tokens < 1:
        p.error("--max-tokens must be at least 1")
    if args.seq_len < 2:
        p.error("--seq-len must be at least 2")
    return args


def read_prompts(args):
    if args.prompt:
        return [t for t in args.prompt if t.strip()]
    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    paragraphs = [part.strip() for part in text.split("\n\n")]
    return [part for part in paragraphs if part]


def load_model(name, device):
    """Loads the model with the class named in its config, so module names equal the
    checkpoint's tensor prefixes (AutoModel would drop a LlamaForCausalLM's 'model.')."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(name)
    cls = None
    for arch in getattr(config, "architectures", None) or []:
        cls = getattr(transformers, arch, None)
        if cls is not None:
            break
    if cls is None:
        cls = transformers.AutoModel
    model = cls.from_pretrained(name, torch_dtype="auto")
    model.to(device).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(name)
    return model, tokenizer


def checkpoint_weight_names(name):
    """Tensor names of a local safetensors checkpoint, to warn about module names that will
    not match it; None when it cannot be read (a hub id, or another format)."""
    try:
        index = os.path.join(name, "model.safetensors.index.json")
        if os.path.isfile(index):
            with open(index, encoding="utf-8") as f:
                return set(json.load(f)["weight_map"])
        single = os.path.join(name, "model.safetensors")
        if os.path.isfile(single):
            from safetensors import safe_open

            with safe_open(single, framework="pt") as f:
                return set(f.keys())
    except (OSError, ValueError, KeyError):
        pass
    return None


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    prompts = read_prompts(args)
    if not prompts:
        sys.exit("record_calibration: no text to run (empty --text file or --prompt)")

    # Imported only now: --help and argument errors must work without these packages.
    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        sys.exit(f"record_calibration: {e.name} is not installed (pip install torch transformers safetensors)")

    model, tokenizer = load_model(args.model, args.device)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if args.include:
        linears = [(n, m) for n, m in linears if any(s in n for s in args.include)]
    if not linears:
        sys.exit("record_calibration: the model has no nn.Linear modules to record")
    known = checkpoint_weight_names(args.model)
    if known is not None:
        missing = [n for n, _ in linears if n + ".weight" not in known]
        if missing:
            print(f"record_calibration: warning: {len(missing)} module(s) have no '<name>.weight' in the "
                  f"checkpoint, e.g. {missing[0]}; modelpress will not find them", file=sys.stderr)

    rows = {n: [] for n, _ in linears}
    steps = {n: [] for n, _ in linears}
    counts = {n: 0 for n, _ in linears}
    current_prompt = [0]

    def make_hook(name):
        def hook(module, inputs, output):
            x = inputs[0].detach()
            x = x.reshape(-1, x.shape[-1])
            room = args.max_tokens - counts[name]
            if room <= 0:
                return
            x = x[:room].to("cpu", torch.float32)
            rows[name].append(x)
            steps[name].append(torch.full((x.shape[0],), current_prompt[0], dtype=torch.int64))
            counts[name] += x.shape[0]

        return hook

    handles = [m.register_forward_hook(make_hook(n)) for n, m in linears]
    tokens_run = 0
    try:
        with torch.no_grad():
            for i, prompt in enumerate(prompts):
                if tokens_run >= args.max_tokens:
                    break
                current_prompt[0] = i
                ids = tokenizer(prompt, return_tensors="pt", truncation=False)["input_ids"][0]
                # One sequence at a time and no padding: every recorded row is a real token.
                for start in range(0, ids.shape[0], args.seq_len):
                    if tokens_run >= args.max_tokens:
                        break
                    piece = ids[start:start + args.seq_len].unsqueeze(0).to(args.device)
                    model(input_ids=piece, attention_mask=torch.ones_like(piece))
                    tokens_run += piece.shape[1]
    finally:
        for h in handles:
            h.remove()

    storage = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}[args.dtype]
    tensors = {}
    widened = []
    for name, _ in linears:
        if not rows[name]:
            continue  # a module this input never reached (e.g. a head not on the forward path)
        x = torch.cat(rows[name])
        dtype = storage
        if storage == torch.float16 and x.abs().max().item() > F16_MAX:
            dtype = torch.float32
            widened.append(name)
        tensors[name] = x.to(dtype).contiguous()
        if args.step == "prompt":
            tensors[name + ".step"] = torch.cat(steps[name]).contiguous()
    if not tensors:
        sys.exit("record_calibration: no activations were recorded")

    source = json.dumps({
        "model": args.model,
        "text": args.text if args.text else "--prompt",
        "prompts": len(prompts),
        "tokens": tokens_run,
        "tool": "tools/record_calibration.py",
    })
    metadata = {"format": FORMAT, "version": VERSION, "source": source}
    # Written beside the target and renamed: never a half-written calibration file.
    out_dir = os.path.dirname(os.path.abspath(args.output))
    fd, tmp = tempfile.mkstemp(prefix=".calib-", suffix=".partial", dir=out_dir)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, args.output)
    except BaseException:
        os.unlink(tmp)
        raise
    layers = sum(1 for n in tensors if not n.endswith(".step") or n[:-5] not in tensors)
    print(f"wrote {args.output}: {layers} layers, up to {args.max_tokens} rows each ({tokens_run} tokens run)")
    if widened:
        print(f"note: {len(widened)} layer(s) exceed the f16 range and were stored as f32", file=sys.stderr)


if __name__ == "__main__":
    main()
