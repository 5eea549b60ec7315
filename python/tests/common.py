"""What the tests share: paths, the `loraswitch` binary (environment variable LORASWITCH, as scripts/test.sh sets it),
running it, reading logits, and small models made on the fly. No test touches the network."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

import torch
from transformers.utils import logging as hf_logging

from loraswitch_torch import AdapterError, load_adapter
from loraswitch_torch.hf import load_model, logits_of
from loraswitch_torch.safetensors_file import read_safetensors

hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "Tests" / "Fixtures"
MODELS, ADAPTERS = FIXTURES / "models", FIXTURES / "adapters"
EXAMPLES = REPO / "python" / "examples"
TOKENS = [96, 57, 65, 17, 108, 90, 7, 29, 51, 78, 36, 123]     # the HF fixtures' sequence (vocab 128)
LOGIT_TOL = 1e-4
GRAD_TOL = 1e-4     # relative to each tensor's largest entry (Tests/Fixtures/training/README.md)
# The committed fixtures this package runs (HF bases): both routings, top-1/top-2, router_layer 1, LoRA variants.
HF_FIXTURES = {"lora-basic": "llama-gqa", "lora-rslora-patterns": "llama-gqa", "lora-all-linear-qwen2": "qwen2",
               "moe-token-top1": "llama-gqa", "moe-token-top2": "llama-gqa", "moe-token-router1": "llama-gqa",
               "moe-layer-top1": "llama-gqa", "moe-layer-top2": "llama-gqa"}


def binary() -> str:
    path = os.environ.get("LORASWITCH") or str(REPO / ".build" / "debug" / "loraswitch")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest(f"no loraswitch binary at {path} (set LORASWITCH, as scripts/test.sh does)")
    return path


def run(cmd: list[str], timeout: float = 120, env: dict | None = None) -> str:
    """Runs a command; its output on failure is in the exception's message."""
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def swift_logits(model: Path, adapter: Path | None, tokens: list[int], out: Path) -> torch.Tensor:
    cmd = [binary(), "logits", "--model", str(model), "--tokens", ",".join(map(str, tokens)), "--out", str(out),
           "--threads", "1"]
    if adapter is not None:
        cmd += ["--adapter", str(adapter)]
    run(cmd)
    return read_safetensors(out).tensors["logits"]


def package_logits(model: Path, adapter: Path | None, tokens: list[int]) -> torch.Tensor:
    m = load_model(model)
    if adapter is not None:
        load_adapter(m, adapter)
    return logits_of(m, tokens)


def swift_train(model: Path, data: Path, out: Path, *flags: str) -> None:
    run([binary(), "train", "--model", str(model), "--data", str(data), "--out", str(out), "--threads", "1", *flags])


def rel_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """max |got - want| / max |want| (the absolute error when want is all zero)."""
    scale = float(want.abs().max())
    err = float((got.double() - want.double()).abs().max())
    return err / scale if scale > 0 else err


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class TempDirTest(unittest.TestCase):
    """A test class with a temporary folder `self.tmp`, removed afterwards."""

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="loraswitch-torch-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)


PYTHON = sys.executable
