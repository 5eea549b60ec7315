"""PyTorch (Hugging Face transformers, eager, CPU) on the shapes of `loraswitch bench`, measured the way
`loraswitch bench` measures: a prompt of --prompt tokens (prefill), then --tokens decoded tokens one at a time, the
MEDIAN ms/token of each row, and for the adapter rows the decoded tokens alternating with and without the adapter
(paired), so that the ratio to the bare model compares the same minutes of a machine whose bandwidth drifts.
Each row runs --rounds times (a fresh prefill each time); the figures are the median over rounds with the min–max
spread beside them, and the machine's read bandwidth is printed next to them: figures are never quoted alone.

Rows (random weights; the adapters the way their peers write them):
  backbone  the bare model
  lora      PEFT LoRA (unmerged), rank R on all seven projections; bare half: `with model.disable_adapter():`
  layer     layer-wise MoE-LoRA (MoLA/MixLoRA style): a router per adapted projection on that projection's input,
            top-k of N experts, the experts looped over with a gather and an index_add
  token     token-wise MoE-LoRA, unfused (LoRA-Switch's routing as a peer writes it in PyTorch): one router on
            layer 0's normalized input picks the token's top-k experts for every projection, and every projection
            then loops over the experts as `layer` does
  The MoE rows' bare half turns the adapter path off with a flag (the router is not run either).

Development-time only (needs the peer venv of ../shared/tools/setup-peers.sh: torch, transformers, peft, numpy):
    ~/.cache/loraswitch-peers/bin/python scripts/peers/pytorch_decode_bench.py --config smollm2-135m --dtype f32 \
        [--prompt 128] [--tokens 64] [--rounds 5] [--threads 2] [--rows backbone,lora,layer,token] [--json FILE]
"""
import argparse, gc, inspect, json, os, platform, statistics, sys, time, warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CONFIGS = {  # the same shapes as loraswitch's BenchmarkShape (Sources/Model/RandomModel.swift)
    "tiny": dict(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=4096, tie_word_embeddings=False, rope_theta=10000.0,
                 max_position_embeddings=2048),
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
                         max_position_embeddings=8192),
    "tinyllama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                           num_key_value_heads=4, vocab_size=32000, tie_word_embeddings=False, rope_theta=10000.0,
                           max_position_embeddings=2048),
}
DTYPES = {"f32": torch.float32, "f16": torch.float16}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
ROWS = ["backbone", "lora", "layer", "token"]


# MARK: - MoE-LoRA as peers write it

class AdapterSwitch:
    """Shared by every MoE-LoRA module of a model: `enabled` False runs the base projections alone (the bare half
    of a paired row); `selection` is token routing's (gates [T, k], experts [T, k]) for the token in flight."""
    enabled = True
    selection = None


class MoELoRALinear(nn.Module):
    """y = base(x) + Σ_top-k g_e · s · B_e A_e x. With `router` the projection routes its own input (layer-wise);
    without, it takes the token's selection from `switch` (token-wise)."""

    def __init__(self, base, experts, top_k, rank, alpha, switch, router):
        super().__init__()
        self.base, self.top_k, self.scale, self.switch = base, top_k, alpha / rank, switch
        self.lora_A = nn.ModuleList([nn.Linear(base.in_features, rank, bias=False) for _ in range(experts)])
        self.lora_B = nn.ModuleList([nn.Linear(rank, base.out_features, bias=False) for _ in range(experts)])
        for b in self.lora_B:
            nn.init.normal_(b.weight, std=0.01)
        self.router = nn.Linear(base.in_features, experts, bias=False) if router else None

    def forward(self, x):
        y = self.base(x)
        if not self.switch.enabled:
            return y
        if self.router is not None:
            gates, experts = route(self.router(x), self.top_k)
        else:
            gates, experts = self.switch.selection
        flat = x.reshape(-1, x.shape[-1])                              # [T, in]
        gates, experts = gates.reshape(-1, self.top_k), experts.reshape(-1, self.top_k)  # [T, k]
        out = torch.zeros(flat.shape[0], y.shape[-1], dtype=y.dtype)   # [T, out]
        for e in range(len(self.lora_A)):                              # loop over experts, gather their tokens
            token, slot = torch.where(experts == e)
            if token.numel() == 0:
                continue
            h = self.lora_B[e](self.lora_A[e](flat[token])) * self.scale
            out.index_add_(0, token, h * gates[token, slot, None])
        return y + out.reshape(y.shape)


