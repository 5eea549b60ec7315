#!/usr/bin/env python3
"""Writes the study's RESULTS.md, study.json and plots from the work folder scripts/study/run.sh fills.

Python 3 stdlib for the tables; matplotlib for the PNG plots (skipped, with a message, when it is missing).
Whatever stage has not run yet is reported as missing, so this can run on a partial study.
"""
import argparse
import datetime
import glob
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys

METHODS = ["base-0shot", "base-3shot", "lora", "moe-layer", "moe-token", "moe-token-late"]
TRAINED = ["lora", "moe-layer", "moe-token", "moe-token-late"]
DESCRIPTION = {
    "base-0shot": "the default model, zero-shot",
    "base-3shot": "the default model, 3 shots from the train split",
    "lora": "static LoRA, rank = top-k × expert rank",
    "moe-layer": "layer-wise MoE-LoRA (MoLA-style: a router in every adapted projection)",
    "moe-token": "LoRA-Switch: one token router on layer 0's normalized input (the paper)",
    "moe-token-late": "LoRA-Switch with the router on a later layer's normalized input (ours)",
}
# The paper's decode latency on a GPU (Llama2-7B; DESIGN.md): backbone 2.4 ms/token.
PAPER_MS = {"backbone": 2.4, "moe-token": 3.1, "moe-layer": 25.3}
PAPER_NAMES = {"moe-token": "LoRA-Switch", "moe-layer": "MoLA"}


def load_json(path):
    with open(path) as f:
        return json.load(f)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pct(x):
    return "n/a" if x is None else f"{100 * x:.2f}"


def pm(x, se):
    return "n/a" if x is None else f"{100 * x:.2f} ± {100 * se:.2f}" if se is not None else f"{100 * x:.2f}"


def fmt_seconds(s):
    if s is None:
        return "n/a"
    s = int(round(s))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


# ----------------------------------------------------------------------------------------------------- accuracy
def accuracy(work, tasks):
    """{method: {task: eval json}} for the evaluations that are there."""
    out = {}
    for m in METHODS:
        for t in tasks:
            p = os.path.join(work, "eval", m, t + ".json")
            if os.path.exists(p):
                out.setdefault(m, {})[t] = load_json(p)
    return out


def average(results, tasks):
    """The unweighted mean over the tasks (each task counts once) and its standard error, sqrt(Σ se²) / T."""
    if not all(t in results for t in tasks):
        return None
    avg = {}
    for key in ("acc", "acc_norm"):
        avg[key] = statistics.mean(results[t][key] for t in tasks)
        ses = [results[t].get(key + "_stderr") for t in tasks]
        avg[key + "_stderr"] = math.sqrt(sum(s * s for s in ses)) / len(tasks) if all(s is not None for s in ses) else None
    avg["n"] = sum(results[t]["n"] for t in tasks)
    return avg


# ----------------------------------------------------------------------------------------------------- training
def training(work):
    out = {}
    for m in TRAINED:
        p = os.path.join(work, "logs", m + ".train.jsonl")
        if not os.path.exists(p):
            continue
        records = read_jsonl(p)
        start = next((r for r in records if r["type"] == "start"), None)
        steps = {}
        for r in records:
            if r["type"] == "step":
                steps[r["step"]] = r  # a resumed run repeats no step, but keep the last of each
        evals = [r for r in records if r["type"] == "eval"]
        dones = [r for r in records if r["type"] == "done"]
        tokens = sum(r["tokens"] for r in steps.values())
        step_seconds = sum(r["seconds"] for r in steps.values())
        finished = bool(dones) and dones[-1]["step"] == dones[-1]["total_steps"]
        out[m] = {
            "parameters": start and start["parameters"], "start": start,
            "steps": len(steps), "total_steps": start and start["total_steps"], "finished": finished,
            "tokens": tokens, "labelled": sum(r["labelled"] for r in steps.values()),
            "step_seconds": step_seconds, "tokens_per_second": tokens / step_seconds if step_seconds else None,
            "wall_seconds": sum(r["seconds"] for r in dones) if dones else None,
            "processes": len(dones),
            "valid_loss": [(r["step"], r["valid_loss"]) for r in evals],
            "utilization": evals[-1].get("utilization") if evals else None,
            "train_loss_last": statistics.mean(r["ce"] for r in list(steps.values())[-20:]) if steps else None,
        }
    return out


