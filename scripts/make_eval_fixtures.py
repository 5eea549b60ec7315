#!/usr/bin/env python3
"""Regenerate the evaluation fixtures under Tests/Fixtures/eval/: the reference `loraswitch eval` and
`loraswitch perplexity` are checked against.

Run from the repository root (development machines only; the Swift package does not need Python at
build or test time):

    ~/.cache/loraswitch-peers/bin/python scripts/make_eval_fixtures.py

Needs: torch, transformers (5.x), tokenizers, peft, safetensors, numpy (the peers' venv has them).

What it writes (it deletes Tests/Fixtures/eval/ first and touches nothing else):

    eval/model/        a tiny random llama (config.json + model.safetensors, vocab 1056: room for both
                       tokenizers below); a test puts a tokenizer beside it
    eval/lora/         a random PEFT LoRA of that model (r 4 on q, v, o, down)
    eval/task.jsonl    the multiple-choice examples
    eval/text.txt      the perplexity text
    eval/expected.json the reference, per tokenizer (Tests/Fixtures/tokenizers/bytelevel-gpt2: no BOS;
                       bytelevel-llama3: BOS by its post-processor)
    eval/README.md

The reference follows lm-evaluation-harness's log-likelihood conventions, written here independently of
the Swift code, with token ids from the `tokenizers` library and log-probabilities from transformers in
float64 (each choice scored from scratch: one forward pass over its whole sequence, no KV cache):

* the context's trailing whitespace (Python's `str.rstrip()`) moves to the start of the continuation;
* BOS as the tokenizer's post-processor adds it (`encode("", add_special_tokens=True)`), never EOS;
* continuation tokens = tokens(context + continuation) after their longest common prefix with
  tokens(context); where nothing precedes the continuation (empty context without a BOS, or a choice
  whose first token swallows the whole context) the sequence starts with the BOS token (else the EOS);
* log-likelihood = sum of log_softmax(logits[p - 1])[token p] over the continuation;
* acc: argmax (first of equal ones, numpy); acc_norm: argmax of loglik / len(choice) (the choice as
  the task gives it, Unicode code points: lm-evaluation-harness's `completion_len`);
* standard errors: lm-evaluation-harness's `mean_stderr` (sample standard deviation / sqrt(n));
* perplexity: the transformers guide's sliding window (`for begin_loc in range(0, seq_len, stride)`,
  targets the last `end_loc - prev_end_loc` tokens of each window, the first token unscored), summed
  exactly per token; bits per byte = total nats / ln 2 / UTF-8 bytes of the text;
* few-shot draws: SplitMix64 seeded with seed ^ (index * 0xD1B54A32D192ED03), a partial Fisher-Yates
  shuffle of the pool's indices (the evaluated example removed when the pool is the evaluated split),
  each draw in 0..<m the high word of next() * m.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from adapterfix.peft_lora import make_peft, save_peft  # noqa: E402  (imports make_fixtures: one torch thread)
from modelfix.common import FIXTURES, build_config, classic_config_json, randomize  # noqa: E402

import numpy as np  # noqa: E402
import peft  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

EVAL = FIXTURES / "eval"
TOKENIZERS = FIXTURES / "tokenizers"
TOKENIZER_NAMES = ["bytelevel-gpt2", "bytelevel-llama3"]

CONFIG = dict(model_type="llama", vocab_size=1056, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5,
              rope_theta=10000.0, rope_scaling=None, tie_word_embeddings=True)
MODEL_SEED = 11
LORA_SEED = 12
LORA_B_STD = 0.1
EMBED_SCALE = 0.3     # randomize's 0.5·randn embeddings (the tied head too) times this: logits of std ~0.8
PPL_CONTEXT = 16      # smaller than the text's tokens: several windows
PPL_STRIDE = 6        # does not divide the token count: the last window is shorter
NEAR_TIE = 1e-3       # distinct choices' logliks (and per-character ones) must differ by more
SHOTS_SEED = 1234
SHOT_POOL = 10

EXAMPLES = [
    # A trailing space that moves, multi-byte choices (2-byte é, 3-byte CJK).
    {"context": "The cat sat on the ", "choices": ["mat", "é", "日本", "floor"], "gold": 0},
    # The first continuation token merges across the boundary ("Ġ", "q" | "uick" -> "Ġqu", "ic", "k").
    {"context": "I think q", "choices": ["uick", "ueen", "x"], "gold": 0},
    # An empty context: the continuation follows the BOS (or, without one, the BOS token put there).
    {"context": "", "choices": ["Hello world", "Goodbye"], "gold": 1},
    # Without a BOS the choice swallows the one context token ("t" + "he" -> "the").
    {"context": "t", "choices": ["he", "o"], "gold": 0},
    # A newline moves (and with the Llama 3 set-up merges back: ":" + "\n" -> ":Ċ").
    {"context": "Q: 2+2?\nA:\n", "choices": ["4", "5", "22"], "gold": 0},
    # Tabs and spaces move; accents and CJK in context and choices.
    {"context": "Café owners in 東京 say: \t", "choices": ["naïve", "déjà vu", "日本語"], "gold": 2},
    # Choices that bring their own space.
    {"context": "The capital of France is", "choices": [" Paris", " London", " Rome"], "gold": 0},
    {"context": "function add(a, b) {\n    return", "choices": [" a + b;", " a - b;"], "gold": 0},
    # Two equal choices: equal logliks, the first one wins (numpy's argmax), so this gold is never found.
    {"context": "Yes or no? ", "choices": ["yes", "yes", "no"], "gold": 1},
]

TEXT = ("The quick brown fox jumps over the lazy dog. Café owners in 東京 say the coffee is naïve, "
        "déjà vu! function add(a, b) {\n    return a + b;\n}\nQ: 2+2?\nA: 4\n\nEmoji: 🙂 and numbers 1234.")


# ---------------------------------------------------------------------------------------------
# Conventions (independent of the Swift code)
# ---------------------------------------------------------------------------------------------

def move_whitespace(context: str, continuation: str) -> tuple[str, str]:
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    return context, continuation


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


class Tok:
    def __init__(self, name: str):
        self.name = name
        self.tok = Tokenizer.from_file(str(TOKENIZERS / name / "tokenizer.json"))
        config = json.loads((TOKENIZERS / name / "tokenizer_config.json").read_text())
        self.bos = self.tok.encode("", add_special_tokens=True).ids
        assert len(self.bos) <= 1, self.bos
        ids = [self.tok.token_to_id(config[k]) for k in ("bos_token", "eos_token") if config.get(k)]
        self.prefix = ids[0]

    def ids(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def example(self, context: str, choices: list[str]) -> dict:
        ctx, moved = move_whitespace(context, "")
        lead = list(self.bos)
        context_ids = lead + self.ids(ctx)
        if not context_ids:
            lead = [self.prefix]
            context_ids = lead
        out = []
        for choice in choices:
            c, cont = move_whitespace(context, choice)
            assert c == ctx and cont == moved + choice
            whole = lead + self.ids(c + cont)
            start = common_prefix(whole, context_ids)
            if start == 0:
                whole = [self.prefix] + whole
                start = 1
            assert start < len(whole)
            out.append({"tokens": whole, "start": start, "characters": len(choice)})
        return {"context_tokens": context_ids, "choices": out}


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------

def log_probs(model, tokens: list[int]) -> torch.Tensor:
    """log_softmax of the logits of every position, float64 [T, vocab]."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([tokens]), use_cache=False).logits[0]
    assert logits.dtype == torch.float64
    return torch.log_softmax(logits, dim=-1)


