#!/usr/bin/env python3
"""Train a LoRA / MoE-LoRA in our format on many GPUs (or CPU processes) with the launchers people already use:

    python   python/examples/train.py --model MODEL_DIR --data train.jsonl --out adapter/          # one process
    torchrun --nproc_per_node=8 python/examples/train.py ...                                      # DDP
    accelerate launch --config_file python/examples/accelerate_fsdp.yaml python/examples/train.py ...
    accelerate launch --config_file python/examples/accelerate_deepspeed.yaml python/examples/train.py ...

The data are `loraswitch train`'s JSONL formats; the adapter flags and the loss are its (token-mean cross-entropy of
the step + aux · N·Σ fᵢPᵢ + z · logsumexp²), and the folder it writes loads in `loraswitch --adapter` and in this
package. Every process takes its share of each step's examples (--batch-size each); the loss divides by the whole
step's totals (all-reduced), so N processes × B examples make the same step as one process with N·B.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from loraswitch_torch import AdapterConfig, load_adapter, new_adapter, step_totals, training_loss
from loraswitch_torch.data import collate, read_jsonl
from loraswitch_torch.modules import LoRALinear, MoELoRALinear, TokenRouter

TARGETS = {"q": "q_proj", "k": "k_proj", "v": "v_proj", "o": "o_proj", "gate": "gate_proj", "up": "up_proj",
           "down": "down_proj"}
GROUPS = {"all": list(TARGETS), "attention": ["q", "k", "v", "o"], "mlp": ["gate", "up", "down"]}


def arguments(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", required=True, help="a Hugging Face llama, mistral or qwen2 folder")
    p.add_argument("--data", required=True, help="JSONL: text, prompt/completion, messages or input_ids/labels")
    p.add_argument("--out", required=True, help="the adapter folder to write")
    p.add_argument("--init", help="start from this adapter folder (PEFT LoRA or MoE-LoRA)")
    # a new adapter's shape (None: not given; --init takes the shape from its adapter, and a flag beside it is an error)
    p.add_argument("--type", choices=["lora", "moe-layer", "moe-token"], help="default moe-token")
    p.add_argument("--experts", type=int, help="default 8")
    p.add_argument("--top-k", type=int, help="default 2")
    p.add_argument("--rank", type=int, help="default 16")
    p.add_argument("--alpha", type=float, help="default 2 × rank")
    p.add_argument("--rslora", action="store_true", default=None)
    p.add_argument("--targets", help="all|attention|mlp or a list of q,k,v,o,gate,up,down (default all)")
    p.add_argument("--layers", help="adapted layers, e.g. 0,2,5 (default all; moe-token: every layer ≥ router layer)")
    p.add_argument("--router-layer", type=int, help="default 0")
    p.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=0)
    p.add_argument("--schedule", default="cosine", choices=["cosine", "linear", "constant"])
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--clip", type=float, default=1.0, help="global gradient norm; 0 for none")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int, help="at most this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=1, help="examples per process per step")
    p.add_argument("--max-seq-len", type=int, default=2048)
    p.add_argument("--aux-loss-coef", type=float, default=0.01)
    p.add_argument("--z-loss-coef", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-shuffle", action="store_true", help="visit the examples in the file's order")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"],
                   help="the frozen base model's dtype (the adapter trains in float32)")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--dump-rank-params", help="(tests) each process writes its adapter tensors to DIR/rank<r>.pt")
    args = p.parse_args(argv)
    shape = {"type": "moe-token", "experts": 8, "top_k": 2, "rank": 16, "alpha": None, "rslora": False,
             "targets": "all", "layers": None, "router_layer": 0}
    given = [k for k in shape if getattr(args, k) is not None]
    if args.init and given:
        p.error(f"--init takes the adapter's shape from its folder; --{given[0].replace('_', '-')} goes with a new one")
    for k, default in shape.items():
        if getattr(args, k) is None:
            setattr(args, k, default)
    return args


def adapter_config(args, num_layers: int, base_name: str) -> AdapterConfig:
    names = GROUPS.get(args.targets) or args.targets.split(",")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        sys.exit(f"error: --targets: unknown {unknown[0]!r} (all|attention|mlp or {','.join(TARGETS)})")
    first = args.router_layer if args.type == "moe-token" else 0
    layers = [int(l) for l in args.layers.split(",")] if args.layers else list(range(first, num_layers))
    return AdapterConfig.new(args.type, rank=args.rank, alpha=args.alpha, experts=args.experts, top_k=args.top_k,
                             targets=tuple(TARGETS[n] for n in names), layers=layers, router_layer=args.router_layer,
                             rslora=args.rslora, aux_loss_coef=args.aux_loss_coef, base_model_name_or_path=base_name)


def schedule(args, total: int):
    def factor(step: int) -> float:   # step counts from 0; the lr of step s
        if step < args.warmup:
            return (step + 1) / args.warmup
        progress = (step - args.warmup) / max(1, total - args.warmup)
        return {"constant": 1.0, "linear": 1.0 - progress,
                "cosine": 0.5 * (1 + math.cos(math.pi * progress))}[args.schedule]
    return factor


def steps_of(n_examples: int, per_step: int, epochs: int, seed: int, shuffle: bool) -> list[list[int]]:
    """Each step's examples (indices), epoch by epoch; an epoch's tail smaller than a step is dropped when it cannot
    give every process at least one example."""
    steps = []
    for epoch in range(epochs):
        order = (torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed * 1000 + epoch)).tolist()
                 if shuffle else list(range(n_examples)))
        steps += [order[i:i + per_step] for i in range(0, n_examples, per_step)]
    return steps


def full_adapter_state(accelerator: Accelerator, model, adapter) -> dict[str, torch.Tensor]:
    """The adapter's parameters, whole and in float32, by model parameter name (every process must call this)."""
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # ZeRO-3 holds 16-bit shards; the optimizer's float32 master copy is the trained value
        from deepspeed.utils import safe_get_full_fp32_param
        names = {id(p): n for n, p in accelerator.unwrap_model(model).named_parameters()}
        return {names[id(p)]: safe_get_full_fp32_param(p) for p in adapter.parameters()}
    return accelerator.get_state_dict(model)