# ------------------------------------------------------------------------------------------------------- decode
def decode(work):
    """Per (method, strategy): the medians over rounds of ms/token, of the backbone's ms/token measured right before
    it, and of their per-round ratio."""
    p = os.path.join(work, "decode.jsonl")
    if not os.path.exists(p):
        return []
    records = read_jsonl(p)
    rows, pending = {}, None
    for r in records:
        if r["method"] == "backbone":
            pending = r
            continue
        key = (r["method"], r["strategy"])
        rows.setdefault(key, []).append((r, pending))
        pending = None
    out = []
    for (m, s), pairs in rows.items():
        ms = [a["ms_per_token"] for a, _ in pairs]
        bb = [b["ms_per_token"] for _, b in pairs if b]
        ratios = [a["ms_per_token"] / b["ms_per_token"] for a, b in pairs if b]
        out.append({"method": m, "strategy": s, "ms_per_token": statistics.median(ms),
                    "backbone_ms_per_token": statistics.median(bb) if bb else None,
                    "ratio": statistics.median(ratios) if ratios else None,
                    "ratio_min": min(ratios) if ratios else None, "ratio_max": max(ratios) if ratios else None,
                    "rounds": len(pairs), "generated": [a["generated"] for a, _ in pairs]})
    order = {m: i for i, m in enumerate(METHODS)}
    out.sort(key=lambda r: (order.get(r["method"], 99), r["strategy"] != "auto"))
    return out


# ------------------------------------------------------------------------------------------------------ routing
ROUTING = re.compile(r"^\[routing\] position (\d+): experts ([\d,]+) gates")


def routing(work, tasks):
    """{method: {task: {"shares": [per expert], "slots", "tokens", "contexts"}}}: the share of top-k slots each
    expert takes over every prompt position of the task's routed test contexts."""
    out = {}
    for m in ("moe-token", "moe-token-late"):
        for t in tasks:
            p = os.path.join(work, "routing", m, t + ".txt")
            if not os.path.exists(p):
                continue
            counts, tokens, contexts = {}, 0, 0
            with open(p) as f:
                for line in f:
                    if line.startswith("# context"):
                        contexts += 1
                        continue
                    g = ROUTING.match(line)
                    if not g:
                        continue
                    tokens += 1
                    for e in g[2].split(","):
                        counts[int(e)] = counts.get(int(e), 0) + 1
            out.setdefault(m, {})[t] = {"counts": counts, "tokens": tokens, "contexts": contexts}
    for m, per in out.items():
        n = max([max(v["counts"], default=-1) for v in per.values()] + [-1]) + 1
        experts = (training_start(work, m) or {}).get("experts") or n
        for v in per.values():
            slots = sum(v["counts"].values())
            v["slots"] = slots
            v["shares"] = [v["counts"].get(e, 0) / slots if slots else 0.0 for e in range(experts)]
    return out


def training_start(work, method):
    p = os.path.join(work, "logs", method + ".train.jsonl")
    if not os.path.exists(p):
        return None
    return next((r for r in read_jsonl(p) if r["type"] == "start"), None)


def specialization(per_task):
    """Mean total-variation distance between each task's expert shares and the shares pooled over the tasks
    (0: every task routes alike; 1: disjoint experts)."""
    tasks = [t for t in per_task if per_task[t]["slots"]]
    if len(tasks) < 2:
        return None
    experts = len(per_task[tasks[0]]["shares"])
    total = sum(per_task[t]["slots"] for t in tasks)
    pooled = [sum(per_task[t]["shares"][e] * per_task[t]["slots"] for t in tasks) / total for e in range(experts)]
    return statistics.mean(0.5 * sum(abs(per_task[t]["shares"][e] - pooled[e]) for e in range(experts)) for t in tasks)


# ------------------------------------------------------------------------------------------------------ machine
def machine(binary, threads):
    info = {"threads": threads, "python": platform.python_version(), "os": platform.platform()}
    try:
        with open("/proc/cpuinfo") as f:
            names = [l.split(":", 1)[1].strip() for l in f if l.startswith("model name")]
        info["cpu"] = names[0] if names else platform.processor()
        info["cores"] = len(names)
    except OSError:
        info["cpu"] = platform.processor()
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(l for l in f if l.startswith("MemTotal")).split()[1])
        info["memory_gib"] = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    for key, cmd in (("swift", ["swift", "--version"]), ("commit", ["git", "rev-parse", "HEAD"]),
                     ("dirty", ["git", "status", "--porcelain", "--untracked-files=no"])):
        try:
            text = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout.strip()
            info[key] = text.splitlines()[0] if key == "swift" and text else (bool(text) if key == "dirty" else text)
        except (OSError, subprocess.SubprocessError):
            pass
    info["binary"] = binary
    return info


