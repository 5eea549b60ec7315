"""MoE-LoRA fixtures in our format, with logits from a small PyTorch reference implementation."""

from __future__ import annotations

from adapterfix.common import *  # noqa: F401,F403  (imports, paths and helpers shared by every part)

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
    for layer in adapted_layers(cfg, model_cfg):
        for m in cfg["target_modules"]:
            fin, fout = dims[m]
            pre = f"base_model.model.{module_path(layer, m)}"
            if cfg["routing"] == "layer":
                t[f"{pre}.router.weight"] = router_std * torch.randn(n, fin, generator=gen) / math.sqrt(fin)
            for e in range(n):
                t[f"{pre}.lora_A.{e}.weight"] = torch.randn(r, fin, generator=gen) / math.sqrt(fin)
                t[f"{pre}.lora_B.{e}.weight"] = b_std * torch.randn(fout, r, generator=gen)
    return {k: v.numpy().astype(np.float32) for k, v in t.items()}


def adapted_layers(cfg: dict, model_cfg) -> list[int]:
    """The layers an adapter changes: `layers_to_transform` (PEFT's key) or all of them."""
    layers = cfg.get("layers_to_transform") or range(model_cfg.num_hidden_layers)
    return sorted(layers)


def attach_moe(model: torch.nn.Module, cfg: dict, tensors: dict[str, np.ndarray]) -> RoutingState:
    """Wrap the target Linears of an HF llama in MoELoRALinear, in place. For token routing, a
    forward hook on layer L's input_layernorm (L = `router_layer`, default 0) routes its output
    (the normalized input of layer L, the vector that feeds layer L's q/k/v) once per token, before
    any adapted module runs (adapted layers are >= L)."""
    state = RoutingState()
    n, k, scale = cfg["num_experts"], cfg["top_k"], cfg["lora_alpha"] / cfg["r"]
    T = lambda name: torch.from_numpy(tensors[name])
    router_layer = cfg.get("router_layer", 0)
    assert min(adapted_layers(cfg, model.config)) >= router_layer, "adapted layers must be >= router_layer"
    for layer in adapted_layers(cfg, model.config):
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
        model.model.layers[router_layer].input_layernorm.register_forward_hook(hook)
    return state


