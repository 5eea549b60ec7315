#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed (OpenBLAS, the default model), builds in release mode,
# generates text from the default model (a completion, a chat answer, and samples decoded together), trains a
# LoRA-Switch adapter (token-routed MoE-LoRA) on BIG-bench's hyperbaton for a few minutes, evaluates it against the
# bare model on held-out questions and answers with it, serves it (`loraswitch serve`, one streamed chat answer with
# each token's experts), then measures decoding — bare and with random LoRA and MoE-LoRA adapters run fused — beside
# the machine's memory bandwidth.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch-default-model.sh
swift build -c release
bin=.build/release/loraswitch
echo "== greedy completion"
$bin generate --prompt "The capital of France is" --temperature 0 --max-tokens 24 --stats
echo "== chat"
$bin generate --chat --prompt "Write a haiku about memory bandwidth." --max-tokens 64 --seed 1 --stats
echo "== three samples decoded together (one batch, each with its own seed)"
$bin generate --prompt "A short poem about the sea:" --n 3 --max-tokens 24 --temperature 0.9 --seed 1 --stats
echo "== train: LoRA-Switch (8 experts, top-2, rank 16) on hyperbaton (data/bigbench), the backbone frozen in Q4_1"
work="${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/main-job"
mkdir -p "$work"
# Task lines {context, choices, gold} → {prompt, completion}: the gold choice continues the context (its trailing
# whitespace moves to the completion, as lm-evaluation-harness scores a continuation).
python3 - data/bigbench/hyperbaton "$work" <<'PY'
import json, sys
source, out = sys.argv[1], sys.argv[2]
for split, limit in (("train", 480), ("validation", 64)):
    with open(f"{source}/{split}.jsonl") as f, open(f"{out}/{split}.jsonl", "w") as g:
        for line in list(f)[:limit]:
            e = json.loads(line)
            prompt = e["context"].rstrip()
            g.write(json.dumps({"prompt": prompt, "completion": e["context"][len(prompt):] + e["choices"][e["gold"]]}) + "\n")
PY
$bin train --data "$work/train.jsonl" --valid "$work/validation.jsonl" --out "$work/adapter" --type moe-token \
    --batch-size 8 --epochs 1 --lr 1e-3 --warmup 6 --eval-every 20 --seed 1
echo "== eval on 100 held-out hyperbaton questions (test split): the bare model, then with the adapter"
$bin eval --task bigbench:hyperbaton --limit 100
$bin eval --task bigbench:hyperbaton --limit 100 --adapter "$work/adapter"
question=$(head -1 data/bigbench/hyperbaton/test.jsonl | python3 -c 'import json,sys; e=json.loads(sys.stdin.read()); print(e["context"].rstrip())')
echo "-- $question (gold: $(head -1 data/bigbench/hyperbaton/test.jsonl | python3 -c 'import json,sys; e=json.loads(sys.stdin.read()); print(e["choices"][e["gold"]])'))"
$bin generate --adapter "$work/adapter" --prompt "$question" --temperature 0 --max-tokens 2 --show-routing
echo ""
echo "== serve: the OpenAI-compatible server with the adapter; one streamed chat answer with each token's experts"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$bin serve --port "$port" --adapter "hyperbaton=$work/adapter" 2> "$work/serve.log" &
server=$!
python3 - "$port" <<'PY'
import json, sys, time, urllib.request
base = f"http://127.0.0.1:{sys.argv[1]}"
for _ in range(100):  # until the model is loaded
    try:
        urllib.request.urlopen(base + "/health").read()
        break
    except OSError:
        time.sleep(0.2)
body = {"model": "hyperbaton", "max_tokens": 12, "temperature": 0, "stream": True, "routing": {"return": True},
        "messages": [{"role": "user", "content": "Name a color."}]}
request = urllib.request.Request(base + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
for line in urllib.request.urlopen(request):
    if line.startswith(b"data: {"):
        for choice in json.loads(line[6:])["choices"]:
            for r in choice.get("routing", []):
                print(f"{choice['delta'].get('content', '')!r:>14}  experts {r['experts']}  gates {[round(g, 3) for g in r['gates']]}")
PY
kill -TERM "$server"
wait "$server"
cat "$work/serve.log"
echo ""
echo "== benchmark"
model="${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/SmolLM2-135M-Instruct.Q4_1.gguf"
$bin bench --model "$model" --experts 8 --top-k 2 --rank 16 --rows lora,layer-fused,token-reference,token-fused,auto
