"""Imports, paths, token sequences, random weights, the transformers helpers and the fixture table of the model
fixtures."""

from __future__ import annotations


import copy
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from safetensors import safe_open
from safetensors.numpy import load_file
from transformers import AutoConfig, AutoModelForCausalLM

import gguf
from gguf import GGMLQuantizationType as QT

torch.set_num_threads(1)  # tiny matmuls; one thread keeps the float results reproducible
transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()

ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = ROOT / "Tests" / "Fixtures"
MODELS = FIXTURES / "models"
EXPECTED = FIXTURES / "expected"
README = FIXTURES / "README.md"

SEQ_LEN = 12          # tokens per fixture sequence
RELOAD_TOL = 1e-5     # reloaded HF folder must reproduce the expected logits this closely

# llama.cpp settings for the cross-check (n_ctx/threads as in the brief; the KV cache is kept
# in F32 instead of llama.cpp's default F16 so that the F32 comparison is tight).
LLAMACPP_N_CTX = 64
LLAMACPP_THREADS = 2


# ---------------------------------------------------------------------------------------------
# Token sequences
# ---------------------------------------------------------------------------------------------

def token_sequence(vocab_size: int, seed: int) -> list[int]:
    """SEQ_LEN distinct ids spread over the whole vocabulary: one uniformly random id from each
    of SEQ_LEN equal slices of [0, vocab), then shuffled (so low and high ids both occur)."""
    rng = np.random.default_rng(seed)
    edges = np.linspace(0, vocab_size, SEQ_LEN + 1).astype(int)
    ids = [int(rng.integers(lo, hi)) for lo, hi in zip(edges[:-1], edges[1:])]
    rng.shuffle(ids)
    return ids


TOKENS_128 = token_sequence(128, seed=128)   # every vocab-128 fixture (HF ones and qwen2-f32.gguf)
TOKENS_256 = token_sequence(256, seed=256)   # the vocab-256 GGUF llama


# ---------------------------------------------------------------------------------------------
# Random weights
# ---------------------------------------------------------------------------------------------

def randomize(model: torch.nn.Module, seed: int) -> None:
    """Overwrite every parameter with seeded random values that make mistakes visible.

    * RMSNorm weights: 1 + 0.1*randn   (a forgotten norm weight changes the logits)
    * biases:          0.1*randn
    * embedding:       0.5*randn       (tied models reuse it as the output head)
    * other matrices:  randn / sqrt(in_features)
      (instead of the default N(0, 0.02^2): attention scores and logits come out O(1), so the
       softmax is far from uniform and the logits differ by O(1) across the vocabulary)

    Parameters are visited in sorted-name order; tied weights are shared tensors and are
    visited once (named_parameters de-duplicates them).
    """
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if "norm" in name:
                value = 1.0 + 0.1 * noise
            elif name.endswith(".bias"):
                value = 0.1 * noise
            elif "embed_tokens" in name:
                value = 0.5 * noise
            else:
                value = noise / math.sqrt(p.shape[1])
            p.copy_(value.to(p.dtype))


# ---------------------------------------------------------------------------------------------
# Transformers helpers
# ---------------------------------------------------------------------------------------------

def forward_logits(model: torch.nn.Module, tokens: list[int]) -> np.ndarray:
    """Logits [T, vocab] of one causal forward pass over the whole sequence (batch 1)."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([tokens], dtype=torch.long), use_cache=False)
    return out.logits[0].float().numpy().astype(np.float32)


def build_config(classic: dict) -> transformers.PretrainedConfig:
    """A transformers config from 'classic' config.json keys (rope_theta / rope_scaling)."""
    kw = copy.deepcopy(classic)  # transformers adds keys to the rope dict in place
    model_type = kw.pop("model_type")
    return AutoConfig.for_model(model_type, **kw)


def new_model(classic: dict, seed: int) -> torch.nn.Module:
    config = build_config(classic)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    randomize(model, seed)
    return model.eval()


def load_model(folder: Path) -> torch.nn.Module:
    """Reload a fixture folder the way a user would, then compute in float32."""
    model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager")
    return model.float().eval()


def classic_config_json(folder: Path, classic: dict) -> None:
    """Rewrite the config.json that save_pretrained wrote into the classic hub form.

    transformers 5 writes the rope settings as one `rope_parameters` dict (with rope_theta
    inside) and the dtype as `dtype`; older transformers and most hub checkpoints use
    top-level `rope_theta` + `rope_scaling` (null when there is no scaling) and `torch_dtype`.
    We write the classic keys (rope_scaling exactly as the fixture specifies it, e.g. with the
    old "type" key) and keep `dtype` next to `torch_dtype`. `head_dim` (always written by
    transformers 5) is dropped unless the fixture sets it, as in most llama/qwen2/mistral
    checkpoints: the loader has to derive it as hidden_size / num_attention_heads.
    """
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    rope = cfg.pop("rope_parameters")
    assert rope["rope_theta"] == classic["rope_theta"], rope
    cfg["rope_theta"] = classic["rope_theta"]
    cfg["rope_scaling"] = copy.deepcopy(classic.get("rope_scaling"))
    cfg["torch_dtype"] = cfg["dtype"]
    if "head_dim" not in classic and "head_dim" in cfg:
        assert cfg["head_dim"] == cfg["hidden_size"] // cfg["num_attention_heads"]
        del cfg["head_dim"]
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def save_hf(model: torch.nn.Module, name: str, classic: dict, *, dtype=None,
            max_shard_size=None) -> Path:
    """save_pretrained into models/<name>/, keep only config.json + weight files, classic config."""
    folder = MODELS / name
    m = model if dtype is None else copy.deepcopy(model).to(dtype)
    kw = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
    m.save_pretrained(folder, **kw)
    for f in folder.iterdir():
        keep = f.name == "config.json" or f.name.endswith(".safetensors") \
            or f.name == "model.safetensors.index.json"
        if not keep:
            f.unlink() if f.is_file() else shutil.rmtree(f)
    classic_config_json(folder, classic)
    return folder


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Minimal F32 safetensors writer with a deterministic header. (safetensors' own writer
    keeps __metadata__ in a Rust HashMap, so its key order - and the file bytes - change from
    run to run.) Layout: u64 LE header length, JSON header padded with spaces to a multiple
    of 8, then the tensors' little-endian data back to back in header order (sorted names)."""
    header: dict = {"__metadata__": dict(sorted(metadata.items()))}
    offset, blobs = 0, []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr.tobytes())
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))


