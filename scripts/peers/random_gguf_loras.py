#!/usr/bin/env python3
"""Random llama.cpp GGUF LoRA adapters for a GGUF model: the same files serve `loraswitch serve --adapter NAME=FILE`
and `llama-server --lora FILE`, so the two servers run adapters of the same shapes (serve_bench.py's per-request
LoRA rows). Development time; needs numpy and gguf (the peers' venv).

    python scripts/peers/random_gguf_loras.py MODEL.gguf OUT_DIR [--count 8] [--rank 16]

Writes OUT_DIR/lora-{i}.gguf: every layer's seven projections, A ~ N(0, 1/in), B ~ N(0, 0.01), alpha = rank, F32
(general.type = adapter, adapter.type = lora, adapter.lora.alpha, tensors blk.L.NAME.weight.lora_a [r, in] and
.lora_b [out, r], as llama.cpp's convert_lora_to_gguf.py writes them).
"""
import argparse
from pathlib import Path

import gguf
import numpy as np

PROJECTIONS = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=8)
    p.add_argument("--rank", type=int, default=16)
    a = p.parse_args()
    reader = gguf.GGUFReader(a.model)
    shapes = {}
    for t in reader.tensors:
        parts = t.name.split(".")
        if len(parts) == 4 and parts[0] == "blk" and parts[2] in PROJECTIONS and parts[3] == "weight":
            cols, rows = int(t.shape[0]), int(t.shape[1])  # GGUF ne: [in, out]
            shapes[t.name] = (rows, cols)
    if not shapes:
        raise SystemExit(f"{a.model}: no blk.N.{{{','.join(PROJECTIONS)}}}.weight tensors")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(a.count):
        rng = np.random.default_rng(100 + i)
        path = out / f"lora-{i}.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_name(path.stem)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(a.rank))
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        w.add_file_type(int(gguf.LlamaFileType.ALL_F32))
        for name, (rows, cols) in sorted(shapes.items()):
            lora_a = rng.normal(0, cols ** -0.5, (a.rank, cols)).astype(np.float32)
            lora_b = rng.normal(0, 0.01, (rows, a.rank)).astype(np.float32)
            w.add_tensor(f"{name}.lora_a", lora_a)
            w.add_tensor(f"{name}.lora_b", lora_b)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        print(path)


if __name__ == "__main__":
    main()
