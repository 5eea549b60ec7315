#!/usr/bin/env python3
"""Extract BIG-bench multiple-choice tasks into the task files `bigbench:NAME` reads (development time).

    python3 scripts/bigbench_tasks.py [--source DIR] [--tasks a,b,...] [--out data/bigbench]
                                      [--training-jsonl DIR]

Needs numpy (BIG-bench shuffles appended choices with numpy's legacy RandomState, whose streams numpy keeps
stable across versions). The source is PyPI's `bigbench` 1.0.0 source package: without `--source`, it is
downloaded once with `python3 -m pip download --no-deps --no-binary :all: bigbench==1.0.0` into
$XDG_CACHE_HOME/loraswitch/bigbench (else ~/.cache/loraswitch/bigbench), checked against its sha256 and unpacked
there; later runs reuse it. `--source` names an unpacked copy (the folder holding `bigbench/benchmark_tasks`).

What it writes (the previous run's task folders, manifest.json and README.md under --out are replaced):

    data/bigbench/NAME/{train,validation,test}.jsonl   {"context": str, "choices": [str], "gold": int}
    data/bigbench/manifest.json                        counts, sources and sha256s, refusals
    data/bigbench/README.md                            the files, the rules below, the license
    DIR/NAME/{train,validation,test}.jsonl             with --training-jsonl: {"prompt", "completion"}

The context is BIG-bench's zero-shot multiple-choice query (bigbench/api/json_task.py: `default_format_fn`, then
`evaluate_fixed_shot`): task_prefix + example_input_prefix + input [+ choice_prefix + choice_prefix.join(choices
sorted, then permuted by RandomState(42)) where append_choices_to_input] + example_output_prefix. Defaults:
task_prefix "", example_input_prefix "\\nQ: ", example_output_prefix "\\nA: ", choice_prefix "\\n  choice: ",
append_choices_to_input true. The choices are target_scores' keys in file order (BIG-bench's `choice` list: each is
scored as a continuation of the context); gold is the one whose score is 1. Every context is checked against
BIG-bench's own `default_format_fn`, read out of the source package.

Accepted: tasks scored by multiple_choice_grade whose every example has target_scores with exactly one score 1 and
the rest 0. BIG-bench credits the chosen choice's score, so an example with several correct answers or fractional
scores has no single gold index: such a task is refused whole (the reason counts the examples), never simplified.
A task without examples is read as BIG-bench does, from its subfolders' task.json files (sorted by path); one
refused subtask refuses the task. Exact duplicate examples are dropped as BIG-bench drops them (first kept).

Split: u = the first 8 bytes, big-endian, of sha256(KEY + "\\n" + canonical JSON of the source example) / 2**64,
where KEY is the task folder (subtasks: "task/subfolder") and the canonical JSON is json.dumps(example,
sort_keys=True, ensure_ascii=False, separators=(",", ":")). u < 0.8: train; u < 0.9: validation; else test. Each
split keeps its examples with the smallest digests up to its cap (CAPS) and lists them in digest order, so any
prefix of a file is a random sample. An example's split depends on nothing but itself and its task: adding a task
or an example never moves another. Output is byte-identical on re-run.

--training-jsonl: prompt = context with its trailing whitespace (Python's str.rstrip()) removed, completion = that
whitespace + the gold choice: lm-evaluation-harness's continuation rule, as `loraswitch train` applies it.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VERSION = "1.0.0"
SDIST = f"bigbench-{VERSION}.tar.gz"
SDIST_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
STUDY_TASKS = ["hyperbaton", "bbq_lite_json", "vitaminc_fact_verification", "social_iqa", "winowhy", "strategyqa",
               "logical_fallacy_detection"]
SPLITS = ["train", "validation", "test"]
BOUNDS = {"train": 0.8, "validation": 0.9, "test": 1.0}
CAPS = {"train": 1500, "validation": 300, "test": 500}
SEED = 42  # JsonTask's default random_seed, which evaluate_task.py keeps
SPLIT_RULE = ("u = int.from_bytes(sha256((KEY + '\\n' + json.dumps(example, sort_keys=True, ensure_ascii=False, "
              "separators=(',', ':'))).encode('utf-8')).digest()[:8], 'big') / 2**64, KEY = the task folder "
              "('task/subfolder' for a subtask); train if u < 0.8, validation if u < 0.9, else test; each split "
              "keeps its smallest digests up to its cap, in digest order")
REPO = Path(__file__).resolve().parent.parent


class Refusal(Exception):
    """A task that is not plain single-answer multiple choice; the message says why."""


# MARK: - Source


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "loraswitch" / "bigbench"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_source() -> Path:
    """The unpacked sdist in the cache, downloading and unpacking it the first time."""
    root = cache_dir()
    unpacked = root / f"bigbench-{VERSION}"
    if (unpacked / "bigbench" / "benchmark_tasks").is_dir():
        return unpacked
    root.mkdir(parents=True, exist_ok=True)
    tarball = root / SDIST
    if not tarball.exists():
        print(f"downloading {SDIST} into {root} (about 360 MB) ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"bigbench=={VERSION}", "--dest", str(root)], check=True)
    digest = sha256_file(tarball)
    if digest != SDIST_SHA256:
        sys.exit(f"error: {tarball} has sha256 {digest}, expected {SDIST_SHA256}; delete it and run again")
    print(f"unpacking {tarball} (about 1.8 GB) ...", flush=True)
    partial = root / f".unpacking-{VERSION}"
    shutil.rmtree(partial, ignore_errors=True)
    with tarfile.open(tarball) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(partial, filter="data")
        else:
            tar.extractall(partial)
    (partial / f"bigbench-{VERSION}").rename(unpacked)
    partial.rmdir()
    return unpacked


def check_source(source: Path) -> Path:
    """The benchmark_tasks folder of an unpacked sdist of the pinned version."""
    tasks = source / "bigbench" / "benchmark_tasks"
    if not tasks.is_dir():
        sys.exit(f"error: {source} has no bigbench/benchmark_tasks (give the unpacked sdist's top folder)")
    pkg_info = source / "PKG-INFO"
    if pkg_info.exists():
        version = next((line.split(":", 1)[1].strip() for line in pkg_info.read_text().splitlines()
                        if line.startswith("Version:")), None)
        if version != VERSION:
            sys.exit(f"error: {source} is bigbench {version}, this script reads {VERSION}")
    return tasks


def reference_format_fn(source: Path):
    """BIG-bench's own `default_format_fn`, compiled from the source package's json_task.py (numpy only)."""
    path = source / "bigbench" / "api" / "json_task.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "default_format_fn")
    fn.returns = None
    for a in fn.args.args:
        a.annotation = None
    namespace = {"np": np}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(path), "exec"), namespace)
    return namespace["default_format_fn"]


# MARK: - Tasks


@dataclass
class Subtask:
    key: str  # "task" or "task/subfolder": the split hash's KEY
    path: Path
    data: dict
    sha256: str


@dataclass
class Row:
    digest: bytes
    context: str
    choices: list
    gold: int


@dataclass
class TaskResult:
    name: str
    subtasks: list
    splits: dict = field(default_factory=dict)  # split -> [Row], capped
    available: dict = field(default_factory=dict)  # split -> count before the cap
    duplicates: int = 0
    refused: str | None = None


def read_json(path: Path) -> dict:
    return json.loads(path.read_bytes().decode("utf-8"))


def load_subtasks(tasks_root: Path, name: str) -> list:
    """The task's JSON files as JsonTask reads them: its own, or (no examples) its subfolders' sorted by path."""
    path = tasks_root / name / "task.json"
    if not path.is_file():
        raise Refusal("no task.json (a programmatic task)")
    data = read_json(path)
    if "examples" in data:
        return [Subtask(name, path, data, sha256_file(path))]
    paths = sorted(p / "task.json" for p in (tasks_root / name).iterdir() if (p / "task.json").is_file())
    if not paths:
        raise Refusal("task.json has neither examples nor subtask folders")
    subtasks = [Subtask(f"{name}/{p.parent.name}", p, read_json(p), sha256_file(p)) for p in paths]
    for s in subtasks:
        if "examples" not in s.data:
            raise Refusal(f"subtask {s.key} has no examples (nested subtasks)")
    return subtasks


def check_multiple_choice(sub: Subtask) -> None:
    """Raise Refusal unless every example is single-answer multiple choice scored by multiple_choice_grade."""
    metrics = sub.data.get("metrics", [])
    if "multiple_choice_grade" not in metrics:
        raise Refusal(f"{sub.key}: not scored by multiple_choice_grade (metrics {metrics})")
    examples = sub.data["examples"]
    missing = sum("target_scores" not in e for e in examples)
    if missing:
        raise Refusal(f"{sub.key}: {missing} of {len(examples)} examples have no target_scores")
    graded = sum(any(v not in (0, 1) for v in e["target_scores"].values())
                 for e in examples)
    if graded:
        raise Refusal(f"{sub.key}: {graded} of {len(examples)} examples have scores other than 0 and 1 "
                      "(BIG-bench credits the chosen choice's score; one gold index cannot say that)")
    correct = [sum(v == 1 for v in e["target_scores"].values()) for e in examples]
    several, none = sum(n > 1 for n in correct), sum(n == 0 for n in correct)
    if several or none:
        raise Refusal(f"{sub.key}: of {len(examples)} examples, {several} have several correct choices and {none} "
                      "none (no single gold index)")


def distinct_examples(examples: list) -> tuple:
    """BIG-bench's de-duplication (json.dumps in file key order, first kept) and how many it dropped."""
    seen, kept = set(), []
    for e in examples:
        s = json.dumps(e)
        if s not in seen:
            seen.add(s)
            kept.append(e)
    return kept, len(examples) - len(kept)