def save_expected(name: str, tokens: list[int], logits: np.ndarray, source: str,
                  llamacpp_logits: np.ndarray | None = None) -> Path:
    tensors = {"logits": np.ascontiguousarray(logits, dtype=np.float32)}
    if llamacpp_logits is not None:
        tensors["llamacpp_logits"] = np.ascontiguousarray(llamacpp_logits, dtype=np.float32)
    path = EXPECTED / f"{name}.safetensors"
    metadata = {"tokens": ",".join(map(str, tokens)), "source": source}
    write_safetensors(path, tensors, metadata)
    back = load_file(str(path))  # the real library reads it back unchanged
    assert back.keys() == tensors.keys() and all(np.array_equal(back[k], tensors[k]) for k in back)
    with safe_open(str(path), "np") as f:
        assert f.metadata() == metadata
    return path


# ---------------------------------------------------------------------------------------------
# Fixture table (config.json keys in classic form; seeds fixed)
# ---------------------------------------------------------------------------------------------

BASE = dict(
    model_type="llama",
    vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    max_position_embeddings=128, rms_norm_eps=1e-5,
    rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=False,
)

# llama3 rope: inv_freq_i = theta^(-2i/head_dim), wavelength 2*pi/inv_freq_i. With theta 5e5 and
# head_dim 32 the wavelengths start 6.3, 14.3, 32.4, 73.6, ... The brief's
# original_max_position_embeddings = 16 puts nothing in the "high frequency, kept" regime
# (wavelength < 16/4 = 4), so it is raised to 48: kept < 12 <= smoothed <= 48 < divided by 8,
# giving 1 kept, 2 smoothed and 13 divided frequencies (asserted in check_llama3_regimes).
LLAMA3_ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 48}

HF_FIXTURES = {
    # name: (seed, classic config overrides, what it tests)
    "llama-mha": (1, dict(num_attention_heads=4, num_key_value_heads=4),
                  "plain multi-head attention, untied output head"),
    "llama-gqa": (2, dict(num_attention_heads=4, num_key_value_heads=2),
                  "grouped-query attention (2 query heads per KV head)"),
    "llama-headdim": (3, dict(num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                              tie_word_embeddings=True),
                      "explicit head_dim 16 (q_proj out 64 != hidden 32), tied embeddings (no lm_head.weight)"),
    "llama-rope-llama3": (4, dict(hidden_size=64, num_attention_heads=2, num_key_value_heads=1,
                                  rope_theta=500000.0, rope_scaling=LLAMA3_ROPE),
                          "llama3 rope scaling (all three frequency regimes), head_dim 32, 1 KV head"),
    "llama-rope-linear": (5, dict(num_attention_heads=4, num_key_value_heads=2,
                                  rope_scaling={"type": "linear", "factor": 2.0}),
                          "linear rope scaling given with the old \"type\" key (positions / 2)"),
    "llama-bias": (6, dict(num_attention_heads=4, num_key_value_heads=2, attention_bias=True),
                   "attention_bias: biases on q, k, v and o projections"),
    "qwen2": (7, dict(model_type="qwen2", num_attention_heads=4, num_key_value_heads=2,
                      tie_word_embeddings=True, rope_theta=1000000.0),
              "qwen2: q/k/v biases, no o bias, tied embeddings, rope_theta 1e6"),
    "mistral": (8, dict(model_type="mistral", num_attention_heads=4, num_key_value_heads=2,
                        sliding_window=6),
                "mistral with sliding_window 6 < 12 tokens: position i attends to i-5..i"),
}


def check_llama3_regimes(rope: dict, theta: float, head_dim: int) -> str:
    inv = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    wavelen = 2 * math.pi / inv
    old = rope["original_max_position_embeddings"]
    high_wl, low_wl = old / rope["high_freq_factor"], old / rope["low_freq_factor"]
    kept = int((wavelen < high_wl).sum())
    divided = int((wavelen > low_wl).sum())
    smoothed = len(wavelen) - kept - divided
    assert kept >= 1 and smoothed >= 1 and divided >= 1, (kept, smoothed, divided)
    return f"{kept} kept / {smoothed} smoothed / {divided} divided"


def file_list(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return files


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2e}"
