#!/usr/bin/env python3
"""The study's two reference checks of `loraswitch eval` on the default model (issue 11's bar):

1. exactness: the base model's zero-shot scores beside lm-evaluation-harness itself (its `hf` backend:
   transformers in float32 on the default model dequantized), the same task files and examples — identical
   acc except where two choices' log-likelihoods tie within 1e-4, and the per-choice log-likelihoods' largest
   difference;
2. speed: examples/s of `loraswitch eval` beside lm-evaluation-harness on the same tasks, examples, machine and
   threads. Ours is timed as a whole command (model load included); lm-evaluation-harness per task with its
   model already loaded (its load excluded), which favours it.

lm-evaluation-harness reads our task files through a task config of its own (written to a temporary folder):
`dataset_path: json` on data/bigbench/TASK/test.jsonl, `output_type: multiple_choice`, `doc_to_text: context`,
`doc_to_choice: choices`, `doc_to_target: gold`, `target_delimiter: ""` (the task's context already ends
where the answer begins; lm-evaluation-harness moves its trailing whitespace to the continuation as ours does).

Development time only (needs torch, transformers, accelerate, gguf and lm_eval; no network: the model is the local GGUF,
the data the committed task files). Run from the repository root, after `swift build -c release`:

    python3 -m venv ~/.cache/loraswitch/ref-venv
    ~/.cache/loraswitch/ref-venv/bin/pip install torch transformers accelerate gguf lm_eval
    ~/.cache/loraswitch/ref-venv/bin/python scripts/study/reference.py --limit 300 --out study/reference.json

Writes --out (JSON) and prints a Markdown summary; scripts/study/report.py puts it into RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "loraswitch"
TIE = 1e-4


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default="hyperbaton,bbq_lite_json,logical_fallacy_detection,social_iqa")
    p.add_argument("--limit", type=int, default=300, help="the first N test examples of each task")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--model", default=str(CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    p.add_argument("--binary", default=str(REPO / ".build/release/loraswitch"))
    p.add_argument("--dequantized", default=str(CACHE / "reference/SmolLM2-135M-Instruct-f32"),
                   help="where the dequantized Hugging Face folder is kept (made when missing)")
    p.add_argument("--out", default=str(REPO / "study/reference.json"))
    return p.parse_args()


def dequantize(gguf: Path, folder: Path) -> None:
    """The GGUF read by transformers (its gguf loader dequantizes every tensor) and saved as float32."""
    if (folder / "config.json").exists():
        return
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A model loaded from a GGUF file is marked quantized and refuses to save: its dequantized weights go into a
    # plain model of the same configuration.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    tmp = folder.with_name(folder.name + ".part")
    plain.save_pretrained(str(tmp))
    tok.save_pretrained(str(tmp))
    tmp.rename(folder)


def task_configs(tasks: list[str], folder: Path) -> None:
    for t in tasks:
        data = REPO / "data/bigbench" / t / "test.jsonl"
        (folder / f"ls_{t}.yaml").write_text(
            f"task: ls_{t}\n"
            "dataset_path: json\n"
            "dataset_kwargs:\n"
            "  data_files:\n"
            f"    test: {json.dumps(str(data))}\n"
            "test_split: test\n"
            "output_type: multiple_choice\n"
            "doc_to_text: context\n"
            "doc_to_choice: choices\n"
            "doc_to_target: gold\n"
            'target_delimiter: ""\n'
            "metric_list:\n"
            "  - metric: acc\n"
            "  - metric: acc_norm\n")


def harness(tasks: list[str], folder: Path, limit: int, threads: int) -> dict:
    """{task: {"acc", "acc_norm", "seconds", "examples": [{"doc_id", "loglik": [...]}]}} from lm-evaluation-harness."""
    import torch
    torch.set_num_threads(threads)
    import lm_eval
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    with tempfile.TemporaryDirectory() as d:
        task_configs(tasks, Path(d))
        manager = TaskManager(include_path=d)
        lm = HFLM(pretrained=str(folder), dtype="float32", batch_size=1, device="cpu")
        out = {"version": lm_eval.__version__, "add_bos_token": getattr(lm, "add_bos_token", None), "tasks": {}}
        for t in tasks:
            t0 = time.perf_counter()
            r = lm_eval.simple_evaluate(model=lm, tasks=[f"ls_{t}"], limit=limit, num_fewshot=0, log_samples=True,
                                        task_manager=manager, bootstrap_iters=0)
            seconds = time.perf_counter() - t0
            metrics = r["results"][f"ls_{t}"]
            samples = sorted(r["samples"][f"ls_{t}"], key=lambda s: s["doc_id"])
            examples = [{"doc_id": s["doc_id"], "gold": s["target"],
                         "loglik": [float(resp[0]) for resp in s["filtered_resps"]]} for s in samples]
            out["tasks"][t] = {"acc": metrics["acc,none"], "acc_norm": metrics["acc_norm,none"], "n": len(examples),
                               "seconds": seconds, "examples_per_second": len(examples) / seconds,
                               "examples": examples}
            print(f"lm-evaluation-harness {t}: acc {metrics['acc,none']:.4f} in {seconds:.1f} s", file=sys.stderr)
    return out


def ours(binary: str, model: str, tasks: list[str], limit: int, threads: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for t in tasks:
            path = Path(d) / f"{t}.json"
            t0 = time.perf_counter()
            subprocess.run([binary, "eval", "--model", model, "--task", f"bigbench:{t}", "--split", "test",
                            "--limit", str(limit), "--threads", str(threads), "--json", str(path)],
                           check=True, stdout=subprocess.DEVNULL)
            seconds = time.perf_counter() - t0
            r = json.loads(path.read_text())
            out[t] = {"acc": r["acc"], "acc_norm": r["acc_norm"], "n": r["n"], "seconds": seconds,
                      "examples_per_second": r["n"] / seconds, "examples": r["examples"]}
            print(f"loraswitch {t}: acc {r['acc']:.4f} in {seconds:.1f} s", file=sys.stderr)
    return out


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=lambda i: (values[i], -i))


def compare(task: str, a: dict, b: dict, choices: list[list[str]]) -> dict:
    """Per example: the same argmax (acc) and argmax per character (acc_norm), unless the reference ties."""
    assert len(a["examples"]) == len(b["examples"]), task
    worst, acc_diff, norm_diff, ties = 0.0, [], [], 0
    for i, (x, y) in enumerate(zip(a["examples"], b["examples"])):
        la, lb = x["loglik"], y["loglik"]
        assert len(la) == len(lb) == len(choices[i]), (task, i)
        worst = max(worst, max(abs(p - q) for p, q in zip(la, lb)))
        for values_a, values_b, diffs in ((la, lb, acc_diff),
                                          ([v / len(c) for v, c in zip(la, choices[i])],
                                           [v / len(c) for v, c in zip(lb, choices[i])], norm_diff)):
            if argmax(values_a) != argmax(values_b):
                top = sorted(values_b, reverse=True)
                if top[0] - top[1] <= TIE:
                    ties += 1
                else:
                    diffs.append(i)
    return {"max_abs_loglik_diff": worst, "acc_differs": acc_diff, "acc_norm_differs": norm_diff,
            "differences_at_ties": ties}


def main():
    a = parse_args()
    tasks = a.tasks.split(",")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ["OMP_NUM_THREADS"] = str(a.threads)
    folder = Path(a.dequantized)
    folder.parent.mkdir(parents=True, exist_ok=True)
    dequantize(Path(a.model), folder)
    mine = ours(a.binary, a.model, tasks, a.limit, a.threads)
    ref = harness(tasks, folder, a.limit, a.threads)
    rows = []
    for t in tasks:
        with open(REPO / "data/bigbench" / t / "test.jsonl") as f:
            choices = [json.loads(line)["choices"] for _, line in zip(range(a.limit), f)]
        c = compare(t, mine[t], ref["tasks"][t], choices)
        rows.append({"task": t, "n": mine[t]["n"],
                     "acc": mine[t]["acc"], "acc_norm": mine[t]["acc_norm"],
                     "reference_acc": ref["tasks"][t]["acc"], "reference_acc_norm": ref["tasks"][t]["acc_norm"],
                     **c,
                     "examples_per_second": mine[t]["examples_per_second"],
                     "reference_examples_per_second": ref["tasks"][t]["examples_per_second"],
                     "speedup": mine[t]["examples_per_second"] / ref["tasks"][t]["examples_per_second"]})
    import torch
    import transformers
    result = {"model": a.model, "threads": a.threads, "limit": a.limit, "tie": TIE,
              "reference": {"lm_eval": ref["version"], "backend": "hf", "dtype": "float32",
                            "add_bos_token": ref["add_bos_token"], "torch": torch.__version__,
                            "transformers": transformers.__version__},
              "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "rows": rows}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print("| task | n | acc (ours) | acc (lm-eval) | acc_norm (ours) | acc_norm (lm-eval) | differing acc / acc_norm "
          "| max abs loglik diff | examples/s ours | lm-eval | speedup |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['task']} | {r['n']} | {100 * r['acc']:.2f} | {100 * r['reference_acc']:.2f} | "
              f"{100 * r['acc_norm']:.2f} | {100 * r['reference_acc_norm']:.2f} | "
              f"{len(r['acc_differs'])} / {len(r['acc_norm_differs'])} | {r['max_abs_loglik_diff']:.2e} | "
              f"{r['examples_per_second']:.2f} | {r['reference_examples_per_second']:.2f} | {r['speedup']:.1f}x |")


if __name__ == "__main__":
    main()
