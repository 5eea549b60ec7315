"""Checks of the reference (dev-time; only their summary goes into the README): logits against the inference
fixtures, gradients against PEFT / the MoE reference of scripts/adapterfix, central finite differences, float32 vs
float64, and the split of a step into micro-batches."""

from __future__ import annotations

from trainfix.reference import *  # noqa: F401,F403
from adapterfix.moe import MoELoRALinear, attach_moe
from adapterfix.peft_lora import reload_peft

LOGIT_TOL = 2e-5        # float64 reference vs the float32 transformers / PEFT / moe.py logits
CROSS_GRAD_TOL = 1e-4   # ... and their (float32) gradients, relative to the tensor's largest entry


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (0 when both vanish)."""
    scale = float(b.abs().max())
    d = float((a.double() - b.double()).abs().max())
    return d / scale if scale > 0 else d


def max_rel(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> float:
    assert got.keys() == want.keys(), sorted(set(got) ^ set(want))
    return max(rel_diff(got[k], want[k]) for k in want)


def reference_logits(base: Base, ad: Adapter | None, tokens: list[int]) -> tuple[np.ndarray, Routers]:
    routers = Routers()
    with torch.no_grad():
        params = None if ad is None else ad.leaves(torch.float64)
        logits = forward(base.cast(torch.float64), ad, params, tokens, routers)
    return logits.numpy(), routers


def check_logits(base: Base, ad: Adapter | None, tokens: list[int], want: np.ndarray, what: str) -> float:
    got, _ = reference_logits(base, ad, tokens)
    err = float(np.abs(got - want).max())
    assert err <= LOGIT_TOL, (what, err)
    return err


def check_expected(base: Base, ad: Adapter, expected: Path, tokens: list[int]) -> str:
    """The inference fixture's expected logits (and, for MoE, its routing and gates)."""
    exp = load_file(str(expected))
    err = check_logits(base, ad, tokens, exp["logits"], expected.name)
    if ad.routing:
        _, routers = reference_logits(base, ad, tokens)
        key = ad.router_names()[0] if ad.routing == "token" else \
            f"base_model.model.{module_path(ad.layers[0], 'q_proj')}.router.weight"
        ids, gates = routers.decisions[key][0]
        assert np.array_equal(ids.numpy(), exp["routing"]), expected.name
        assert np.abs(gates.numpy() - exp["gates"]).max() < 1e-6, expected.name
    return f"logits of {expected.relative_to(FIXTURES)} within {err:.1e}"


def torch_ce_loss(model: torch.nn.Module, examples: list[dict]) -> torch.Tensor:
    """CE part of the step loss through a transformers model (its float32 math)."""
    total = 0
    for ex in examples:
        logits = model(input_ids=torch.tensor([ex["input_ids"]]), use_cache=False).logits[0]
        total = total + ce_sum(logits.double(), ex["labels"])
    return total / labelled_count(examples)


def check_against_peft(hf_base: torch.nn.Module, ad: Adapter, examples: list[dict], ce_grads) -> str:
    """Static LoRA: PEFT (float32, transformers' forward) gives the same CE gradients."""
    pm = reload_peft(hf_base, ad.folder)
    params = {n.replace(".default", ""): p.requires_grad_(True) for n, p in pm.named_parameters() if "lora_" in n}
    loss = torch_ce_loss(pm, examples)
    names = sorted(params)
    grads = dict(zip(names, torch.autograd.grad(loss, [params[n] for n in names])))
    err = max_rel(grads, ce_grads)
    assert err < CROSS_GRAD_TOL, ("PEFT gradients", err)
    return f"PEFT {peft.__version__} float32 CE gradients within {err:.1e} (relative)"