def canonical(example: dict) -> str:
    return json.dumps(example, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def split_of(digest: bytes) -> str:
    u = int.from_bytes(digest[:8], "big") / 2**64
    return next(s for s in SPLITS if u < BOUNDS[s])


def format_example(data: dict, example: dict) -> tuple:
    """(context, choices, gold) of a zero-shot multiple-choice query, as json_task.py builds it."""
    input_prefix = data.get("example_input_prefix", "\nQ: ")
    output_prefix = data.get("example_output_prefix", "\nA: ")
    choice_prefix = data.get("choice_prefix", "\n  choice: ")
    append_choices = data.get("append_choices_to_input", True)
    task_prefix = str(data.get("task_prefix", ""))
    scores = example["target_scores"]
    choices = list(scores.keys())
    text = example["input"]
    if append_choices:
        # A fresh RandomState(seed) per example, as default_format_fn makes one per call.
        shown = [str(c) for c in np.random.RandomState(seed=SEED).permutation(sorted(choices))]
        if sorted(shown) != sorted(choices):
            raise Refusal(f"numpy altered a choice while permuting {choices!r}")
        text = text + choice_prefix + choice_prefix.join(shown)
    context = task_prefix + input_prefix + text + output_prefix
    gold = next(i for i, c in enumerate(choices) if scores[c] == 1)
    return context, choices, gold


def check_against_reference(reference, data: dict, example: dict, row: tuple) -> None:
    sample = reference(json.loads(json.dumps(example)),
                       input_prefix=data.get("example_input_prefix", "\nQ: "),
                       output_prefix=data.get("example_output_prefix", "\nA: "),
                       choice_prefix=data.get("choice_prefix", "\n  choice: "),
                       random_seed=SEED,
                       append_choices_to_input=data.get("append_choices_to_input", True))
    context, choices, gold = row
    expected = str(data.get("task_prefix", "")) + sample["input"]
    if context != expected or choices != sample["choice"]:
        raise RuntimeError(f"context or choices differ from BIG-bench's default_format_fn:\n{context!r}\n{expected!r}")
    if "target" not in example and sample["target"] != [choices[gold]]:
        raise RuntimeError(f"gold {choices[gold]!r} differs from BIG-bench's target {sample['target']!r}")


def build_task(tasks_root: Path, name: str, reference) -> TaskResult:
    result = TaskResult(name, [])
    try:
        result.subtasks = load_subtasks(tasks_root, name)
        for sub in result.subtasks:
            check_multiple_choice(sub)
        by_split = split_examples(result, reference)
    except Refusal as r:
        result.refused = str(r)
        return result
    for s in SPLITS:
        rows = sorted(by_split[s], key=lambda r: r.digest)
        result.available[s] = len(rows)
        result.splits[s] = rows[:CAPS[s]]
    return result


def split_examples(result: TaskResult, reference) -> dict:
    """Every distinct example of every subtask, formatted, in its split (uncapped)."""
    by_split = {s: [] for s in SPLITS}
    seen = set()
    for sub in result.subtasks:
        examples, dropped = distinct_examples(sub.data["examples"])
        result.duplicates += dropped
        for example in examples:
            digest = hashlib.sha256(f"{sub.key}\n{canonical(example)}".encode("utf-8")).digest()
            if digest in seen:
                raise Refusal(f"{sub.key}: two examples equal up to key order (one hash, two BIG-bench examples)")
            seen.add(digest)
            row = format_example(sub.data, example)
            check_against_reference(reference, sub.data, example, row)
            by_split[split_of(digest)].append(Row(digest, *row))
    return by_split


# MARK: - Output


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=True)