def main(argv=None) -> None:
    args = arguments(argv)
    hf_logging.disable_progress_bar()
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    torch.manual_seed(args.seed)

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype))
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model)
    except (OSError, ValueError):
        tokenizer = None   # pre-tokenized data need none
    if args.init:
        adapter = load_adapter(model, args.init)
    else:
        adapter = new_adapter(model, adapter_config(args, model.config.num_hidden_layers,
                                                    os.path.basename(os.path.normpath(args.model))), seed=args.seed)
    for p in adapter.parameters():
        p.data = p.data.float()
    if args.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        # ZeRO-3 gathers a leaf module's parameters at once instead of hooking its children (the base Linear).
        from deepspeed.utils import set_z3_leaf_modules
        set_z3_leaf_modules(model, [LoRALinear, MoELoRALinear, TokenRouter])

    examples = read_jsonl(args.data, tokenizer, model.config.vocab_size, args.max_seq_len)
    steps = [s for s in steps_of(len(examples), args.batch_size * world, args.epochs, args.seed, not args.no_shuffle)
             if len(s) >= world][:args.steps]
    trainable = adapter.parameters()
    if args.optimizer == "adamw":
        optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=args.weight_decay)
    else:
        optimizer = torch.optim.SGD(trainable, lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(args, len(steps)))
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    group = torch.distributed.group.WORLD if world > 1 else None

    start, tokens_seen = time.perf_counter(), 0
    for number, indices in enumerate(steps, 1):
        step_start = time.perf_counter()
        batch = {k: v.to(accelerator.device) for k, v in collate([examples[i] for i in indices[rank::world]]).items()}
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False)
        totals = step_totals(batch["labels"], adapter.decisions, batch["attention_mask"], group=group)
        parts = training_loss(out.logits, batch["labels"], adapter.decisions, aux_coef=args.aux_loss_coef,
                              z_coef=args.z_loss_coef, attention_mask=batch["attention_mask"], totals=totals)
        accelerator.backward(parts.loss)
        if args.clip > 0:
            accelerator.clip_grad_norm_(trainable if accelerator.distributed_type == DistributedType.NO
                                        else model.parameters(), args.clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_seen += int(totals.tokens)
        shares = torch.tensor([parts.ce, parts.aux, parts.z], device=accelerator.device)
        if group is not None:
            torch.distributed.all_reduce(shares, group=group)
        if accelerator.is_main_process:
            ce, aux, z = shares.tolist()
            rate = int(totals.tokens) / (time.perf_counter() - step_start)
            print(f"step {number}/{len(steps)}  loss {ce + args.aux_loss_coef * aux + args.z_loss_coef * z:.4f}  "
                  f"ce {ce:.4f}  aux {aux:.3f}  z {z:.2f}  {rate:.1f} tok/s", flush=True)

    state = full_adapter_state(accelerator, model, adapter) if world > 1 else None
    if args.dump_rank_params:
        os.makedirs(args.dump_rank_params, exist_ok=True)
        torch.save(adapter.tensors(), os.path.join(args.dump_rank_params, f"rank{rank}.pt"))
    if accelerator.is_main_process:
        adapter.save(args.out, state_dict=state)
        elapsed = time.perf_counter() - start
        print(f"done: {len(steps)} steps, {tokens_seen} tokens in {elapsed:.1f}s ({tokens_seen / elapsed:.1f} tok/s); "
              f"adapter: {args.out}", flush=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()


if __name__ == "__main__":
    main()