def check_against_moe_py(hf_base: torch.nn.Module, ad: Adapter, examples: list[dict], ce_grads) -> str:
    """MoE-LoRA: the inference reference of scripts/adapterfix/moe.py (MoELoRALinear, float32,
    transformers' forward, gates through torch.topk) gives the same CE gradients for every expert's
    A and B and every per-module router (the token router sits in a hook: checked by finite
    differences instead)."""
    model = copy.deepcopy(hf_base)
    arrays = {k: v.numpy().astype(np.float32) for k, v in ad.tensors.items()}
    attach_moe(model, ad.cfg, arrays)
    leaves = {}
    for mod in model.modules():
        if isinstance(mod, MoELoRALinear):
            mod.A = leaves[(mod.name, "A")] = mod.A.clone().requires_grad_(True)
            mod.B = leaves[(mod.name, "B")] = mod.B.clone().requires_grad_(True)
            if mod.router is not None:
                mod.router = leaves[(mod.name, "router")] = mod.router.clone().requires_grad_(True)
    with warnings.catch_warnings():   # moe.py's route() takes float() of a tensor that now requires grad
        warnings.simplefilter("ignore", UserWarning)
        loss = torch_ce_loss(model, examples)
    keys = sorted(leaves)
    grads = dict(zip(keys, torch.autograd.grad(loss, [leaves[k] for k in keys])))
    mine, theirs = {}, {}
    for (path, kind), g in grads.items():
        scale, a, b, router = ad.sites[path]
        names = {"A": a, "B": b, "router": [router]}[kind]
        for e, name in enumerate(names):
            mine[name], theirs[name] = ce_grads[name], g if kind == "router" else g[e]
    err = max_rel(theirs, mine)
    assert err < CROSS_GRAD_TOL, ("moe.py gradients", err)
    return f"scripts/adapterfix/moe.py float32 CE gradients of {len(mine)} tensors within {err:.1e} (relative)"


def finite_differences(base: Base, ad: Adapter, examples: list[dict], aux_coef: float, z_coef: float,
                       grads: dict[str, torch.Tensor], seed: int) -> tuple[float, list[str]]:
    """Central differences (float64, step FD_STEP) at FD_POINTS coordinates: every router tensor
    first, then random lora_A / lora_B tensors, each at its largest-gradient entry or a random
    one (seeded). Returns the largest |fd - autograd| / max(|autograd|, 1e-6) and a line each."""
    rng = np.random.default_rng(seed)
    b64 = base.cast(torch.float64)
    names = sorted(grads)
    picks = ad.router_names()[:2]
    while len(picks) < FD_POINTS:
        picks.append(names[int(rng.integers(len(names)))])
    worst, lines = 0.0, []
    for i, name in enumerate(picks):
        g = grads[name]
        idx = int(g.abs().argmax()) if i % 2 == 0 else int(rng.integers(g.numel()))
        vals = []
        for sign in (1, -1):
            params = {k: v.detach().clone() for k, v in ad.leaves(torch.float64).items()}
            params[name].view(-1)[idx] += sign * FD_STEP
            with torch.no_grad():
                vals.append(float(step_loss(b64, ad, params, examples, aux_coef, z_coef)["loss"]))
        fd = (vals[0] - vals[1]) / (2 * FD_STEP)
        auto = float(g.view(-1)[idx])
        err = abs(fd - auto) / max(abs(auto), 1e-6)
        worst = max(worst, err)
        lines.append(f"{name}[{idx}]: autograd {auto:+.6e}, central difference {fd:+.6e}")
    assert worst < 1e-5, ("finite differences", worst, lines)
    return worst, lines


def micro_batches(base: Base, ad: Adapter, examples: list[dict], aux_coef: float, z_coef: float,
                  full: dict, grads: dict[str, torch.Tensor]) -> float:
    """The step split into two micro-batches ([0, 1] and [2]): each contributes its CE sum / the
    step's labelled count, and per router N * sum_i f_i * (sum of its p_{t,i}) / T and
    (sum of its logsumexp(z_t)^2) / T (T = the step's tokens, f = the step's constant shares),
    averaged over the routers. Losses and gradients add up to the whole step's."""
    b64 = base.cast(torch.float64)
    n_lab = labelled_count(examples)
    t_all = sum(len(ex["input_ids"]) for ex in examples)
    total_loss, acc = 0.0, {k: torch.zeros_like(v) for k, v in grads.items()}
    for part in (examples[:2], examples[2:]):
        params = ad.leaves(torch.float64)
        routers = Routers()
        ce = sum(ce_sum(forward(b64, ad, params, ex["input_ids"], routers), ex["labels"]) for ex in part)
        aux, zl = [], []
        for name in sorted(routers.seen):
            z = torch.cat([s[0] for s in routers.seen[name]])
            p = torch.cat([s[1] for s in routers.seen[name]])
            aux.append(p.shape[1] * (full["f"][name] * p.sum(0)).sum() / t_all)
            zl.append(torch.logsumexp(z, dim=-1).pow(2).sum() / t_all)
        loss = ce / n_lab
        if aux:
            loss = loss + aux_coef * torch.stack(aux).mean() + z_coef * torch.stack(zl).mean()
        total_loss += float(loss.detach())
        names = sorted(params)
        for k, g in zip(names, torch.autograd.grad(loss, [params[k] for k in names], allow_unused=True)):
            if g is not None:
                acc[k] += g
    err = max(abs(total_loss - float(full["loss"])), max_rel(acc, grads))
    assert err < 1e-12, ("micro-batches", err)
    return err
