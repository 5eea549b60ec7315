#!/usr/bin/env bash
# Training tokens/s on the CPU: `loraswitch train` beside this package's examples/train.py, on the same model folder
# and the same pre-tokenized data (seq SEQ, batch 1, THREADS threads, STEPS steps; rank 16, all 7 projections; token-
# and layer-routed MoE-LoRA with 8 experts, top-2, and a static LoRA), then `loraswitch train` on the default Q4_1
# GGUF model itself. The model folder is the default model's weights dequantized to float32 by transformers (its
# GGUF loader), so both tools train on the same float32 weights. Run on an otherwise idle machine:
#
#   scripts/fetch-default-model.sh && python/venv.sh
#   LORASWITCH=.build/release/loraswitch python/examples/bench_train_cpu.sh
#
# Work files (the float32 folder, ~540 MB; the data) go to BENCH_DIR, outside the repo. The package prints each
# step's tokens/s (the first step includes warm-up); `loraswitch train` prints its run's rate.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/loraswitch"
binary="${LORASWITCH:-$repo/.build/release/loraswitch}"
python="${PYTHON:-$cache/torch-venv/bin/python}"
gguf="$cache/SmolLM2-135M-Instruct.Q4_1.gguf"
work="${BENCH_DIR:-$cache/torchbench}"
steps="${STEPS:-6}" seq="${SEQ:-256}" threads="${THREADS:-2}"
model="$work/smollm2-135m-f32" data="$work/seq$seq.jsonl"
mkdir -p "$work"
if [ ! -f "$model/model.safetensors" ]; then
    "$python" -c "import gguf" 2>/dev/null || "$(dirname "$python")/pip" install -q gguf
    "$python" - "$gguf" "$model" <<'PY'
import os, sys, torch
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM
src, out = sys.argv[1], sys.argv[2]
m = AutoModelForCausalLM.from_pretrained(os.path.dirname(src), gguf_file=os.path.basename(src), dtype=torch.float32)
cfg = m.config
if hasattr(cfg, "quantization_config"):
    del cfg.quantization_config   # the folder holds plain float32 weights
os.makedirs(out, exist_ok=True)
cfg.save_pretrained(out)
tied = cfg.tie_word_embeddings
save_file({k: v.contiguous() for k, v in m.state_dict().items() if not (tied and k == "lm_head.weight")},
          os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
PY
fi
[ -f "$data" ] || "$python" - "$data" "$seq" <<'PY'
import json, random, sys
rng = random.Random(0)
with open(sys.argv[1], "w") as f:
    for _ in range(16):
        ids = [rng.randrange(49152) for _ in range(int(sys.argv[2]))]
        f.write(json.dumps({"input_ids": ids, "labels": ids}) + "\n")
PY
for kind in "moe-token --experts 8 --top-k 2" "moe-layer --experts 8 --top-k 2" "lora"; do
    echo "== $kind, rank 16, all 7 projections, seq $seq, batch 1, $threads threads"
    # shellcheck disable=SC2086
    "$binary" train --model "$model" --data "$data" --out "$work/out-swift" --type $kind --rank 16 --steps "$steps" \
        --batch-size 1 --threads "$threads" --seed 0 2>&1 | grep -E "^done" | sed 's/^/loraswitch train: /'
    # shellcheck disable=SC2086
    OMP_NUM_THREADS="$threads" "$python" "$repo/python/examples/train.py" --model "$model" --data "$data" \
        --out "$work/out-torch" --type $kind --rank 16 --steps "$steps" --batch-size 1 --no-shuffle 2>&1 \
        | grep -E "^(step|done)" | sed 's/^/package: /'
done
echo "== the default model itself (Q4_1 GGUF, frozen in its stored type), moe-token"
"$binary" train --model "$gguf" --data "$data" --out "$work/out-swift" --type moe-token --experts 8 --top-k 2 \
    --rank 16 --steps "$steps" --batch-size 1 --threads "$threads" --seed 0 2>&1 | grep -E "^done" \
    | sed 's/^/loraswitch train: /'