def loglik(model, tokens: list[int], start: int) -> float:
    lp = log_probs(model, tokens)
    return float(sum(lp[p - 1, tokens[p]] for p in range(start, len(tokens))))


def mean_stderr(arr: list[float]) -> float:
    """lm-evaluation-harness: sample_stddev(arr) / sqrt(len(arr))."""
    mu = sum(arr) / len(arr)
    return math.sqrt(sum([(x - mu) ** 2 for x in arr]) / (len(arr) - 1)) / math.sqrt(len(arr))


def metrics(scored: list[tuple[list[float], list[int], int]]) -> dict:
    acc = [1.0 if int(np.argmax(ll)) == gold else 0.0 for ll, _, gold in scored]
    norm = [1.0 if int(np.argmax(np.array(ll) / np.array(chars, dtype=float))) == gold else 0.0
            for ll, chars, gold in scored]
    return {"n": len(scored), "acc": sum(acc) / len(acc), "acc_norm": sum(norm) / len(norm),
            "acc_stderr": mean_stderr(acc), "acc_norm_stderr": mean_stderr(norm)}


def check_no_near_ties(name: str, lls: list[float], choices: list[str], chars: list[int]) -> None:
    for values in (lls, [ll / c for ll, c in zip(lls, chars)]):
        for i in range(len(values)):
            for j in range(i):
                if choices[i] == choices[j]:
                    assert values[i] == values[j], (name, choices, values)
                else:
                    assert abs(values[i] - values[j]) > NEAR_TIE, (name, choices, values)


