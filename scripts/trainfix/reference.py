"""The reference: an explicit llama / qwen2 forward (float64 or float32, no transformers code on the path, so every
operation runs in the chosen dtype) with LoRA / MoE-LoRA projections, and the training loss of one step."""

from __future__ import annotations

from trainfix.common import *  # noqa: F401,F403


class Routers:
    """What the loss needs from every router over one step: per router name, the list of
    (logits z [T, N], probabilities p [T, N], chosen mask [T, N] (constant)) of each example."""

    def __init__(self):
        self.seen: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
        self.gaps: list[float] = []
        self.decisions: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}   # name -> (ids, gates)


def route(u: torch.Tensor, router: torch.Tensor, k: int, name: str, routers: Routers) -> torch.Tensor:
    """Gates [T, N] for inputs u [T, in]: z = u R^T, p = softmax(z) over all N (in u's dtype), S = the
    top k of p (a stable sort: ties go to the lower expert index; no gradient through the choice),
    gates = p on S renormalized to sum 1 (= softmax of z over S; gradients flow), 0 outside S."""
    z = u @ router.T
    p = torch.softmax(z, dim=-1)
    order = torch.sort(p.detach(), dim=-1, descending=True, stable=True).indices
    ids = order[:, :k]
    mask = torch.zeros_like(p, dtype=p.dtype).scatter(1, ids, 1.0)
    kept = p * mask
    gates = kept / kept.sum(-1, keepdim=True)
    top = p.detach().gather(1, order[:, :min(k + 1, p.shape[1])])
    if top.shape[1] > 1:
        routers.gaps.append(float((top[:, :-1] - top[:, 1:]).min()))
    routers.seen.setdefault(name, []).append((z, p, mask))
    routers.decisions.setdefault(name, []).append((ids, gates.detach().gather(1, ids)))
    return gates


def rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """HF's rotate-half rope on x [heads, T, d]; angles computed in float64."""
    d, t = x.shape[-1], x.shape[-2]
    inv = 1.0 / theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    ang = torch.arange(t, dtype=torch.float64)[:, None] * inv[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    half = d // 2
    rot = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rot * sin


def project(x, base: Base, path: str, ad: Adapter | None, params, gates_token, routers: Routers):
    """y = W x (+ bias) + sum over the chosen experts e of g_e * scale * B_e A_e x."""
    y = x @ base.w[f"{path}.weight"].T
    if f"{path}.bias" in base.w:
        y = y + base.w[f"{path}.bias"]
    if ad is None or path not in ad.sites:
        return y
    scale, a_names, b_names, router = ad.sites[path]
    if ad.routing is None:
        return y + scale * (x @ params[a_names[0]].T) @ params[b_names[0]].T
    gates = route(x, params[router], ad.k, router, routers) if ad.routing == "layer" else gates_token
    for e in range(ad.n):   # unchosen experts have gate exactly 0: their terms (and gradients) vanish
        y = y + (gates[:, e:e + 1] * scale) * ((x @ params[a_names[e]].T) @ params[b_names[e]].T)
    return y


def forward(base: Base, ad: Adapter | None, params: dict | None, ids: list[int], routers: Routers) -> torch.Tensor:
    """Logits [T, vocab] of one causal pass over one sequence (batch 1, no padding)."""
    w = base.w
    h = w["model.embed_tokens.weight"][torch.tensor(ids)]
    t = h.shape[0]
    causal = torch.full((t, t), float("-inf"), dtype=h.dtype).triu(1)
    group = base.heads // base.kv_heads
    gates_token = None
    for l in range(base.layers):
        pre = f"model.layers.{l}"
        x = rms_norm(h, w[f"{pre}.input_layernorm.weight"], base.eps)
        if ad is not None and ad.routing == "token" and l == ad.router_layer:
            gates_token = route(x, params["base_model.model.router.weight"], ad.k,
                                "base_model.model.router.weight", routers)
        proj = lambda m, v: project(v, base, module_path(l, m), ad, params, gates_token, routers)
        q = proj("q_proj", x).view(t, base.heads, base.head_dim).transpose(0, 1)
        k = proj("k_proj", x).view(t, base.kv_heads, base.head_dim).transpose(0, 1)
        v = proj("v_proj", x).view(t, base.kv_heads, base.head_dim).transpose(0, 1)
        q, k = rope(q, base.theta), rope(k, base.theta)
        k, v = k.repeat_interleave(group, dim=0), v.repeat_interleave(group, dim=0)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(base.head_dim) + causal, dim=-1)
        o = (att @ v).transpose(0, 1).reshape(t, base.heads * base.head_dim)
        h = h + proj("o_proj", o)
        x = rms_norm(h, w[f"{pre}.post_attention_layernorm.weight"], base.eps)
        m = torch.nn.functional.silu(proj("gate_proj", x)) * proj("up_proj", x)
        h = h + proj("down_proj", m)
    return rms_norm(h, w["model.norm.weight"], base.eps) @ w["lm_head.weight"].T


