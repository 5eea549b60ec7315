#!/usr/bin/env python3
"""Regenerate the training-gradient fixtures under Tests/Fixtures/training/.

Run from the repository root (development machines only; the Swift package does not need Python
at build or test time), after scripts/make_fixtures.py and scripts/make_adapter_fixtures.py (whose
models and adapters these fixtures use):

    ~/.cache/loraswitch-peers/bin/python scripts/make_training_fixtures.py

Needs: torch, transformers (5.x), peft, safetensors, gguf (gguf-py), numpy.

What it writes (it deletes Tests/Fixtures/training/ first and touches nothing else):

    training/<case>.safetensors
        tensors  loss, ce, aux, z, labelled          F32 [1]   the step's loss and its parts
                 grad.<adapter tensor name>          F32       d loss / d that tensor (its shape)
        __metadata__ {"base", "adapter", "examples", "aux_coef", "z_coef", "source"}
    training/adapters/<name>/                        the adapters no inference fixture has
    training/README.md

The reference is an explicit llama forward in float64 (scripts/trainfix/reference.py) checked
against the inference fixtures' logits, PEFT's and scripts/adapterfix/moe.py's gradients, central
finite differences and a micro-batch split; the float32 run of the same code tells what tolerance a
float32 engine can expect. Everything is seeded and single-threaded: re-running with the same
library versions gives byte-identical files. Its parts live in scripts/trainfix/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from trainfix.cases import CASES, run_case  # noqa: E402  (imports make_fixtures: one torch thread)
from trainfix.common import MODELS, ADAPTERS, TRAINING, TRAIN_ADAPTERS, shutil, torch  # noqa: E402
from trainfix.readme import file_list, write_readme  # noqa: E402


def main() -> None:
    for f in ("models/llama-gqa", "models/qwen2", "models/llama-q4_1.gguf", "adapters/moe-token-router1"):
        assert (MODELS.parent / f).exists(), f"{f} missing: run make_fixtures.py / make_adapter_fixtures.py first"
    torch.use_deterministic_algorithms(True)
    if TRAINING.exists():
        shutil.rmtree(TRAINING)
    TRAIN_ADAPTERS.mkdir(parents=True)
    for name in CASES:
        run_case(name)
    write_readme()
    files = file_list()
    for f in files:
        f.chmod(0o644)
    total = sum(f.stat().st_size for f in files)
    print(f"{'total':18s} {total} B in {len(files)} files")
    assert total < 1_500_000, total


if __name__ == "__main__":
    main()
