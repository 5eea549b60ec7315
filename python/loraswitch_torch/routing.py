"""Routers and the mixture of experts: the math of DESIGN.md ("Training math") written once.

Shape letters: T tokens (any leading dims ...), I a projection's input size, O its output size, N experts, k chosen,
r rank. Router logits z = u Rᵀ in float32, p = softmax(z) over all N, S = the top k of p (a stable sort: ties go to
the lower expert index, as in `loraswitch`; the choice is a constant), gates g = p on S renormalized to sum 1
(= softmax of z over S; gradients flow through it), 0 outside S.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Decision:
    """One router's decision for a batch of tokens, kept for the loss (aux and z-loss need z, p and the choice)."""
    logits: torch.Tensor    # z [..., N] float32
    probs: torch.Tensor     # p [..., N] float32
    chosen: torch.Tensor    # [..., N] float32, 1 on S (constant)
    gates: torch.Tensor     # [..., N] float32, the renormalized gates on S, 0 elsewhere
    top_k: int

    @property
    def experts(self) -> torch.Tensor:
        """[..., k] the chosen experts by decreasing probability (ties: lower index first)."""
        return torch.sort(self.probs.detach(), dim=-1, descending=True, stable=True).indices[..., :self.top_k]


def route(u: torch.Tensor, weight: torch.Tensor, top_k: int) -> Decision:
    """Routes every row of u [..., I] with a router weight [N, I]."""
    z = u.float() @ weight.float().t()                                    # [..., N]
    p = torch.softmax(z, dim=-1)
    order = torch.sort(p.detach(), dim=-1, descending=True, stable=True).indices
    chosen = torch.zeros_like(p).scatter_(-1, order[..., :top_k], 1.0)   # [..., N]
    kept = p * chosen
    return Decision(z, p, chosen, kept / kept.sum(-1, keepdim=True), top_k)


def expert_mixture(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Σ_e weights[..., e] · B_e A_e x over ALL N experts, dense: x [..., I], A [N, r, I], B [N, O, r],
    weights [..., N] (gate × scale, 0 for unchosen experts) → [..., O] in A's dtype.

    Dense on purpose: every expert's A and B is in the autograd graph every step (an unchosen expert gets an exactly
    zero gradient, not None), so DistributedDataParallel needs no find_unused_parameters and ZeRO-3 gathers the same
    parameters on every rank. It costs N·r instead of k·r columns in the adapter's two thin matmuls."""
    n, r, i = a.shape
    h = F.linear(x.to(a.dtype), a.reshape(n * r, i))                          # [..., N·r]
    h = (h.unflatten(-1, (n, r)) * weights.to(a.dtype).unsqueeze(-1)).flatten(-2)
    return F.linear(h, b.permute(1, 0, 2).reshape(b.shape[1], n * r))        # [..., O]


class RoutingState:
    """Shared by the modules of one attached adapter during a forward pass: the token router's decision (token
    routing: made once per token at layer `router_layer`, read by every adapted projection) and every router's
    decision by its tensor name, for the loss. Cleared at the start of each forward of the model."""

    def __init__(self):
        self.token: Decision | None = None
        self.decisions: dict[str, Decision] = {}
        self.attention_mask: torch.Tensor | None = None   # the forward's [B, L] mask, when it was given one

    def clear(self, attention_mask: torch.Tensor | None = None) -> None:
        self.token = None
        self.decisions = {}
        self.attention_mask = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