def write_lines(path: Path, lines: list) -> int:
    text = "".join(line + "\n" for line in lines).encode("ascii")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return len(text)


def move_trailing_whitespace(context: str, completion: str) -> tuple:
    """lm-evaluation-harness: the context's trailing whitespace (str.rstrip()) starts the continuation."""
    stripped = context.rstrip()
    return stripped, context[len(stripped):] + completion


def task_entry(r: TaskResult, tasks_root: Path) -> dict:
    rel = lambda p: p.relative_to(tasks_root.parent.parent).as_posix()  # noqa: E731
    if r.refused:
        return {"refused": r.refused, "source": [{"path": rel(s.path), "sha256": s.sha256} for s in r.subtasks]}
    rows = [row for s in SPLITS for row in r.splits[s]]
    counts = [len(row.choices) for row in rows]
    first = r.subtasks[0].data
    entry = {s: len(r.splits[s]) for s in SPLITS}
    entry.update({
        "available": dict(r.available),
        "capped": any(r.available[s] > CAPS[s] for s in SPLITS),
        "duplicates_dropped": r.duplicates,
        "choices_per_example": [min(counts), max(counts)],
        "gold_index_counts": {s: [sum(row.gold == i for row in r.splits[s]) for i in range(max(counts))]
                              for s in SPLITS},
        "contexts_also_in_train": {s: len({row.context for row in r.splits[s]}
                                          & {row.context for row in r.splits["train"]}) for s in SPLITS[1:]},
        "append_choices_to_input": first.get("append_choices_to_input", True),
        "preferred_score": first.get("preferred_score"),
        "canary": first.get("canary"),
        "refused": None,
        "source": [{"path": rel(s.path), "sha256": s.sha256, "key": s.key, "examples": len(s.data["examples"])}
                   for s in r.subtasks],
    })
    if len(r.subtasks) > 1:
        entry["subtasks"] = "the subfolders' task.json files, sorted by path, pooled before the split"
    return entry


