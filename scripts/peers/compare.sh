#!/usr/bin/env bash
# Side-by-side decode and prefill figures: loraswitch bench and llama.cpp (scripts/peers/llamacpp_bench.py)
# alternated ROUNDS times on the same shape and dtype, so that both see the same machine in the same minutes.
# Usage: scripts/peers/compare.sh CONFIG DTYPE [ROUNDS]   (CONFIG = smollm2-135m | tinyllama-1.1b | a .gguf file)
# Needs the peer venv of ../shared/tools/setup-peers.sh (PYTHON overrides its path) and a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$HOME/.cache/loraswitch-peers/bin/python}
config=$1 dtype=${2:-f32} rounds=${3:-3}
if [ -f "$config" ]; then ours=(--model "$config"); peer=(--model "$config")
else ours=(--config "$config" --dtype "$dtype"); peer=(--config "$config" --dtype "$dtype"); fi
for i in $(seq "$rounds"); do
    "$python" scripts/peers/llamacpp_bench.py "${peer[@]}" --reps 1
    .build/release/loraswitch bench "${ours[@]}" | grep -E "^(machine|backbone)"
done
