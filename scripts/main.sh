#!/usr/bin/env bash
# The main job on a fresh machine: installs what is needed (OpenBLAS, the default model), builds in release mode,
# and benchmarks decoding on the default model and on the SmolLM2-135M shape with random f32 weights, beside the
# machine's own memory bandwidth.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch-default-model.sh
swift build -c release
model="${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch/SmolLM2-135M-Instruct.Q4_1.gguf"
.build/release/loraswitch bench --model "$model"
echo
.build/release/loraswitch bench --config smollm2-135m --dtype f32