def score_task(model, tok: Tok, label: str) -> dict:
    examples, scored = [], []
    for ex in EXAMPLES:
        enc = tok.example(ex["context"], ex["choices"])
        lls = [loglik(model, c["tokens"], c["start"]) for c in enc["choices"]]
        chars = [c["characters"] for c in enc["choices"]]
        check_no_near_ties(f"{tok.name} {label}", lls, ex["choices"], chars)
        for c, ll in zip(enc["choices"], lls):
            c["loglik"] = ll
        examples.append(enc)
        scored.append((lls, chars, ex["gold"]))
    return {"examples": examples, **metrics(scored)}


def perplexity(model, tok: Tok) -> dict:
    """The transformers guide's loop, each target token's log-probability summed exactly."""
    tokens = tok.bos + tok.ids(TEXT)
    seq_len = len(tokens)
    assert seq_len > 3 * PPL_CONTEXT and (seq_len - PPL_CONTEXT) % PPL_STRIDE != 0, seq_len
    nll, counted, prev_end, windows = 0.0, [], 0, []
    for begin in range(0, seq_len, PPL_STRIDE):
        end = min(begin + PPL_CONTEXT, seq_len)
        trg_len = end - prev_end
        ids = tokens[begin:end]
        lp = log_probs(model, ids)
        first = max(len(ids) - trg_len, 1)   # labels[:, :-trg_len] = -100; the shift drops position 0
        for j in range(first, len(ids)):
            nll -= float(lp[j - 1, ids[j]])
            counted.append(begin + j)
        windows.append([begin, end, begin + first])
        prev_end = end
        if end == seq_len:
            break
    assert counted == list(range(1, seq_len)), "every token but the first scored exactly once"
    n_bytes = len(TEXT.encode("utf-8"))
    return {"context": PPL_CONTEXT, "stride": PPL_STRIDE, "tokens": seq_len, "scored": len(counted),
            "bytes": n_bytes, "nll": nll, "perplexity": math.exp(nll / len(counted)),
            "bits_per_byte": nll / math.log(2) / n_bytes, "windows": windows}


# ---------------------------------------------------------------------------------------------
# Few-shot draws
# ---------------------------------------------------------------------------------------------

MASK = (1 << 64) - 1


