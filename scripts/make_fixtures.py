#!/usr/bin/env python3
"""Regenerate the reference fixtures under Tests/Fixtures/.

Run from the repository root (development machines only; the Swift package does not
need Python at build or test time):

    ~/.cache/loraswitch-peers/bin/python scripts/make_fixtures.py

Needs: torch, transformers (5.x), safetensors, gguf (gguf-py), numpy, and optionally
llama-cpp-python (without it the `llamacpp_logits` cross-check tensors are left out).

What it writes (and deletes first: only these paths, nothing else under Tests/Fixtures):

    Tests/Fixtures/models/<name>/           Hugging Face model folders (config.json + safetensors)
    Tests/Fixtures/models/<name>.gguf       GGUF v3 files
    Tests/Fixtures/expected/<name>.safetensors        for models/<name>/
    Tests/Fixtures/expected/<name>.gguf.safetensors   for models/<name>.gguf
        (named after the model path: `llama-f16` is both an HF folder and a GGUF file)
        tensor  logits           F32 [T, vocab]  reference logits, every position, one causal pass
        tensor  llamacpp_logits  F32 [T, vocab]  (GGUF fixtures only) the same from llama.cpp
        __metadata__ {"tokens": "id,id,...", "source": "how the logits were made"}
    Tests/Fixtures/README.md

Every model has random weights drawn from fixed seeds, so re-running the script gives
byte-identical files (same library versions assumed: the torch RNG and the llama.cpp
build are part of the recipe).
"""

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

ROOT = Path(__file__).resolve().parent.parent
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


# ---------------------------------------------------------------------------------------------
# GGUF
# ---------------------------------------------------------------------------------------------

GGUF_LLAMA = dict(BASE, vocab_size=256, hidden_size=64, intermediate_size=128,
                  num_attention_heads=4, num_key_value_heads=2)
GGUF_LLAMA_SEED = 12

