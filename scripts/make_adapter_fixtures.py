#!/usr/bin/env python3
"""Regenerate the adapter fixtures under Tests/Fixtures/adapters/.

Run from the repository root (development machines only; the Swift package does not need
Python at build or test time), after scripts/make_fixtures.py (whose models these adapters
are built for):

    ~/.cache/loraswitch-peers/bin/python scripts/make_adapter_fixtures.py

Needs: torch, transformers (5.x), peft, safetensors, gguf (gguf-py), numpy, and optionally
llama-cpp-python (without it the `llamacpp_logits` cross-check tensors are left out).
Helpers and conventions (token sequences, the deterministic safetensors writer, the GGUF
q/k permutation, loading a GGUF into an HF model) are imported from make_fixtures.py.

What it writes (it deletes Tests/Fixtures/adapters/ first and touches nothing else):

    adapters/<name>/adapter_config.json + adapter_model.safetensors
        PEFT LoRA folders (as PEFT's save_pretrained writes them) and MoE-LoRA folders in
        our PEFT-shaped format (DESIGN.md, "Formats")
    adapters/gguf-lora.gguf, adapters/gguf-lora-f16.gguf
        llama.cpp LoRA adapters (the format of llama.cpp's convert_lora_to_gguf.py)
    adapters/expected/<name>.safetensors
        tensor  logits           F32 [T, vocab]  reference logits, every position, one causal pass
        tensor  llamacpp_logits  F32 [T, vocab]  (GGUF-LoRA fixtures) the same from llama.cpp
        tensor  routing          F32 [T, k]      (MoE fixtures) chosen expert ids, by decreasing probability
        tensor  gates            F32 [T, k]      (MoE fixtures) their renormalized gates
        __metadata__ {"tokens", "source", "base", "adapters"}
    adapters/README.md

Everything is seeded: re-running with the same library versions gives byte-identical files.
Its parts live in scripts/adapterfix/ (PEFT LoRA, MoE-LoRA, GGUF LoRA, README).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adapterfix.common import ADAPTERS, EXPECTED, MODELS  # noqa: E402  (imports make_fixtures: one torch thread)
from adapterfix.peft_lora import make_peft_fixtures  # noqa: E402
from adapterfix.moe import make_moe_fixtures  # noqa: E402
from adapterfix.gguf_lora import GGUF_DELTAS, make_gguf_lora_fixtures  # noqa: E402
from adapterfix.readme import file_list, write_readme  # noqa: E402

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main() -> None:
    for f in ("llama-gqa", "qwen2", "llama-bias", "llama-f32.gguf", "llama-q8_0.gguf", "llama-q4_1.gguf"):
        assert (MODELS / f).exists(), f"run scripts/make_fixtures.py first ({f} missing)"
    if ADAPTERS.exists():
        shutil.rmtree(ADAPTERS)
    EXPECTED.mkdir(parents=True)

    make_peft_fixtures()
    make_moe_fixtures()
    make_gguf_lora_fixtures()
    write_readme()
    for f in file_list():
        f.chmod(0o644)
    files = file_list()
    total = sum(f.stat().st_size for f in files)
    print(f"{'total':26s} {total} B in {len(files)} files")
    if not GGUF_DELTAS:
        print("WARNING: llama_cpp not importable: llamacpp_logits left out", file=sys.stderr)


if __name__ == "__main__":
    main()
