"""PyTorch (Hugging Face transformers, eager, CPU) training throughput on the shapes of `loraswitch bench --train`,
measured the way it measures: random sequences of --seq tokens, --batch-size of them a step, AdamW (lr 1e-4) on the
adapter's parameters with the backbone frozen, one warm-up step then --steps measured, tokens/s as the median over
the steps with the min–max spread beside it, and the machine's read bandwidth printed next to them.

Rows (the adapters as their peers write them, from pytorch_decode_bench.py):
  train-lora   PEFT LoRA rank R on all seven projections (PEFT's default init: B = 0)
  train-layer  layer-wise MoE-LoRA: a router per adapted projection, top-k of N experts looped over with a gather
               and an index_add
  train-token  token-wise MoE-LoRA, unfused: one router on layer 0's normalized input for every projection
The MoE rows add the router's load-balancing loss 0.01 · N · Σ fᵢPᵢ (f detached) per router, averaged, as
`loraswitch bench --train` does.

Development-time only (the peer venv of ../shared/tools/setup-peers.sh):
    ~/.cache/loraswitch-peers/bin/python scripts/peers/pytorch_train_bench.py --config smollm2-135m \
        [--seq 256] [--batch-size 1] [--steps 3] [--threads 2] [--rows train-lora,train-layer,train-token] [--json FILE]
"""
import argparse, json, statistics, sys, time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pytorch_decode_bench import CONFIGS, TARGETS, MoELoRALinear, attach_moe, read_bandwidth  # noqa: E402

ROWS = ["train-lora", "train-layer", "train-token"]


def aux_loss(model, experts, top_k):
    """Mean over the routers of N · Σ fᵢ Pᵢ for the step's tokens (f detached), from the logits each router saw."""
    terms = []
    for logits in model._router_logits:
        p = F.softmax(logits.float().reshape(-1, experts), dim=-1)
        chosen = torch.topk(p, top_k, dim=-1).indices
        f = torch.zeros(experts).scatter_add_(0, chosen.reshape(-1), torch.ones(chosen.numel())) / chosen.numel()
        terms.append(experts * (f.detach() * p.mean(0)).sum())
    model._router_logits.clear()
    return torch.stack(terms).mean()


def build(row, a):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIGS[a.config]))
    for p in model.parameters():
        p.requires_grad_(False)
    if row == "train-lora":
        from peft import LoraConfig, get_peft_model
        return get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, target_modules=TARGETS, lora_dropout=0.0))
    attach_moe(model, "token" if row == "train-token" else "layer", a.experts, a.top_k, a.rank)
    model._router_logits = []
    # Keep each router's logits for the aux loss.
    routers = [model.token_router] if row == "train-token" else \
        [m.router for m in model.modules() if isinstance(m, MoELoRALinear)]
    for router in routers:
        router.register_forward_hook(lambda module, inputs, out: model._router_logits.append(out))
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name or "router" in name)
    return model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="smollm2-135m", choices=CONFIGS)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bandwidth = read_bandwidth()
    results = {}
    for row in a.rows.split(","):
        model = build(row, a)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
        ids = torch.randint(0, CONFIGS[a.config]["vocab_size"], (a.batch_size, a.seq), generator=torch.Generator().manual_seed(7))
        rates = []
        for step in range(a.steps + 1):
            start = time.perf_counter()
            loss = model(ids, labels=ids).loss
            if row != "train-lora":
                loss = loss + 0.01 * aux_loss(model, a.experts, a.top_k)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad()
            if step:
                rates.append(a.batch_size * a.seq / (time.perf_counter() - start))
        results[row] = {"train_tokens_per_s": statistics.median(rates), "min": min(rates), "max": max(rates),
                        "trainable": sum(p.numel() for p in params)}
        print(f"{row:12s} {statistics.median(rates):7.1f} tokens/s ({min(rates):.1f}–{max(rates):.1f}), "
              f"{results[row]['trainable'] / 1e6:.2f} M trainable", flush=True)
        del model, optimizer
    print(f"machine: read bandwidth {bandwidth:.1f} GB/s (numpy, one thread), torch {torch.__version__}, "
          f"{a.threads} threads; {a.config} f32, batch {a.batch_size} × {a.seq} tokens, {a.steps} steps after 1 warm-up")
    if a.json:
        Path(a.json).write_text(json.dumps({"read_gbs": bandwidth, "rows": results}, indent=2))


if __name__ == "__main__":
    main()
