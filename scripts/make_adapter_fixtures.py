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
"""

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

sys.path.insert(0, str(Path(__file__).resolve().parent))
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


# ---------------------------------------------------------------------------------------------
# PEFT LoRA
# ---------------------------------------------------------------------------------------------

PEFT_SOURCE = (f"peft {peft.__version__} PeftModel forward on transformers {transformers.__version__} "
               f"float32 eager, one forward pass over all tokens")


def randomize_lora(model: torch.nn.Module, seed: int, b_std: float) -> None:
    """Overwrite PEFT's init (kaiming A, zero B) with seeded values that matter:
    lora_A = randn / sqrt(in_features), lora_B = b_std * randn. Parameters in sorted-name order."""
    gen = torch.Generator().manual_seed(seed)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(params):
            p = params[name]
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[1]))
            elif ".lora_B." in name:
                p.copy_(b_std * torch.randn(p.shape, generator=gen))


def make_peft(base: torch.nn.Module, config: LoraConfig, seed: int, b_std: float) -> PeftModel:
    torch.manual_seed(seed)  # PEFT's own init draws from the global RNG (overwritten anyway)
    model = get_peft_model(copy.deepcopy(base), config)
    randomize_lora(model, seed, b_std)
    return model.eval()


def save_peft(model: PeftModel, name: str, base_rel: str) -> Path:
    """save_pretrained into adapters/<name>/, keeping adapter_config.json and
    adapter_model.safetensors (PEFT's generated model-card README.md is dropped).

    Two edits to adapter_config.json, both harmless to PEFT (it reloads the folder, checked):
    * base_model_name_or_path: PEFT stores the absolute path of the base model it was given;
      we store the fixture path relative to Tests/Fixtures (e.g. "models/llama-gqa");
    * target_modules: PEFT keeps them as a Python set and writes list(set), whose order
      depends on PYTHONHASHSEED; we sort the list so the file is reproducible.
    """
    folder = ADAPTERS / name
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        folder.mkdir(parents=True)
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copyfile(Path(tmp) / f, folder / f)
    path = folder / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg["base_model_name_or_path"] = base_rel
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return folder


def reload_peft(base: torch.nn.Module, folder: Path) -> PeftModel:
    return PeftModel.from_pretrained(copy.deepcopy(base), folder).eval()


def check_reload(base: torch.nn.Module, folder: Path, tokens: list[int], want: np.ndarray) -> None:
    got = mf.forward_logits(reload_peft(base, folder), tokens)
    err = float(np.abs(got - want).max())
    assert err <= RELOAD_TOL, (folder.name, err)


def saved_shapes(folder: Path) -> dict[str, tuple]:
    with safe_open(str(folder / "adapter_model.safetensors"), "np") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def scaled_variant_logits(model: PeftModel, scales: dict[str, float], tokens: list[int]) -> np.ndarray:
    """Logits of a copy of `model` with the LoRA scale of some modules replaced."""
    m = copy.deepcopy(model)
    for path, scale in scales.items():
        m.get_submodule("base_model.model." + path).scaling["default"] = scale
    return mf.forward_logits(m, tokens)


def lora_deltas(model: PeftModel, adapter: str = "default") -> dict[str, torch.Tensor]:
    """{HF module path: scale * B @ A} for every LoRA-wrapped Linear of a PEFT model."""
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, LoraLayer) and adapter in mod.lora_A:
            path = name.removeprefix("base_model.model.")
            a = mod.lora_A[adapter].weight.detach()
            b = mod.lora_B[adapter].weight.detach()
            out[path] = mod.scaling[adapter] * (b @ a)
    return out


def make_peft_fixtures() -> None:
    gqa = load_hf_base("llama-gqa")
    gqa_logits = base_expected("llama-gqa")

    # --- a. lora-basic --------------------------------------------------------------------
    basic = make_peft(gqa, LoraConfig(r=4, lora_alpha=8, target_modules=ALL7, lora_dropout=0.0,
                                      bias="none"), seed=101, b_std=B_STD["lora-basic"])
    logits = mf.forward_logits(basic, TOKENS_128)
    desc = effect(logits, gqa_logits, "lora-basic")
    folder = save_peft(basic, "lora-basic", "models/llama-gqa")
    shapes = saved_shapes(folder)
    assert len(shapes) == 2 * 7 * 2, shapes
    check_reload(gqa, folder, TOKENS_128, logits)
    save_expected("lora-basic", TOKENS_128, {"logits": logits}, PEFT_SOURCE, "models/llama-gqa",
                  "adapters/lora-basic")
    record("lora-basic", "models/llama-gqa",
           "plain PEFT LoRA, r 4, alpha 8 (scale 2), all seven projections of both layers",
           "yes", desc)

    # --- b. lora-rslora-patterns ----------------------------------------------------------
    cfg = LoraConfig(r=4, lora_alpha=16, use_rslora=True, target_modules=["q_proj", "v_proj", "down_proj"],
                     layers_to_transform=[1], rank_pattern={"model.layers.1.mlp.down_proj": 2},
                     alpha_pattern={"v_proj": 4}, lora_dropout=0.0, bias="none")
    rs = make_peft(gqa, cfg, seed=102, b_std=B_STD["lora-rslora-patterns"])
    scalings = {n.removeprefix("base_model.model."): (m.r["default"], m.scaling["default"])
                for n, m in rs.named_modules() if isinstance(m, LoraLayer)}
    want_scalings = {module_path(1, "q_proj"): (4, 16 / math.sqrt(4)),
                     module_path(1, "v_proj"): (4, 4 / math.sqrt(4)),
                     module_path(1, "down_proj"): (2, 16 / math.sqrt(2))}
    assert scalings.keys() == want_scalings.keys(), scalings
    for k, (r, s) in want_scalings.items():
        assert scalings[k][0] == r and abs(scalings[k][1] - s) < 1e-12, (k, scalings[k])
    logits = mf.forward_logits(rs, TOKENS_128)
    desc = effect(logits, gqa_logits, "lora-rslora-patterns")
    # Each misreading of the config must change the logits visibly.
    q, v, d = (module_path(1, m) for m in ("q_proj", "v_proj", "down_proj"))
    misreadings = {"scale alpha/r (use_rslora ignored)": {q: 16 / 4, v: 4 / 4, d: 16 / 2},
                   "alpha_pattern ignored": {v: 16 / 2},
                   "r from the config (4) instead of down_proj's 2": {d: 16 / 2}}
    for label, scales in misreadings.items():
        other = scaled_variant_logits(rs, scales, TOKENS_128)
        diff = float(np.abs(other - logits).max())
        assert diff > 0.05, (label, diff)
        desc += f"; vs {label}: {diff:.2f}"
    folder = save_peft(rs, "lora-rslora-patterns", "models/llama-gqa")
    shapes = saved_shapes(folder)
    pre = "base_model.model.model.layers.1."
    assert shapes == {
        f"{pre}mlp.down_proj.lora_A.weight": (2, 64), f"{pre}mlp.down_proj.lora_B.weight": (32, 2),
        f"{pre}self_attn.q_proj.lora_A.weight": (4, 32), f"{pre}self_attn.q_proj.lora_B.weight": (32, 4),
        f"{pre}self_attn.v_proj.lora_A.weight": (4, 32), f"{pre}self_attn.v_proj.lora_B.weight": (16, 4),
    }, shapes
    check_reload(gqa, folder, TOKENS_128, logits)
    save_expected("lora-rslora-patterns", TOKENS_128, {"logits": logits}, PEFT_SOURCE,
                  "models/llama-gqa", "adapters/lora-rslora-patterns")
    record("lora-rslora-patterns", "models/llama-gqa",
           "use_rslora (scale alpha/sqrt(r)), layers_to_transform [1] (layer 0 untouched), "
           "rank_pattern with a full module path (down_proj r 2), alpha_pattern with a bare name "
           "(v_proj alpha 4): scales q 8, v 2, down 16/sqrt(2) = 11.31", "yes", desc)

    # --- c. lora-all-linear-qwen2 ---------------------------------------------------------
    qwen = load_hf_base("qwen2")
    al = make_peft(qwen, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0),
                   seed=103, b_std=B_STD["lora-all-linear-qwen2"])
    logits = mf.forward_logits(al, TOKENS_128)
    desc = effect(logits, base_expected("qwen2"), "lora-all-linear-qwen2")
    folder = save_peft(al, "lora-all-linear-qwen2", "models/qwen2")
    saved_targets = json.loads((folder / "adapter_config.json").read_text())["target_modules"]
    assert saved_targets == sorted(module_path(l, m) for l in range(2) for m in ALL7), saved_targets
    assert len(saved_shapes(folder)) == 2 * 7 * 2
    check_reload(qwen, folder, TOKENS_128, logits)
    save_expected("lora-all-linear-qwen2", TOKENS_128, {"logits": logits}, PEFT_SOURCE,
                  "models/qwen2", "adapters/lora-all-linear-qwen2")
    record("lora-all-linear-qwen2", "models/qwen2",
           "target_modules \"all-linear\" on qwen2 (q/k/v biases; lm_head excluded): PEFT "
           "writes the expanded list of 14 full module paths (\"model.layers.0.mlp.down_proj\", ...)",
           "yes", desc)

    # --- d. lora-pair: lora-basic * 0.7 + lora-second * -0.3 ------------------------------
    second = make_peft(gqa, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"],
                                       lora_dropout=0.0), seed=104, b_std=B_STD["lora-second"])
    second_logits = mf.forward_logits(second, TOKENS_128)
    desc2 = effect(second_logits, gqa_logits, "lora-second")
    folder2 = save_peft(second, "lora-second", "models/llama-gqa")
    check_reload(gqa, folder2, TOKENS_128, second_logits)
    record("lora-second", "models/llama-gqa",
           "second LoRA for lora-pair: r 2, alpha 4 (scale 2), q_proj and v_proj only",
           "only in lora-pair", desc2)

    weights = {"lora-basic": 0.7, "lora-second": -0.3}
    merged = copy.deepcopy(gqa)
    with torch.no_grad():
        for adapter, w in weights.items():
            src = basic if adapter == "lora-basic" else second
            for path, delta in lora_deltas(src).items():
                get_module(merged, path).weight += w * delta
    logits = mf.forward_logits(merged, TOKENS_128)
    # Cross-check with PEFT itself: both adapters loaded from their folders and active at once,
    # each LoRA layer's scaling multiplied by the adapter's weight.
    pm = PeftModel.from_pretrained(copy.deepcopy(gqa), ADAPTERS / "lora-basic", adapter_name="lora-basic")
    pm.load_adapter(ADAPTERS / "lora-second", adapter_name="lora-second")
    pm.base_model.set_adapter(list(weights), inference_mode=True)
    for mod in pm.modules():
        if isinstance(mod, LoraLayer):
            for adapter, w in weights.items():
                if adapter in mod.scaling:
                    mod.scaling[adapter] *= w
    err = float(np.abs(mf.forward_logits(pm.eval(), TOKENS_128) - logits).max())
    assert err <= RELOAD_TOL, ("lora-pair vs PEFT multi-adapter", err)
    desc = effect(logits, gqa_logits, "lora-pair")
    src = ("PyTorch: base llama-gqa with W' = W + 0.7 * (8/4) * B1 @ A1 + (-0.3) * (4/2) * B2 @ A2 "
           "merged into every adapted weight (float32), transformers "
           f"{transformers.__version__} float32 eager; equals peft {peft.__version__} with both "
           f"adapters active and scalings multiplied by 0.7 / -0.3 (max|d| {err:.1e})")
    save_expected("lora-pair", TOKENS_128, {"logits": logits}, src, "models/llama-gqa",
                  "adapters/lora-basic:0.7;adapters/lora-second:-0.3")
    record("lora-pair", "models/llama-gqa",
           "two static LoRAs at once with weights 0.7 and -0.3 (a negative weight): "
           "delta = 0.7·Δ(lora-basic) − 0.3·Δ(lora-second); only q/v get both", "yes", desc)

    # --- e. lora-dora (must be rejected) ---------------------------------------------------
    dora = make_peft(gqa, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                     use_dora=True, lora_dropout=0.0), seed=105, b_std=B_STD["lora-dora"])
    gen = torch.Generator().manual_seed(105)
    with torch.no_grad():
        for name, p in sorted(dora.named_parameters()):
            if "lora_magnitude_vector" in name:
                p.mul_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
    desc = effect(mf.forward_logits(dora, TOKENS_128), gqa_logits, "lora-dora")
    folder = save_peft(dora, "lora-dora", "models/llama-gqa")
    assert any("lora_magnitude_vector" in k for k in saved_shapes(folder))
    record("lora-dora", "models/llama-gqa",
           "DoRA (use_dora true; extra `...lora_magnitude_vector` [out] tensors): must be "
           "REJECTED with a clear error (unsupported)", "no", desc)

    # --- f. lora-bias (must be rejected) ---------------------------------------------------
    lbias = load_hf_base("llama-bias")
    lb = make_peft(lbias, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                     bias="lora_only", lora_dropout=0.0), seed=106, b_std=B_STD["lora-bias"])
    gen = torch.Generator().manual_seed(106)
    with torch.no_grad():   # "train" the biases PEFT saves with bias="lora_only"
        for name, p in sorted(lb.named_parameters()):
            if name.endswith("base_layer.bias"):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    desc = effect(mf.forward_logits(lb, TOKENS_128), base_expected("llama-bias"), "lora-bias")
    folder = save_peft(lb, "lora-bias", "models/llama-bias")
    assert sum(k.endswith(".base_layer.bias") for k in saved_shapes(folder)) == 4
    record("lora-bias", "models/llama-bias",
           "bias \"lora_only\": the adapter also carries (changed) biases of the adapted "
           "layers as `...q_proj.base_layer.bias`: must be REJECTED with a clear error", "no", desc)


# ---------------------------------------------------------------------------------------------
# MoE-LoRA (ours): a small PyTorch reference implementation
# ---------------------------------------------------------------------------------------------

def route(x: torch.Tensor, router: torch.Tensor, k: int, gaps: list[float], renormalize: bool = True):
    """Router decision for every row of x [..., in] with router weight [N, in].

    probs = softmax(x @ router.T) in float32 over all N experts; keep the top k
    (torch.topk, sorted by decreasing probability); gates = those probabilities renormalized to
    sum 1. torch.topk does not promise which of two equal values comes first, so instead of
    relying on a tie rule the fixtures contain no near-ties: for every decision the sorted
    probabilities p(1) >= ... >= p(k+1) must differ pairwise by more than TIE_GAP (the smallest
    gap is appended to `gaps`; the caller asserts). Then "lower index wins ties" and any other
    rule give the same experts in the same order.
    Returns ids [..., k] (int64) and gates [..., k] (float32).
    """
    probs = torch.softmax((x.float() @ router.float().T), dim=-1)
    n = probs.shape[-1]
    top = torch.topk(probs, min(k + 1, n), dim=-1)
    diffs = top.values[..., :-1] - top.values[..., 1:]
    gaps.append(float(diffs.min()) if diffs.numel() else 1.0)
    vals, ids = top.values[..., :k], top.indices[..., :k]
    return ids, (vals / vals.sum(dim=-1, keepdim=True) if renormalize else vals)


class RoutingState:
    """Shared by the wrapped Linears of one model: the current token-routing decision, and the
    switch for the 'dense' sanity check (every expert with gate 1/N)."""
    def __init__(self):
        self.ids = None
        self.gates = None
        self.dense = False
        self.renormalize = True   # False: the 'raw top-k probabilities' sanity check
        self.gaps: list[float] = []
        self.log: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}


class MoELoRALinear(torch.nn.Module):
    """base(x) + sum_j gate_j * scale * B_{e_j} @ A_{e_j} @ x for the chosen experts e_j.

    A [N, r, in], B [N, out, r]. With a router [N, in] (layer routing) the module routes its own
    input x; without (token routing) it uses the decision in `state` (made once per token)."""
    def __init__(self, name: str, base: torch.nn.Linear, A, B, scale: float, k: int,
                 state: RoutingState, router=None):
        super().__init__()
        self.name, self.base, self.A, self.B = name, base, A, B
        self.scale, self.k, self.state, self.router = scale, k, state, router

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        n = self.A.shape[0]
        if self.state.dense:
            ids = torch.arange(n).expand(*x.shape[:-1], n)
            gates = torch.full(ids.shape, 1.0 / n)
        elif self.router is not None:
            ids, gates = route(x, self.router, self.k, self.state.gaps, self.state.renormalize)
            self.state.log[self.name] = (ids, gates)
        else:
            ids, gates = self.state.ids, self.state.gates
        for j in range(ids.shape[-1]):
            a = self.A[ids[..., j]]                       # [..., r, in]
            b = self.B[ids[..., j]]                       # [..., out, r]
            h = torch.einsum("...ri,...i->...r", a, x)
            d = torch.einsum("...or,...r->...o", b, h)
            y = y + (gates[..., j:j + 1] * self.scale) * d
        return y


def moe_weights(cfg: dict, model_cfg, seed: int, b_std: float, router_std: float) -> dict[str, np.ndarray]:
    """Seeded MoE-LoRA tensors in our format (names as in DESIGN.md), float32 numpy."""
    gen = torch.Generator().manual_seed(seed)
    n, r = cfg["num_experts"], cfg["r"]
    hidden, inter = model_cfg.hidden_size, model_cfg.intermediate_size
    head_dim = hidden // model_cfg.num_attention_heads
    kv = model_cfg.num_key_value_heads * head_dim
    dims = {"q_proj": (hidden, hidden), "k_proj": (hidden, kv), "v_proj": (hidden, kv),
            "o_proj": (hidden, hidden), "gate_proj": (hidden, inter), "up_proj": (hidden, inter),
            "down_proj": (inter, hidden)}   # (in, out)
    t = {}
    if cfg["routing"] == "token":
        t["base_model.model.router.weight"] = router_std * torch.randn(n, hidden, generator=gen) / math.sqrt(hidden)
    for layer in range(model_cfg.num_hidden_layers):
        for m in cfg["target_modules"]:
            fin, fout = dims[m]
            pre = f"base_model.model.{module_path(layer, m)}"
            if cfg["routing"] == "layer":
                t[f"{pre}.router.weight"] = router_std * torch.randn(n, fin, generator=gen) / math.sqrt(fin)
            for e in range(n):
                t[f"{pre}.lora_A.{e}.weight"] = torch.randn(r, fin, generator=gen) / math.sqrt(fin)
                t[f"{pre}.lora_B.{e}.weight"] = b_std * torch.randn(fout, r, generator=gen)
    return {k: v.numpy().astype(np.float32) for k, v in t.items()}


def attach_moe(model: torch.nn.Module, cfg: dict, tensors: dict[str, np.ndarray]) -> RoutingState:
    """Wrap the target Linears of an HF llama in MoELoRALinear, in place. For token routing, a
    forward hook on layer 0's input_layernorm routes its output (the normalized input of layer 0,
    the vector that feeds layer 0's q/k/v) once per token, before any adapted module runs."""
    state = RoutingState()
    n, k, scale = cfg["num_experts"], cfg["top_k"], cfg["lora_alpha"] / cfg["r"]
    T = lambda name: torch.from_numpy(tensors[name])
    for layer in range(model.config.num_hidden_layers):
        for m in cfg["target_modules"]:
            path = module_path(layer, m)
            pre = f"base_model.model.{path}"
            A = torch.stack([T(f"{pre}.lora_A.{e}.weight") for e in range(n)])
            B = torch.stack([T(f"{pre}.lora_B.{e}.weight") for e in range(n)])
            router = T(f"{pre}.router.weight") if cfg["routing"] == "layer" else None
            parent_path, child = path.rsplit(".", 1)
            parent = model.get_submodule(parent_path)
            setattr(parent, child, MoELoRALinear(path, getattr(parent, child), A, B, scale, k, state, router))
    if cfg["routing"] == "token":
        router = T("base_model.model.router.weight")

        def hook(mod, args, out):
            state.ids, state.gates = route(out, router, k, state.gaps, state.renormalize)
        model.model.layers[0].input_layernorm.register_forward_hook(hook)
    return state


def merged_decode_logits(base: torch.nn.Module, cfg: dict, tensors: dict[str, np.ndarray],
                         tokens: list[int]) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Independent second reference for TOKEN routing (LoRA-Switch's own algorithm): compute each
    token's decision directly from RMSNorm(embedding) of layer 0, then decode token by token with a
    KV cache, before each token rebuilding every adapted weight from the pristine base as
    W + sum_j g_j * scale * B_j @ A_j. Returns logits [T, vocab], ids [T, k], gates [T, k]."""
    model = copy.deepcopy(base)
    n, k, scale = cfg["num_experts"], cfg["top_k"], cfg["lora_alpha"] / cfg["r"]
    norm = model.model.layers[0].input_layernorm
    emb = model.model.embed_tokens.weight.detach()[torch.tensor(tokens)]
    x0 = emb * torch.rsqrt(emb.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon) * norm.weight.detach()
    ids, gates = route(x0, torch.from_numpy(tensors["base_model.model.router.weight"]), k, [])
    pristine = {module_path(l, m): get_module(model, module_path(l, m)).weight.detach().clone()
                for l in range(model.config.num_hidden_layers) for m in cfg["target_modules"]}
    rows, cache = [], None
    with torch.no_grad():
        for t, tok in enumerate(tokens):
            for path, w0 in pristine.items():
                pre = f"base_model.model.{path}"
                w = w0.clone()
                for j in range(k):
                    e = int(ids[t, j])
                    a = torch.from_numpy(tensors[f"{pre}.lora_A.{e}.weight"])
                    b = torch.from_numpy(tensors[f"{pre}.lora_B.{e}.weight"])
                    w += float(gates[t, j]) * scale * (b @ a)
                get_module(model, path).weight.copy_(w)
            out = model(input_ids=torch.tensor([[tok]]), past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            rows.append(out.logits[0, -1].float().numpy())
    return np.stack(rows).astype(np.float32), ids, gates


def moe_config(routing: str, n: int, k: int, targets: list[str], base_rel: str) -> dict:
    return {"peft_type": "MOE_LORA", "routing": routing, "num_experts": n, "top_k": k, "r": 4,
            "lora_alpha": 8, "target_modules": list(targets), "router_aux_loss_coef": 0.01,
            "base_model_name_or_path": base_rel}


def write_moe_folder(name: str, cfg: dict, tensors: dict[str, np.ndarray]) -> Path:
    folder = ADAPTERS / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    mf.write_safetensors(folder / "adapter_model.safetensors", tensors, {"format": "pt"})
    return folder


MOE_SOURCE = (f"reference MoE-LoRA in scripts/make_adapter_fixtures.py (MoELoRALinear wrapping the "
              f"Linears of transformers {transformers.__version__} LlamaForCausalLM, torch "
              f"{torch.__version__}, float32 eager, one forward pass over all tokens)")


def make_one_moe(name: str, base: torch.nn.Module, base_rel: str, tokens: list[int], routing: str,
                 k: int, targets: list[str], seed: int, tests: str) -> tuple[dict, dict]:
    base_logits = mf.forward_logits(base, tokens)
    for attempt in range(50):   # first seed whose decisions have no near-ties (deterministic)
        s = seed + 1000 * attempt
        cfg = moe_config(routing, 4, k, targets, base_rel)
        tensors = moe_weights(cfg, base.config, s, b_std=MOE_B_STD, router_std=2.0)
        model = copy.deepcopy(base)
        state = attach_moe(model, cfg, tensors)
        logits = mf.forward_logits(model, tokens)
        if routing == "token":
            ids, gates = state.ids[0], state.gates[0]
        else:
            ids, gates = state.log[module_path(0, "q_proj")]
            ids, gates = ids[0], gates[0]
        top1 = len(set(ids[:, 0].tolist()))
        if min(state.gaps) > TIE_GAP and top1 >= 3:
            break
    else:
        raise AssertionError(f"{name}: no seed without near-ties")
    n_decisions = len(tokens) * (1 if routing == "token" else len(targets) * base.config.num_hidden_layers)
    assert len(state.gaps) == (1 if routing == "token" else len(targets) * base.config.num_hidden_layers)
    gaps_first_pass = list(state.gaps)
    extra = f"seed {s}, {n_decisions} decisions, min prob gap {min(gaps_first_pass):.2e}, {top1} distinct top-1 experts"

    # routing matters: every expert with gate 1/N gives clearly different logits
    state.dense = True
    dense = mf.forward_logits(model, tokens)
    state.dense = False
    routing_effect = float(np.abs(dense - logits).max())
    assert routing_effect > 0.05, (name, routing_effect)
    if k > 1:   # renormalizing the top-k gates matters
        state.renormalize = False
        raw = mf.forward_logits(model, tokens)
        state.renormalize = True
        diff = float(np.abs(raw - logits).max())
        assert diff > 0.05, (name, "renormalization", diff)
        extra += f", vs gates not renormalized {diff:.2f}"
    if base_rel.endswith(".gguf"):
        # an engine that adds HF-oriented q/k lora_B to the GGUF's permuted rows without permuting
        # them computes (in HF row order) the model with un-permuted B: must be visibly wrong
        wrong = dict(tensors)
        for key in tensors:
            for m, heads in (("q_proj", base.config.num_attention_heads),
                             ("k_proj", base.config.num_key_value_heads)):
                if f".{m}.lora_B." in key:
                    wrong[key] = np.ascontiguousarray(mf.unpermute(tensors[key], heads))
        wm = copy.deepcopy(base)
        attach_moe(wm, cfg, wrong)
        diff = float(np.abs(mf.forward_logits(wm, tokens) - logits).max())
        assert diff > 0.05, (name, "q/k permutation", diff)
        extra += f", vs q/k lora_B not permuted {diff:.2f}"
    if routing == "token":
        ref, ids2, gates2 = merged_decode_logits(base, cfg, tensors, tokens)
        assert torch.equal(ids2, ids) and torch.allclose(gates2, gates, atol=1e-6), name
        err = float(np.abs(ref - logits).max())
        assert err < 1e-4, (name, "merged decode", err)
        extra += f", merged-decode check {err:.1e}"
    desc = effect(logits, base_logits, name) + f"; vs dense mixture {routing_effect:.2f}"
    SUMMARY_EXTRA[name] = extra
    write_moe_folder(name, cfg, tensors)
    src = MOE_SOURCE + ("; token routing from layer 0's input_layernorm output" if routing == "token"
                        else "; layer routing: each module routes its own input; routing/gates "
                             "stored for layer 0 q_proj")
    if base_rel.endswith(".gguf"):
        src += f"; base = {Path(base_rel).name} dequantized with gguf-py, q/k un-permuted"
    save_expected(name, tokens, {"logits": logits, "routing": ids.float().numpy(),
                                 "gates": gates.float().numpy()},
                  src, base_rel, f"adapters/{name}")
    record(name, base_rel, tests, "yes (+ routing, gates)", desc)
    print(f"{'':26s} {extra}")
    return cfg, tensors


def make_moe_fixtures() -> None:
    gqa = load_hf_base("llama-gqa")
    make_one_moe("moe-token-top1", gqa, "models/llama-gqa", TOKENS_128, "token", 1, ALL7, 201,
                 "token routing, N 4, top-1 (gates all 1), r 4, alpha 8, all seven projections")
    cfg, tensors = make_one_moe(
        "moe-token-top2", gqa, "models/llama-gqa", TOKENS_128, "token", 2, ALL7, 202,
        "token routing, N 4, top-2, r 4, alpha 8, all seven projections")
    make_one_moe("moe-layer-top2", gqa, "models/llama-gqa", TOKENS_128, "layer", 2,
                 ["q_proj", "v_proj", "up_proj", "down_proj"], 203,
                 "layer routing (a router per adapted module, on that module's input; down_proj's "
                 "router is [4, 64]), N 4, top-2, q/v/up/down")
    make_one_moe("moe-layer-top1", gqa, "models/llama-gqa", TOKENS_128, "layer", 1,
                 ["q_proj", "o_proj", "gate_proj"], 205,
                 "layer routing, N 4, top-1 (gates all 1), q/o/gate")
    q4 = load_gguf_base("llama-q4_1.gguf")
    make_one_moe("moe-token-top2-q4", q4, "models/llama-q4_1.gguf", TOKENS_256, "token", 2, ALL7, 204,
                 "token-routed MoE-LoRA (HF orientation) on a Q4_1 GGUF llama: the engine must "
                 "permute lora_B rows of q/k (as for the base) and apply the experts unmerged")

    # --- k. invalid variants of moe-token-top2 (folders only) -------------------------------
    bad = {}
    t = dict(tensors)
    del t[f"base_model.model.{module_path(1, 'down_proj')}.lora_B.2.weight"]
    bad["moe-bad-missing-b"] = (cfg, t, "expert 2's lora_B of model.layers.1.mlp.down_proj is missing")
    bad["moe-bad-topk"] = (dict(cfg, top_k=5), tensors, "top_k 5 > num_experts 4")
    t = dict(tensors)
    t["base_model.model.router.weight"] = np.concatenate(
        [t["base_model.model.router.weight"], t["base_model.model.router.weight"][:1]], axis=0)
    bad["moe-bad-router-shape"] = (cfg, t, "router.weight is [5, 32], expected [num_experts 4, hidden 32]")
    bad["moe-bad-num-experts"] = (dict(cfg, num_experts=3), tensors,
                                  "num_experts 3 in the config, tensors for experts 0-3")
    t = dict(tensors)
    gen = torch.Generator().manual_seed(299)
    for layer in range(2):
        pre = f"base_model.model.model.layers.{layer}.self_attn.qkv_proj"
        for e in range(4):
            t[f"{pre}.lora_A.{e}.weight"] = (torch.randn(4, 32, generator=gen) / math.sqrt(32)).numpy()
            t[f"{pre}.lora_B.{e}.weight"] = (MOE_B_STD * torch.randn(64, 4, generator=gen)).numpy()
    bad["moe-bad-module"] = (dict(cfg, target_modules=ALL7 + ["qkv_proj"]), t,
                             "target_modules names \"qkv_proj\" (and tensors exist for "
                             "model.layers.{0,1}.self_attn.qkv_proj), a module llama does not have")
    for name, (c, t, why) in bad.items():
        write_moe_folder(name, c, t)
        record(name, "models/llama-gqa", f"must be REJECTED: {why}", "no")


# ---------------------------------------------------------------------------------------------
# llama.cpp GGUF LoRA
# ---------------------------------------------------------------------------------------------

def write_gguf_lora(path: Path, lora: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float,
                    qtype: QT, model_cfg, permute_qk: bool = True) -> None:
    """A llama.cpp LoRA adapter as convert_lora_to_gguf.py writes it.

    `lora`: {HF module path: (A [r, in], B [out, r])} in HF orientation. Tensors
    `blk.{l}.{attn_q,...}.weight.lora_a` = A (numpy [r, in], GGUF ne [in, r]) and `.lora_b` = B
    (numpy [out, r], GGUF ne [r, out]); for llama the rows of B for attn_q / attn_k are permuted
    like the base weights (n_head for q, n_head_kv for k)."""
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type(gguf.GGUFType.ADAPTER)                      # general.type = "adapter"
    w.add_name(path.stem)
    w.add_string(gguf.Keys.Adapter.TYPE, "lora")            # adapter.type = "lora"
    w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))  # adapter.lora.alpha
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_file_type(int(gguf.LlamaFileType.ALL_F32 if qtype == QT.F32 else gguf.LlamaFileType.MOSTLY_F16))
    for layer in range(model_cfg.num_hidden_layers):
        for m in ALL7:
            path_hf = module_path(layer, m)
            if path_hf not in lora:
                continue
            a, b = lora[path_hf]
            if permute_qk and m == "q_proj":
                b = mf.permute(b, model_cfg.num_attention_heads)
            elif permute_qk and m == "k_proj":
                b = mf.permute(b, model_cfg.num_key_value_heads)
            name = f"blk.{layer}.{GGUF_MODULE[m]}.weight"
            for suffix, arr in (("lora_a", a), ("lora_b", b)):
                arr = np.ascontiguousarray(arr, dtype=np.float32)
                w.add_tensor(f"{name}.{suffix}", arr if qtype == QT.F32 else arr.astype(np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_logits(model_path: Path, tokens: list[int], lora_path: Path | None = None) -> np.ndarray | None:
    """llama.cpp logits [T, vocab], whole sequence in one eval, F32 KV cache, lora_scale 1.0."""
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    kw = {} if lora_path is None else {"lora_path": str(lora_path), "lora_scale": 1.0}
    llm = Llama(model_path=str(model_path), n_ctx=mf.LLAMACPP_N_CTX, n_threads=mf.LLAMACPP_THREADS,
                n_threads_batch=mf.LLAMACPP_THREADS, logits_all=True, verbose=False,
                type_k=int(QT.F32), type_v=int(QT.F32), **kw)
    llm.eval(tokens)
    logits = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    llm.close()
    return logits


def emulate_llamacpp(model: PeftModel, base_qtype: QT, lora_f16: bool) -> None:
    """Diagnostic only: round activations as llama.cpp's CPU backend does before its matmuls
    (Q8_0 blocks before Q8_0 base weights; F16 before F16 LoRA tensors)."""
    def base_hook(mod, args, out):
        xq, _ = mf._q8_blocks(args[0].detach().numpy())
        return torch.from_numpy(xq) @ mod.weight.T

    def f16_hook(mod, args, out):
        x = args[0].detach().numpy().astype(np.float16).astype(np.float32)
        return torch.from_numpy(x) @ mod.weight.T

    for name, mod in model.named_modules():
        if not isinstance(mod, torch.nn.Linear):
            continue
        if ".lora_A." in name or ".lora_B." in name:
            if lora_f16:
                mod.register_forward_hook(f16_hook)
        elif base_qtype == QT.Q8_0:
            mod.register_forward_hook(base_hook)


GGUF_DELTAS: list[tuple] = []   # (fixture, adapter file, base file, max|Δ|, max|Δ| emulated)


def make_gguf_lora_fixtures() -> None:
    base_rel = "models/llama-f32.gguf"
    f32 = load_gguf_base("llama-f32.gguf")
    base_logits = base_expected("llama-f32.gguf")
    pm = make_peft(f32, LoraConfig(r=4, lora_alpha=8, target_modules=ALL7, lora_dropout=0.0),
                   seed=301, b_std=B_STD["gguf-lora"])
    logits = mf.forward_logits(pm, TOKENS_256)
    desc = effect(logits, base_logits, "peft-lora-for-gguf")
    folder = save_peft(pm, "peft-lora-for-gguf", base_rel)
    check_reload(f32, folder, TOKENS_256, logits)
    lora = {}
    for name, mod in pm.named_modules():
        if isinstance(mod, LoraLayer):
            lora[name.removeprefix("base_model.model.")] = (
                mod.lora_A["default"].weight.detach().numpy().copy(),
                mod.lora_B["default"].weight.detach().numpy().copy())
    assert len(lora) == 14

    cpp_src = (f"llamacpp_logits: {mf.llamacpp_version()} with lora_path= and lora_scale 1.0, "
               f"n_ctx {mf.LLAMACPP_N_CTX}, {mf.LLAMACPP_THREADS} threads, F32 KV cache, logits_all")
    gguf_path = ADAPTERS / "gguf-lora.gguf"
    write_gguf_lora(gguf_path, lora, 8.0, QT.F32, f32.config)
    # the file reads back as written (names, shapes, types, data)
    reader = gguf.GGUFReader(str(gguf_path))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 8.0
    tq = {t.name: t for t in reader.tensors}
    assert list(tq["blk.0.attn_q.weight.lora_a"].shape) == [64, 4]    # ne = [in, r]
    assert list(tq["blk.0.attn_k.weight.lora_b"].shape) == [4, 32]    # ne = [r, out]
    assert list(tq["blk.1.ffn_down.weight.lora_a"].shape) == [128, 4]
    assert np.array_equal(np.asarray(tq["blk.1.attn_k.weight.lora_b"].data),
                          mf.permute(lora[module_path(1, "k_proj")][1], 2))

    cpp_base = llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256)
    cpp = llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256, gguf_path)
    tensors = {"logits": logits}
    if cpp is not None:
        # llama.cpp without the adapter is the base; with it, it must match our reference
        want_base = load_file(str(mf.EXPECTED / "llama-f32.gguf.safetensors"))["llamacpp_logits"]
        assert np.array_equal(cpp_base, want_base)
        delta = float(np.abs(cpp - logits).max())
        assert delta < 1e-3, ("gguf-lora llama.cpp", delta)
        tensors["llamacpp_logits"] = cpp
        # the q/k permutation of lora_b is needed: without it llama.cpp is far off
        with tempfile.TemporaryDirectory() as tmp:
            wrong = Path(tmp) / "unpermuted.gguf"
            write_gguf_lora(wrong, lora, 8.0, QT.F32, f32.config, permute_qk=False)
            bad = float(np.abs(llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256, wrong) - logits).max())
        assert bad > 0.05, ("unpermuted lora_b should not match", bad)
        GGUF_DELTAS.append(("gguf-lora", "gguf-lora.gguf", "llama-f32.gguf", delta, None))
        desc += f"; llama.cpp max|Δ| {delta:.2e} (with q/k lora_b NOT permuted: {bad:.2f})"
    src = (f"{PEFT_SOURCE}; base = llama-f32.gguf loaded into an HF llama (q/k un-permuted), "
           f"LoRA in HF orientation; {cpp_src}")
    save_expected("gguf-lora", TOKENS_256, tensors, src, base_rel, "adapters/gguf-lora.gguf")
    record("gguf-lora", base_rel, "llama.cpp GGUF LoRA (F32 tensors), r 4, alpha 8, all seven "
           "projections; q/k lora_b rows permuted like the base", "yes (+ llamacpp_logits)", desc)

    # peft-lora-for-gguf: the same LoRA as a PEFT folder (HF orientation, unpermuted)
    save_expected("peft-lora-for-gguf", TOKENS_256, tensors,
                  f"same as gguf-lora: {src}", base_rel, "adapters/peft-lora-for-gguf")
    record("peft-lora-for-gguf", base_rel,
           "the gguf-lora LoRA as a PEFT folder (HF orientation): the engine must permute q/k "
           "lora_B rows itself for a GGUF llama base; expected = gguf-lora's", "yes (= gguf-lora)", desc)

    # gguf-lora-f16: same LoRA, F16 tensors; reference uses the f16-rounded A and B
    gguf16 = ADAPTERS / "gguf-lora-f16.gguf"
    write_gguf_lora(gguf16, lora, 8.0, QT.F16, f32.config)
    pm16 = copy.deepcopy(pm)
    with torch.no_grad():
        for name, p in pm16.named_parameters():
            if ".lora_A." in name or ".lora_B." in name:
                p.copy_(p.half().float())
    logits16 = mf.forward_logits(pm16, TOKENS_256)
    desc = effect(logits16, base_logits, "gguf-lora-f16")
    tensors = {"logits": logits16}
    cpp16 = llamacpp_logits(MODELS / "llama-f32.gguf", TOKENS_256, gguf16)
    if cpp16 is not None:
        delta = float(np.abs(cpp16 - logits16).max())
        assert delta < 1e-2, ("gguf-lora-f16 llama.cpp", delta)
        emulate_llamacpp(pm16, QT.F32, lora_f16=True)
        emu = float(np.abs(cpp16 - mf.forward_logits(pm16, TOKENS_256)).max())
        tensors["llamacpp_logits"] = cpp16
        GGUF_DELTAS.append(("gguf-lora-f16", "gguf-lora-f16.gguf", "llama-f32.gguf", delta, emu))
        desc += f"; llama.cpp max|Δ| {delta:.2e} (F16 rounding emulated: {emu:.2e})"
    src16 = (f"{PEFT_SOURCE}; base = llama-f32.gguf as for gguf-lora, LoRA A/B rounded to F16 "
             f"(the values the file stores), float32 math; {cpp_src}")
    save_expected("gguf-lora-f16", TOKENS_256, tensors, src16, base_rel, "adapters/gguf-lora-f16.gguf")
    record("gguf-lora-f16", base_rel, "the gguf-lora LoRA with F16 lora_a/lora_b tensors",
           "yes (+ llamacpp_logits)", desc)

    # gguf-lora-on-q8: the F32 GGUF LoRA on the Q8_0 base
    q8_rel = "models/llama-q8_0.gguf"
    q8 = load_gguf_base("llama-q8_0.gguf")
    pq8 = reload_peft(q8, folder)   # same LoRA (from the PEFT folder) on the dequantized Q8_0 base
    logits8 = mf.forward_logits(pq8, TOKENS_256)
    desc = effect(logits8, base_expected("llama-q8_0.gguf"), "gguf-lora-on-q8")
    tensors = {"logits": logits8}
    cpp8 = llamacpp_logits(MODELS / "llama-q8_0.gguf", TOKENS_256, gguf_path)
    if cpp8 is not None:
        delta = float(np.abs(cpp8 - logits8).max())
        assert delta < 0.25, ("gguf-lora-on-q8 llama.cpp", delta)
        emulate_llamacpp(pq8, QT.Q8_0, lora_f16=False)
        emu = float(np.abs(cpp8 - mf.forward_logits(pq8, TOKENS_256)).max())
        tensors["llamacpp_logits"] = cpp8
        GGUF_DELTAS.append(("gguf-lora-on-q8", "gguf-lora.gguf", "llama-q8_0.gguf", delta, emu))
        desc += f"; llama.cpp max|Δ| {delta:.2e} (Q8_0 activation rounding emulated: {emu:.2e})"
    src8 = (f"{PEFT_SOURCE}; base = llama-q8_0.gguf dequantized with gguf-py, q/k un-permuted, "
            f"LoRA in HF orientation (float32); {cpp_src}")
    save_expected("gguf-lora-on-q8", TOKENS_256, tensors, src8, q8_rel, "adapters/gguf-lora.gguf")
    record("gguf-lora-on-q8", q8_rel, "gguf-lora.gguf on the Q8_0 base (a LoRA on a quantized "
           "backbone: unmerged path)", "yes (+ llamacpp_logits)", desc)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def file_list() -> list[Path]:
    return sorted(f for f in ADAPTERS.rglob("*") if f.is_file())


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


# ---------------------------------------------------------------------------------------------
# README
# ---------------------------------------------------------------------------------------------

def fmt(x) -> str:
    return "n/a" if x is None else f"{x:.2e}"


def write_readme() -> None:
    cell = lambda text: text.replace("|", "\\|")   # a literal | inside a table cell
    rows = "\n".join(f"| `{s['name']}` | `{s['base']}` | {cell(s['tests'])} | {s['expected']} | "
                     f"{cell(s['effect']) or '—'} |" for s in SUMMARY)
    delta_rows = "\n".join(f"| `{n}` | `{a}` | `{b}` | {fmt(d)} | {fmt(e)} |" for n, a, b, d, e in GGUF_DELTAS)
    rs_cfg = json.loads((ADAPTERS / "lora-rslora-patterns" / "adapter_config.json").read_text())
    moe_cfg = (ADAPTERS / "moe-token-top2" / "adapter_config.json").read_text().strip()
    al_cfg = json.loads((ADAPTERS / "lora-all-linear-qwen2" / "adapter_config.json").read_text())
    moe_rows = "\n".join(f"  * `{n}`: {e}" for n, e in SUMMARY_EXTRA.items())
    sigmas = ", ".join(f"`{k}` {v}" for k, v in B_STD.items())
    files = [f for f in file_list() if f != README]
    file_rows = "\n".join(f"| `{f.relative_to(ADAPTERS)}` | {f.stat().st_size} |" for f in files)
    total = sum(f.stat().st_size for f in files)
    text = f"""# Adapter fixtures

Generated by `scripts/make_adapter_fixtures.py` — do not edit by hand. Regenerate (from the
repository root, after `scripts/make_fixtures.py`, whose models these adapters belong to) with

    ~/.cache/loraswitch-peers/bin/python scripts/make_adapter_fixtures.py

The script deletes and rewrites `Tests/Fixtures/adapters/` (nothing else). Everything is seeded:
re-running with the same library versions gives byte-identical files. Generated with peft
{peft.__version__}, transformers {transformers.__version__}, torch {torch.__version__}, gguf-py,
{mf.llamacpp_version()}.

**Git:** the repository's `.gitignore` ignores `*.gguf` except under `Tests/Fixtures/models/` and
`Tests/Fixtures/tokenizers/`, so `gguf-lora.gguf` and `gguf-lora-f16.gguf` are ignored until a
`!Tests/Fixtures/adapters/*.gguf` line is added (or they are added with `git add -f`).

## Expected outputs

`expected/<fixture>.safetensors` (read with the same safetensors reader as the model fixtures):

* `logits` — F32 `[T, vocab]`, every position of one causal forward pass (batch 1, no KV cache);
* `llamacpp_logits` — F32 `[T, vocab]`, GGUF-LoRA fixtures only: llama.cpp (llama-cpp-python
  `Llama(lora_path=…, lora_scale=1.0, logits_all=True)`, n_ctx {mf.LLAMACPP_N_CTX}, {mf.LLAMACPP_THREADS} threads, F32 KV cache);
* `routing` — F32 `[T, k]`, MoE fixtures only: the chosen expert ids (integers stored as F32,
  since the reader takes F32/F16/BF16 only), ordered by decreasing router probability. Token
  routing: the one decision per position; layer routing: the decision of layer 0's `q_proj`;
* `gates` — F32 `[T, k]`, MoE fixtures only: the renormalized gates, same order (sum 1 per row;
  all 1.0 for top-1);
* `__metadata__`: `tokens` (comma-separated ids, T = {mf.SEQ_LEN}), `source` (how the logits were made),
  `base` (the model fixture, relative to `Tests/Fixtures`, e.g. `models/llama-gqa` or
  `models/llama-f32.gguf`), `adapters` (adapter path(s) relative to `Tests/Fixtures`; several are
  separated by `;`, a weight follows a `:` — `adapters/lora-basic:0.7;adapters/lora-second:-0.3`).

Token sequences are the model fixtures' own: vocab 128 (HF models) `{",".join(map(str, TOKENS_128))}`,
vocab 256 (`llama-*.gguf`) `{",".join(map(str, TOKENS_256))}` — so the base model's logits without any
adapter are `Tests/Fixtures/expected/<base>.safetensors`.

## Fixtures

"Effect" = max |logits with adapter − logits of the base| (the script asserts {MIN_EFFECT} ≤ max ≤ {MAX_EFFECT}
for every adapter, so an adapter that is silently not applied, applied twice or mis-scaled fails).

| fixture | base | what it tests | expected | effect |
|---|---|---|---|---|
{rows}

Adapter weights are random but large: PEFT's init (kaiming `lora_A`, **zero** `lora_B`) is
overwritten with `lora_A = randn / sqrt(in)`, `lora_B = σ·randn`, seeded (σ: {sigmas}; MoE experts
{MOE_B_STD}).

### PEFT LoRA (`lora-*`, `peft-lora-for-gguf`)

Folders as `PeftModel.save_pretrained` writes them (peft {peft.__version__}): `adapter_config.json` +
`adapter_model.safetensors` (F32, metadata `{{"format": "pt"}}`, tensor names
`base_model.model.model.layers.{{l}}.{{self_attn|mlp}}.{{module}}.lora_A.weight` `[r, in]` and
`...lora_B.weight` `[out, r]`). PEFT's generated model card `README.md` is not kept, and two fields
of `adapter_config.json` are normalized (PEFT reloads the folder and reproduces the logits within
{RELOAD_TOL:g}, checked): `base_model_name_or_path` is the fixture path relative to `Tests/Fixtures`
(PEFT writes the absolute path it loaded from), and `target_modules` is sorted (PEFT stores a Python
set and writes `list(set)`, whose order changes with `PYTHONHASHSEED`). The config carries many keys a
loader has to ignore or check (`peft_version`, `use_dora`, `lora_bias`, `layer_replication`,
`target_parameters`, `trainable_token_indices`, `alora_invocation_tokens`, …).

Reference logits: the `PeftModel` itself (float32, eager attention) on the base loaded with
`AutoModelForCausalLM.from_pretrained`. Scale per module = `lora_alpha / r`, or
`lora_alpha / sqrt(r)` with `use_rslora`, where `r` and `lora_alpha` come from `rank_pattern` /
`alpha_pattern` when a key matches the module (PEFT: `re.match(r"(.*\\.)?(KEY)$", module_path)`,
module_path like `model.layers.1.mlp.down_proj`; first matching key wins).

* `lora-rslora-patterns` — `adapter_config.json` (as written):

  ```json
  {json.dumps({k: rs_cfg[k] for k in ("r", "lora_alpha", "use_rslora", "target_modules", "layers_to_transform", "layers_pattern", "rank_pattern", "alpha_pattern", "bias", "use_dora")}, indent=2).replace(chr(10), chr(10) + "  ")}
  ```

  (excerpt; full file in the folder). PEFT applies the patterns (asserted on the saved shapes and
  on the live modules): only layer 1 is adapted; `q_proj` r 4, scale 16/√4 = 8; `v_proj` r 4,
  alpha 4, scale 4/√4 = 2; `down_proj` r 2 (`lora_A` `[2, 64]`, `lora_B` `[32, 2]`), scale
  16/√2 ≈ 11.31. Note the rank of a module must be read from its tensors (or the pattern), not
  from `r`.
* `lora-all-linear-qwen2` — `target_modules: "all-linear"` is **not** kept: PEFT expands it at
  creation and saves the list of the {len(al_cfg["target_modules"])} full module paths
  (`{al_cfg["target_modules"][0]}`, …; the output layer `lm_head` is never included). PEFT matches a
  target name `t` to a module path `p` when `p == t` or `p` ends with `"." + t`.
* `lora-pair` — reference computed by merging: for every adapted Linear,
  `W' = W + 0.7 · (8/4) · B₁A₁ + (−0.3) · (4/2) · B₂A₂` (B₂A₂ only on q/v), float32, then a plain
  transformers forward. Cross-checked against PEFT with both adapters loaded and active and each
  layer's `scaling[adapter]` multiplied by its weight (agreement ≤ {RELOAD_TOL:g}).
* `lora-dora` (`use_dora: true`, tensors `...lora_magnitude_vector` `[out]`) and `lora-bias`
  (`bias: "lora_only"` on `models/llama-bias`: PEFT then also saves the adapted layers' biases as
  `...q_proj.base_layer.bias` / `...v_proj.base_layer.bias`, here changed by 0.1·randn as if trained)
  have no expected logits: the engine must refuse them with a one-line error naming the file and the
  key (`use_dora` / `bias`).

### MoE-LoRA, our format (`moe-*`)

`adapter_config.json` of `moe-token-top2` (exactly):

```json
{moe_cfg}
```

`adapter_model.safetensors` (F32): `base_model.model.model.layers.{{l}}.{{self_attn|mlp}}.{{module}}.lora_A.{{e}}.weight`
`[r, in]`, `...lora_B.{{e}}.weight` `[out, r]` for e = 0…N−1; token routing:
`base_model.model.router.weight` `[N, hidden]`; layer routing:
`base_model.model.model.layers.{{l}}.{{...}}.{{module}}.router.weight` `[N, in]` (e.g. `[4, 64]` for
`down_proj`). Scale = lora_alpha / r = 2 (no rslora).

Semantics of the reference (`MoELoRALinear` and `route` in the script, wrapping the Linears of a
transformers `LlamaForCausalLM`, float32, eager):

* router probabilities `p = softmax(router.weight @ x)` in float32 over all N experts; keep the top k;
  gates = those p renormalized to sum 1; `y = W x + Σ_j gate_j · scale · B_{{e_j}} (A_{{e_j}} x)`;
* **token routing**: ONE decision per token, from the normalized input of layer 0 (layer 0's
  `input_layernorm` output — the vector that feeds layer 0's q/k/v; captured with a forward hook),
  used by every adapted module of every layer for that token;
* **layer routing**: every adapted module routes its own input x (the input of that Linear) with
  its own router;
* ties: `torch.topk` does not specify the order of equal values, so the fixtures avoid them: for
  every decision the sorted top-(k+1) probabilities differ pairwise by more than {TIE_GAP:g} (asserted;
  the script takes the first seed, in steps of 1000, that satisfies this and gives ≥ 3 distinct top-1
  experts). Any tie rule (e.g. "lower expert index wins") therefore gives the stored result.
* checks: logits differ from the base (table) and from the dense mixture (all N experts with gate
  1/N) by > 0.05, so wrong routing is visible; for token routing a second, independent reference —
  decisions computed directly from RMSNorm(embedding), then token-by-token decoding with a KV cache
  where before each token every adapted weight is rebuilt from the pristine base as
  `W + Σ_j g_j·scale·B_j A_j` (LoRA-Switch's merge) — agrees within 1e-4 and gives identical routing.
* `moe-token-top2-q4`: the same kind of adapter for the GGUF llama shape (hidden 64, intermediate
  128, 4 heads, 2 KV heads; router `[4, 64]`) on `models/llama-q4_1.gguf`. Reference: the HF llama
  built from that file's **dequantized** weights (q/k un-permuted as in `make_fixtures.py`) plus the
  MoE-LoRA in HF orientation. **The adapter is HF-oriented: an engine that keeps the GGUF's
  permuted q/k rows must permute the rows of every `q_proj`/`k_proj` `lora_B.{{e}}` the same way**
  (`B.reshape(n_head, 2, head_dim/2, r).swapaxes(1, 2)`, n_head 4 for q, 2 for k) — or un-permute
  the base. The same holds for PEFT LoRAs on a GGUF base (`peft-lora-for-gguf`).
* per fixture (seed actually used, number of routing decisions, smallest probability gap, and how
  far the logits move under a misreading):
{moe_rows}
* invalid variants (copies of `moe-token-top2` with one defect; no expected output; the engine
  must refuse each with a one-line error naming the file and the tensor/key): see the table.

### llama.cpp GGUF LoRA (`gguf-lora.gguf`, `gguf-lora-f16.gguf`)

The format llama.cpp's `convert_lora_to_gguf.py` writes and `llama_adapter_lora_init` reads
(src/llama-adapter.cpp), written here with gguf-py's `GGUFWriter`:

* GGUF v3; metadata `general.architecture = "llama"` (must equal the base model's architecture),
  `general.type = "adapter"`, `general.name`, `adapter.type = "lora"`, `adapter.lora.alpha`
  (FLOAT32, 8.0), `general.quantization_version` (2), `general.file_type` (0 = ALL_F32 /
  1 = MOSTLY_F16). No hyperparameters and no vocabulary: those come from the base.
* tensors, for each adapted base tensor `blk.{{l}}.{{attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down}}.weight`:
  `<name>.lora_a` with GGUF dims ne = `[in, r]` and `<name>.lora_b` with ne = `[r, out]` — i.e.
  row-major data identical to PEFT's `lora_A` `[r, in]` and `lora_B` `[out, r]` (no transpose).
  llama.cpp checks `base.ne[0] == lora_a.ne[0]`, `base.ne[1] == lora_b.ne[1]` and
  `lora_a.ne[1] == lora_b.ne[0]`; the rank is `lora_b.ne[0]`.
* q/k permutation: as for the base weights, the converter permutes the **rows of `lora_b`** of
  `attn_q` (n_head = 4) and `attn_k` (n_head_kv = 2): `B.reshape(n_head, 2, head_dim/2, r).swapaxes(1, 2)`
  (`lora_a` unchanged). The script checks that llama.cpp disagrees (max|Δ| > 0.05) when this is
  left out.
* application (llama.cpp `build_lora_mm`): `y = W x + scale · lora_b · (lora_a · x)` with
  `scale = lora_scale · alpha / rank` (`lora_scale` = the user's multiplier, 1.0 here; alpha 0 means
  scale = lora_scale). The converter ignores `use_rslora` and `rank_pattern`/`alpha_pattern`.
* types: `gguf-lora.gguf` all F32; `gguf-lora-f16.gguf` all F16 (what `--outtype f16` gives).

Reference `logits`: the PEFT model of the same LoRA (HF orientation) on the HF llama rebuilt from the
GGUF base (dequantized, q/k un-permuted), float32. `gguf-lora-f16` uses the F16-rounded A and B.
`gguf-lora-on-q8` is `gguf-lora.gguf` on `models/llama-q8_0.gguf`.

llama.cpp vs the reference, max |Δlogit| (logits have a standard deviation of about 1). llama.cpp
multiplies F32 tensors in F32; before a matmul with F16 tensors it rounds the activations to F16 and
before Q8_0 base weights it quantizes them to Q8_0 blocks (the LoRA itself stays F32). "Emulated" =
the reference with that activation rounding reproduced (diagnostic only; for the F16 LoRA about
1e-4 remains unexplained, as for the F16 model fixture):

| fixture | adapter | base | max \\|Δ\\| stored `llamacpp_logits` | rounding emulated |
|---|---|---|---|---|
{delta_rows}

## Files

| file | bytes |
|---|---|
{file_rows}

Total {total} bytes (plus this README).
"""
    README.write_text(text)


if __name__ == "__main__":
    main()
