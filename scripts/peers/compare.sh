#!/usr/bin/env bash
# Side-by-side decode and prefill figures: loraswitch bench and a peer alternated ROUNDS times on the same shape and
# dtype, so that both see the same machine in the same minutes.
#   PEER=llamacpp (default): scripts/peers/llamacpp_bench.py, the backbone rows.
#   PEER=pytorch: scripts/peers/pytorch_decode_bench.py (PyTorch eager, PEFT LoRA and MoE-LoRA rows, paired token by
#                 token against the bare model as ours are) beside `loraswitch bench --experts 8`; f32 or f16 only.
#   PEER=pytorch-train: scripts/peers/pytorch_train_bench.py (PEFT LoRA, layer- and token-routed MoE-LoRA as peers
#                 write them) beside `loraswitch bench --train`, seq 256, batch 1 (ROWS picks rows, default all three).
# Usage: [PEER=llamacpp|pytorch] scripts/peers/compare.sh CONFIG DTYPE [ROUNDS]
#        (CONFIG = smollm2-135m | tinyllama-1.1b | a .gguf file, the last for llama.cpp only)
# Needs the peer venv of ../shared/tools/setup-peers.sh (PYTHON overrides its path) and a release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=${PYTHON:-$HOME/.cache/loraswitch-peers/bin/python}
peer=${PEER:-llamacpp}
config=$1 dtype=${2:-f32} rounds=${3:-3}
if [ -f "$config" ]; then ours=(--model "$config"); theirs=(--model "$config")
else ours=(--config "$config" --dtype "$dtype"); theirs=(--config "$config" --dtype "$dtype"); fi
if [ "$peer" != llamacpp ] && [ -f "$config" ]; then echo "PEER=pytorch takes a CONFIG name, not a file" >&2; exit 2; fi
for i in $(seq "$rounds"); do
    case $peer in
    llamacpp)
        "$python" scripts/peers/llamacpp_bench.py "${theirs[@]}" --reps 1
        .build/release/loraswitch bench "${ours[@]}" | grep -E "^(machine|backbone)" ;;
    pytorch)
        "$python" scripts/peers/pytorch_decode_bench.py "${theirs[@]}" --rounds 1 --tokens 100
        .build/release/loraswitch bench "${ours[@]}" --tokens 100 --experts 8 --top-k 2 --rank 16 \
            --rows lora,layer-fused,token-reference,token-fused | grep -E "^(machine|backbone|lora|layer|token)" ;;
    pytorch-train)
        rows=${ROWS:-train-lora,train-layer,train-token}
        "$python" scripts/peers/pytorch_train_bench.py --config "$config" --rows "$rows" --steps 4 2>/dev/null | grep -E "^(train|machine)"
        .build/release/loraswitch bench --train "${ours[@]}" --rows "$rows" --steps 4 | grep -E "^(machine|train)" ;;
    *) echo "PEER is llamacpp, pytorch or pytorch-train, not $peer" >&2; exit 2 ;;
    esac
done