def route(logits, top_k):
    """Softmax over the experts, top-k, gates renormalized to sum to one."""
    gates, experts = torch.topk(F.softmax(logits, dim=-1, dtype=torch.float32), top_k, dim=-1)
    return (gates / gates.sum(-1, keepdim=True)).to(logits.dtype), experts


def attach_moe(model, routing, experts, top_k, rank):
    switch = AdapterSwitch()
    if routing == "token":
        model.token_router = nn.Linear(model.config.hidden_size, experts, bias=False)

        def select(module, inputs, normalized):   # layer 0's normalized input decides the whole token
            if switch.enabled:
                switch.selection = route(model.token_router(normalized), top_k)

        model.model.layers[0].input_layernorm.register_forward_hook(select)
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name in TARGETS:
                if hasattr(parent, name):
                    setattr(parent, name, MoELoRALinear(getattr(parent, name), experts, top_k, rank, 2 * rank, switch,
                                                        router=routing == "layer"))
    return switch


# MARK: - Models

def build(row, a):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**CONFIGS[a.config]))
    if row == "lora":
        from peft import LoraConfig, get_peft_model
        model = get_peft_model(model, LoraConfig(r=a.rank, lora_alpha=2 * a.rank, target_modules=TARGETS,
                                                 lora_dropout=0.0, init_lora_weights=False))
        model = model.to(DTYPES[a.dtype]).eval()

        def run(with_adapter, **kwargs):
            if with_adapter:
                return timed(model, **kwargs)
            with model.disable_adapter():
                return timed(model, **kwargs)
        return model, run
    switch = attach_moe(model, row, a.experts, a.top_k, a.rank) if row in ("layer", "token") else None
    model = model.to(DTYPES[a.dtype]).eval()

    def run(with_adapter, **kwargs):
        if switch is not None:
            switch.enabled = with_adapter
        return timed(model, **kwargs)
    return model, run


def timed(model, **kwargs):
    """One forward call and its seconds (only the call: switching the adapter on or off is outside)."""
    start = time.perf_counter()
    out = model(**kwargs)
    return out, time.perf_counter() - start


# MARK: - Measuring

def cache_name():
    """The keyword of the KV cache in the model's forward and output: `cache` in transformers ≥ 5.2x, which
    deprecates `past_key_values`."""
    from transformers import LlamaForCausalLM
    return "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"


def measure_round(run, prompt, followers, paired):
    """Prefill `prompt` with the adapter on, then decode `followers` one at a time — alternating with and without
    the adapter when `paired` (even tokens with). Returns (prefill seconds, [s] with adapter, [s] without)."""
    gc.collect()
    with torch.inference_mode():
        key = cache_name()
        out, prefill = run(True, input_ids=prompt, use_cache=True)
        cache = getattr(out, key)
        with_adapter, bare = [], []
        for i, token in enumerate(followers):
            on = not paired or i % 2 == 0
            out, seconds = run(on, input_ids=token.view(1, 1), use_cache=True, **{key: cache})
            cache = getattr(out, key)
            (with_adapter if on else bare).append(seconds)
    return prefill, with_adapter, bare


