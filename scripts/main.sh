#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed (OpenBLAS, the default model), builds in release mode,
# generates text from the default model (a completion and a chat answer), then measures decoding — bare and with
# random LoRA and MoE-LoRA adapters run fused — beside the machine's memory bandwidth.
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
echo "== benchmark"
model="${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/SmolLM2-135M-Instruct.Q4_1.gguf"
$bin bench --model "$model" --experts 8 --top-k 2 --rank 16 --rows lora,layer-fused,token-reference,token-fused,auto