# ------------------------------------------------------------------------------------------------------ writing
def write_study_json(path, acc, tasks, dec):
    rows = []
    for m in METHODS:
        if m not in acc:
            continue
        for t in tasks:
            if t in acc[m]:
                r = acc[m][t]
                rows.append({"method": m, "task": t, "acc": r["acc"], "acc_norm": r["acc_norm"], "n": r["n"]})
        avg = average(acc[m], tasks)
        if avg:
            rows.append({"method": m, "task": "average", "acc": avg["acc"], "acc_norm": avg["acc_norm"], "n": avg["n"]})
    decode_rows = [{"method": d["method"], "strategy": d["strategy"], "ms_per_token": d["ms_per_token"],
                    "backbone_ms_per_token": d["backbone_ms_per_token"]} for d in dec]
    with open(path + ".tmp", "w") as f:
        json.dump({"rows": rows, "decode": decode_rows}, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)


def plots(out, acc, tasks, dec, util):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib is not installed: no plots (the tables and study.json are written; "
              "run with a Python that has matplotlib, e.g. STUDY_PYTHON=/path/to/venv/bin/python, for the PNGs)")
        return []
    written = []
    methods = [m for m in METHODS if m in acc]
    if methods:
        cols = [t for t in tasks] + ["average"]
        fig, ax = plt.subplots(figsize=(max(7, 1.6 * len(cols)), 4.2))
        width = 0.8 / len(methods)
        for i, m in enumerate(methods):
            vals, errs = [], []
            for t in cols:
                r = acc[m].get(t) if t != "average" else average(acc[m], tasks)
                vals.append(100 * r["acc"] if r else 0)
                errs.append(100 * (r.get("acc_stderr") or 0) if r else 0)
            xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(cols))]
            ax.bar(xs, vals, width, yerr=errs, capsize=2, label=m)
        ax.set_xticks(range(len(cols)))
        ax.set_xticklabels([c.replace("_", "\n", 1) for c in cols], fontsize=8)
        ax.set_ylabel("acc (%) ± stderr, test split")
        ax.set_title("Accuracy per task and method (SmolLM2-135M-Instruct Q4_1)")
        ax.legend(fontsize=7, ncol=3)
        ax.set_ylim(0, 100)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "accuracy.png"), dpi=120)
        plt.close(fig)
        written.append("accuracy.png")
    if dec:
        fig, ax = plt.subplots(figsize=(8, 4))
        labels, ours = [], []
        for d in dec:
            labels.append(f"{d['method']}\n{d['strategy']}")
            ours.append(d["ratio"] or 0)
        ax.bar(range(len(labels)), ours, 0.6, label="ours: CPU, 2 threads (× backbone)")
        for i, d in enumerate(dec):
            if d["method"] in PAPER_MS and d["strategy"] == "auto":
                ax.bar(i + 0.35, PAPER_MS[d["method"]] / PAPER_MS["backbone"], 0.25, color="tab:gray",
                       label="paper: GPU, Llama2-7B (× backbone)")
                ax.annotate(PAPER_NAMES[d["method"]], (i + 0.35, PAPER_MS[d["method"]] / PAPER_MS["backbone"]),
                            ha="center", va="bottom", fontsize=7)
        ax.axhline(1.0, color="black", lw=0.8)
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylabel("decode latency / backbone's")
        ax.set_yscale("log")
        ax.set_title("Decode latency per method (ratio to the bare backbone)")
        handles, names = ax.get_legend_handles_labels()
        seen = {}
        for h, n in zip(handles, names):
            seen.setdefault(n, h)
        ax.legend(seen.values(), seen.keys(), fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "decode.png"), dpi=120)
        plt.close(fig)
        written.append("decode.png")
    if util:
        fig, axes = plt.subplots(1, len(util), figsize=(5 * len(util), 0.6 * len(tasks) + 2), squeeze=False)
        for ax, (m, per) in zip(axes[0], util.items()):
            ts = [t for t in tasks if t in per]
            grid = [[100 * s for s in per[t]["shares"]] for t in ts]
            im = ax.imshow(grid, cmap="viridis", aspect="auto", vmin=0)
            ax.set_yticks(range(len(ts)))
            ax.set_yticklabels(ts, fontsize=8)
            ax.set_xticks(range(len(grid[0]) if grid else 0))
            ax.set_xlabel("expert")
            ax.set_title(f"{m}: share of top-k slots (%)", fontsize=9)
            for i, row in enumerate(grid):
                for j, v in enumerate(row):
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 20 else "black")
            fig.colorbar(im, ax=ax, fraction=0.04)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "utilization.png"), dpi=120)
        plt.close(fig)
        written.append("utilization.png")
    return written


