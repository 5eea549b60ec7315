"""Imports, paths, constants and the helpers (base models, expected files, the fixture record) every part of the
adapter fixtures uses."""

from __future__ import annotations


import copy
import json
import math
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.numpy import load_file
from transformers import AutoModelForCausalLM

import gguf
from gguf import GGMLQuantizationType as QT

import peft
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import LoraLayer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import make_fixtures as mf  # noqa: E402  (sets torch threads to 1, silences transformers)

warnings.filterwarnings("ignore", module="peft")
warnings.filterwarnings("ignore", message=".*peft.*")
warnings.filterwarnings("ignore", category=FutureWarning)

FIXTURES = mf.FIXTURES
MODELS = mf.MODELS
ADAPTERS = FIXTURES / "adapters"
EXPECTED = ADAPTERS / "expected"
README = ADAPTERS / "README.md"

TOKENS_128 = mf.TOKENS_128   # HF fixtures (vocab 128)
TOKENS_256 = mf.TOKENS_256   # GGUF llama fixtures (vocab 256)

RELOAD_TOL = 1e-5      # a saved adapter reloaded by PEFT must reproduce its logits this closely
MIN_EFFECT = 0.1       # every adapter must move some logit by at least this much ...
MAX_EFFECT = 3.0       # ... and none absurdly far
# std of the random lora_B (lora_A is randn / sqrt(in)): chosen so that every adapter moves the
# logits by O(0.1-1) (qwen2, with its tied embeddings, reacts more strongly)
B_STD = {"lora-basic": 0.04, "lora-rslora-patterns": 0.04, "lora-all-linear-qwen2": 0.015,
         "lora-second": 0.08, "lora-dora": 0.04, "lora-bias": 0.04, "gguf-lora": 0.04}
MOE_B_STD = 0.05      # every MoE expert's lora_B
TIE_GAP = 1e-3         # routing: consecutive sorted probabilities (top k+1) must differ by more

ALL7 = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ATTN = {"q_proj", "k_proj", "v_proj", "o_proj"}
GGUF_MODULE = {"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
               "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down"}


def module_path(layer: int, module: str) -> str:
    """HF module path of a projection, e.g. model.layers.0.self_attn.q_proj."""
    return f"model.layers.{layer}.{'self_attn' if module in ATTN else 'mlp'}.{module}"


def get_module(model: torch.nn.Module, path: str) -> torch.nn.Module:
    return model.get_submodule(path)


# ---------------------------------------------------------------------------------------------
# Base models
# ---------------------------------------------------------------------------------------------

def base_expected(rel: str) -> np.ndarray:
    """The model fixture's own expected logits (expected/<name>.safetensors)."""
    name = Path(rel).name
    return load_file(str(mf.EXPECTED / f"{name}.safetensors"))["logits"]


def load_hf_base(name: str) -> torch.nn.Module:
    """An HF model fixture, loaded as a user would, float32, eager attention; checked against
    the fixture's expected logits."""
    model = AutoModelForCausalLM.from_pretrained(MODELS / name, attn_implementation="eager")
    model = model.float().eval()
    err = float(np.abs(mf.forward_logits(model, TOKENS_128) - base_expected(name)).max())
    assert err <= 1e-5, (name, err)
    return model


def load_gguf_base(fname: str) -> torch.nn.Module:
    """The HF llama whose weights are the GGUF file's weights dequantized and q/k un-permuted
    (as make_fixtures.py builds the GGUF references); checked against the fixture's logits."""
    path = MODELS / fname
    model = mf.new_model(mf.GGUF_LLAMA, seed=0)  # every weight is overwritten next
    mf.load_gguf_into_hf(model, mf.read_gguf_dequantized(path), permuted_qk=True)
    err = float(np.abs(mf.forward_logits(model, TOKENS_256) - base_expected(fname)).max())
    assert err <= 1e-5, (fname, err)
    return model


# ---------------------------------------------------------------------------------------------
# Output helpers
# ---------------------------------------------------------------------------------------------

def effect(with_adapter: np.ndarray, without: np.ndarray, name: str) -> str:
    """Assert that the adapter changes the logits by O(0.1-1); return a description."""
    d = np.abs(with_adapter - without)
    mx, mean = float(d.max()), float(d.mean())
    assert MIN_EFFECT <= mx <= MAX_EFFECT, f"{name}: adapter changes logits by max {mx}"
    return f"max|Δ| {mx:.2f}, mean {mean:.3f}"


def save_expected(name: str, tokens: list[int], tensors: dict[str, np.ndarray], source: str,
                  base: str, adapters: str) -> Path:
    path = EXPECTED / f"{name}.safetensors"
    metadata = {"tokens": ",".join(map(str, tokens)), "source": source, "base": base,
                "adapters": adapters}
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}
    mf.write_safetensors(path, tensors, metadata)
    back = load_file(str(path))
    assert back.keys() == tensors.keys() and all(np.array_equal(back[k], tensors[k]) for k in back)
    with safe_open(str(path), "np") as f:
        assert f.metadata() == metadata
    return path


SUMMARY_EXTRA: dict[str, str] = {}   # MoE: seeds, gaps, sanity checks (README)
SUMMARY: list[dict] = []   # one row per fixture, for the README and the console


def record(name: str, base: str, tests: str, expected: str, effect_desc: str = "") -> None:
    SUMMARY.append(dict(name=name, base=base, tests=tests, expected=expected, effect=effect_desc))
    print(f"{name:26s} {effect_desc}", flush=True)
