"""PEFT LoRA fixtures: random LoRAs on the tiny models, saved as PEFT saves them, with PEFT's logits."""

from __future__ import annotations

from adapterfix.common import *  # noqa: F401,F403  (imports, paths and helpers shared by every part)

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


def save_peft(model: PeftModel, name: str, base_rel: str, root: Path = ADAPTERS) -> Path:
    """save_pretrained into <root>/<name>/ (root: adapters/), keeping adapter_config.json and
    adapter_model.safetensors (PEFT's generated model-card README.md is dropped).

    Two edits to adapter_config.json, both harmless to PEFT (it reloads the folder, checked):
    * base_model_name_or_path: PEFT stores the absolute path of the base model it was given;
      we store the fixture path relative to Tests/Fixtures (e.g. "models/llama-gqa");
    * target_modules: PEFT keeps them as a Python set and writes list(set), whose order
      depends on PYTHONHASHSEED; we sort the list so the file is reproducible.
    """
    folder = root / name
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
