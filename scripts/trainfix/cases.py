"""The cases: which base and adapter, which coefficients; the two adapters made for these fixtures; one fixture
file per case."""

from __future__ import annotations

from trainfix.checks import *  # noqa: F401,F403
from adapterfix.moe import moe_config, moe_weights, write_moe_folder
from adapterfix.peft_lora import check_reload, make_peft, save_peft

# name: (base fixture, adapter folder relative to Tests/Fixtures, aux_coef, z_coef, examples seed)
CASES = {
    "lora": ("models/llama-gqa", "adapters/lora-basic", 0.01, 0.001, 1100),
    "lora-rslora-q4": ("models/llama-q4_1.gguf", "training/adapters/lora-rslora-q4", 0.01, 0.0, 1200),
    "moe-token-top2": ("models/llama-gqa", "adapters/moe-token-top2", 0.01, 0.001, 1300),
    "moe-token-router1": ("models/llama-gqa", "adapters/moe-token-router1", 0.01, 0.0, 1400),
    "moe-layer-top2": ("models/llama-gqa", "adapters/moe-layer-top2", 0.01, 0.001, 1500),
    "moe-token-top1": ("models/llama-gqa", "adapters/moe-token-top1", 0.01, 0.001, 1600),
    "moe-token-qwen2": ("models/qwen2", "training/adapters/moe-token-qwen2", 0.01, 0.0, 1700),
}
WHAT = {
    "lora": "static PEFT LoRA r 4, alpha 8 (scale 2), all 7 projections of both layers; no routers, so aux = z = 0 "
            "although both coefficients are set",
    "lora-rslora-q4": "PEFT LoRA with use_rslora (scale 8/sqrt(4) = 4), r 4, all 7 projections, on the Q4_1 GGUF "
                      "model's dequantized weights (QLoRA style), HF orientation",
    "moe-token-top2": "token routing from layer 0, N 4, top-2, all 7 projections, z-loss on",
    "moe-token-router1": "token routing with router_layer 1, layers_to_transform [1], N 4, top-2, z-loss off",
    "moe-layer-top2": "layer routing: a router per adapted projection (q/v/up/down of both layers: 8 routers), "
                      "N 4, top-2, z-loss on",
    "moe-token-top1": "token routing, top-1: gates are 1, so the router's gradient comes from aux and z only",
    "moe-token-qwen2": "token routing, N 4, top-2, all 7 projections on qwen2 (q/k/v biases, tied embeddings)",
}
NEW_ADAPTER_SEEDS = {"lora-rslora-q4": 401, "moe-token-qwen2": 402}
QWEN2_B_STD = 0.02   # qwen2 (tied embeddings) reacts more strongly, as for lora-all-linear-qwen2
SUMMARY_TRAIN: list[dict] = []


def load_base(rel: str) -> torch.nn.Module:
    name = Path(rel).name
    return load_gguf_base(name) if name.endswith(".gguf") else load_hf_base(name)


def make_new_adapter(name: str, hf_base: torch.nn.Module, base_rel: str) -> str:
    """The adapters of cases that no inference fixture has; returns what was checked."""
    base_logits = base_expected(base_rel)
    tokens = TOKENS_256 if base_rel.endswith(".gguf") else TOKENS_128
    seed = NEW_ADAPTER_SEEDS[name]
    if name == "lora-rslora-q4":
        cfg = LoraConfig(r=4, lora_alpha=8, use_rslora=True, target_modules=ALL7, lora_dropout=0.0, bias="none")
        pm = make_peft(hf_base, cfg, seed=seed, b_std=B_STD["gguf-lora"])
        logits = mf.forward_logits(pm, tokens)
        folder = save_peft(pm, name, base_rel, root=TRAIN_ADAPTERS)
        check_reload(hf_base, folder, tokens, logits)
        plain = copy.deepcopy(pm)   # the same LoRA read without use_rslora (scale 2 instead of 4)
        for mod in plain.modules():
            if isinstance(mod, LoraLayer):
                mod.scaling["default"] = 8 / 4
        misread = float(np.abs(mf.forward_logits(plain, tokens) - logits).max())
        assert misread > 0.05, misread
        extra = f"; vs use_rslora ignored {misread:.2f}"
    else:
        cfg = moe_config("token", 4, 2, ALL7, base_rel)
        tensors = moe_weights(cfg, hf_base.config, seed, b_std=QWEN2_B_STD, router_std=2.0)
        folder = write_moe_folder(name, cfg, tensors, root=TRAIN_ADAPTERS)
        model = copy.deepcopy(hf_base)
        attach_moe(model, cfg, tensors)
        logits = mf.forward_logits(model, tokens)
        extra = ""
    err = check_logits(Base(hf_base), Adapter(folder, Base(hf_base)), tokens, logits, name)
    return (f"new adapter (seed {seed}): {effect(logits, base_logits, name)} against the base{extra}; "
            f"reference logits = {'PEFT' if 'lora' in name else 'moe.py'}'s within {err:.1e}")


