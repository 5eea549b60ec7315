"""The training loss of `loraswitch train` (DESIGN.md, "Training math"; Tests/Fixtures/training/README.md):

    loss = Σ CE of the step's labelled tokens / their number
         + aux_coef · mean over routers of N · Σ_i f_i P_i
         + z_coef   · mean over routers of mean over tokens of logsumexp(z_t)²

over every token of the step (labelled or not; padding excluded): f_i = the share of the step's k·T chosen slots
that went to expert i (a constant), P_i = the mean probability of expert i. Labels follow Hugging Face's causal-LM
convention (logits at position t are scored against labels[t + 1]; -100 = no loss).

A step split over processes (DDP, FSDP, ZeRO) or micro-batches is exact when every part divides by the step's totals
(labelled tokens, tokens, each router's choice counts): `step_totals(..., group=...)` all-reduces them, and each part's
loss is its share, scaled by the world size because those engines average gradients over ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .routing import Decision


@dataclass
class StepTotals:
    """What the whole step counts: labelled tokens, tokens, and per router how often each expert was chosen."""
    labelled: torch.Tensor              # [] int64
    tokens: torch.Tensor                # [] int64
    counts: dict[str, torch.Tensor]     # router name -> [N] float32
    world_size: int = 1                 # the gradient averaging the loss undoes (1: no distribution)


@dataclass
class LossParts:
    """`loss` is what to call backward on; ce, aux and z are this part's shares of the step's values (floats; their
    sums over the parts are the step's), before the coefficients."""
    loss: torch.Tensor
    ce: float
    aux: float
    z: float


def _valid(labels: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    return torch.ones_like(labels, dtype=torch.bool) if attention_mask is None else attention_mask.bool()


def step_totals(labels: torch.Tensor, decisions: dict[str, Decision], attention_mask: torch.Tensor | None = None,
                group=None) -> StepTotals:
    """This part's counts, summed over `group`'s processes when distributed is initialized and a group is given
    (`dist.group.WORLD` for all)."""
    valid = _valid(labels, attention_mask)
    names = sorted(decisions)
    parts = [(labels[..., 1:] != -100).sum().float().reshape(1), valid.sum().float().reshape(1)]
    parts += [(decisions[n].chosen * valid.unsqueeze(-1)).sum(tuple(range(valid.dim()))).float() for n in names]
    flat = torch.cat([p.detach().to(labels.device) for p in parts])
    world = 1
    if group is not None and dist.is_available() and dist.is_initialized():
        dist.all_reduce(flat, group=group)
        world = dist.get_world_size(group)
    counts, at = {}, 2
    for n in names:
        size = decisions[n].chosen.shape[-1]
        counts[n] = flat[at:at + size]
        at += size
    return StepTotals(flat[0].round().long(), flat[1].round().long(), counts, world)


def training_loss(logits: torch.Tensor, labels: torch.Tensor, decisions: dict[str, Decision], *,
                  aux_coef: float = 0.01, z_coef: float = 0.0, attention_mask: torch.Tensor | None = None,
                  totals: StepTotals | None = None) -> LossParts:
    """The step's loss over logits [B, L, V] and labels [B, L] (padding: attention_mask 0 and label -100), with the
    routers' `decisions` of the same forward (`adapter.decisions`). `totals`: the whole step's (default: this batch
    is the step)."""
    if totals is None:
        totals = step_totals(labels, decisions, attention_mask)
    if int(totals.labelled) == 0:
        raise ValueError("a step with no labelled token has no loss")
    valid = _valid(labels, attention_mask)
    ce_sum = F.cross_entropy(logits[..., :-1, :].flatten(0, -2).float(), labels[..., 1:].flatten(),
                             ignore_index=-100, reduction="sum")
    ce = ce_sum / totals.labelled
    auxes, zs = [], []
    for name in sorted(decisions):
        d = decisions[name]
        keep = valid.unsqueeze(-1).to(d.probs.dtype)
        n = d.probs.shape[-1]
        f = totals.counts[name] / (d.top_k * totals.tokens)                    # [N] constant
        p_sum = (d.probs * keep).sum(tuple(range(valid.dim())))                # [N]
        auxes.append(n * (f * p_sum).sum() / totals.tokens)
        lse = torch.logsumexp(d.logits, dim=-1)
        zs.append((lse.square() * valid).sum() / totals.tokens)
    aux = torch.stack(auxes).mean() if auxes else ce.new_zeros(())
    z = torch.stack(zs).mean() if zs else ce.new_zeros(())
    loss = (ce + aux_coef * aux + z_coef * z) * totals.world_size
    return LossParts(loss, float(ce.detach()), float(aux.detach()), float(z.detach()))


class TrainerLoss:
    """`Trainer(compute_loss_func=TrainerLoss(adapter, aux_coef, z_coef))` for a Hugging Face Trainer (transformers 5).

    The Trainer hands the loss one micro-batch at a time with `num_items_in_batch`, the labelled tokens of the whole
    step (over its micro-batches and, with average_tokens_across_devices, its processes). The cross-entropy divides by
    it, so it is the step's exactly. f and P cannot wait for the step's other micro-batches here: each micro-batch's
    aux and z use its own, weighted by its share of the step's labelled tokens. On one process with one micro-batch per
    step this is exactly `training_loss`; examples/train.py's loop is exact in every case."""

    def __init__(self, adapter, aux_coef: float = 0.01, z_coef: float = 0.0):
        self.adapter, self.aux_coef, self.z_coef = adapter, aux_coef, z_coef

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        mask = self.adapter.attention_mask
        local = step_totals(labels, self.adapter.decisions, mask)
        parts = training_loss(outputs["logits"], labels, self.adapter.decisions, aux_coef=self.aux_coef,
                              z_coef=self.z_coef, attention_mask=mask, totals=local)
        if num_items_in_batch is None:
            return parts.loss
        share = local.labelled.float() / float(num_items_in_batch)
        return parts.loss * share
