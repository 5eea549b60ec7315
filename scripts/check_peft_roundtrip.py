"""A LoRA trained by `loraswitch train` loads in PEFT itself and gives our logits (development time; the peers' venv:
torch, transformers, peft, gguf — ../shared/tools/setup-peers.sh).

    python scripts/check_peft_roundtrip.py [--loraswitch .build/release/loraswitch]

For two bases of Tests/Fixtures/models — llama-gqa (a Hugging Face folder) and llama-q4_1.gguf (a GGUF file whose q
and k rows llama.cpp permuted; PEFT runs on its dequantized, un-permuted weights) — trains a LoRA for a few steps
on pre-tokenized sequences, loads the folder with `PeftModel.from_pretrained`, and compares PEFT's logits with
`loraswitch logits --adapter` over a token sequence. Prints max |Δlogit| per base and fails above 1e-5 (measured
2.2e-6).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_default_model import config_from_gguf  # noqa: E402
from modelfix.gguf_models import load_gguf_into_hf, read_gguf_dequantized  # noqa: E402

from peft import PeftModel  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaForCausalLM  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "Tests" / "Fixtures" / "models"


def base_model(path: Path) -> torch.nn.Module:
    if path.suffix == ".gguf":
        model = LlamaForCausalLM(config_from_gguf(path)).eval()
        load_gguf_into_hf(model, read_gguf_dequantized(path), permuted_qk=True)
        return model
    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager").eval()


def check(binary: Path, base: Path, work: Path) -> float:
    vocabulary = base_model(base).config.vocab_size
    rng = np.random.default_rng(0)
    data = work / "train.jsonl"
    with data.open("w") as f:
        for length in (9, 14, 6, 11):
            ids = rng.integers(0, vocabulary, length).tolist()
            f.write(json.dumps({"input_ids": ids, "labels": ids}) + "\n")
    out = work / f"lora-{base.name}"
    subprocess.run([str(binary), "train", "--model", str(base), "--data", str(data), "--out", str(out), "--type", "lora",
                    "--rank", "4", "--alpha", "8", "--lr", "1e-2", "--epochs", "3", "--seed", "1"],
                   check=True, capture_output=True)
    tokens = rng.integers(0, vocabulary, 12).tolist()
    logits_file = work / f"logits-{base.name}.safetensors"
    subprocess.run([str(binary), "logits", "--model", str(base), "--adapter", str(out), "--tokens",
                    ",".join(map(str, tokens)), "--out", str(logits_file)], check=True)
    ours = load_file(str(logits_file))["logits"]
    peft = PeftModel.from_pretrained(base_model(base), str(out)).eval()
    with torch.no_grad():
        theirs = peft(torch.tensor([tokens])).logits[0].numpy()
        bare = base_model(base)(torch.tensor([tokens])).logits[0].numpy()
    delta = float(np.abs(ours - theirs).max())
    print(f"{base.name}: max |Δlogit| ours vs PEFT {delta:.2e} (the adapter moves the logits by "
          f"{float(np.abs(theirs - bare).max()):.2e})")
    return delta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--loraswitch", type=Path, default=ROOT / ".build" / "release" / "loraswitch")
    a = ap.parse_args()
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        worst = max(check(a.loraswitch, MODELS / name, Path(tmp)) for name in ("llama-gqa", "llama-q4_1.gguf"))
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
