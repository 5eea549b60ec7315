#!/usr/bin/env python3
"""Builds the study's training and validation sets from data/bigbench task files (Python 3 stdlib only).

Each task line {"context", "choices", "gold"} becomes {"prompt", "completion"}: prompt = the context without its
trailing whitespace (Python's str.rstrip), completion = that whitespace + the gold choice. This is exactly the
continuation `loraswitch eval` scores (lm-evaluation-harness: the context's trailing whitespace moves to the
continuation), and `loraswitch train` splits a prompt/completion pair the same way (the default model adds no
BOS/EOS, so the labelled tokens are the gold continuation's tokens and nothing else).

Outputs (in --out):
  train.jsonl       the union of the tasks' train splits (the first --train-per-task lines of each, the files being
                    in hash order already), shuffled with random.Random(--seed)
  validation.jsonl  the first --valid-per-task lines of each task's validation split, task by task (for --valid)
  manifest.json     tasks, counts, seed, and the SHA-256 of each output (the same arguments give the same bytes)

The test splits are never read.
"""
import argparse
import hashlib
import json
import os
import random
import sys


def pairs(path, limit):
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            e = json.loads(line)
            context, choices, gold = e["context"], e["choices"], e["gold"]
            if not (isinstance(gold, int) and 0 <= gold < len(choices)):
                sys.exit(f"{path}:{number}: gold {gold} outside the {len(choices)} choices")
            prompt = context.rstrip()
            out.append({"prompt": prompt, "completion": context[len(prompt):] + choices[gold]})
            if limit is not None and len(out) == limit:
                break
    return out


def write(path, rows):
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data", "bigbench"),
                    help="the BIG-bench task folder (default: the repository's data/bigbench)")
    ap.add_argument("--tasks", required=True, help="comma-separated task names")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--train-per-task", type=int, default=None, help="train lines per task (default: all)")
    ap.add_argument("--valid-per-task", type=int, default=None, help="validation lines per task (default: all)")
    ap.add_argument("--seed", type=int, default=0, help="the shuffle's seed (default 0)")
    a = ap.parse_args()

    tasks = [t for t in a.tasks.split(",") if t]
    os.makedirs(a.out, exist_ok=True)
    train, valid, counts = [], [], {}
    for t in tasks:
        tr = pairs(os.path.join(a.data, t, "train.jsonl"), a.train_per_task)
        va = pairs(os.path.join(a.data, t, "validation.jsonl"), a.valid_per_task)
        counts[t] = {"train": len(tr), "validation": len(va)}
        train += tr
        valid += va
    random.Random(a.seed).shuffle(train)
    manifest = {
        "tasks": tasks, "counts": counts, "seed": a.seed,
        "train_per_task": a.train_per_task, "valid_per_task": a.valid_per_task,
        "train_examples": len(train), "validation_examples": len(valid),
        "sha256": {"train.jsonl": write(os.path.join(a.out, "train.jsonl"), train),
                   "validation.jsonl": write(os.path.join(a.out, "validation.jsonl"), valid)},
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"{a.out}: {len(train)} training examples, {len(valid)} validation examples from {', '.join(tasks)}")


if __name__ == "__main__":
    main()