def read_bandwidth(megabytes=256, repeats=5):
    """GB/s of a numpy sum over a `megabytes` float32 buffer (one thread), best of `repeats`."""
    buffer = np.ones(megabytes * (1 << 20) // 4, dtype=np.float32)
    buffer.sum()
    best = min(timeit(buffer.sum) for _ in range(repeats))
    return buffer.nbytes / best / 1e9


def timeit(f):
    start = time.perf_counter()
    f()
    return time.perf_counter() - start


def spread(values, digits):
    return f"{min(values):.{digits}f}–{max(values):.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="smollm2-135m", choices=CONFIGS)
    ap.add_argument("--dtype", default="f32", choices=DTYPES)
    ap.add_argument("--prompt", type=int, default=128, help="prompt tokens (prefill) before each round's decoding")
    ap.add_argument("--tokens", type=int, default=64, help="decoded tokens per round and row")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per row; figures are medians over rounds")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--rows", default=",".join(ROWS), help="a subset of " + ",".join(ROWS))
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--json", help="also write the figures to this file")
    a = ap.parse_args()
    rows = a.rows.split(",")
    for row in rows:
        if row not in ROWS:
            ap.error(f"--rows: unknown row '{row}' (rows: {', '.join(ROWS)})")
    if a.top_k > a.experts:
        ap.error(f"--top-k ({a.top_k}) exceeds --experts ({a.experts})")
    if min(a.prompt, a.tokens, a.rounds, a.threads) < 1:
        ap.error("--prompt, --tokens, --rounds and --threads must be at least 1")
    if a.prompt + a.tokens > CONFIGS[a.config]["max_position_embeddings"]:
        ap.error(f"--prompt + --tokens exceed the context of {a.config}")
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # transformers' and peft's renaming notices

    import peft, transformers
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}"
    bandwidth_before = read_bandwidth()
    generator = torch.Generator().manual_seed(7)
    vocab = CONFIGS[a.config]["vocab_size"]
    prompt = torch.randint(0, vocab, (1, a.prompt), generator=generator)
    followers = torch.randint(0, vocab, (a.tokens,), generator=generator)

    print(f"pytorch eager {a.config} {a.dtype}, threads={a.threads}, prompt {a.prompt}, {a.tokens} tokens × "
          f"{a.rounds} rounds per row; adapters: {a.experts} experts, top-{a.top_k}, rank {a.rank}, all seven "
          f"projections ({versions}, Python {platform.python_version()})", flush=True)
    print(f"{'row':9s} {'ms/token':>9s} {'(rounds)':>13s} {'vs backbone':>12s} {'(rounds)':>13s} "
          f"{'bare half':>10s} {'prefill tok/s':>14s}", flush=True)
    results = []
    for row in rows:
        model, run = build(row, a)
        paired = row != "backbone"
        rounds = []
        for r in range(a.rounds):
            prefill, with_adapter, bare = measure_round(run, prompt, followers, paired)
            ms = statistics.median(with_adapter) * 1000
            bare_ms = statistics.median(bare) * 1000 if bare else None
            rounds.append(dict(ms_per_token=ms, bare_ms_per_token=bare_ms,
                               ratio_vs_backbone=ms / bare_ms if bare_ms else None,
                               prefill_tokens_per_second=a.prompt / prefill, load_average=os.getloadavg()[0]))
            print(f"  {row} round {r + 1}/{a.rounds}: {ms:.2f} ms/token"
                  + (f", bare half {bare_ms:.2f}, x{ms / bare_ms:.3f}" if bare_ms else "")
                  + f" (load average {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
        result = dict(name=row, config=a.config, dtype=a.dtype, threads=a.threads, prompt=a.prompt, tokens=a.tokens,
                      ms_per_token=statistics.median(x["ms_per_token"] for x in rounds),
                      ms_per_token_min=min(x["ms_per_token"] for x in rounds),
                      ms_per_token_max=max(x["ms_per_token"] for x in rounds),
                      prefill_tokens_per_second=max(x["prefill_tokens_per_second"] for x in rounds), rounds=rounds)
        line = f"{row:9s} {result['ms_per_token']:9.2f} {'(' + spread([x['ms_per_token'] for x in rounds], 2) + ')':>13s} "
        if paired:
            ratios = [x["ratio_vs_backbone"] for x in rounds]
            result.update(ratio_vs_backbone=statistics.median(ratios), ratio_min=min(ratios), ratio_max=max(ratios),
                          bare_ms_per_token=statistics.median(x["bare_ms_per_token"] for x in rounds))
            line += f"{'x%.3f' % result['ratio_vs_backbone']:>12s} {'(' + spread(ratios, 3) + ')':>13s} "
            line += f"{result['bare_ms_per_token']:10.2f} "
        else:
            line += f"{'':12s} {'':13s} {'':10s} "
        line += f"{result['prefill_tokens_per_second']:14.1f}"
        print(line, flush=True)
        results.append(result)
        del model, run
        gc.collect()

    bandwidth_after = read_bandwidth()
    bandwidth = max(bandwidth_before, bandwidth_after)
    print(f"machine: read bandwidth {bandwidth:.1f} GB/s (numpy sum over 256 MB, one thread, best of 5; "
          f"{bandwidth_before:.1f} before the rows, {bandwidth_after:.1f} after), {platform.machine()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end, torch threads {torch.get_num_threads()}")
    print("ms/token: median over rounds of each round's median; vs backbone: decoded tokens alternate with and "
          "without the adapter, the ratio of the two medians, median over rounds (min–max across rounds)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(peer="pytorch-eager", versions=versions, read_bandwidth_gbs=bandwidth,
                           load_average_at_end=os.getloadavg()[0],
                           read_bandwidth_before_gbs=bandwidth_before, read_bandwidth_after_gbs=bandwidth_after,
                           experts=a.experts, top_k=a.top_k, rank=a.rank, rounds=a.rounds, rows=results), f, indent=1)


if __name__ == "__main__":
    main()