def commands(work, tasks, train):
    lines = ["# the whole study (resumable; each stage is skipped when its output is there):",
             "scripts/study/run.sh",
             "", "# what it runs, with the settings of this study:"]
    cfg = os.path.join(work, "config.txt")
    if os.path.exists(cfg):
        lines += ["# settings: " + l for l in open(cfg).read().splitlines()]
    lines.append("python3 scripts/study/make_training_data.py --tasks " + ",".join(tasks) + " --out DATA ...")
    for m in TRAINED:
        if m in train and train[m]["start"]:
            s = train[m]["start"]
            lines.append(f"loraswitch train --data DATA/train.jsonl --valid DATA/validation.jsonl --out {m} "
                         f"--type {s['adapter']} --rank {s['rank']}"
                         + (f" --experts {s['experts']} --top-k {s['top_k']}" if s["adapter"] != "lora" else "")
                         + (f" --router-layer {s['router_layer']}" if s["adapter"] == "moe-token" else "")
                         + f" --layers {s['layers'][0]}..{s['layers'][-1]} --targets {s['targets']} [budget: see settings]")
    lines += ["loraswitch eval --task bigbench:TASK --split test [--shots 3 | --adapter ADAPTER] --json FILE",
              "loraswitch generate --prompt P --temperature 0 --max-tokens N --stats [--adapter A --strategy auto|fused]",
              "loraswitch generate --prompt CONTEXT --max-tokens 1 --adapter A --show-routing"]
    return lines