def pick_examples(base: Base, ad: Adapter, vocab: int, seed: int) -> tuple[list[dict], int, float]:
    """The first examples seed (seed, seed + 1000, ...) whose routing decisions have no near-ties."""
    for attempt in range(200):
        s = seed + 1000 * attempt
        examples = make_examples(vocab, s)
        if ad.routing is None:
            return examples, s, float("nan")
        routers = Routers()
        with torch.no_grad():
            params = ad.leaves(torch.float64)
            for ex in examples:
                forward(base.cast(torch.float64), ad, params, ex["input_ids"], routers)
        if min(routers.gaps) > TRAIN_TIE_GAP:
            return examples, s, min(routers.gaps)
    raise AssertionError(f"{ad.folder}: no examples without near-ties")


def run_case(name: str) -> None:
    base_rel, adapter_rel, aux_coef, z_coef, seed = CASES[name]
    hf_base = load_base(base_rel)
    base = Base(hf_base)
    notes = []
    if adapter_rel.startswith("training/"):
        notes.append(make_new_adapter(name, hf_base, base_rel))
    ad = Adapter(FIXTURES / adapter_rel, base)
    expected = FIXTURES / "adapters" / "expected" / f"{Path(adapter_rel).name}.safetensors"
    if expected.exists():
        tokens = TOKENS_256 if base_rel.endswith(".gguf") else TOKENS_128
        notes.append(check_expected(base, ad, expected, tokens))
    examples, used_seed, gap = pick_examples(base, ad, base.vocab, seed)

    full, grads = gradients(base, ad, examples, aux_coef, z_coef)
    ce_full, ce_grads = gradients(base, ad, examples, 0.0, 0.0)
    notes.append(check_against_peft(hf_base, ad, examples, ce_grads) if ad.routing is None
                 else check_against_moe_py(hf_base, ad, examples, ce_grads))
    fd_err, fd_lines = finite_differences(base, ad, examples, aux_coef, z_coef, grads, seed)
    mb_err = micro_batches(base, ad, examples, aux_coef, z_coef, full, grads)
    f32, grads32 = gradients(base, ad, examples, aux_coef, z_coef, dtype=torch.float32)
    g32 = max_rel(grads32, grads)
    loss32 = abs(float(f32["loss"]) - float(full["loss"])) / abs(float(full["loss"]))
    if ad.routing and ad.k == 1:   # gates are 1: the CE gives the router(s) nothing (to rounding)
        for r in ad.router_names():
            assert float(ce_grads[r].abs().max()) < 1e-12 * float(grads[r].abs().max()), r
        notes.append("top-1: the CE gradient of the router is 0 (< 1e-12 of the stored one)")
    # how far the stored gradients move when a term is left out (what a tolerance must not hide)
    without = {}
    if ad.routing:
        without["aux and z"] = max_rel(ce_grads, grads)
        if z_coef:
            without["z"] = max_rel(gradients(base, ad, examples, aux_coef, 0.0)[1], grads)

    tensors = {k: np.array([float(full[k])]) for k in ("loss", "ce", "aux", "z")}
    tensors["labelled"] = np.array([float(full["labelled"])])
    tensors.update({f"grad.{k}": g.numpy() for k, g in grads.items()})
    metadata = {"base": base_rel, "adapter": adapter_rel,
                "examples": json.dumps(examples, separators=(",", ":")),
                "aux_coef": repr(aux_coef), "z_coef": repr(z_coef),
                "source": f"scripts/make_training_fixtures.py: explicit llama forward in float64 "
                          f"(torch {torch.__version__}), gradients by autograd"}
    path = TRAINING / f"{name}.safetensors"
    mf.write_safetensors(path, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, metadata)
    with safe_open(str(path), "np") as f:
        assert f.metadata() == metadata and set(f.keys()) == set(tensors)

    zero = sum(1 for g in grads.values() if float(g.abs().max()) == 0.0)
    row = dict(name=name, base=base_rel, adapter=adapter_rel, aux_coef=aux_coef, z_coef=z_coef, seed=used_seed,
               gap=gap, what=WHAT[name], loss=float(full["loss"]), ce=float(full["ce"]), aux=float(full["aux"]),
               z=float(full["z"]), labelled=full["labelled"], routers=len(ad.router_names()),
               tensors=len(grads), zero=zero, fd=fd_err, fd_lines=fd_lines, mb=mb_err, g32=g32, loss32=loss32,
               notes=notes, without=without)
    SUMMARY_TRAIN.append(row)
    print(f"{name:18s} loss {row['loss']:.6f} = ce {row['ce']:.6f} + {aux_coef} * aux {row['aux']:.6f} + "
          f"{z_coef} * z {row['z']:.6f}; labelled {row['labelled']}; fd {fd_err:.1e}; micro-batches "
          f"{mb_err:.1e}; fp32 vs fp64 grads {g32:.1e} (loss {loss32:.1e})"
          + "".join(f"; without {k} {v:.1e}" for k, v in without.items()), flush=True)
    for n in notes:
        print(f"{'':18s} {n}")