GGUF_TYPES = {  # file suffix: (tensor type of every 2-D weight, general.file_type)
    "f32": (QT.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (QT.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (QT.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
    "q4_0": (QT.Q4_0, gguf.LlamaFileType.MOSTLY_Q4_0),
    "q4_1": (QT.Q4_1, gguf.LlamaFileType.MOSTLY_Q4_1),
}

# Hugging Face parameter name -> GGUF tensor name ("{i}" = layer index), as convert_hf_to_gguf.py
HF_TO_GGUF = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
    "model.layers.{i}.input_layernorm.weight": "blk.{i}.attn_norm.weight",
    "model.layers.{i}.self_attn.q_proj.weight": "blk.{i}.attn_q.weight",
    "model.layers.{i}.self_attn.k_proj.weight": "blk.{i}.attn_k.weight",
    "model.layers.{i}.self_attn.v_proj.weight": "blk.{i}.attn_v.weight",
    "model.layers.{i}.self_attn.q_proj.bias": "blk.{i}.attn_q.bias",
    "model.layers.{i}.self_attn.k_proj.bias": "blk.{i}.attn_k.bias",
    "model.layers.{i}.self_attn.v_proj.bias": "blk.{i}.attn_v.bias",
    "model.layers.{i}.self_attn.o_proj.weight": "blk.{i}.attn_output.weight",
    "model.layers.{i}.post_attention_layernorm.weight": "blk.{i}.ffn_norm.weight",
    "model.layers.{i}.mlp.gate_proj.weight": "blk.{i}.ffn_gate.weight",
    "model.layers.{i}.mlp.up_proj.weight": "blk.{i}.ffn_up.weight",
    "model.layers.{i}.mlp.down_proj.weight": "blk.{i}.ffn_down.weight",
}


def gguf_name(hf_name: str) -> str:
    parts = hf_name.split(".")
    if len(parts) > 2 and parts[1] == "layers":
        i = parts[2]
        key = ".".join(parts[:2] + ["{i}"] + parts[3:])
        return HF_TO_GGUF[key].format(i=i)
    return HF_TO_GGUF[hf_name]


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's LlamaModel.permute: HF's rotate-half rope layout -> GGML's adjacent-pair
    (NORM) rope layout. Within each head, output rows [0..d/2) and [d/2..d) are interleaved."""
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute (GGUF layout -> HF layout)."""
    return (w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def add_fake_spm_vocab(w: gguf.GGUFWriter, vocab_size: int) -> None:
    """A SentencePiece-style ('llama') vocabulary llama.cpp accepts: <unk>, <s>, </s>, then
    placeholder pieces t3..t{V-1}. Only token ids are ever fed, so the pieces don't matter."""
    toks = ["<unk>", "<s>", "</s>"] + [f"t{i}" for i in range(3, vocab_size)]
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_scores([0.0] * vocab_size)
    w.add_token_types([gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
                      + [gguf.TokenType.NORMAL] * (vocab_size - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)


def write_gguf(path: Path, arch: str, cfg: dict, tensors: list[tuple[str, np.ndarray, QT]],
               file_type: int) -> None:
    """GGUF v3 with llama.cpp's hyperparameter keys (<arch>.*) and the given tensors."""
    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(path.stem)
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_dimension_count(head_dim)
    w.add_file_type(int(file_type))
    add_fake_spm_vocab(w, cfg["vocab_size"])
    for name, arr, qtype in tensors:
        arr = np.ascontiguousarray(arr, dtype=np.float32)
        if qtype == QT.F32:
            w.add_tensor(name, arr)
        elif qtype == QT.F16:
            w.add_tensor(name, arr.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(arr, qtype), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_gguf_dequantized(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a GGUF file as float32, numpy shape [rows, cols] (= HF [out, in])."""
    reader = gguf.GGUFReader(str(path))
    return {t.name: np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            for t in reader.tensors}


def hf_tensors_for_gguf(model: torch.nn.Module, permute_qk: bool) -> list[tuple[str, np.ndarray]]:
    """(gguf name, float32 array) for every weight the model saves (tied heads left out)."""
    cfg = model.config
    state = model.state_dict()
    out = []
    for hf_name in state:
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        arr = state[hf_name].float().numpy()
        if permute_qk and hf_name.endswith("q_proj.weight"):
            arr = permute(arr, cfg.num_attention_heads)
        elif permute_qk and hf_name.endswith("k_proj.weight"):
            arr = permute(arr, cfg.num_key_value_heads)
        out.append((gguf_name(hf_name), arr))
    # llama.cpp's converter order: embeddings, blocks in order, output norm, output
    order = lambda n: (0,) if n.startswith("token_embd") else \
        (1, int(n.split(".")[1])) if n.startswith("blk.") else (2, n != "output_norm.weight")
    return sorted(out, key=lambda t: order(t[0]))


def load_gguf_into_hf(model: torch.nn.Module, weights: dict[str, np.ndarray], permuted_qk: bool) -> None:
    """Put dequantized GGUF weights (un-permuted) into an HF model, in place."""
    cfg = model.config
    new_state = {}
    for hf_name in model.state_dict():
        if hf_name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue
        arr = weights[gguf_name(hf_name)]
        if permuted_qk and hf_name.endswith("q_proj.weight"):
            arr = unpermute(arr, cfg.num_attention_heads)
        elif permuted_qk and hf_name.endswith("k_proj.weight"):
            arr = unpermute(arr, cfg.num_key_value_heads)
        new_state[hf_name] = torch.from_numpy(np.array(arr, dtype=np.float32))
    missing, unexpected = model.load_state_dict(new_state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)


# llama.cpp's CPU backend does not multiply in float32: before a matmul with F16 weights it
# rounds the activations to F16, before Q8_0 / Q4_0 weights it quantizes them to Q8_0 blocks,
# and before Q4_1 weights to Q8_1 blocks (Q8_0 plus the block sum s = d*sum(q) stored as F16,
# which enters the dot product as min4 * s). The functions below reproduce that rounding in
# the transformers model, as a diagnostic only: if llama.cpp then agrees to ~1e-6, the file is
# read identically by both and all of llama.cpp's deviation is activation rounding.

def _q8_blocks(x: np.ndarray):
    """ggml's quantize_row_q8_0/q8_1 on the last axis (blocks of 32): (dequantized x, s error)."""
    xb = x.reshape(-1, 32).astype(np.float32)
    amax = np.abs(xb).max(axis=1, keepdims=True)
    d = amax / np.float32(127)
    iscale = np.divide(np.float32(127), amax, out=np.zeros_like(amax), where=amax > 0)
    q = np.rint(xb * iscale)                       # round half to even, as the AVX path
    d16 = d.astype(np.float16).astype(np.float32)  # block scale stored as F16
    qsum = q.sum(axis=1, keepdims=True)
    s_err = (d * qsum).astype(np.float16).astype(np.float32) - d16 * qsum  # Q8_1's F16 sum
    return (q * d16).reshape(x.shape), s_err.reshape(*x.shape[:-1], -1)


def emulate_llamacpp_rounding(model: torch.nn.Module, path: Path, qtype: QT) -> None:
    """Register forward hooks on every nn.Linear of `model` (loaded with the weights of the
    GGUF at `path`) that round its input the way llama.cpp does for weights of `qtype`."""
    if qtype == QT.F32:
        return
    mins = {}
    if qtype == QT.Q4_1:  # per-block minimum of the Q4_1 weights, HF row order
        raw = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
        cfg = model.config
        for hf_name, mod in model.named_modules():
            if isinstance(mod, torch.nn.Linear):
                data = np.asarray(raw[gguf_name(hf_name + ".weight")].data)
                blocks = data.reshape(data.shape[0], -1, 20)  # f16 d, f16 m, 16 bytes of nibbles
                m = blocks[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
                if hf_name.endswith("q_proj"):
                    m = unpermute(m, cfg.num_attention_heads)
                elif hf_name.endswith("k_proj"):
                    m = unpermute(m, cfg.num_key_value_heads)
                mins[mod] = torch.from_numpy(np.ascontiguousarray(m))

    def hook(mod, args, out):
        x = args[0].detach().numpy()
        if qtype == QT.F16:
            return torch.from_numpy(x.astype(np.float16).astype(np.float32)) @ mod.weight.T
        xq, s_err = _q8_blocks(x)
        y = torch.from_numpy(xq) @ mod.weight.T
        if qtype == QT.Q4_1:
            y = y + torch.from_numpy(s_err) @ mins[mod].T
        return y

    for mod in model.modules():
        if isinstance(mod, torch.nn.Linear):
            assert mod.bias is None
            mod.register_forward_hook(hook)


def llamacpp_logits(path: Path, tokens: list[int], kv_f32: bool = True) -> np.ndarray | None:
    """Logits [T, vocab] from llama.cpp for the whole sequence in one batch, or None."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    kv = {"type_k": int(QT.F32), "type_v": int(QT.F32)} if kv_f32 else {}
    llm = Llama(model_path=str(path), n_ctx=LLAMACPP_N_CTX, n_threads=LLAMACPP_THREADS,
                n_threads_batch=LLAMACPP_THREADS, logits_all=True, verbose=False, **kv)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return logits


def llamacpp_version() -> str:
    try:
        import llama_cpp
        return f"llama-cpp-python {llama_cpp.__version__}"
    except ImportError:
        return "llama-cpp-python not installed"


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def file_list(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        files += sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    return files


def report(name: str, paths: list[Path], extra: str = "") -> None:
    files = file_list(paths)
    size = sum(f.stat().st_size for f in files)
    rel = ", ".join(str(f.relative_to(FIXTURES)) for f in files)
    print(f"{name:20s} {size:9d} B  {rel}{'  ' + extra if extra else ''}", flush=True)


def make_hf_fixtures() -> dict[str, tuple]:
    """Fixtures 1-11. Returns {name: (model, classic config, logits)} for fixtures 1-8."""
    results = {}
    source = (f"transformers {transformers.__version__} AutoModelForCausalLM, float32, "
              f"attn_implementation=eager, one forward pass over all tokens")
    models = {}
    for name, (seed, overrides, _) in HF_FIXTURES.items():
        classic = dict(BASE, **overrides)
        if name == "llama-rope-llama3":
            regimes = check_llama3_regimes(classic["rope_scaling"], classic["rope_theta"],
                                           classic["hidden_size"] // classic["num_attention_heads"])
        model = new_model(classic, seed)
        logits = forward_logits(model, TOKENS_128)
        extra = ""

        if classic["rope_scaling"] is not None:
            # The scaling must change the logits noticeably (same weights, other rope): against
            # no scaling, and for llama3 also against plain linear scaling by the same factor
            # (which would be right only if the kept/smoothed regimes were missing).
            variants = {"unscaled": None}
            if name == "llama-rope-llama3":
                variants["linear x8"] = {"rope_type": "linear", "factor": 8.0}
            for label, rope in variants.items():
                other = forward_logits(new_model(dict(classic, rope_scaling=rope), seed), TOKENS_128)
                diff = float(np.abs(other - logits).max())
                assert diff > 1e-2, (name, label, diff)
                extra += f"vs {label}: {diff:.2f}; "

        if name == "mistral":
            # The sliding window must really be applied by eager attention: without the window
            # the logits differ, and they differ first at position 6 (the first one whose
            # causal past, 7 tokens, exceeds the window of 6).
            nowin = copy.deepcopy(model)
            nowin.config.sliding_window = None
            ref = forward_logits(nowin, TOKENS_128)
            assert np.abs(ref - logits).max() > 1e-3, "sliding window not applied"
            assert np.array_equal(ref[:6], logits[:6]), "window affects positions < 6"
            assert np.abs(ref[6] - logits[6]).max() > 1e-4, "window of 6 should hide token 0 at position 6"
            extra = f"vs no window: {float(np.abs(ref - logits).max()):.2f} (rows 0-5 equal)"

        folder = save_hf(model, name, classic)
        if name in ("llama-headdim", "qwen2"):  # tied: no lm_head.weight in the file
            with safe_open(str(folder / "model.safetensors"), "np") as f:
                assert "lm_head.weight" not in f.keys()
        expected = save_expected(name, TOKENS_128, logits, source)
        models[name] = (model, classic, logits)
        if name == "llama-rope-llama3":
            extra += f"rope regimes: {regimes}"
        results[name] = [folder, expected, extra.rstrip("; ")]

    # Dtype / layout variants of llama-gqa.
    gqa, gqa_classic, gqa_logits = models["llama-gqa"]
    for name, dtype in (("llama-f16", torch.float16), ("llama-bf16", torch.bfloat16)):
        folder = save_hf(gqa, name, gqa_classic, dtype=dtype)
        logits = forward_logits(load_model(folder), TOKENS_128)  # f32 math on rounded weights
        src = (f"llama-gqa weights rounded to {str(dtype).split('.')[-1]}; {source} "
               f"(weights upcast to float32)")
        results[name] = [folder, save_expected(name, TOKENS_128, logits, src), ""]
    folder = save_hf(gqa, "llama-sharded", gqa_classic, max_shard_size="40KB")
    shards = sorted(folder.glob("*.safetensors"))
    assert len(shards) >= 2 and (folder / "model.safetensors.index.json").exists(), shards
    results["llama-sharded"] = [folder, save_expected("llama-sharded", TOKENS_128, gqa_logits,
                                                      "same as llama-gqa: " + source), ""]

    # Every folder must reload in transformers (from the rewritten classic config.json) and
    # reproduce its expected logits.
    for name, (folder, expected, extra) in results.items():
        want = load_file(str(expected))["logits"]
        got = forward_logits(load_model(folder), TOKENS_128)
        err = float(np.abs(got - want).max())
        assert err <= RELOAD_TOL, (name, err)
        if name in models:  # the reloaded config means the same rope as the one we built
            cfg = AutoConfig.from_pretrained(folder)
            assert cfg.rope_parameters == models[name][0].config.rope_parameters, name
        report(name, [folder, expected], extra)
    return models


def make_gguf_fixtures(hf_models: dict) -> list[tuple]:
    """Fixtures 12-13. Returns (name, llama.cpp max|dlogit|, same with llama.cpp's activation
    rounding emulated, same with llama.cpp's default F16 KV cache) per file (None: no llama.cpp)."""
    deltas = []

    # --- 12: llama, vocab 256, in five tensor types ---------------------------------------
    cfg = GGUF_LLAMA
    model = new_model(cfg, GGUF_LLAMA_SEED)
    tensors = hf_tensors_for_gguf(model, permute_qk=True)
    for suffix, (qtype, ftype) in GGUF_TYPES.items():
        name = f"llama-{suffix}"
        path = MODELS / f"{name}.gguf"
        typed = [(n, a, QT.F32 if a.ndim == 1 else qtype) for n, a in tensors]  # norms F32
        write_gguf(path, "llama", cfg, typed, ftype)
        # Reference: the exact math on what the file stores.
        ref_model = copy.deepcopy(model)
        load_gguf_into_hf(ref_model, read_gguf_dequantized(path), permuted_qk=True)
        logits = forward_logits(ref_model, TOKENS_256)
        if qtype == QT.F32:
            assert np.array_equal(logits, forward_logits(model, TOKENS_256))
        cpp = llamacpp_logits(path, TOKENS_256)
        delta = None if cpp is None else float(np.abs(cpp - logits).max())
        cpp16 = llamacpp_logits(path, TOKENS_256, kv_f32=False)
        delta16 = None if cpp16 is None else float(np.abs(cpp16 - logits).max())
        emulated = None
        if cpp is not None:
            assert delta < 0.25, f"llama.cpp disagrees with the reference on {name}: {delta}"
            emulate_llamacpp_rounding(ref_model, path, qtype)
            emulated = float(np.abs(cpp - forward_logits(ref_model, TOKENS_256)).max())
        src = (f"transformers {transformers.__version__} LlamaForCausalLM float32 eager on the "
               f"{qtype.name} weights of {name}.gguf dequantized with gguf-py and q/k un-permuted; "
               f"llamacpp_logits: {llamacpp_version()}, n_ctx {LLAMACPP_N_CTX}, "
               f"{LLAMACPP_THREADS} threads, F32 KV cache, logits_all")
        expected = save_expected(path.name, TOKENS_256, logits, src, cpp)
        deltas.append((name, delta, emulated, delta16))
        report(name, [path, expected], f"llama.cpp max|dlogit| {fmt(delta)} (rounding emulated: "
               f"{fmt(emulated)}; F16 KV cache: {fmt(delta16)})")

    # --- 13: the qwen2 HF fixture as llama.cpp's converter writes it -----------------------
    qmodel, qclassic, qlogits = hf_models["qwen2"]
    name = "qwen2-f32"
    path = MODELS / f"{name}.gguf"
    tensors = hf_tensors_for_gguf(qmodel, permute_qk=False)  # qwen2 uses NEOX rope: no permute
    assert not any(n == "output.weight" for n, _ in tensors)  # tied: llama.cpp reuses token_embd
    write_gguf(path, "qwen2", qclassic, [(n, a, QT.F32) for n, a in tensors], gguf.LlamaFileType.ALL_F32)
    stored = read_gguf_dequantized(path)
    for n, a in tensors:
        assert np.array_equal(stored[n], a), n
    cpp = llamacpp_logits(path, TOKENS_128)
    delta = None if cpp is None else float(np.abs(cpp - qlogits).max())
    cpp16 = llamacpp_logits(path, TOKENS_128, kv_f32=False)
    delta16 = None if cpp16 is None else float(np.abs(cpp16 - qlogits).max())
    src = (f"same as the qwen2 HF fixture (transformers {transformers.__version__} float32 eager); "
           f"llamacpp_logits: {llamacpp_version()}, n_ctx {LLAMACPP_N_CTX}, {LLAMACPP_THREADS} "
           f"threads, F32 KV cache, logits_all")
    if cpp is not None:
        assert delta < 0.25, f"llama.cpp disagrees with the reference on {name}: {delta}"
    expected = save_expected(path.name, TOKENS_128, qlogits, src, cpp)
    deltas.append((name, delta, delta, delta16))  # F32: nothing to emulate
    report(name, [path, expected], f"llama.cpp max|dlogit| {fmt(delta)} (F16 KV cache: {fmt(delta16)})")
    return deltas


def fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2e}"


def main() -> None:
    for p in (MODELS, EXPECTED):
        if p.exists():
            shutil.rmtree(p)
        p.mkdir(parents=True)
    if README.exists():
        README.unlink()

    hf_models = make_hf_fixtures()
    deltas = make_gguf_fixtures(hf_models)
    write_readme(deltas)
    for f in file_list([MODELS, EXPECTED, README]):
        f.chmod(0o644)  # safetensors writes some files 0600

    files = file_list([MODELS, EXPECTED, README])
    total = sum(f.stat().st_size for f in files)
    print(f"{'total':20s} {total:9d} B  in {len(files)} files")
    if any(d[1] is None for d in deltas):
        print("WARNING: llama_cpp not importable: llamacpp_logits left out", file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------------------------

def write_readme(deltas) -> None:
    hf_rows = "\n".join(
        f"| `{n}` | {HF_FIXTURES[n][0]} | {desc} |" for n, (_, _, desc) in HF_FIXTURES.items())
    delta_rows = "\n".join(f"| `{n}.gguf` | {fmt(d)} | {fmt(e)} | {fmt(d16)} |"
                           for n, d, e, d16 in deltas)
    files = file_list([MODELS, EXPECTED])
    file_rows = "\n".join(f"| `{f.relative_to(FIXTURES)}` | {f.stat().st_size} |" for f in files)
    total = sum(f.stat().st_size for f in files)
    text = f"""# Test fixtures

Generated by `scripts/make_fixtures.py` — do not edit by hand. Regenerate (from the repository
root) with

    ~/.cache/loraswitch-peers/bin/python scripts/make_fixtures.py

The script deletes and rewrites `models/`, `expected/` and this README. It needs torch,
transformers 5.x, safetensors, gguf-py and numpy; llama-cpp-python is optional (without it
the `llamacpp_logits` tensors are left out). Everything is seeded: re-running with the same
library versions gives byte-identical files. Generated with transformers
{transformers.__version__}, torch {torch.__version__}, gguf-py, {llamacpp_version()}.

All models are tiny and have random weights (no hub downloads):
RMSNorm weights `1 + 0.1·randn`, biases `0.1·randn`, embeddings `0.5·randn`, every other
matrix `randn / sqrt(in_features)`, so logits differ by O(1) across the vocabulary and a
missing norm weight, bias or scaling shows up in the logits.

## Expected outputs

`expected/<model>.safetensors` belongs to `models/<model>`: `expected/llama-f16.safetensors` to
the HF folder `models/llama-f16/`, `expected/llama-f16.gguf.safetensors` to the GGUF file
`models/llama-f16.gguf`. It holds:

* `logits` — F32 `[T, vocab]`: one row per position of the token sequence, from a single
  causal forward pass over the whole sequence (batch 1, no padding, no KV cache),
* `llamacpp_logits` — F32 `[T, vocab]`, GGUF fixtures only: the same from llama.cpp
  (llama-cpp-python, `logits_all=True`, n_ctx {LLAMACPP_N_CTX}, {LLAMACPP_THREADS} threads,
  F32 KV cache, whole sequence in one `eval`),
* `__metadata__`: `tokens` (comma-separated ids, T = {SEQ_LEN}) and `source` (how the logits
  were made).

Token sequences (12 distinct ids, one random id from each twelfth of the vocabulary, shuffled):

* vocab 128 (all HF fixtures and `qwen2-f32.gguf`): `{",".join(map(str, TOKENS_128))}`
* vocab 256 (`llama-*.gguf`): `{",".join(map(str, TOKENS_256))}`

Reference logits come from transformers `AutoModelForCausalLM` in float32 with
`attn_implementation="eager"`. The script asserts that every HF folder reloads with
`AutoModelForCausalLM.from_pretrained` and reproduces its logits within {RELOAD_TOL:g}.

## Hugging Face fixtures (`models/<name>/`)

Common: 2 layers, vocab 128, hidden 32, intermediate 64, max_position_embeddings 128,
rms_norm_eps 1e-5, rope_theta 10000, untied, float32 — unless stated.

| name | seed | what it tests |
|---|---|---|
{hf_rows}
| `llama-f16` | 2 | the `llama-gqa` weights stored as float16 (all tensors, norms included; `torch_dtype`/`dtype` float16); logits = float32 math on the f16-rounded weights |
| `llama-bf16` | 2 | the same in bfloat16 |
| `llama-sharded` | 2 | `llama-gqa` saved in several shards + `model.safetensors.index.json`; logits identical to `llama-gqa` |

Details:

* `llama-rope-llama3`: hidden 64, 2 heads (head_dim 32), 1 KV head, rope_theta 500000,
  `rope_scaling` `{json.dumps(LLAMA3_ROPE)}`. `original_max_position_embeddings` is 48
  (not 16): with 16 no frequency would be in the high-frequency regime. With 48 the 16
  frequencies split {check_llama3_regimes(LLAMA3_ROPE, 500000.0, 32)} (wavelength < 12 kept,
  > 48 divided by 8, in between smoothed).
* `llama-rope-linear`: `rope_scaling` `{{"type": "linear", "factor": 2.0}}` (the old `type`
  key, not `rope_type`): positions are divided by 2.
* `mistral`: `sliding_window` 6 with 12 tokens. transformers (eager) masks key j for query i
  unless `i - 6 < j <= i`, i.e. each position sees itself and the 5 before it. The script
  asserts that the logits differ from the same model without a window, that positions 0–5
  are identical to it and that position 6 differs.
* Tied fixtures (`llama-headdim`, `qwen2`) have no `lm_head.weight` in the safetensors file.

### config.json form

transformers 5 writes rope settings as a single `rope_parameters` object (with `rope_theta`
inside), the dtype as `dtype`, and always writes `head_dim`. The script rewrites every
config.json into the classic form used by older transformers and most hub checkpoints:

* top-level `rope_theta` and `rope_scaling` (`null` without scaling; otherwise exactly the
  dict above — `rope_type` for llama3, the old `type` key for linear), no `rope_parameters`;
* `torch_dtype` (classic) next to `dtype` (transformers ≥ 4.56 / 5), same value;
* `head_dim` only where it is not `hidden_size / num_attention_heads` (`llama-headdim`), so
  loaders must derive it otherwise.

transformers 5 still reads this form (it converts it to `rope_parameters` on load); the
script checks that the reloaded config gives the same rope parameters and logits.

## GGUF fixtures (`models/*.gguf`)

GGUF v3 written with gguf-py's `GGUFWriter`, following llama.cpp's `convert_hf_to_gguf.py`.
Metadata: `general.architecture`, `general.name`, `general.file_type`, `<arch>.context_length`
(128), `embedding_length`, `block_count`, `feed_forward_length`, `attention.head_count`,
`attention.head_count_kv`, `rope.freq_base`, `attention.layer_norm_rms_epsilon` (1e-5),
`rope.dimension_count`, and a fake SentencePiece (`tokenizer.ggml.model = "llama"`) vocabulary
`<unk>`, `<s>`, `</s>`, `t3` … so llama.cpp loads the file (bos 1, eos 2, unk 0).
Tensor names: `token_embd`, `blk.N.attn_norm`, `attn_q`, `attn_k`, `attn_v`, `attn_output`,
`ffn_norm`, `ffn_gate`, `ffn_up`, `ffn_down`, `output_norm`, `output`. GGUF dims are
`[in, out]` (ne0 first); the row-major data is the same as the HF `[out, in]` matrix.

* `llama-{{f32,f16,q8_0,q4_0,q4_1}}.gguf`: one llama model (seed {GGUF_LLAMA_SEED}): hidden 64,
  intermediate 128, 2 layers, 4 heads, 2 KV heads, vocab 256, untied, rope_theta 10000.
  Every 2-D weight (`token_embd` and `output` included) has the file's type (quantized with
  `gguf.quants.quantize`), norms are always F32. `attn_q` / `attn_k` rows are **permuted** as
  llama.cpp's converter does for llama (`w.reshape(n_head, 2, head_dim/2, in).swapaxes(1, 2)`,
  with n_head = 4 for q, 2 for k): llama.cpp's llama rope rotates adjacent pairs (2i, 2i+1)
  whereas HF rotates (i, i + head_dim/2). A loader undoes it with
  `w.reshape(n_head, head_dim/2, 2, in).swapaxes(1, 2)`.
  Expected `logits`: transformers on the HF llama whose weights are this file's weights
  dequantized (`gguf.quants.dequantize`) and un-permuted — the exact math on the stored
  weights, so the tolerance only has to cover float rounding. (llama.cpp itself quantizes
  activations to Q8_0 / F16 for quantized / F16 matmuls, hence its larger deviation.)
* `qwen2-f32.gguf`: the `qwen2` HF fixture converted as llama.cpp converts qwen2:
  architecture `qwen2`, **no** q/k permutation (qwen2 uses NEOX-style rope), biases as
  `blk.N.attn_{{q,k,v}}.bias` (F32), tied embeddings → no `output.weight`; all F32, vocab 128.
  Expected `logits` = the `qwen2` fixture's.

llama.cpp vs reference, max |Δlogit| over all positions and the vocabulary (logits have a
standard deviation of about 1). The stored `llamacpp_logits` use an F32 KV cache; llama.cpp's
default F16 KV cache is shown for comparison. llama.cpp does not multiply in float32: it
rounds the activations to F16 before F16 matmuls and quantizes them to Q8_0 blocks (Q8_1 for
Q4_1, whose F16-stored block sum adds to the error) before quantized ones. The script
reproduces that rounding in the transformers model ("rounding emulated" column): the
agreement then is ~1e-6 (F16: ~1e-6 on most positions, < 1e-3 on a few — presumably single
activations that round the other way at an F16 boundary), i.e. the deviation is activation
rounding and both read the file the same.
So an engine that dequantizes weights and computes in float32 should match `logits`
tightly; one that quantizes activations like llama.cpp should match `llamacpp_logits`.

| file | F32 KV cache (stored) | rounding emulated | F16 KV cache |
|---|---|---|---|
{delta_rows}

(llama.cpp raises n_ctx 64 to 256 and then warns "n_ctx_seq (256) > n_ctx_train (128)";
harmless for 12 tokens.)

## Files

| file | bytes |
|---|---|
{file_rows}

Total {total} bytes (plus this README).
"""
    README.write_text(text)


if __name__ == "__main__":
    main()