def ce_sum(logits: torch.Tensor, labels: list[int]) -> torch.Tensor:
    """Sum of the cross-entropies of the labelled tokens: logits[i] against labels[i + 1]."""
    lab = torch.tensor(labels[1:])
    keep = lab != -100
    logp = torch.log_softmax(logits[:-1], dim=-1)
    return -logp[keep].gather(1, lab[keep][:, None]).sum()


def router_terms(routers: Routers, k: int, f_override: dict | None = None):
    """(aux, z): means over the routers of N * sum_i f_i P_i and of mean_t logsumexp(z_t)^2, over
    every token of the step. f_i = share of the k*T chosen slots that went to expert i (constant),
    P_i = mean_t p_{t,i}. f_override: f per router from elsewhere (the micro-batch check)."""
    auxes, zs, fs = [], [], {}
    for name in sorted(routers.seen):
        z = torch.cat([s[0] for s in routers.seen[name]])
        p = torch.cat([s[1] for s in routers.seen[name]])
        mask = torch.cat([s[2] for s in routers.seen[name]])
        t, n = p.shape
        f = (mask.sum(0) / (k * t)).detach() if f_override is None else f_override[name]
        fs[name] = f
        auxes.append(n * (f * p.mean(0)).sum())
        zs.append(torch.logsumexp(z, dim=-1).pow(2).mean())
    if not auxes:
        zero = torch.zeros((), dtype=torch.float64)
        return zero, zero, fs
    return torch.stack(auxes).mean(), torch.stack(zs).mean(), fs


def step_loss(base: Base, ad: Adapter | None, params: dict | None, examples: list[dict],
              aux_coef: float, z_coef: float) -> dict:
    """The loss of one optimizer step: every example run separately (batch 1); returns the total
    `loss` and its parts `ce` (sum / labelled), `aux`, `z` (before their coefficients), the
    labelled count and the Routers record."""
    routers = Routers()
    ce = sum(ce_sum(forward(base, ad, params, ex["input_ids"], routers), ex["labels"]) for ex in examples)
    n = labelled_count(examples)
    aux, z, fs = router_terms(routers, ad.k if ad else 1)
    ce = ce / n
    loss = ce + aux_coef * aux + z_coef * z
    return dict(loss=loss, ce=ce, aux=aux, z=z, labelled=n, routers=routers, f=fs)


def gradients(base: Base, ad: Adapter, examples: list[dict], aux_coef: float, z_coef: float,
              dtype: torch.dtype = torch.float64) -> tuple[dict, dict[str, torch.Tensor]]:
    """The step's loss parts and d(loss)/d(every adapter tensor), computed in `dtype`."""
    params = ad.leaves(dtype)
    out = step_loss(base.cast(dtype), ad, params, examples, aux_coef, z_coef)
    names = sorted(params)
    grads = torch.autograd.grad(out["loss"], [params[k] for k in names], allow_unused=True)
    out.update({k: out[k].detach() for k in ("loss", "ce", "aux", "z")})
    return out, {k: (torch.zeros_like(params[k]) if g is None else g.detach()) for k, g in zip(names, grads)}
