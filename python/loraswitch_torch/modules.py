"""The modules that replace a model's target nn.Linear (LoRALinear, MoELoRALinear) and the token router.

Every adapted projection is base + adapter delta: y = W x (+ b) + Σ_{e∈S} g_e · s · B_e A_e x, with s the scale of
config.lora_scale. The base Linear stays a child (`base`), frozen, so its weight keeps its place in the model."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .routing import RoutingState, expert_mixture, route


class LoRALinear(nn.Module):
    """A static LoRA: y = base(x) + s · B A x. lora_A [r, I], lora_B [O, r]."""

    def __init__(self, base: nn.Linear, rank: int, scale: float, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.base, self.scale = base, scale
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.zeros(rank, base.in_features, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, dtype=dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        delta = F.linear(F.linear(x.to(self.lora_A.dtype), self.lora_A), self.lora_B)
        return y + (self.scale * delta).to(y.dtype)


class MoELoRALinear(nn.Module):
    """N LoRA experts mixed by gates. lora_A [N, r, I], lora_B [N, O, r]; layer routing adds router [N, I], which
    routes this module's own input; token routing reads the decision the token router left in `state`."""

    def __init__(self, base: nn.Linear, experts: int, rank: int, scale: float, top_k: int, state: RoutingState,
                 router_name: str | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.base, self.scale, self.top_k, self.router_name = base, scale, top_k, router_name
        self._state = [state]   # a list, so that nn.Module does not treat the shared state as a child
        device = base.weight.device
        self.lora_A = nn.Parameter(torch.zeros(experts, rank, base.in_features, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.zeros(experts, base.out_features, rank, dtype=dtype, device=device))
        self.router = (nn.Parameter(torch.zeros(experts, base.in_features, dtype=dtype, device=device))
                       if router_name is not None else None)

    @property
    def state(self) -> RoutingState:
        return self._state[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        if self.router is not None:
            decision = route(x, self.router, self.top_k)
            self.state.decisions[self.router_name] = decision
        else:
            decision = self.state.token
            if decision is None:
                raise RuntimeError("token-routed MoE-LoRA module ran before the token router: the adapted layers must "
                                   "be at or above router_layer, and the model must run whole (not one layer alone)")
        delta = expert_mixture(x, self.lora_A, self.lora_B, decision.gates * self.scale)
        return y + delta.to(y.dtype)


class TokenRouter(nn.Module):
    """The one router of token routing, weight [N, hidden]. It is called from a forward hook on layer L's
    input_layernorm (L = router_layer) with that norm's output — the normalized input of layer L — and leaves its
    decision in `state` for every adapted projection of layers ≥ L. Registered as a child of decoder layer L, so
    FSDP / ZeRO-3 gather it with that layer and DDP sees it."""

    NAME = "base_model.model.router.weight"

    def __init__(self, experts: int, hidden: int, top_k: int, state: RoutingState, dtype: torch.dtype = torch.float32,
                 device: torch.device | None = None):
        super().__init__()
        self.top_k = top_k
        self._state = [state]
        self.weight = nn.Parameter(torch.zeros(experts, hidden, dtype=dtype, device=device))

    def forward(self, u: torch.Tensor) -> None:
        state = self._state[0]
        state.token = route(u, self.weight, self.top_k)
        state.decisions[self.NAME] = state.token

    def hook(self, module: nn.Module, args, output: torch.Tensor) -> None:
        """Forward hook for the input_layernorm: routes its output (called through __call__, so ZeRO-3's and FSDP's
        module hooks gather the weight first)."""
        self(output)