def write_outputs(results: list, out: Path, tasks_root: Path, training: Path | None) -> dict:
    previous = out / "manifest.json"
    if previous.exists():
        for name in json.loads(previous.read_text()).get("tasks", {}):
            shutil.rmtree(out / name, ignore_errors=True)
    sizes = {}
    for r in results:
        if r.refused:
            continue
        sizes[r.name] = 0
        for s in SPLITS:
            rows = r.splits[s]
            sizes[r.name] += write_lines(out / r.name / f"{s}.jsonl",
                                         [dumps({"context": x.context, "choices": x.choices, "gold": x.gold})
                                          for x in rows])
            if training is not None:
                pairs = [move_trailing_whitespace(x.context, x.choices[x.gold]) for x in rows]
                write_lines(training / r.name / f"{s}.jsonl",
                            [dumps({"prompt": p, "completion": c}) for p, c in pairs])
    manifest = {
        "source": {"package": f"bigbench=={VERSION} (sdist)", "sdist_sha256": SDIST_SHA256,
                   "license": "Apache-2.0"},
        "format": {"line": {"context": "str", "choices": ["str"], "gold": "int"},
                   "scoring": "each choice is a continuation of the context (lm-evaluation-harness: the context's "
                              "trailing whitespace moves to the continuation)"},
        "split_rule": SPLIT_RULE,
        "caps": CAPS,
        "tasks": {r.name: task_entry(r, tasks_root) for r in results},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=True) + "\n", encoding="ascii")
    (out / "README.md").write_text(readme(results, sizes), encoding="utf-8")
    return sizes


