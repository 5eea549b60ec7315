"""The serving path of docs/scale-out.md, as a small reference: token routing applied as k gated passes of Punica's
shrink / expand (what vLLM's LoRA kernels do for one LoRA per token), and how tensor parallelism shards it.

Shape letters: T tokens, I input size, O output size, N experts, k chosen, r rank. A token's experts
experts[t] = (e_t0 … e_t,k-1) and gates[t] come from the one token router. Pass i treats expert e_ti as token t's
LoRA: shrink h_t = A_{e_ti} x_t [r], scale row t by g_ti · s, expand y_t += B_{e_ti} h_t. Summed over the k passes
this is Σ_i g_ti · s · B_{e_ti} A_{e_ti} x_t: the dense masked sum of routing.expert_mixture, restricted to the k
experts that have non-zero gates.
"""

from __future__ import annotations

import torch


def gated_k_pass(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, experts: torch.Tensor, gates: torch.Tensor,
                 scale: float) -> torch.Tensor:
    """The adapter's delta [T, O] for x [T, I], A [N, r, I], B [N, O, r], experts [T, k] (int64), gates [T, k]."""
    y = x.new_zeros(x.shape[0], b.shape[1])
    for i in range(experts.shape[1]):
        ids = experts[:, i]                                     # token -> "LoRA slot" map of pass i
        h = torch.einsum("ti,tri->tr", x, a[ids])               # shrink
        h = h * (gates[:, i] * scale).unsqueeze(-1)             # row t of pass i scaled by its gate
        y = y + torch.einsum("tr,tor->to", h, b[ids])           # expand (adds into the output)
    return y


def column_parallel_shards(x, a, b, experts, gates, scale: float, tp: int) -> list[torch.Tensor]:
    """A column-parallel projection (q, k, v, gate, up: the output dimension split over tp ranks): rank j holds all
    of every A (replicated) and rows j·O/tp … (j+1)·O/tp of every B, and computes that slice of the delta from the
    full x. Nothing is communicated: the slices stay sharded, as the base output does. Returns each rank's slice."""
    o = b.shape[1] // tp
    return [gated_k_pass(x, a, b[:, j * o:(j + 1) * o], experts, gates, scale) for j in range(tp)]


def row_parallel_partials(x, a, b, experts, gates, scale: float, tp: int) -> list[torch.Tensor]:
    """A row-parallel projection (o, down: the input dimension split over tp ranks): rank j holds columns
    j·I/tp … (j+1)·I/tp of every A and all of every B (replicated) and its slice of x. Its delta is a partial sum
    ([T, O] each): the layer's own all-reduce, which sums the base's partial outputs, sums these too (no extra
    collective). Returns each rank's partial sum."""
    i = a.shape[2] // tp
    return [gated_k_pass(x[:, j * i:(j + 1) * i], a[:, :, j * i:(j + 1) * i], b, experts, gates, scale)
            for j in range(tp)]