class SplitMix:
    def __init__(self, seed: int):
        self.state = seed & MASK

    def next(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def draw_shots(pool: int, shots: int, seed: int, index: int, evaluates_pool: bool) -> list[int]:
    candidates = [i for i in range(pool) if not (evaluates_pool and i == index)]
    rng = SplitMix(seed ^ ((index * 0xD1B54A32D192ED03) & MASK))
    for k in range(shots):
        j = k + ((rng.next() * (len(candidates) - k)) >> 64)
        candidates[k], candidates[j] = candidates[j], candidates[k]
    return candidates[:shots]


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def save_model(model) -> Path:
    folder = EVAL / "model"
    model.save_pretrained(folder)
    for f in folder.iterdir():
        if f.name not in ("config.json", "model.safetensors"):
            f.unlink() if f.is_file() else shutil.rmtree(f)
    classic_config_json(folder, CONFIG)
    return folder


def main() -> None:
    torch.use_deterministic_algorithms(True)
    if EVAL.exists():
        shutil.rmtree(EVAL)
    EVAL.mkdir(parents=True)

    config = build_config(CONFIG)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=torch.float32)
    randomize(model, MODEL_SEED)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(EMBED_SCALE)
    model.eval()
    folder = save_model(model)
    reloaded = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reloaded.state_dict().values()))

    lora = make_peft(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
                                       lora_dropout=0.0), LORA_SEED, LORA_B_STD)
    save_peft(lora, "lora", "eval/model", root=EVAL)

    with (EVAL / "task.jsonl").open("w") as f:
        for ex in EXAMPLES:
            f.write(json.dumps(ex) + "\n")
    (EVAL / "text.txt").write_text(TEXT, encoding="utf-8")

    base64 = copy.deepcopy(model).double().eval()
    lora64 = copy.deepcopy(lora).double().eval()
    expected = {
        "source": (f"transformers {transformers.__version__} (eager, float64: weights upcast, log_softmax in "
                   f"float64), peft {peft.__version__}, tokenizers {tokenizers.__version__}, torch "
                   f"{torch.__version__}; each choice scored from scratch in one forward pass"),
        "tokenizers": {},
        "shots": {"seed": SHOTS_SEED, "pool": SHOT_POOL, "shots": 3,
                  "separate": {str(i): draw_shots(SHOT_POOL, 3, SHOTS_SEED, i, False) for i in range(4)},
                  "same_split": {str(i): draw_shots(SHOT_POOL, 3, SHOTS_SEED, i, True) for i in range(4)}},
    }
    for name in TOKENIZER_NAMES:
        tok = Tok(name)
        expected["tokenizers"][name] = {
            "bos": tok.bos,
            "prefix_token": tok.prefix,
            "base": score_task(base64, tok, "base"),
            "lora": score_task(lora64, tok, "lora"),
            "perplexity": perplexity(base64, tok),
        }
        base_ll = [c["loglik"] for e in expected["tokenizers"][name]["base"]["examples"] for c in e["choices"]]
        lora_ll = [c["loglik"] for e in expected["tokenizers"][name]["lora"]["examples"] for c in e["choices"]]
        effect = max(abs(a - b) for a, b in zip(base_ll, lora_ll))
        assert 0.05 < effect < 20, effect
        merged = [e["choices"][0]["start"] < len(e["context_tokens"]) for e in expected["tokenizers"][name]["base"]["examples"]]
        print(f"{name}: base acc {expected['tokenizers'][name]['base']['acc']:.3f} "
              f"acc_norm {expected['tokenizers'][name]['base']['acc_norm']:.3f}, lora effect {effect:.2f}, "
              f"boundary merges in examples {[i for i, m in enumerate(merged) if m]}, "
              f"perplexity {expected['tokenizers'][name]['perplexity']['perplexity']:.3f}")
    (EVAL / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=True) + "\n")
    write_readme(expected)
    files = [f for f in EVAL.rglob("*") if f.is_file()]
    for f in files:
        f.chmod(0o644)
    total = sum(f.stat().st_size for f in files)
    print(f"total {total} B")
    assert total < 400_000, total


def write_readme(expected: dict) -> None:
    doc = __doc__.split("The reference follows", 1)[1]
    text = f"""# Evaluation fixtures

Generated by `scripts/make_eval_fixtures.py` — do not edit by hand. Regenerate (from the
repository root) with

    ~/.cache/loraswitch-peers/bin/python scripts/make_eval_fixtures.py

Made with {expected["source"]}.

- `model/`: a tiny random llama (2 layers, hidden 32, 4 heads, 2 KV heads, vocab 1056, tied
  embeddings scaled by {EMBED_SCALE} so that the logits have a std of ~0.8, float32, seed {MODEL_SEED}); no tokenizer: a test copies one of
  `tokenizers/bytelevel-gpt2` (no BOS) or `tokenizers/bytelevel-llama3` (BOS) beside it.
- `lora/`: a PEFT LoRA of it (r 4, alpha 8, q/v/o/down projections, B std {LORA_B_STD}, seed {LORA_SEED}).
- `task.jsonl`: {len(EXAMPLES)} examples (a trailing space, multi-byte choices, a first token that
  merges across the boundary, an empty context, a choice that swallows the context, equal choices).
- `text.txt`: the perplexity text, scored with context {PPL_CONTEXT} and stride {PPL_STRIDE}.
- `expected.json`: per tokenizer `bos`, `prefix_token`, and for `base` and `lora` every example's
  `context_tokens` and per choice `tokens`, `start`, `characters`, `loglik`, then `n`, `acc`,
  `acc_norm`, `acc_stderr`, `acc_norm_stderr`; `perplexity` (`tokens`, `scored`, `bytes`, `nll`
  (summed nats), `perplexity`, `bits_per_byte`, `windows` as [begin, end, first scored]); `shots`:
  the few-shot draws of indices 0-3 from a pool of {SHOT_POOL} (3 shots, seed {SHOTS_SEED}), from
  another split (`separate`) and from the evaluated split itself (`same_split`).

The reference follows{doc}"""
    (EVAL / "README.md").write_text(text)


if __name__ == "__main__":
    main()
