"""The default model's logits against transformers on its dequantized weights (development time; needs torch,
transformers, gguf, numpy — ../shared/tools/setup-peers.sh makes such a venv).

    python scripts/check_default_model.py [--model PATH.gguf] [--loraswitch .build/release/loraswitch]
                                          [--prompt TEXT]

Reads the GGUF file with gguf-py, dequantizes every tensor, un-permutes q and k (llama.cpp's converter permutes them
for interleaved rotary pairs) and loads them into a transformers LlamaForCausalLM (float32, eager attention). The
prompt's tokens come from `loraswitch tokenize`; `loraswitch logits` gives ours. Prints max |Δlogit| over every
position, against transformers in float32 and in float64, and the argmax agreement. The README's figure comes from
this script.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from modelfix.gguf_models import load_gguf_into_hf, read_gguf_dequantized  # noqa: E402

import gguf  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "loraswitch" / "SmolLM2-135M-Instruct.Q4_1.gguf"


def config_from_gguf(path: Path) -> LlamaConfig:
    reader = gguf.GGUFReader(str(path))

    def value(key: str):
        field = reader.fields[key]
        return field.parts[field.data[0]].tolist()[0]

    tensors = {t.name: t for t in reader.tensors}
    vocab = int(tensors["token_embd.weight"].shape[-1])
    return LlamaConfig(
        vocab_size=vocab, hidden_size=int(value("llama.embedding_length")),
        intermediate_size=int(value("llama.feed_forward_length")), num_hidden_layers=int(value("llama.block_count")),
        num_attention_heads=int(value("llama.attention.head_count")),
        num_key_value_heads=int(value("llama.attention.head_count_kv")),
        rms_norm_eps=float(value("llama.attention.layer_norm_rms_epsilon")),
        rope_theta=float(value("llama.rope.freq_base")), max_position_embeddings=int(value("llama.context_length")),
        tie_word_embeddings="output.weight" not in tensors, attn_implementation="eager")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--loraswitch", type=Path, default=ROOT / ".build" / "release" / "loraswitch")
    ap.add_argument("--prompt", default="The capital of France is Paris. Memory bandwidth bounds decoding on a CPU, "
                                        "so every byte read per token counts.")
    a = ap.parse_args()
    torch.set_num_threads(2)

    printed = subprocess.run([str(a.loraswitch), "tokenize", "--model", str(a.model), "--text", a.prompt],
                             check=True, capture_output=True, text=True).stdout
    ids = [int(t) for t in printed.strip().splitlines()[-1].split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "logits.safetensors"
        subprocess.run([str(a.loraswitch), "logits", "--model", str(a.model), "--tokens", ",".join(map(str, ids)),
                        "--out", str(out)], check=True)
        ours = load_file(str(out))["logits"]

    config = config_from_gguf(a.model)
    model = LlamaForCausalLM(config).eval()
    load_gguf_into_hf(model, read_gguf_dequantized(a.model), permuted_qk=True)
    if config.tie_word_embeddings:
        model.tie_weights()
    x = torch.tensor([ids])
    with torch.no_grad():
        f32 = model(x).logits[0].numpy()
        f64 = model.double()(x).logits[0].numpy()
    print(f"{a.model.name}: {len(ids)} tokens of {a.prompt!r}")
    print(f"max |Δlogit| vs transformers float32 (eager): {np.abs(ours - f32).max():.2e}")
    print(f"max |Δlogit| vs transformers float64:         {np.abs(ours - f64).max():.2e}  "
          f"(transformers float32 vs float64: {np.abs(f32 - f64).max():.2e})")
    print(f"argmax agrees at {int((ours.argmax(-1) == f64.argmax(-1)).sum())} of {len(ids)} positions")


if __name__ == "__main__":
    main()
