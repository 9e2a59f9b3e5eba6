#!/usr/bin/env python3
"""A GGUF rewritten with every tensor dequantized to F16 (1-D tensors to F32) and every
metadata field copied: the F16 GGUF llama-quantize (and `modelpress quantize --method q4_0`)
start from, made from a quantized download. Uses the `gguf` package's reader and writer.

Usage: bench/gguf_f16_copy.py IN.gguf OUT.gguf"""
import sys
import numpy as np
import gguf
src, dst = sys.argv[1], sys.argv[2]
r = gguf.GGUFReader(src)
arch = r.fields["general.architecture"].contents()
w = gguf.GGUFWriter(dst, arch)
for name, field in r.fields.items():
    if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type", "general.quantization_version", "general.alignment"):
        continue
    vtype = field.types[0]
    sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
    w.add_key_value(name, field.contents(), vtype, sub_type=sub)
w.add_file_type(1)
for t in r.tensors:
    a = gguf.quants.dequantize(t.data, t.tensor_type)
    a = a.astype(np.float16) if a.ndim == 2 else a.astype(np.float32)
    w.add_tensor(t.name, a)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