# MARK: - README


def readme(results: list, sizes: dict) -> str:
    accepted = [r for r in results if not r.refused]
    rows = "\n".join(
        f"| {r.name} | {len(r.subtasks)} | "
        + " | ".join(f"{len(r.splits[s])} of {r.available[s]}" for s in SPLITS)
        + f" | {sizes[r.name] / 1e6:.2f} MB |" for r in accepted)
    refused = "\n".join(f"- {r.name}: {r.refused}" for r in results if r.refused) or "- none"
    canaries = sorted({r.subtasks[0].data.get("canary", "") for r in accepted})
    return f"""# BIG-bench multiple-choice tasks

Written by `scripts/bigbench_tasks.py` from PyPI's `bigbench` {VERSION} source package
(sha256 `{SDIST_SHA256}`):
`bigbench/benchmark_tasks/NAME/task.json`, or for a task without examples its subfolders' `task.json` files.
`bigbench:NAME` reads `NAME/{{train,validation,test}}.jsonl`. Regenerate (byte-identical; the first run downloads
the 360 MB package into ~/.cache/loraswitch/bigbench):

    python3 scripts/bigbench_tasks.py

Training files for `loraswitch train` (`{{"prompt", "completion"}}`, same examples and splits; kept out of the repo):

    python3 scripts/bigbench_tasks.py --training-jsonl ~/.cache/loraswitch/bigbench-train

## Files

- `NAME/train.jsonl`, `NAME/validation.jsonl`, `NAME/test.jsonl`: one example a line,
  `{{"context": str, "choices": [str], "gold": int}}` (ASCII JSON). Each choice is scored as a continuation of the
  context; as in lm-evaluation-harness, the context's trailing whitespace moves to the start of the continuation.
  The training files apply that move themselves: prompt = `context.rstrip()`, completion = the stripped
  whitespace + the gold choice.
- `manifest.json`: per task the written and available counts per split, the duplicates BIG-bench drops, choices
  per example, gold-index counts, validation/test contexts also in the written train file, the source files with
  their sha256, refusals with their reasons; the split rule and the caps.

## Context

BIG-bench's zero-shot multiple-choice query (`bigbench/api/json_task.py`, `default_format_fn` and
`evaluate_fixed_shot`): `task_prefix + example_input_prefix + input [+ choice_prefix + choice_prefix.join(choices)]
+ example_output_prefix`, with the defaults `""`, `"\\nQ: "`, `"\\nA: "`, `"\\n  choice: "`. The choices are appended
when `append_choices_to_input` is true (the default), sorted and then permuted by numpy's `RandomState(42)` as
BIG-bench does; they are scored in `target_scores`' order. `gold` is the choice with score 1. The script checks
every context against BIG-bench's own `default_format_fn`, read out of the package.

- A task made of subtasks (bbq_lite_json: 18) pools them; each is formatted with its own `task.json`. The parent's
  `prefix` key is not read by BIG-bench (it reads `task_prefix`), so it is not in the contexts.
- strategyqa's `target` (explanations for its bleu/rouge metrics) is unused: multiple_choice_grade reads
  `target_scores`.
- Exact duplicate examples are dropped as BIG-bench drops them (the first is kept).

Only tasks scored by `multiple_choice_grade` whose every example has exactly one choice with score 1 and the others
0 are written. BIG-bench credits a prediction with the chosen choice's score, so an example with several correct
answers or fractional scores has no single gold index: such a task is refused whole, not simplified.

## Split

    {SPLIT_RULE.replace("; ", ";" + chr(10) + "    ").replace(", KEY", "," + chr(10) + "    KEY")}

An example's split depends only on itself and its task, so adding a task or an example moves no other example.
Caps per task and split, which keep the large tasks small: train {CAPS['train']}, validation {CAPS['validation']},
test {CAPS['test']} ({sum(sizes.values()) / 1e6:.2f} MB of task files in all). Files list examples in digest order,
so a prefix of a file is a random sample of its split.

| task | subtasks | train | validation | test | size |
|---|---|---|---|---|---|
{rows}

Refused:
{refused}

## License and canary

BIG-bench is released under the Apache License 2.0 (the license header of the package's files); these files are
derived from its task files, changed only as described above. Several tasks adapt published datasets (bbq_lite_json:
BBQ, Parrish et al. 2022; social_iqa: Social IQa, Sap et al. 2019; vitaminc_fact_verification: VitaminC, Schuster
et al. 2021; strategyqa: StrategyQA, Geva et al. 2021; winowhy: WinoWhy, Zhang et al. 2020); each task's README in
the BIG-bench repository (not shipped in the package) names its source and authors.

BIG-bench marks its data so that it stays out of pre-training corpora; the tasks' canary string is kept here:

{chr(10).join(f"    {c}" for c in canaries)}
"""