def reference_section(path):
    """Markdown for scripts/study/reference.py's output: base zero-shot beside lm-evaluation-harness."""
    if not os.path.exists(path):
        return ["### Checked against lm-evaluation-harness", "", "(not run: scripts/study/reference.py)", ""]
    r = load_json(path)
    ref = r["reference"]
    md = ["### Checked against lm-evaluation-harness", "",
          f"base-0shot again, beside lm-evaluation-harness {ref['lm_eval']} (`hf` backend: transformers "
          f"{ref['transformers']}, torch {ref['torch']}, {ref['dtype']}, on the default model dequantized by "
          f"transformers' GGUF loader), the first {r['limit']} test examples of each task, {r['threads']} threads, "
          f"{r['date']} (`scripts/study/reference.py`). Differing: examples whose argmax differs where the "
          f"reference's top two are more than {r['tie']:g} apart (at ties: "
          f"{sum(x['differences_at_ties'] for x in r['rows'])}). Speed: ours as a whole command (model load "
          "included), lm-evaluation-harness with its model already loaded.", "",
          "| task | n | acc ours | acc lm-eval | acc_norm ours | acc_norm lm-eval | differing acc / acc_norm "
          "| max abs loglik diff | ex/s ours | ex/s lm-eval | speed-up |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        md.append(f"| {x['task']} | {x['n']} | {pct(x['acc'])} | {pct(x['reference_acc'])} | {pct(x['acc_norm'])} "
                  f"| {pct(x['reference_acc_norm'])} | {len(x['acc_differs'])} / {len(x['acc_norm_differs'])} "
                  f"| {x['max_abs_loglik_diff']:.1e} | {x['examples_per_second']:.2f} "
                  f"| {x['reference_examples_per_second']:.2f} | ×{x['speedup']:.1f} |")
    return md + [""]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--binary", default="loraswitch")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    tasks = [t for t in a.tasks.split(",") if t]
    os.makedirs(a.out, exist_ok=True)

    acc = accuracy(a.work, tasks)
    train = training(a.work)
    dec = decode(a.work)
    util = routing(a.work, tasks)
    mach = machine(a.binary, a.threads)
    write_study_json(os.path.join(a.out, "study.json"), acc, tasks, dec)
    pngs = plots(a.out, acc, tasks, dec, util)

    md = ["# The study: LoRA-Switch against layer-wise MoE-LoRA on SmolLM2-135M-Instruct (Q4_1)", "",
          f"Written by `scripts/study/report.py` from `{a.work}` on {datetime.date.today().isoformat()}. "
          "Reproduce with `scripts/study/run.sh` (see the commands below). Methods:", ""]
    md += [f"- `{m}`: {DESCRIPTION[m]}" for m in METHODS]
    # What the figures say, written by hand after a run (kept beside RESULTS.md, so a rerun of the report keeps it).
    findings = os.path.join(a.out, "findings.md")
    if os.path.exists(findings):
        with open(findings) as f:
            md += ["", "## Findings", "", f.read().strip()]
    md += ["", "## Accuracy (test splits)", "",
           "acc and acc_norm in %, ± the standard error (lm-evaluation-harness's); the average is the unweighted mean "
           "over the tasks, its error sqrt(Σ se²)/T.", ""]
    header = "| method | " + " | ".join(tasks) + " | average |"
    for key, title in (("acc", "acc"), ("acc_norm", "acc_norm")):
        md += [f"**{title}**", "", header, "|" + "---|" * (len(tasks) + 2)]
        for m in METHODS:
            if m not in acc:
                md.append(f"| {m} | " + " | ".join("—" for _ in tasks) + " | — |")
                continue
            cells = [pm(acc[m][t][key], acc[m][t].get(key + "_stderr")) if t in acc[m] else "—" for t in tasks]
            avg = average(acc[m], tasks)
            md.append(f"| {m} | " + " | ".join(cells) + f" | {pm(avg[key], avg[key + '_stderr']) if avg else '—'} |")
        md.append("")
    ns = {t: next((acc[m][t]["n"] for m in METHODS if m in acc and t in acc[m]), None) for t in tasks}
    md += ["n per task: " + ", ".join(f"{t} {ns[t]}" for t in tasks), ""]

    # The bar.
    avgs = {m: average(acc[m], tasks) for m in acc}
    md += ["### The bar", ""]
    if avgs.get("moe-token") and avgs.get("moe-layer"):
        d = 100 * (avgs["moe-token"]["acc"] - avgs["moe-layer"]["acc"])
        md.append(f"- LoRA-Switch (router at layer 0) − layer-wise MoE-LoRA, average acc: {d:+.2f} points "
                  f"({'within' if d >= -1 else 'NOT within'} 1 point)")
    else:
        md.append("- LoRA-Switch vs layer-wise MoE-LoRA: not measured yet")
    if avgs.get("base-0shot"):
        for m in TRAINED:
            if avgs.get(m):
                d = 100 * (avgs[m]["acc"] - avgs["base-0shot"]["acc"])
                md.append(f"- {m} − base-0shot, average acc: {d:+.2f} points ({'≥' if d >= 10 else 'BELOW'} 10)")
    md.append("")

    # The reference checks (scripts/study/reference.py), when they have been run.
    md += reference_section(os.path.join(a.out, "reference.json"))

    # Evaluation speed.
    md += ["### Evaluation time", "", "| method | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
    for m in METHODS:
        if m in acc:
            md.append(f"| {m} | " + " | ".join(
                f"{acc[m][t].get('examples_per_second', 0):.2f} ex/s ({fmt_seconds(acc[m][t].get('wall_seconds'))})"
                if t in acc[m] else "—" for t in tasks) + " |")
    md.append("")

    # Training.
    md += ["## Training", "",
           "Every trained row: the same data (the union of the tasks' train splits), steps, batch, schedule and seed. "
           "tokens/s counts the steps' own time (train's own figure: not evaluations or saves); wall is the sum of "
           "the train processes' elapsed time (evaluations and checkpoints included).", "",
           "| method | trainable parameters | steps | tokens | tokens/s | wall | valid loss (step: loss) | train CE (last 20 steps) |",
           "|---|---|---|---|---|---|---|---|"]
    for m in TRAINED:
        if m not in train:
            md.append(f"| {m} | — | — | — | — | — | — | — |")
            continue
        r = train[m]
        vl = ", ".join(f"{s}: {v:.4f}" for s, v in r["valid_loss"]) or "—"
        md.append(f"| {m} | {r['parameters']:,} | {r['steps']}/{r['total_steps']}{'' if r['finished'] else ' (unfinished)'} "
                  f"| {r['tokens']:,} | {r['tokens_per_second']:.1f} | {fmt_seconds(r['wall_seconds'])} | {vl} "
                  f"| {r['train_loss_last']:.4f} |" if r["tokens_per_second"] else f"| {m} | {r['parameters']} | 0 | — | — | — | — | — |")
    if train:
        s = next(iter(train.values()))["start"]
        if s:
            shapes = []
            for m in train:
                st = train[m]["start"]
                if not st:
                    continue
                text = f"{m}: rank {st['rank']}"
                if st["adapter"] != "lora":
                    text += f" ({st['experts']} experts, top-{st['top_k']}"
                    text += f", router layer {st['router_layer']})" if st["adapter"] == "moe-token" else ")"
                shapes.append(text)
            md += ["", f"Shapes: {'; '.join(shapes)}. Targets {s['targets']}; layers {s['layers'][0]}–{s['layers'][-1]}; "
                   f"{s['examples']} training examples, {s['valid_examples']} validation examples."]
    md.append("")

    # Decode.
    md += ["## Decode latency", "",
           "`loraswitch generate --stats` (greedy, the same prompt, the trained adapter) under each strategy, each "
           "measurement right after one of the bare backbone in the same run, in rounds; medians over the rounds "
           "(ratio: the median of the per-round ratios, min–max beside it). The paper (GPU, Llama2-7B): backbone 2.4 "
           "ms/token, LoRA-Switch 3.1 (×1.29), MoLA 25.3 (×10.5).", "",
           "| method | strategy | ms/token | backbone ms/token | ratio | rounds | tokens |", "|---|---|---|---|---|---|---|"]
    for d in dec:
        ratio = f"×{d['ratio']:.3f} ({d['ratio_min']:.3f}–{d['ratio_max']:.3f})" if d["ratio"] else "n/a"
        md.append(f"| {d['method']} | {d['strategy']} | {d['ms_per_token']:.2f} | "
                  f"{d['backbone_ms_per_token']:.2f} | {ratio} | {d['rounds']} | {d['generated'][0]} |")
    if not dec:
        md.append("| — | — | — | — | — | — | — |")
    md.append("")

    # Utilization.
    md += ["## Expert utilization per task", "",
           "Share of the top-k slots each expert takes (%), over every prompt position of the task's first test "
           "contexts (`generate --show-routing`). Specialization: the mean total-variation distance between a "
           "task's shares and the pooled shares (0: all tasks route alike). layer-wise MoE-LoRA has a decision per "
           "projection and no `--show-routing`; its use is in the training log's last evaluation (below).", ""]
    for m, per in util.items():
        ts = [t for t in tasks if t in per]
        if not ts:
            continue
        experts = len(per[ts[0]]["shares"])
        md += [f"**{m}** (specialization {specialization(per) or 0:.3f})", "",
               "| task | contexts | tokens | " + " | ".join(f"e{e}" for e in range(experts)) + " |",
               "|" + "---|" * (experts + 3)]
        for t in ts:
            v = per[t]
            md.append(f"| {t} | {v['contexts']} | {v['tokens']} | " + " | ".join(f"{100 * s:.1f}" for s in v["shares"]) + " |")
        md.append("")
    for m in TRAINED:
        if m in train and train[m]["utilization"]:
            u = train[m]["utilization"]
            shares = list(u.values())
            md.append(f"- {m}, training log's last evaluation (the validation set, {len(u)} router(s)): "
                      + ("; ".join(f"{k}: " + " ".join(f"{100 * x:.1f}" for x in v) for k, v in list(u.items())[:2])
                         if len(u) <= 2 else
                         "mean over routers " + " ".join(f"{100 * statistics.mean(v[e] for v in shares):.1f}" for e in range(len(shares[0])))
                         + f"; the most loaded expert of a router: {100 * statistics.mean(max(v) for v in shares):.1f}% on average"))
    md.append("")

    md += ["## Plots", ""] + ([f"![{p}]({p})" for p in pngs] or ["(not drawn: matplotlib missing)"]) + [""]
    md += ["## Commands", "", "```sh"] + commands(a.work, tasks, train) + ["```", ""]
    md += ["## Machine", ""] + [f"- {k}: {v}" for k, v in mach.items()] + [""]
    with open(os.path.join(a.out, "RESULTS.md.tmp"), "w") as f:
        f.write("\n".join(md))
    os.replace(os.path.join(a.out, "RESULTS.md.tmp"), os.path.join(a.out, "RESULTS.md"))
    print(f"report.py: wrote {a.out}/RESULTS.md, study.json" + (", " + ", ".join(pngs) if pngs else ""))


if __name__ == "__main__":
    main()