def merged_decode_logits(base: torch.nn.Module, cfg: dict, tensors: dict[str, np.ndarray],
                         tokens: list[int]) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Independent second reference for TOKEN routing (LoRA-Switch's own algorithm): compute each
    token's decision directly from RMSNorm(h) with layer L's norm, h = the embedding for L = 0
    (`router_layer`), else the base model's residual stream entering layer L (the layers below L
    are not adapted); then decode token by token with a KV cache, before each token rebuilding every
    adapted weight from the pristine base as W + sum_j g_j * scale * B_j @ A_j.
    Returns logits [T, vocab], ids [T, k], gates [T, k]."""
    model = copy.deepcopy(base)
    n, k, scale = cfg["num_experts"], cfg["top_k"], cfg["lora_alpha"] / cfg["r"]
    router_layer = cfg.get("router_layer", 0)
    norm = model.model.layers[router_layer].input_layernorm
    if router_layer == 0:
        h = model.model.embed_tokens.weight.detach()[torch.tensor(tokens)]
    else:
        with torch.no_grad():
            h = model(input_ids=torch.tensor([tokens]), output_hidden_states=True,
                      use_cache=False).hidden_states[router_layer][0]
    x0 = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon) * norm.weight.detach()
    ids, gates = route(x0, torch.from_numpy(tensors["base_model.model.router.weight"]), k, [])
    pristine = {module_path(l, m): get_module(model, module_path(l, m)).weight.detach().clone()
                for l in adapted_layers(cfg, model.config) for m in cfg["target_modules"]}
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


def moe_config(routing: str, n: int, k: int, targets: list[str], base_rel: str,
               router_layer: int | None = None, layers: list[int] | None = None) -> dict:
    """Our MoE-LoRA adapter_config.json. `layers_to_transform` (PEFT's key) and `router_layer`
    (token routing: the layer whose normalized input the router reads; default 0) are written
    only when given."""
    cfg = {"peft_type": "MOE_LORA", "routing": routing, "num_experts": n, "top_k": k, "r": 4,
           "lora_alpha": 8, "target_modules": list(targets)}
    if layers is not None:
        cfg["layers_to_transform"] = list(layers)
    if router_layer is not None:
        cfg["router_layer"] = router_layer
    cfg.update({"router_aux_loss_coef": 0.01, "base_model_name_or_path": base_rel})
    return cfg


def write_moe_folder(name: str, cfg: dict, tensors: dict[str, np.ndarray], root: Path = ADAPTERS) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    mf.write_safetensors(folder / "adapter_model.safetensors", tensors, {"format": "pt"})
    return folder


MOE_SOURCE = (f"reference MoE-LoRA in scripts/make_adapter_fixtures.py (MoELoRALinear wrapping the "
              f"Linears of transformers {transformers.__version__} LlamaForCausalLM, torch "
              f"{torch.__version__}, float32 eager, one forward pass over all tokens)")


def make_one_moe(name: str, base: torch.nn.Module, base_rel: str, tokens: list[int], routing: str,
                 k: int, targets: list[str], seed: int, tests: str, router_layer: int | None = None,
                 layers: list[int] | None = None) -> tuple[dict, dict]:
    base_logits = mf.forward_logits(base, tokens)
    n_layers = len(layers) if layers is not None else base.config.num_hidden_layers
    for attempt in range(50):   # first seed whose decisions have no near-ties (deterministic)
        s = seed + 1000 * attempt
        cfg = moe_config(routing, 4, k, targets, base_rel, router_layer, layers)
        tensors = moe_weights(cfg, base.config, s, b_std=MOE_B_STD, router_std=2.0)
        model = copy.deepcopy(base)
        state = attach_moe(model, cfg, tensors)
        logits = mf.forward_logits(model, tokens)
        if routing == "token":
            ids, gates = state.ids[0], state.gates[0]
        else:
            ids, gates = state.log[module_path(adapted_layers(cfg, base.config)[0], "q_proj")]
            ids, gates = ids[0], gates[0]
        top1 = len(set(ids[:, 0].tolist()))
        if min(state.gaps) > TIE_GAP and top1 >= 3:
            break
    else:
        raise AssertionError(f"{name}: no seed without near-ties")
    n_decisions = len(tokens) * (1 if routing == "token" else len(targets) * n_layers)
    assert len(state.gaps) == (1 if routing == "token" else len(targets) * n_layers)
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
    if cfg.get("router_layer"):   # a router that (wrongly) reads layer 0 routes visibly otherwise
        wm = copy.deepcopy(base)
        attach_moe(wm, {k_: v for k_, v in cfg.items() if k_ != "router_layer"}, tensors)
        diff = float(np.abs(mf.forward_logits(wm, tokens) - logits).max())
        assert diff > 0.05, (name, "router_layer", diff)
        extra += f", vs router on layer 0 {diff:.2f}"
    if routing == "token":
        ref, ids2, gates2 = merged_decode_logits(base, cfg, tensors, tokens)
        assert torch.equal(ids2, ids) and torch.allclose(gates2, gates, atol=1e-6), name
        err = float(np.abs(ref - logits).max())
        assert err < 1e-4, (name, "merged decode", err)
        extra += f", merged-decode check {err:.1e}"
    desc = effect(logits, base_logits, name) + f"; vs dense mixture {routing_effect:.2f}"
    SUMMARY_EXTRA[name] = extra
    write_moe_folder(name, cfg, tensors)
    src = MOE_SOURCE + (f"; token routing from layer {cfg.get('router_layer', 0)}'s input_layernorm output"
                        if routing == "token"
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
    make_one_moe("moe-token-router1", gqa, "models/llama-gqa", TOKENS_128, "token", 2, ALL7, 206,
                 "token routing with `router_layer` 1: the one router reads layer 1's normalized input "
                 "(layer 1's input_layernorm of the residual stream entering layer 1); "
                 "`layers_to_transform` [1] (adapted layers must be >= router_layer), N 4, top-2, "
                 "all seven projections of layer 1", router_layer=1, layers=[1])

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