# MARK: - Main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, help="unpacked bigbench sdist (default: download into the cache)")
    parser.add_argument("--tasks", default=",".join(STUDY_TASKS), help="comma-separated task folders")
    parser.add_argument("--out", type=Path, default=REPO / "data" / "bigbench")
    parser.add_argument("--training-jsonl", type=Path, help="also write {prompt, completion} files here")
    args = parser.parse_args()
    names = [n.strip() for n in args.tasks.split(",") if n.strip()]
    if not names or len(set(names)) != len(names):
        parser.error("--tasks needs distinct, non-empty task names")

    source = args.source.expanduser().resolve() if args.source else default_source()
    tasks_root = check_source(source)
    unknown = [n for n in names if not (tasks_root / n).is_dir()]
    if unknown:
        parser.error(f"no such task folder in {tasks_root}: {', '.join(unknown)}")
    reference = reference_format_fn(source)
    results = [build_task(tasks_root, n, reference) for n in names]
    args.out.mkdir(parents=True, exist_ok=True)
    sizes = write_outputs(results, args.out, tasks_root, args.training_jsonl)

    print(f"{'task':28} {'train':>12} {'validation':>12} {'test':>12} {'choices':>8} {'dups':>5} {'MB':>6}")
    for r in results:
        if r.refused:
            print(f"{r.name:28} refused: {r.refused}")
            continue
        counts = [len(x.choices) for s in SPLITS for x in r.splits[s]]
        cells = " ".join(f"{f'{len(r.splits[s])}/{r.available[s]}':>12}" for s in SPLITS)
        print(f"{r.name:28} {cells} {f'{min(counts)}-{max(counts)}':>8} {r.duplicates:>5} "
              f"{sizes[r.name] / 1e6:>6.2f}")
    print(f"(written/available per split; caps {CAPS}) total {sum(sizes.values()) / 1e6:.2f} MB in {args.out}")


if __name__ == "__main__":
    main()
